// runtime/layers/metrics_sink.hpp: pool_options::metrics_sink, the periodic push of a pool's
// metrics to a user callable. A layer: it reads the pool through snapshot(), forked(),
// report_exception() and log(), and the core calls it at one point only, after a lifecycle
// call joined the workers (pool_impl::finish_metrics_sink).
//
// One thread per pool that has a sink ("<name>:sink"), started by weft::pool's constructor.
// It sleeps on a futex word until the next tick or a finish, so no mutex is involved (see
// fork below). Protocol:
//   M1 Ticks fall at start + k * interval. The thread calls the sink once per tick it is
//      awake for; when a call overruns one or more ticks, the missed ticks are skipped (the
//      next call is at the first tick still ahead), so a slow sink never piles up calls.
//      Every call is made by this thread: never two at once, never on a worker.
//   M2 finish() (after the workers were joined: close(), stop_now(), a close(deadline) that
//      completed, the destructor) stores stop_ = 1 (release) and wakes the thread, which
//      finishes the call in progress, if any, makes one final call with a snapshot taken
//      after it read stop_ (acquire), so every worker's last count is in it, then stores
//      done_ = 1 (release) and exits. finish() waits for done_: when close() returns, the
//      final call has returned. finish() is idempotent; several callers all wait.
//   M3 finish() on the sink thread itself (the sink called close()) only stores stop_: the
//      final call follows when the current call returns. Destroying the pool from inside the
//      sink cannot complete (the thread would join itself): it logs and terminates, as a
//      worker destroying its own pool does.
//   M4 The destructor finishes (M2) and joins the thread: no call after ~pool returns.
//   M5 An exception thrown by the sink goes to on_task_exception, or to the log when none
//      is set; the thread carries on with the next tick.
// fork() (runtime/fork.hpp). The thread holds no weft lock at any time (futex words only;
// snapshot() is lock-free), so there is nothing for the atfork handlers to take. In a child
// a pool created before the fork has no sink thread: finish() returns at once (the pool
// reports forked()), the sink is never called there, and the destructor abandons the
// std::thread handle (kept reachable on a process-wide list, never joined) instead of
// joining a thread that does not exist.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace weft::detail {

class pool_impl;

class metrics_sink {
 public:
  // Starts the thread; reads pool.options().metrics_sink / metrics_interval (validated).
  explicit metrics_sink(pool_impl& pool);
  ~metrics_sink();
  metrics_sink(const metrics_sink&) = delete;
  metrics_sink& operator=(const metrics_sink&) = delete;

  // M2/M3: the final call, once the workers were joined. Returns once it has returned
  // (except on the sink thread itself, and in a forked child: at once).
  void finish() noexcept;

 private:
  void run() noexcept;
  void deliver() noexcept;  // one call with a fresh snapshot (M5)

  pool_impl& pool_;
  const std::chrono::steady_clock::duration interval_;
  std::atomic<std::uint32_t> stop_{0};  // futex word, M2: 1 once finish() was called
  std::atomic<std::uint32_t> done_{0};  // futex word, M2: 1 once the final call returned
  std::thread thread_;                  // written by the constructor only
};

}  // namespace weft::detail
