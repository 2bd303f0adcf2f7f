// weft/pool.hpp: the pool of work-stealing workers.
//
// Overview. A pool owns N worker slots, each with its own Chase-Lev deque, and by default
// one thread per slot for its whole life (a fixed pool). An elastic pool
// (pool_options::min_workers < max_workers, options.hpp) runs between min and max threads
// on its max slots: it attaches a thread to a free slot when work arrives while every
// thread is busy, and a thread idle for keep_alive detaches again (size() is the slot
// count; stats().threads the threads now). Besides the deques there is one
// injection queue for tasks that come from threads outside the pool. A task posted from
// one of the pool's own workers goes to that worker's deque (no lock, no allocation in
// steady state); idle workers steal from their nearest neighbours first, then further
// away; workers with nothing to do spin briefly and then sleep (an idle pool uses next to
// no CPU). Workers are pinned according to pool_options::pinning (see options.hpp).
//
// Lifecycle:
// | state    | post/submit from outside | post/submit from a worker        | close()             |
// |----------|--------------------------|----------------------------------|---------------------|
// | open     | accepted                 | accepted                         | -> draining         |
// | draining | throws pool_closed       | accepted (part of drain)         | waits for the drain |
// | stopping | throws pool_closed       | accepted, completes as cancelled | waits for the stop  |
// | closed   | throws pool_closed       | (no workers run)                 | returns at once     |
// "stopping" is entered by stop_now() or when a close deadline passes.
// Closing stops external submission, runs every task already queued (and every task those
// tasks spawn), then joins the workers. The destructor calls close().
//
// Calling close(), close(deadline) or stop_now(), or destroying the pool, from a task running
// on one of its own workers cannot work (it would wait for itself): the calls throw
// std::logic_error naming the call, the destructor reports through the logger and calls
// std::terminate. The same holds on the thread running stop_now() or close(deadline) while
// it delivers cancellations: an on_done callback it calls (with a cancelled outcome) that
// calls close(), close(deadline) or stop_now() on the same pool gets std::logic_error (which
// on_done may catch; if it escapes, it goes to on_task_exception like any exception of
// on_done); destroying the pool there terminates. Lifecycle calls from different threads
// never wait for each other's drain: a stop_now() or close(deadline) escalates a close() in
// progress on another thread, and every call returns once the pool is stopped or joined.
//
// Capacity (pool_options::capacity, full_policy). A bounded pool holds at most `capacity`
// tasks submitted from outside its workers in its injection queue; a slot is freed when a
// worker takes the task. Tasks spawned by running tasks (post or submit from a worker of
// this pool, task_group children) are never counted and never refused, so a task cannot
// deadlock its own pool by submitting. When the queue is full:
// | call                         | reject            | block                | caller_runs     | discard_oldest        |
// |------------------------------|-------------------|----------------------|-----------------|-----------------------|
// | post, submit, post_bulk      | throws queue_full | waits for room       | runs f here     | oldest -> cancelled,  |
// |                              |                   | (close: pool_closed) |                 | f queued              |
// | try_post, try_submit         | submit_status::full, whatever the policy                                         |
// | post_until, submit_until     | waits for room until the deadline or the stop token, then submit_status::full    |
// A refused callable is destroyed without running and counted in metrics::rejected.
// With lanes (weft/lanes.hpp), submissions from outside go to the lanes, whose own bounds
// apply the same policies ("A full lane" there); `capacity` then bounds only the injection
// queue, where only internal hand-offs go (a keyed drain re-posting itself, say).
//
// Callables. Their destructors (and those of everything they capture) must not throw: a
// task is destroyed on a worker after it ran or was cancelled, where the exception could
// only terminate the program. A destructor declared noexcept(false) is rejected at compile
// time. A callable whose result is kept (submit, post with task_options or on_done) must not
// return a reference (futures hold values): rejected at compile time, with a message.
//
// Exceptions. A task run through submit() delivers its exception to its future. A task run
// through post() delivers it to pool_options::on_task_exception (default: the logger). No
// exception is dropped silently, and none escapes into a worker thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/deadline.hpp"
#include "weft/detail/submission.hpp"
#include "weft/detail/task.hpp"
#include "weft/errors.hpp"
#include "weft/future.hpp"
#include "weft/metrics.hpp"
#include "weft/options.hpp"
#include "weft/outcome.hpp"
#include "weft/task_options.hpp"

namespace weft {

namespace detail {
class pool_impl;
struct pool_access;  // weft's own way to the private entry points below (detail/pool_access.hpp)
}

// What try_submit / submit_until return: a status, and the future when it is accepted.
template <class R>
struct submit_attempt {
  submit_status status;
  future<R> result;  // valid() only when status == submit_status::accepted
  explicit operator bool() const noexcept { return status == submit_status::accepted; }
};

class pool {
 public:
  // Throws std::invalid_argument (naming the option) for invalid options.
  explicit pool(pool_options options = {});
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // ---- submitting ----
  // Every callable may be written as f() or f(std::stop_token); the token reports stop
  // when the pool is stopped (stop_now, a close deadline, the base token) and, for the
  // overloads with task_options, when the submission's own token or deadline fires.

  // Runs f on the pool. Fire-and-forget: f's exception goes to on_task_exception.
  // Throws pool_closed after close() (from outside the pool) or std::bad_alloc; in both
  // cases f has been destroyed without running.
  template <class F>
  void post(F&& f) {
    enqueue(detail::make_task(plain_task<std::decay_t<F>>{this, std::forward<F>(f)}));
  }

  // As post(f), with a stop token and/or deadline (see task_options.hpp). A task cancelled
  // before it starts is dropped and counted in metrics::cancelled.
  template <class F>
  void post(F&& f, const task_options& options) {
    using R = detail::task_result_t<F>;
    submit_with(std::forward<F>(f), report_to_handler<R>{this}, options);
  }

  // As post, and on_done(weft::outcome<R>) is called exactly once, on the thread that
  // completed the task (a worker; or, for a cancellation, the thread whose stop request or
  // deadline cancelled it), with the value, the exception, or a cancellation. A cancellation
  // that comes while post itself is still running (a token that had already fired, a
  // deadline already past) is delivered by post, on the calling thread, before it returns.
  // A rejected submission (post throws) never calls on_done. An exception thrown by on_done
  // goes to on_task_exception.
  template <class F, class Done>
    requires std::is_invocable_v<std::decay_t<Done>&, outcome<detail::task_result_t<F>>&&>
  void post(F&& f, Done&& on_done, const task_options& options = {}) {
    submit_with(std::forward<F>(f), std::forward<Done>(on_done), options);
  }

  // As post, but never blocks and never throws for a closed or full pool: accepted,
  // closed, or full (pool_options::capacity reached; the pool's full_policy is not
  // applied). Throws std::bad_alloc only. Not accepted: f was destroyed without running.
  template <class F>
  submit_status try_post(F&& f) {
    return try_enqueue(detail::make_task(plain_task<std::decay_t<F>>{this, std::forward<F>(f)}));
  }

  // As try_post, but waits for room while the pool is full, until `deadline` passes or
  // `stop` fires (then: full). A deadline already past is one attempt. With lanes: the
  // default lane, waiting for room in it (weft/lanes.hpp).
  template <class F>
  submit_status post_until(F&& f, std::chrono::steady_clock::time_point deadline, std::stop_token stop = {}) {
    return enqueue_until(detail::make_task(plain_task<std::decay_t<F>>{this, std::forward<F>(f)}), deadline, stop);
  }
  template <class F, class Rep, class Period>
  submit_status post_for(F&& f, std::chrono::duration<Rep, Period> timeout, std::stop_token stop = {}) {
    return post_until(std::forward<F>(f), detail::saturating_deadline(std::chrono::steady_clock::now(), timeout),
                      std::move(stop));
  }

  // Posts every callable of [first, last) (a range of callables, moved from). From outside
  // the pool on an unbounded pool: one operation on the injection queue (one gate
  // crossing, one wake-up), all or nothing. From a worker of this pool: each onto its
  // deque. On a bounded pool (pool_options::capacity): one at a time, under its
  // full_policy. With lanes (weft/lanes.hpp): one at a time into the default lane, under
  // its policy (from a worker: onto its deque). Throws like post: the callables accepted
  // before the throw will run; the rest were destroyed without running and counted as
  // rejected.
  template <class It>
  void post_bulk(It first, It last);

  // As submit for every callable of [first, last): their futures, in order.
  template <class It>
  auto submit_bulk(It first, It last) -> std::vector<future<detail::task_result_t<decltype(*first)>>>;

  // As submit, with a status instead of an exception for a closed or full pool (the
  // pool's full_policy is not applied): `result` is valid only when status is accepted.
  template <class F>
  auto try_submit(F&& f) -> submit_attempt<detail::task_result_t<F>> {
    using R = detail::task_result_t<F>;
    auto state = std::make_shared<detail::future_state<R>>();
    const submit_status st =
        try_enqueue(detail::make_task(future_task<R, std::decay_t<F>>{this, state, std::forward<F>(f)}));
    if (st != submit_status::accepted) return {st, future<R>()};
    return {st, future<R>(std::move(state))};
  }
  // As try_submit, waiting for room until `deadline` or `stop` (as post_until).
  template <class F>
  auto submit_until(F&& f, std::chrono::steady_clock::time_point deadline, std::stop_token stop = {})
      -> submit_attempt<detail::task_result_t<F>> {
    using R = detail::task_result_t<F>;
    auto state = std::make_shared<detail::future_state<R>>();
    const submit_status st = enqueue_until(
        detail::make_task(future_task<R, std::decay_t<F>>{this, state, std::forward<F>(f)}), deadline, stop);
    if (st != submit_status::accepted) return {st, future<R>()};
    return {st, future<R>(std::move(state))};
  }

  // Runs f on the pool; the future holds its result, its exception, or task_cancelled.
  template <class F>
  auto submit(F&& f) -> future<detail::task_result_t<F>> {
    using R = detail::task_result_t<F>;
    auto state = std::make_shared<detail::future_state<R>>();
    enqueue(detail::make_task(future_task<R, std::decay_t<F>>{this, state, std::forward<F>(f)}));
    return future<R>(std::move(state));
  }

  template <class F>
  auto submit(F&& f, const task_options& options) -> future<detail::task_result_t<F>> {
    using R = detail::task_result_t<F>;
    auto state = std::make_shared<detail::future_state<R>>();
    submit_with(std::forward<F>(f), detail::to_future<R>{state}, options);
    return future<R>(std::move(state));
  }

  // ---- waiting without closing ----
  // Returns once every task submitted to this pool so far (and everything those tasks
  // spawned) has finished, at some instant during the call: the pool was idle then. Tasks
  // submitted concurrently may or may not be waited for. The pool stays open. Throws
  // std::logic_error on one of this pool's own workers (the calling task itself is not
  // finished). On a worker of another pool the wait runs that pool's tasks meanwhile.
  void wait_idle();
  // As wait_idle, until `deadline`: false when the pool was still busy then.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);
  template <class Rep, class Period>
  bool wait_idle_for(std::chrono::duration<Rep, Period> timeout) {
    return wait_idle(detail::saturating_deadline(std::chrono::steady_clock::now(), timeout));
  }

  // ---- lifecycle ----
  // Stops external submission, runs everything queued (and what it spawns), joins the
  // workers. Idempotent, thread-safe. Throws std::logic_error on one of this pool's workers
  // and inside a cancellation callback that this pool's stop is delivering (see the top).
  void close();

  // As close(), but only until `deadline` (one already past stops at once): then every
  // task still queued completes as cancelled (futures get task_cancelled), every running
  // task's stop token fires, and close returns false without waiting for them. True: everything ran and the workers
  // were joined before the deadline. A worker stuck in a task that ignores its stop token
  // keeps running it; a later close() or the destructor waits for it.
  bool close(std::chrono::steady_clock::time_point deadline);
  // close(timeout) is close(now + timeout), saturated (weft/detail/deadline.hpp): a timeout
  // too long for steady_clock (duration::max(), years(1000)) is no limit at all, a zero or
  // negative one a deadline already past.
  template <class Rep, class Period>
  bool close(std::chrono::duration<Rep, Period> timeout) {
    return close(detail::saturating_deadline(std::chrono::steady_clock::now(), timeout));
  }

  // Stops external submission, fires every running task's stop token, completes every
  // queued task as cancelled, and joins the workers (waiting for running tasks to return).
  // Afterwards every future obtained from the pool is ready.
  void stop_now();

  bool closed() const noexcept;

  // Fires when the pool is stopped (stop_now, a close deadline) or its base token fires.
  std::stop_token get_stop_token() const noexcept;

  // ---- introspection ----
  unsigned size() const noexcept;  // number of worker slots (max_workers; threads: stats().threads)
  metrics stats() const noexcept;
  // Per-lane counters (weft/lanes.hpp), in configuration order; empty without lanes.
  std::vector<lane_metrics> lane_stats() const;
  // Index of the calling thread among this pool's workers, or -1 if it is not one of them.
  int current_worker_index() const noexcept;
  // A one-line description of the machine and of where each worker is pinned.
  const std::string& placement() const noexcept;

 private:
  // ---- low-level entry points, not part of the contract ----
  // Used by the templates of this class and, through detail::pool_access (the only friend),
  // by weft's other public templates and its runtime layers; see detail/pool_access.hpp.
  // The task block is always consumed: queued, or destroyed before the call returns/throws.
  void enqueue(detail::task* t);
  submit_status try_enqueue(detail::task* t);
  submit_status enqueue_until(detail::task* t, std::chrono::steady_clock::time_point deadline,
                              const std::stop_token& stop);
  // Queues n tasks; every block is consumed. Throws like enqueue (the blocks not queued
  // destroyed and counted as rejected).
  void enqueue_bulk(detail::task* const* tasks, std::size_t n);
  // Queues a submission task, arming its tokens and deadline. Throws like enqueue.
  void enqueue_submission(detail::task* t, const std::shared_ptr<detail::submission_base>& s,
                          const task_options& options);
  // Hands an exception that no future or wait() will deliver to on_task_exception.
  void report_unobserved(std::exception_ptr e) noexcept;

  template <class F>
  struct plain_task {
    pool* p;
    F fn;
    void operator()() { detail::invoke_with_token(fn, token_for<F>(p)); }
  };
  template <class R, class F>
  struct future_task {
    pool* p;
    std::shared_ptr<detail::future_state<R>> state;
    F fn;
    bool operator()() noexcept {
      detail::to_future<R>{state}(detail::capture<R>(fn, token_for<F>(p)));
      return !state->failed();
    }
    void cancel() noexcept { state->set_exception(std::make_exception_ptr(task_cancelled())); }
  };
  template <class R>
  struct report_to_handler {
    pool* p;
    void operator()(outcome<R>&& o) noexcept {
      if (!o.has_value() && !o.cancelled()) p->report_unobserved(o.error());
    }
  };
  // The pool's token for callables that take one; an empty token for those that don't.
  template <class F>
  static std::stop_token token_for(pool* p) noexcept {
    if constexpr (std::is_invocable_v<F&, std::stop_token>) {
      return p->get_stop_token();
    } else {
      return {};
    }
  }

  template <class F, class Done>
  void submit_with(F&& f, Done&& done, const task_options& options) {
    using R = detail::task_result_t<F>;
    using S = detail::submission<R, std::decay_t<F>, std::decay_t<Done>>;
    auto s = std::make_shared<S>(std::forward<F>(f), std::forward<Done>(done),
                                 [this](std::exception_ptr e) { report_unobserved(std::move(e)); });
    enqueue_submission(detail::make_task(detail::submission_task<S>{s}), s, options);
  }

  friend struct detail::pool_access;
  std::unique_ptr<detail::pool_impl> impl_;
};

template <class It>
void pool::post_bulk(It first, It last) {
  using F = std::decay_t<decltype(*first)>;
  std::vector<detail::task*> tasks;
  try {
    for (; first != last; ++first) tasks.push_back(detail::make_task(plain_task<F>{this, std::move(*first)}));
  } catch (...) {
    for (detail::task* t : tasks) detail::discard_task(t);
    throw;
  }
  enqueue_bulk(tasks.data(), tasks.size());
}

template <class It>
auto pool::submit_bulk(It first, It last) -> std::vector<future<detail::task_result_t<decltype(*first)>>> {
  using F = std::decay_t<decltype(*first)>;
  using R = detail::task_result_t<decltype(*first)>;
  std::vector<future<R>> futures;
  std::vector<detail::task*> tasks;
  try {
    for (; first != last; ++first) {
      auto state = std::make_shared<detail::future_state<R>>();
      tasks.push_back(detail::make_task(future_task<R, F>{this, state, std::move(*first)}));
      futures.push_back(future<R>(std::move(state)));
    }
  } catch (...) {
    for (detail::task* t : tasks) detail::discard_task(t);
    throw;
  }
  enqueue_bulk(tasks.data(), tasks.size());
  return futures;
}

}  // namespace weft
