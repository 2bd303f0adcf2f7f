// weft/detail/submission.hpp: a submission with a stop token, a deadline or an on-done
// callback (the plain post/submit paths do not use this and allocate nothing extra).
//
// State machine (one atomic byte). A submission is armed (tokens, deadline) before it is
// queued, so a cancellation can arrive before the submitter knows whether the pool accepted
// it; such a cancellation is only recorded, and delivered by accept(), so that a rejected
// submission (the submitter gets pool_closed) never also reports a cancellation:
//   queued    --try_start (worker, at start)--> running --(task returns/throws)--> finished
//   queued    --try_cancel (deadline, stop token, pool stop)--> cancelled_early
//   queued    --accept (the enqueue succeeded)--> pending
//   queued, cancelled_early --abandon (the enqueue failed)--> finished, delivering nothing
//   cancelled_early --accept--> finished, delivering the cancellation (on the submitter)
//   pending   --try_start--> running
//   pending   --try_cancel (deadline, stop token, pool stop, cancelled queue entry)--> finished
// A worker may dequeue and start the task before accept() (queued -> running): it was
// accepted. try_start refuses cancelled_early; accept() follows for certain (the enqueue
// succeeded) and delivers. Each path to `finished` except finish-after-running is a single
// CAS, and only accept() and try_cancel-from-pending deliver a cancellation, so the outcome
// is delivered exactly once, and never for a rejected submission.
//
// The task's std::stop_token comes from `source_`, which the submission's own token, the
// deadline and the pool's token all fire.
//
// A deadline is also checked when a worker pops the task (run): one that has passed cancels
// it instead of running it, whether or not the timer thread has got to it yet. Only
// submissions with a deadline read the clock there.
//
// Metrics (cancel_ledger). The thread that pops a submission's queue entry counts the task
// (completed, failed or cancelled), as for every task. A cancellation delivered while the
// entry still waits in a queue (a token, the deadline, accept() of an early one) would
// then show up in metrics only when some worker pops the husk, maybe much later; so the
// delivering thread also counts it in the ledger (`delivered`), and the popper of such a
// husk counts it out again (`popped`). pool_impl::snapshot adds delivered - popped to
// `cancelled` and subtracts it from `queued`. Who is which: the popper is whoever runs or
// cancels the task block (run, cancel_popped); every other delivery is from outside. Each
// entry is popped exactly once and its cancellation delivered at most once, so once the
// queues are empty delivered == popped and every task is counted exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "weft/detail/task.hpp"
#include "weft/errors.hpp"
#include "weft/future.hpp"
#include "weft/outcome.hpp"

namespace weft {
class pool;
}

namespace weft::detail {

// Cancellations delivered while their queue entry was still queued, for the pool's metrics
// (see the top of the file). One per pool, shared with its submissions (a submission can
// outlive its pool: a token may fire in a forked child whose pool discarded its entries).
struct cancel_ledger {
  std::atomic<std::uint64_t> delivered{0};  // by a thread other than the entry's popper
  std::atomic<std::uint64_t> popped{0};     // such entries popped since
};

// The result type of f() or f(std::stop_token).
template <class F>
struct task_result_of {
  static auto probe() {
    if constexpr (std::is_invocable_v<F&, std::stop_token>) {
      return std::type_identity<std::invoke_result_t<F&, std::stop_token>>{};
    } else {
      static_assert(std::is_invocable_v<F&>, "a task is callable as f() or f(std::stop_token)");
      return std::type_identity<std::invoke_result_t<F&>>{};
    }
  }
  using type = typename decltype(probe())::type;
  // std::future supports future<T&>; weft's futures and outcomes hold values (std::optional),
  // and a reference would fail deep inside <optional>. Say so here instead.
  static_assert(!std::is_reference_v<type>,
                "weft: a task whose result is kept (submit, or post with task_options or on_done) cannot return "
                "a reference: weft::future and weft::outcome hold values. Return a value, a pointer or a "
                "std::reference_wrapper instead");
};
template <class F>
using task_result_t = typename task_result_of<std::decay_t<F>>::type;

template <class F>
decltype(auto) invoke_with_token(F& f, const std::stop_token& token) {
  if constexpr (std::is_invocable_v<F&, std::stop_token>) {
    return std::invoke(f, token);
  } else {
    return std::invoke(f);
  }
}

// Runs f and captures how it ended.
template <class R, class F>
outcome<R> capture(F& f, const std::stop_token& token) noexcept {
  try {
    if constexpr (std::is_void_v<R>) {
      invoke_with_token(f, token);
      return outcome<R>::from_value();
    } else {
      return outcome<R>::from_value(invoke_with_token(f, token));
    }
  } catch (...) {
    return outcome<R>::from_error(std::current_exception());
  }
}

class submission_base : public std::enable_shared_from_this<submission_base> {
 public:
  submission_base() = default;
  submission_base(const submission_base&) = delete;
  submission_base& operator=(const submission_base&) = delete;
  virtual ~submission_base() = default;

  // queued/pending -> running. False: cancelled (or abandoned); do not run.
  bool try_start() noexcept {
    std::uint8_t s = state_.load(std::memory_order_relaxed);  // relaxed: only a first guess for the CAS
    while (s == kQueued || s == kPending) {
      // acq_rel: release/acquire keep the single exits from queued/pending totally ordered
      // with try_cancel, accept and abandon (all CAS on this byte).
      if (state_.compare_exchange_weak(s, kRunning, std::memory_order_acq_rel, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  // Cancels a submission that has not started, from outside its queue entry (a token, the
  // deadline). Safe from any thread, any number of times.
  void try_cancel() noexcept { (void)cancel_unstarted(/*popper=*/false); }
  // The same, by the thread that popped the entry (a cancelled pool, a passed deadline): the
  // task is counted by that thread, so a cancellation someone else delivered leaves the ledger.
  void cancel_popped() noexcept {
    if (!cancel_unstarted(/*popper=*/true)) note_popped();
  }
  // True when the deadline has passed (checked when a worker starts the task).
  bool past_deadline() const noexcept {
    return deadline != std::chrono::steady_clock::time_point::max() && std::chrono::steady_clock::now() >= deadline;
  }
  // The enqueue succeeded: queued -> pending, or deliver a cancellation recorded meanwhile.
  void accept() noexcept {
    std::uint8_t s = kQueued;
    // acq_rel: see try_start.
    if (state_.compare_exchange_strong(s, kPending, std::memory_order_acq_rel)) return;
    s = kCancelledEarly;
    // acq_rel: see try_start.
    if (state_.compare_exchange_strong(s, kFinished, std::memory_order_acq_rel)) {
      release_deadline();
      note_delivered();  // the entry is in a queue or popped already: either way not by us
      deliver_cancelled();
    }
    // else a worker has already started it (queued -> running).
  }
  // The enqueue failed (the submitter gets the exception): finished, delivering nothing.
  void abandon() noexcept {
    // acq_rel: see try_start. No worker can hold the task, so only try_cancel races with us.
    const std::uint8_t prev = state_.exchange(kFinished, std::memory_order_acq_rel);
    if (prev != kFinished) release_deadline();
  }
  void request_stop() noexcept { source_.request_stop(); }
  std::stop_token token() const noexcept { return source_.get_token(); }

  // Links the submission to outside tokens; called once, after construction is complete,
  // on a submission owned by a shared_ptr (a token that has already fired calls back at once).
  void arm(const std::stop_token& user, const std::stop_token& pool_token) {
    if (user.stop_possible()) user_link_.emplace(user, relay{weak_from_this()});
    if (pool_token.stop_possible()) pool_link_.emplace(pool_token, relay{weak_from_this()});
  }

  // Deadline bookkeeping, owned by the pool's timer (runtime/core/timer.cpp).
  void* timer_entry = nullptr;  // guarded by the timer's mutex
  void* timer = nullptr;        // set once before the entry is scheduled
  // Set once by the pool before the submission is armed or queued (enqueue_submission);
  // the enqueue orders these writes before any reader.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::shared_ptr<cancel_ledger> ledger;  // null: not counted (no pool metrics to keep)

 protected:
  virtual void deliver_cancelled() noexcept = 0;
  // Popper side of the ledger: this entry's cancellation was delivered by someone else.
  void note_popped() noexcept {
    if (!ledger) return;
    ledger->popped.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter; ordered by the fence
    // release fence: pairs with the acquire fence in pool_impl::snapshot, between its
    // reading of the per-thread counters and of the ledger. The popper counts this task
    // (relaxed) after returning; a snapshot that sees that count then also sees this
    // increment, so the husk is never counted by both.
    std::atomic_thread_fence(std::memory_order_release);
  }
  // After running: mark finished and drop the deadline.
  void finish() noexcept {
    // release: nothing reads the state for data; ordering with try_cancel is via the CAS
    // in try_start (only the runner reaches here).
    state_.store(kFinished, std::memory_order_release);
    release_deadline();
  }

 private:
  static constexpr std::uint8_t kQueued = 0, kCancelledEarly = 1, kPending = 2, kRunning = 3, kFinished = 4;

  // queued -> cancelled_early, or pending -> finished delivering the cancellation. True when
  // this call delivered it.
  bool cancel_unstarted(bool popper) noexcept {
    std::uint8_t s = state_.load(std::memory_order_relaxed);  // relaxed: see try_start
    for (;;) {
      if (s == kQueued) {
        // acq_rel: see try_start. accept() or abandon() will settle it.
        if (state_.compare_exchange_weak(s, kCancelledEarly, std::memory_order_acq_rel, std::memory_order_relaxed)) {
          return false;
        }
      } else if (s == kPending) {
        // acq_rel: see try_start; the winner alone delivers.
        if (state_.compare_exchange_weak(s, kFinished, std::memory_order_acq_rel, std::memory_order_relaxed)) {
          release_deadline();
          if (!popper) note_delivered();
          deliver_cancelled();
          return true;
        }
      } else {
        return false;  // running, finished, or already cancelled_early
      }
    }
  }
  // Delivering side of the ledger; before the delivery, so that whoever sees the outcome
  // (the future's acquire of its ready flag) and then takes a snapshot sees the count.
  void note_delivered() noexcept {
    if (ledger) ledger->delivered.fetch_add(1, std::memory_order_relaxed);  // relaxed: ordered by the delivery
  }

  // Runs on the thread that fires the token. It holds a reference while it works: the worker
  // that consumes the task may drop the last other one at the same moment, and destroying
  // the submission under a running relay would call into a half-destroyed object (the
  // stop_callback's destructor waits for the relay, but only after ~submission has run).
  // A failed lock means the submission is being destroyed: it finished, nothing to do.
  struct relay {
    std::weak_ptr<submission_base> self;
    void operator()() noexcept {
      if (auto keep = self.lock()) {
        keep->request_stop();
        keep->try_cancel();
      }
    }
  };
  void release_deadline() noexcept;  // runtime/core/timer.cpp

  std::atomic<std::uint8_t> state_{kQueued};
  std::stop_source source_;
  std::optional<std::stop_callback<relay>> user_link_;
  std::optional<std::stop_callback<relay>> pool_link_;
};

// Where a submission's outcome goes.
template <class R>
struct to_future {
  std::shared_ptr<future_state<R>> state;
  void operator()(outcome<R>&& o) noexcept {
    if (o.has_value()) {
      if constexpr (std::is_void_v<R>) {
        state->set_value();
      } else {
        try {
          state->set_value(std::move(o).value());
        } catch (...) {
          state->set_exception(std::current_exception());
        }
      }
    } else {
      state->set_exception(o.error());
    }
  }
};

template <class R, class F, class Done>
class submission final : public submission_base {
 public:
  // report: where an exception thrown by `done` itself goes (the pool's handler).
  submission(F f, Done done, std::function<void(std::exception_ptr)> report)
      : f_(std::move(f)), done_(std::move(done)), report_(std::move(report)) {}

  task_result run() noexcept {
    if (past_deadline()) {  // the timer thread may not have got to it yet
      cancel_popped();
      return task_result::cancelled;
    }
    if (!try_start()) {  // cancelled while queued: delivered by someone else
      note_popped();
      return task_result::cancelled;
    }
    outcome<R> o = capture<R>(f_, token());
    const bool ok = o.has_value();
    finish();
    deliver(std::move(o));
    return ok ? task_result::ok : task_result::failed;
  }

 private:
  void deliver_cancelled() noexcept override { deliver(outcome<R>::from_cancelled()); }
  void deliver(outcome<R>&& o) noexcept {
    try {
      done_(std::move(o));
    } catch (...) {
      if (report_) report_(std::current_exception());
    }
  }

  F f_;
  Done done_;
  std::function<void(std::exception_ptr)> report_;
};

// The task block's body for a submission: 16 bytes inline.
template <class S>
struct submission_task {
  std::shared_ptr<S> s;
  task_result operator()() noexcept { return s->run(); }
  void cancel() noexcept { s->cancel_popped(); }
};

}  // namespace weft::detail
