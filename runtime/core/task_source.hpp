// runtime/core/task_source.hpp: a queue a layer owns that the pool's workers poll for work, and
// the pool's registry of them.
//
// Where a worker finds work is an ordered chain (worker.cpp, find_work and search):
//   1. its own deque (LIFO; fork-join children stay here);
//   2. the registered task sources, in registration order;
//   3. the injection queue (external submissions);
//   4. stealing from other workers' deques.
// Fairness: every kInjectorInterval tasks a worker polls one ingress (a source or the
// injection queue, taken in turn by a rotating cursor) before its own deque, so no source
// and no external submission waits behind a spawn-heavy worker for more than
// kInjectorInterval x (sources + 1) of its tasks. Isolated waits (runtime/core/isolation.cpp)
// never poll sources, as they never poll the injection queue.
//
// Protocol (the sources are ingress queues exactly like the injection queue, and inherit
// its arguments in sleep.hpp and pool_impl.hpp):
//   TS1 Registration is add-only: a source is registered before any task is put into it
//       and stays registered, owned by the registry, until the pool is destroyed. The
//       registry publishes a slot with a release increment of its count; a poller reads
//       the count with acquire and then only slots below it, so it never sees a slot
//       half-written, and a source that is polled is never freed.
//   TS2 No lost wake-up: a task is put into a source by scheduler::submit_to, which calls
//       notify_work (T1 of sleep.hpp, with its seq_cst fence) after the source's push, and
//       any_work (T3's re-check, after its seq_cst fence) asks every source whether it is
//       empty. A source's push must therefore happen-before its empty() can return false
//       to a thread that synchronises with the fence (any ordinary lock or release/acquire
//       queue satisfies this).
//   TS3 Shutdown: submit_to holds the pool's submission gate around the push (S1 of
//       pool_impl.hpp), so nothing enters a source after close() has closed the gate;
//       the termination check (S3) is any_work, which covers sources; the stopping drain
//       (S6) polls every source until it is empty, cancelling each task. Every task put
//       into a source therefore ends run or cancelled; a refused one is rejected and its
//       submitter told.
//   TS4 A source's poll() and empty() may be called by any worker and by a stopping
//       thread, concurrently; push() by any thread. None of them may block or call back
//       into the pool.
//   TS5 A bounded source whose submitters may wait for room (lanes' full_policy::block)
//       wakes them in gate_closed(), which close_gate calls after setting the closed bit
//       (S1) and once no submitter is inside the gate: a waiter re-checks closed() then.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "weft/detail/task.hpp"

namespace weft::detail {

class task_source {
 public:
  virtual ~task_source() = default;
  // Queues t; false when the source refuses it (full, say): t is then untouched.
  virtual bool push(task* t) = 0;
  // Takes the task this source wants run next, or nullptr. `worker` is the polling
  // worker's index, or -1 for the stopping thread's drain. A source may link its queued
  // tasks through task::next; the poller resets the field (it shares a union with the
  // task's isolation tag, which is 0 for source tasks).
  virtual task* poll(int worker) noexcept = 0;
  // False when the source may hold a task (TS2). A stale "not empty" only costs a search.
  virtual bool empty() const noexcept = 0;
  // Tasks waiting in the source, approximately (metrics::queued).
  virtual std::size_t size_approx() const noexcept { return empty() ? 0 : 1; }
  // TS5: the pool's submission gate has closed (close, stop_now, a close deadline). Must
  // not block or call back into the pool.
  virtual void gate_closed() noexcept {}
};

class source_registry {
 public:
  static constexpr std::size_t kMaxSources = 16;

  // TS1. Returns the source's id (its place in the chain); throws std::length_error past
  // kMaxSources.
  unsigned add(std::shared_ptr<task_source> s);

  // The number of registered sources; slots below it are fully published.
  unsigned count() const noexcept {
    // acquire: pairs with the release store in add (TS1).
    return count_.load(std::memory_order_acquire);
  }
  task_source& at(unsigned id) const noexcept {
    // relaxed: ordered by the acquire load of count_ the caller made (TS1).
    return *slots_[id].load(std::memory_order_relaxed);
  }

 private:
  std::array<std::atomic<task_source*>, kMaxSources> slots_{};
  std::atomic<unsigned> count_{0};
  std::mutex mu_;                                  // serialises add
  std::vector<std::shared_ptr<task_source>> owned_;  // guarded by mu_; keeps sources alive (TS1)
};

}  // namespace weft::detail
