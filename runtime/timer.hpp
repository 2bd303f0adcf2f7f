// runtime/timer.hpp: per-pool deadlines for submissions (task_options::deadline/timeout).
//
// One thread per pool, started on the first deadline, sleeps on a condition variable until
// the earliest deadline (no thread per deadline, no polling). At a deadline it cancels the
// submission if it has not started (its outcome becomes "cancelled" at once) and fires its
// stop token if it is running. A submission that finishes first removes its entry.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "weft/detail/submission.hpp"

namespace weft::detail {

class timer_service {
 public:
  explicit timer_service(std::string thread_name);
  ~timer_service();
  timer_service(const timer_service&) = delete;
  timer_service& operator=(const timer_service&) = delete;

  void schedule(std::chrono::steady_clock::time_point deadline, const std::shared_ptr<submission_base>& s);
  // Removes s's entry if it is still scheduled.
  void cancel(submission_base& s) noexcept;

 private:
  struct entry {
    std::chrono::steady_clock::time_point deadline;
    std::uint64_t seq;
    std::weak_ptr<submission_base> target;
  };
  struct earlier {
    bool operator()(const entry* a, const entry* b) const noexcept {
      return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
    }
  };
  void run() noexcept;

  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<entry*, earlier> entries_;  // guarded by mu_
  std::uint64_t next_seq_ = 0;         // guarded by mu_
  bool stopping_ = false;              // guarded by mu_
  std::thread thread_;                 // started by the first schedule, under mu_
};

}  // namespace weft::detail
