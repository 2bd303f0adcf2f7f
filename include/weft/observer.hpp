// weft/observer.hpp: watching what a pool's workers do — thread start/stop hooks, a task
// wrapper, an observer of task events, and a built-in tracer (Chrome/Perfetto JSON).
//
// All of them are set in pool_options (options.hpp) before the pool starts, and cost nothing
// when unset: a worker reads one pointer per task and branches past it. When any is set,
// every submission is stamped with its enqueue time (one clock read), so that the observer
// gets each task's wait time.
//
// | pool_options field | called                                   | on                   |
// |--------------------|------------------------------------------|----------------------|
// | on_thread_start    | once per worker, before its first task   | the worker           |
// | on_thread_stop     | once per worker, after its last task     | the worker           |
// | task_wrapper       | around every task a worker runs          | the worker           |
// | observer           | on_submit / on_start / on_finish         | submitter / worker   |
// | trace_path         | the tracer: written when the pool closes | the closing thread   |
// Hooks must not throw (an exception is reported to on_task_exception and otherwise
// ignored), must not close or destroy the pool, and should be quick: they run on the task
// path. A task's own exception never reaches a wrapper: it goes to the task's future or to
// on_task_exception as usual.
//
// The trace (also enabled by the environment variable WEFT_TRACE=path when
// pool_options::read_environment is true) is Chrome trace-event JSON that
// ui.perfetto.dev and chrome://tracing open. Schema version 1:
//   {"weft_trace_version": 1, "displayTimeUnit": "ns", "traceEvents": [...]}
//   - "M" thread_name events: "weft:<i> (PU <p>)" per worker (or "(unpinned)"), "submitters"
//   - "X" complete events, one per task run: name "task", ts/dur in microseconds, args
//     {"wait_us"} when known; helping nests slices (a wait inside a task runs others)
//   - "s"/"f" flow events (bind_id = the task) from the submission to the run, for tasks
//     submitted on one thread and run on another: named "steal" when a worker submitted
//     it (it was taken from that worker's deque), "run" when it came from outside; a flow
//     is written only when both ends are in the trace
//   - "C" counter events "parked workers" (args {"parked"}, per park/unpark), "searching
//     workers" (args {"searching"}: looking for work to steal, per change) and "queued
//     tasks" (args {"queued"}: submitted and not yet started, at most one sample per 10 us)
// Each worker records into its own fixed-size ring (kTraceRing events; the oldest are
// overwritten), without locks or allocation; submissions from outside go to a shared ring
// under a mutex.
#pragma once

#include <cstdint>
#include <functional>

namespace weft {

// What the observer learns about a task that ran (or was cancelled) on a worker.
struct task_event {
  unsigned worker = 0;
  std::uint64_t wait_ns = 0;  // submission to start (0 when the task was never stamped)
  std::uint64_t run_ns = 0;   // start to finish
  enum class outcome { ok, failed, cancelled } result = outcome::ok;
};

class observer {
 public:
  virtual ~observer() = default;
  // A task was accepted; `worker` is the submitting worker's index, or -1 outside the pool.
  virtual void on_submit(int worker) noexcept { (void)worker; }
  virtual void on_start(unsigned worker) noexcept { (void)worker; }
  virtual void on_finish(const task_event& e) noexcept { (void)e; }
};

// What a task wrapper receives: calling it runs the task, at most once. A wrapper that
// returns without calling it does not lose the task: weft runs it right after.
class task_invocation {
 public:
  void operator()() {
    if (run_ != nullptr) {
      auto* r = run_;
      run_ = nullptr;
      r(arg_);
    }
  }
  bool invoked() const noexcept { return run_ == nullptr; }
  unsigned worker() const noexcept { return worker_; }

  // weft-internal
  task_invocation(void (*run)(void*), void* arg, unsigned worker) noexcept : run_(run), arg_(arg), worker_(worker) {}

 private:
  void (*run_)(void*);
  void* arg_;
  unsigned worker_;
};

using task_wrapper = std::function<void(task_invocation&)>;

}  // namespace weft
