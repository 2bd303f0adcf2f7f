// runtime/core/shutdown.cpp: the lifecycle calls, close(), close(deadline) and stop_now(), and
// how several of them at once meet (protocol L1-L3 at the top of pool_impl.hpp; the drain
// and the stop they drive are S1-S6 there).
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>

#include "core/pool_impl.hpp"

namespace weft::detail {

void pool_impl::join_workers() {
  // A3: seal the slots (no growth from here on) and join every thread ever started,
  // retired ones included. Every worker has left its loop (live_ == 0).
  std::lock_guard slots(slots_mu_);
  sealed_ = true;
  for (auto& w : workers_) w->join();
  joined_ = true;
  if (const scheduler_hooks* h = hooks(); h != nullptr && h->closed != nullptr) h->closed(h->ctx);
}

namespace {
// The pool whose stopping drain (S6) this thread is running, if any: cancellation callbacks
// run inside it, and a lifecycle call they make on that pool would wait for itself (L3).
thread_local const pool_impl* tls_stopping = nullptr;
}  // namespace

void pool_impl::check_caller(const char* call) const {
  if (worker* w = current_worker(); w != nullptr && &w->owner_pool() == this) {
    throw std::logic_error(std::string("weft::pool::") + call +
                           " called from a task running on one of this pool's own workers: it would wait for the "
                           "worker it runs on, that is for itself. Call it from a thread outside the pool");
  }
  if (tls_stopping == this) {
    throw std::logic_error(std::string("weft::pool::") + call +
                           " called from a cancellation callback (on_done) that this pool's stop_now() or "
                           "close(deadline) is delivering on this same thread: it would wait for itself. Call it "
                           "from another thread, or let the running stop finish");
  }
}

bool pool_impl::stopping_on_this_thread() const noexcept { return tls_stopping == this; }

bool pool_impl::escalate(bool cancel) {
  // L1, under close_mu_.
  if (!draining_) {
    close_gate();  // waits only for submitters inside inject (a bounded enqueue each)
    // S5 before S2's wake when this call stops: a woken idle worker must cancel, not run,
    // what is queued (seq_cst, as in cancel_everything, which this call runs next).
    if (cancel) cancelling_.store(true, std::memory_order_seq_cst);
    begin_drain();
    draining_ = true;
  }
  if (!cancel || cancel_claimed_) return false;
  cancel_claimed_ = true;
  return true;
}

void pool_impl::run_stopping_drain() noexcept {
  // Outside close_mu_: the drain delivers cancellations (user callbacks), which may take
  // their time or call back into the pool (check_caller turns a lifecycle call into an error).
  const pool_impl* outer = tls_stopping;  // another pool's drain may be running us
  tls_stopping = this;
  cancel_everything();
  tls_stopping = outer;
  {
    std::lock_guard lock(close_mu_);
    cancel_done_ = true;
  }
  close_cv_.notify_all();
}

void pool_impl::join_when_stopped() {
  // L3. live_ is zero: every worker has left its loop.
  std::unique_lock lock(close_mu_);
  close_cv_.wait(lock, [this] { return !cancel_claimed_ || cancel_done_; });
  if (!joined_) join_workers();
}

bool pool_impl::shut_down(const char* call, bool cancel, std::chrono::steady_clock::time_point deadline) {
  check_caller(call);
  if (forked()) {
    // The workers live in the parent only: nothing to drain, nobody to join. Decided
    // without close_mu_, which a fork may have caught held by a parent's thread (another
    // lifecycle call) that the child does not have. acq_rel: one caller abandons; the
    // others have nothing to wait for.
    if (!abandoned_.exchange(true, std::memory_order_acq_rel)) {
      for (auto& w : workers_) w->abandon();
    }
    return true;
  }
  bool claimed = false;
  {
    std::lock_guard lock(close_mu_);
    if (joined_) return true;
    claimed = escalate(cancel);
  }
  if (claimed) run_stopping_drain();
  if (!wait_for_workers(deadline)) {
    // close(deadline) ran out of time: stop (S5, S6) unless another call already does, and
    // return once the queued tasks are completed as cancelled, without waiting for the
    // running ones (workers finish, or stay stuck, on their own; a later call joins them).
    {
      std::lock_guard lock(close_mu_);
      claimed = escalate(true);
    }
    if (claimed) run_stopping_drain();
    std::unique_lock lock(close_mu_);
    close_cv_.wait(lock, [this] { return cancel_done_; });
    return false;
  }
  join_when_stopped();
  return true;
}

// Each call that returns with the workers joined also finishes the metrics sink (its final
// call, runtime/layers/metrics_sink.hpp), outside every lock: the sink may call back in.
void pool_impl::close() {
  shut_down("close()", false, std::chrono::steady_clock::time_point::max());
  finish_metrics_sink();
}

bool pool_impl::close_until(std::chrono::steady_clock::time_point deadline) {
  if (!shut_down("close(deadline)", false, deadline)) return false;
  finish_metrics_sink();
  return true;
}

void pool_impl::stop_now() {
  shut_down("stop_now()", true, std::chrono::steady_clock::time_point::max());
  finish_metrics_sink();
}

}  // namespace weft::detail
