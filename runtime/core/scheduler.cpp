// runtime/core/scheduler.cpp: the internal scheduler interface (scheduler.hpp) over pool_impl,
// and the task-source registry (task_source.hpp).
#include "core/scheduler.hpp"

#include <stdexcept>

#include "core/pool_impl.hpp"
#include "core/worker.hpp"

namespace weft::detail {

unsigned source_registry::add(std::shared_ptr<task_source> s) {
  if (!s) throw std::invalid_argument("weft: a task source must not be null");
  std::lock_guard lock(mu_);
  // relaxed: count_ is only written under mu_, which we hold.
  const unsigned id = count_.load(std::memory_order_relaxed);
  if (id >= kMaxSources) throw std::length_error("weft: a pool takes at most 16 task sources");
  owned_.push_back(s);  // may throw before anything is published
  // relaxed: published by the release store of count_ below (TS1).
  slots_[id].store(s.get(), std::memory_order_relaxed);
  count_.store(id + 1, std::memory_order_release);  // release: pairs with the acquire in count() (TS1)
  return id;
}

namespace {
thread_local unsigned sample_tick = 0;  // submissions on this thread; one in latency_sample_every is stamped

// The hooked half of maybe_stamp, out of line: true when the task is stamped for good.
[[gnu::noinline]] bool stamp_hooked(const pool_impl& p, task* t, const scheduler_hooks* h) noexcept {
  if (h->stamp_all) t->stamp = now_ns();
  if (h->submitted != nullptr) {
    const worker* w = tls_worker;
    h->submitted(h->ctx, (w != nullptr && &w->owner_pool() == &p) ? static_cast<int>(w->index()) : -1, t);
  }
  return h->stamp_all;
}

[[gnu::noinline]] void stamp_sampled(task* t) noexcept {
  sample_tick = 0;
  t->stamp = now_ns();
}

// On every submission (fib pays it per node): the common case, no hooks and not this
// thread's turn to sample, is a load, two compares and an increment, inline.
inline void maybe_stamp(const pool_impl& p, task* t) noexcept {
  if (const scheduler_hooks* h = p.hooks(); h != nullptr) [[unlikely]] {
    if (stamp_hooked(p, t, h)) return;
  }
  const unsigned every = p.options().latency_sample_every;
  if (every != 0 && ++sample_tick >= every) [[unlikely]] stamp_sampled(t);
}

// A task that was not queued: destroyed unrun and counted (every refusal ends here).
void reject(pool_impl& p, task* t) noexcept {
  p.count_rejected();
  discard_task(t);
}

// The calling thread as one of p's workers, or null.
worker* own_worker(const pool_impl& p) noexcept {
  worker* w = tls_worker;
  return w != nullptr && &w->owner_pool() == &p ? w : nullptr;
}

// A submission from one of the pool's own workers: a spawn onto its deque, never counted
// against the capacity (pool_impl.hpp, C2). bad_alloc from the deque: rejected, rethrown.
void spawn_or_reject(pool_impl& p, worker& w, task* t) {
  try {
    w.spawn(t);
  } catch (...) {
    reject(p, t);
    throw;
  }
}
}  // namespace

submit_status scheduler::attempt(task* t) {
  if (worker* w = own_worker(*pool_)) {
    spawn_or_reject(*pool_, *w, t);
    return submit_status::accepted;
  }
  try {
    return pool_->inject_external(t);
  } catch (...) {  // bad_alloc from the queue: the task never ran
    detail::reject(*pool_, t);
    throw;
  }
}

submit_status scheduler::try_submit(task* t) {
  maybe_stamp(*pool_, t);
  const submit_status st = attempt(t);
  if (st != submit_status::accepted) detail::reject(*pool_, t);
  return st;
}

void scheduler::submit(task* t) {
  maybe_stamp(*pool_, t);
  // A spawn (fork-join's every node): straight to the worker's deque, outside the loop.
  if (worker* w = own_worker(*pool_)) [[likely]] {
    spawn_or_reject(*pool_, *w, t);
    return;
  }
  for (;;) {
    const submit_status st = attempt(t);
    if (st == submit_status::accepted) return;
    if (st == submit_status::full) {
      switch (pool_->options().when_full) {
        case full_policy::block:
          pool_->wait_for_room(std::chrono::steady_clock::time_point::max(), {});
          continue;  // room, or closed: the next attempt says which
        case full_policy::caller_runs:
          // Runs here, now; counted like a task a worker ran (or cancelled, when stopping).
          pool_->count_accepted();
          pool_->count_external(run_task(*pool_, t));
          return;
        case full_policy::discard_oldest:
          pool_->discard_oldest();  // false: a worker just emptied the queue; retry anyway
          continue;
        case full_policy::reject:
          break;
      }
    }
    detail::reject(*pool_, t);
    if (st == submit_status::full) throw queue_full();
    throw_pool_closed(*pool_);
  }
}

submit_status scheduler::submit_until(task* t, std::chrono::steady_clock::time_point deadline,
                                      const std::stop_token& stop) {
  maybe_stamp(*pool_, t);
  for (;;) {
    const submit_status st = attempt(t);
    if (st == submit_status::full && !stop.stop_requested() && pool_->wait_for_room(deadline, stop)) continue;
    if (st != submit_status::accepted) detail::reject(*pool_, t);
    return st;
  }
}

void scheduler::submit_bulk(task* const* tasks, std::size_t n) {
  // From a worker of this pool each goes onto its deque; on a bounded pool each goes under
  // the full_policy; otherwise one bulk operation, all or nothing.
  const bool one_by_one = own_worker(*pool_) != nullptr || pool_->bounded();
  std::size_t i = 0;
  try {
    if (one_by_one) {
      for (; i < n; ++i) submit(tasks[i]);
      return;
    }
    for (std::size_t k = 0; k < n; ++k) maybe_stamp(*pool_, tasks[k]);
    if (pool_->inject_bulk(tasks, n)) return;
  } catch (...) {
    // submit consumed tasks[i] (it threw for it); inject_bulk queued none of them.
    for (std::size_t k = one_by_one ? i + 1 : 0; k < n; ++k) detail::reject(*pool_, tasks[k]);
    throw;
  }
  for (std::size_t k = 0; k < n; ++k) detail::reject(*pool_, tasks[k]);  // closed: none was queued
  if (n != 0) throw_pool_closed(*pool_);
}

void scheduler::submit_global(task* t) {
  maybe_stamp(*pool_, t);
  bool queued = false;
  try {
    queued = pool_->inject(t);
  } catch (...) {
    detail::reject(*pool_, t);
    throw;
  }
  if (!queued) {
    detail::reject(*pool_, t);
    throw_pool_closed(*pool_);
  }
}

unsigned scheduler::add_source(std::shared_ptr<task_source> s) { return pool_->sources().add(std::move(s)); }

submit_status scheduler::submit_to(unsigned source, task* t) {
  announce(t);
  const submit_status st = offer_to(source, t);
  if (st != submit_status::accepted) reject(t);
  return st;
}

void scheduler::announce(task* t) noexcept { maybe_stamp(*pool_, t); }

submit_status scheduler::offer_to(unsigned source, task* t) {
  try {
    return pool_->inject_to(source, t, own_worker(*pool_) != nullptr);
  } catch (...) {
    reject(t);
    throw;
  }
}

void scheduler::reject(task* t) noexcept { detail::reject(*pool_, t); }

void scheduler::run_here(task* t) noexcept {
  // As scheduler::submit's caller_runs: counted like a task a worker ran (or cancelled,
  // when stopping), accepted first so that idle_now never sees it finished before accepted.
  pool_->count_accepted();
  pool_->count_external(run_task(*pool_, t));
}

void scheduler::discard(task* t) noexcept {
  // As pool_impl::discard_oldest: the task was accepted when it was queued.
  pool_->count_discarded();
  pool_->count_external(task_result::cancelled);
  cancel_task(t);  // its future gets task_cancelled, its on_done a cancellation
}

full_policy scheduler::when_full() const noexcept { return pool_->options().when_full; }

void scheduler::notify_work() noexcept { pool_->sleep().notify_work(); }

bool scheduler::has_queued_work() const noexcept { return pool_->any_work(); }

void scheduler::set_hooks(std::shared_ptr<const scheduler_hooks> h) { pool_->set_hooks(std::move(h)); }

int scheduler::current_worker() const noexcept {
  const worker* w = tls_worker;
  return (w != nullptr && &w->owner_pool() == pool_) ? static_cast<int>(w->index()) : -1;
}

unsigned scheduler::size() const noexcept { return pool_->size(); }
bool scheduler::closed() const noexcept { return pool_->closed(); }

}  // namespace weft::detail
