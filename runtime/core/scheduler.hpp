// runtime/core/scheduler.hpp: the internal interface that the pool façade and every layer
// (lanes, keyed serializer, streams, coroutines, the C API) use to reach the core. A layer
// includes this header, never worker.hpp or pool_impl.hpp, and needs nothing else:
//
// | call                    | what it does                                                   |
// |-------------------------|----------------------------------------------------------------|
// | submit(t)               | on a worker of this pool: onto its deque (no lock); elsewhere: |
// |                         | the injection queue, through the submission gate               |
// | submit_global(t)        | the injection queue from any thread (no locality)              |
// | try_submit(t)           | as submit, with a status instead of an exception               |
// | submit_until(t, d, st)  | as try_submit, waiting for room (capacity) until d or st       |
// | add_source(s)           | registers a task source; returns its id (task_source.hpp)      |
// | submit_to(id, t)        | puts t into a registered source, gated like the injection      |
// |                         | queue, then wakes a worker                                     |
// | notify_work()           | a layer made work visible some other way: wake one sleeper     |
// | announce(t) +           | for a layer that applies a full_policy itself (lanes): the    |
// |   offer_to(id, t)       | submission hooks once, then attempts that leave a refused t   |
// |                         | in the caller's hands; it ends it with one of:                 |
// |   reject(t)             |   destroyed unrun, counted as rejected                         |
// |   run_here(t)           |   run on the calling thread (caller_runs), counted as external |
// |   discard(t)            |   a queued task dropped for a newer one: cancelled, counted as |
// |                         |   cancelled and discarded                                      |
// | when_full()             | the pool's pool_options::when_full                             |
// | help_until(...)         | the wait primitive: a worker helps, any other thread sleeps    |
// | set_hooks(h)            | named hook points (below), free when unset                     |
//
// Every call that takes a task block consumes it: queued, or destroyed before the call
// returns or throws, and counted as rejected.
//
// Hook points (scheduler_hooks). Each is a plain function pointer, null when unused; the
// workers read the hooks through one acquire load per task, so an unset set costs a load
// and a branch. Hooks run on the worker, must not throw, and must not wait on the pool.
//   thread_start(ctx, worker, pu)   a worker thread started (pu: its PU, or -1 unpinned);
//                                   before it runs any task
//   thread_stop(ctx, worker)        a worker thread is about to exit; after its last task
//   submitted(ctx, worker, t)       a submission is about to be queued (on the submitter)
//   task_start(ctx, worker, t)      just before t runs (or is cancelled) on a worker
//   task_finish(ctx, worker, t, r)  just after, with its result
//   run(ctx, worker, pool, t)       runs t instead of the plain call (a task wrapper)
//   park(ctx, worker) / unpark      around a worker's sleep in the sleep protocol
//   search(ctx, worker, on)         a worker starts (on) or stops searching for work to steal
//   closed(ctx)                     the workers were joined
// Hooks installed with set_hooks stay alive until the pool is destroyed (a worker may be
// inside one when a later set_hooks replaces it); thread_start fires only for threads that
// start after the hooks were set, so hooks meant for every thread go in at construction
// (pool_impl's constructor takes them).
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>

#include "core/task_source.hpp"
#include "weft/detail/task.hpp"
#include "weft/detail/wait.hpp"
#include "weft/errors.hpp"
#include "weft/full_policy.hpp"

namespace weft::detail {

class pool_impl;

struct scheduler_hooks {
  void* ctx = nullptr;
  void (*thread_start)(void* ctx, unsigned worker, int pu) = nullptr;
  void (*thread_stop)(void* ctx, unsigned worker) = nullptr;
  // A submission is about to be queued (`worker`: the submitting worker's index, or -1).
  void (*submitted)(void* ctx, int worker, const task* t) = nullptr;
  void (*task_start)(void* ctx, unsigned worker, const task* t) = nullptr;
  // After t ran; t is only an identity then (its block is freed).
  void (*task_finish)(void* ctx, unsigned worker, const task* t, task_result r) = nullptr;
  // Replaces the plain run of a task when set; must consume t through run_task exactly once.
  task_result (*run)(void* ctx, unsigned worker, pool_impl& pool, task* t) = nullptr;
  void (*park)(void* ctx, unsigned worker) = nullptr;
  void (*unpark)(void* ctx, unsigned worker) = nullptr;
  void (*search)(void* ctx, unsigned worker, bool on) = nullptr;
  // After the pool's workers were joined (close, the destructor); once.
  void (*closed)(void* ctx) = nullptr;
  // Stamp every submission with its enqueue time (the observers' wait times).
  bool stamp_all = false;
};

class scheduler {
 public:
  explicit scheduler(pool_impl& p) noexcept : pool_(&p) {}

  // From outside the pool, a full queue (pool_options::capacity) is handled by the pool's
  // full_policy. Throws pool_closed (from outside the pool, once closed), queue_full
  // (full_policy::reject) or std::bad_alloc.
  void submit(task* t);
  // submit for n tasks: from outside an unbounded pool one bulk operation, all or
  // nothing. On a throw, the tasks not accepted were destroyed and counted as rejected.
  void submit_bulk(task* const* tasks, std::size_t n);
  // Always the injection queue, never refused for capacity (internal work).
  void submit_global(task* t);
  // accepted, closed or full (no policy applied); throws std::bad_alloc only.
  submit_status try_submit(task* t);
  // As try_submit, but waits for room until `deadline` or `stop` (then: full).
  submit_status submit_until(task* t, std::chrono::steady_clock::time_point deadline, const std::stop_token& stop);

  unsigned add_source(std::shared_ptr<task_source> s);
  // submit_status::closed once the pool is closed; ::full when the source refused it.
  // Either way t was destroyed and counted as rejected. Throws nothing but bad_alloc
  // escaping the source's push (t destroyed, rejected).
  submit_status submit_to(unsigned source, task* t);
  void notify_work() noexcept;

  // ---- for a layer that applies a full_policy to its own bounded source (lanes) ----
  // Stamps t and calls the `submitted` hook: once per submission, before the first offer_to.
  void announce(task* t) noexcept;
  // As submit_to without its announce, but a refused t (closed or full) is left untouched,
  // for the caller to retry or end with reject/run_here/discard. Throws std::bad_alloc
  // escaping the source's push (t destroyed, rejected).
  submit_status offer_to(unsigned source, task* t);
  void reject(task* t) noexcept;
  void run_here(task* t) noexcept;
  void discard(task* t) noexcept;
  full_policy when_full() const noexcept;
  // True when some task is queued on this pool (injection queue, sources, any worker's
  // deque): a hint for a layer about to yield its worker (keyed's drain re-posts itself only
  // when something waits). A seq_cst fence and O(workers + sources) loads; may be stale.
  bool has_queued_work() const noexcept;

  // True once pred(ctx) holds, false when `deadline` passed first (weft/detail/wait.hpp).
  bool help_until(const void* key, wait_pred pred, const void* ctx,
                  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max()) {
    return wait_until(key, pred, ctx, deadline);
  }

  void set_hooks(std::shared_ptr<const scheduler_hooks> h);

  // The calling thread's worker index in this pool, or -1.
  int current_worker() const noexcept;
  unsigned size() const noexcept;
  bool closed() const noexcept;

 private:
  // One try: onto the calling worker's deque, or through the gate with the capacity check.
  // On a throw (bad_alloc) t was destroyed and counted as rejected.
  submit_status attempt(task* t);

  pool_impl* pool_;
};

}  // namespace weft::detail
