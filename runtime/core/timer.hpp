// runtime/core/timer.hpp: per-pool deadlines for submissions (task_options::deadline/timeout).
//
// One thread per pool, started on the first deadline, sleeps on a condition variable until
// the earliest deadline (no thread per deadline, no polling). At a deadline it cancels the
// submission if it has not started (its outcome becomes "cancelled" at once) and fires its
// stop token if it is running. A submission that finishes first removes its entry.
//
// fork() (runtime/platform/fork.hpp). Every live timer is in a process-wide registry. Around fork the
// atfork handlers lock the registry and then every timer's mutex, so the child never
// inherits one locked by a thread it does not have (a submitter scheduling a deadline, the
// timer thread itself); the parent unlocks them all. The child unlocks them too, but its
// copies of these timers have no thread (and their condition variable counts a waiter
// that will never come back, so destroying it would block for ever): every timer inherited
// by a child is marked abandoned and moved to a list of abandoned timers, never joined,
// never destroyed. Its owner (a pool created before the fork, unusable in the child) hands
// it to abandon_timer instead of destroying it.
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

  // atfork hooks (see the top of the file), called by runtime/platform/fork.cpp.
  static void prepare_fork() noexcept;
  static void after_fork_in_parent() noexcept;
  static void after_fork_in_child() noexcept;
  // True for a timer inherited by a forked child.
  bool abandoned() const noexcept { return abandoned_; }

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
  // The registry's intrusive links (no allocation in the constructor); guarded by the
  // registry's mutex. abandoned_ is written only in a forked child, single-threaded.
  timer_service* prev_ = nullptr;
  timer_service* next_ = nullptr;
  bool abandoned_ = false;
};

// Keeps a timer inherited by a forked child alive for ever instead of destroying it (see
// the top of the file). Any other timer is simply destroyed.
void abandon_timer(std::unique_ptr<timer_service> timer) noexcept;

}  // namespace weft::detail
