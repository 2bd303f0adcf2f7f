// runtime/pool_impl.hpp: the state a pool's workers share.
//
// Shutdown protocol:
//   S1 close() sets the closed bit of `gate_` (seq_cst). External submitters hold the gate
//      (count += 2) around their enqueue, so once the bit is set and the count drains to
//      zero no external task can be added any more.
//   S2 close() then sets `closing_` and wakes every worker (sleep.wake_all(false)).
//   S3 Workers keep running and stealing as usual: tasks spawned by running tasks are part
//      of the drain. The worker whose park makes every worker idle, with no worker blocked
//      inside a wait, re-checks every queue; if all are empty while closing_, nothing can
//      ever add work again (S1, and no task runs), so it terminates the pool
//      (sleep.wake_all(true)) and every worker exits its loop.
//   S4 close() joins the workers. Nothing can be left in any queue (S3); the destructor
//      still discards anything it finds, which would be a bug, and says so.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "platform.hpp"
#include "sleep.hpp"
#include "topology.hpp"
#include "weft/detail/task.hpp"
#include "weft/options.hpp"
#include "worker.hpp"

namespace weft::detail {

class pool_impl {
 public:
  explicit pool_impl(pool_options options);
  ~pool_impl();

  // External submission (S1). False when closed; the task is then not queued.
  bool inject(task* t);
  void close();
  bool closed() const noexcept {
    // acquire: pairs with the seq_cst fetch_or in close (S1).
    return (gate_.load(std::memory_order_acquire) & kClosedBit) != 0;
  }
  bool closing() const noexcept {
    // acquire: pairs with the seq_cst store in close (S2).
    return closing_.load(std::memory_order_acquire);
  }
  // Any task visible in any queue. Starts with a seq_cst fence: it is the re-check half of
  // the sleep protocol's T3 (see sleep.hpp).
  bool any_work() const noexcept;

  void report_exception(std::exception_ptr e) noexcept;
  void log(std::string_view line) const noexcept;

  const pool_options& options() const noexcept { return options_; }
  worker& worker_at(unsigned i) noexcept { return *workers_[i]; }
  unsigned size() const noexcept { return static_cast<unsigned>(workers_.size()); }
  sleep_protocol<std_platform>& sleep() noexcept { return sleep_; }
  moodycamel::ConcurrentQueue<task*>& injector() noexcept { return injector_; }
  const std::string& placement() const noexcept { return placement_; }
  std::uint64_t injector_size() const noexcept { return injector_.size_approx(); }

 private:
  static constexpr std::uint64_t kClosedBit = 1;
  static constexpr std::uint64_t kSubmitter = 2;

  topology topo_;  // first: options_ is resolved against it
  pool_options options_;
  std::string placement_;
  moodycamel::ConcurrentQueue<task*> injector_;
  sleep_protocol<std_platform> sleep_;
  std::vector<std::unique_ptr<worker>> workers_;
  alignas(destructive_interference) std::atomic<std::uint64_t> gate_{0};
  std::atomic<bool> closing_{false};
  std::mutex close_mu_;
  bool joined_ = false;  // guarded by close_mu_
};

// Validates options (after applying the environment when asked) and resolves the worker
// count; throws std::invalid_argument naming the option. Defined in options.cpp.
pool_options resolve_options(pool_options options, const topology& topo);

}  // namespace weft::detail
