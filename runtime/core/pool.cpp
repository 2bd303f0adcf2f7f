// runtime/core/pool.cpp: pool construction, external submission, metrics. The lifecycle calls
// (close, stop_now) are in shutdown.cpp; the protocols are at the top of pool_impl.hpp.
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "platform/fork.hpp"
#include "layers/lanes.hpp"
#include "layers/metrics_sink.hpp"
#include "platform/futex.hpp"
#include "core/pool_impl.hpp"
#include "core/timer.hpp"
#include "platform/topology.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace weft::detail {
namespace {

std::string describe_plan(const topology& topo, const std::vector<std::optional<unsigned>>& plan, pin_policy policy) {
  // Built with append: g++ 12 warns (-Wrestrict, PR 105329) on chains of operator+ here.
  std::string s = topo.description;
  s.append("; ").append(std::to_string(plan.size())).append(" workers, pinning ").append(to_string(policy)).append(":");
  for (std::size_t i = 0; i < plan.size(); ++i) {
    s.append(" ").append(std::to_string(i)).append("->");
    s.append(plan[i] ? "PU" + std::to_string(*plan[i]) : std::string("any"));
  }
  return s;
}

}  // namespace

pool_impl::pool_impl(pool_options options, std::shared_ptr<const scheduler_hooks> hooks)
    : topo_(discover_topology()),
      options_(resolve_options(std::move(options), topo_)),
      // An elastic pool's first threads start as searchers, like attached ones (T5): until
      // they have searched once they would look busy, and the first submission would grow.
      sleep_(static_cast<unsigned>(options_.max_workers), static_cast<unsigned>(options_.min_workers),
             static_cast<unsigned>(options_.min_workers), options_.min_workers < options_.max_workers) {
  if (!hooks) hooks = make_observation_hooks(options_);  // observer.hpp; null when nothing is set
  if (hooks) set_hooks(std::move(hooks));  // before the workers start (scheduler.hpp)
  capacity_ = options_.capacity;
  elastic_ = options_.min_workers < options_.max_workers;
  if (elastic_) sleep_.set_saturation_hook(&pool_impl::on_saturated, this);  // before any worker starts
  install_fork_handlers();
  fork_generation_ = fork_generation();
  const unsigned n = static_cast<unsigned>(options_.workers);
  std::vector<std::optional<unsigned>> plan = plan_pins(topo_, options_.pinning, n, options_.pus);
  if (options_.pinning != pin_policy::none && !topo_.can_bind) {
    log("weft: this machine does not support thread binding (" + topo_.description + "); running unpinned");
    plan.assign(n, std::nullopt);
  }
  placement_ = describe_plan(topo_, plan, options_.pinning);
  // Before any worker exists: they only read the binding topology then (topology.cpp).
  if (std::any_of(plan.begin(), plan.end(), [](const auto& pu) { return pu.has_value(); })) prepare_thread_binding();
  auto buckets = victim_buckets(topo_, plan);
  workers_.reserve(n);
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<worker>(*this, i, plan[i], std::move(buckets[i])));
  if (elastic_) {
    for (unsigned i = 0; i < static_cast<unsigned>(options_.min_workers); ++i) workers_[i]->prepare_attach();
  }
  // Slots [0, min) get a thread now (the fixed pool: all of them); the rest stay vacant (A1).
  const unsigned initial = static_cast<unsigned>(options_.min_workers);
  occupied_.assign(n, 0);
  std::fill(occupied_.begin(), occupied_.begin() + initial, 1);
  // relaxed (all four): before any worker thread exists.
  threads_.store(initial, std::memory_order_relaxed);
  peak_threads_.store(initial, std::memory_order_relaxed);
  live_.store(initial, std::memory_order_relaxed);
  unsigned started = 0;
  try {
    for (; started < initial; ++started) workers_[started]->start();
  } catch (...) {
    // Could not create every thread: shut down the ones that started, then report.
    close_gate();
    closing_.store(true, std::memory_order_seq_cst);  // seq_cst: as in begin_drain (S2)
    sleep_.wake_all(true);
    for (unsigned i = 0; i < started; ++i) workers_[i]->join();
    throw;
  }
  // The first threads are named, pinned and through on_thread_start before we return.
  // acquire: pairs with the release increment in worker_ready.
  for (unsigned r = ready_.load(std::memory_order_acquire); r < initial; r = ready_.load(std::memory_order_acquire)) {
    ready_.wait(r, std::memory_order_acquire);
  }
  if (options_.stop_token.stop_possible()) {
    base_link_.emplace(options_.stop_token, [this] { start_cancelling(); });
  }
}

pool_impl::~pool_impl() {
  base_link_.reset();  // no callback may run into a pool being destroyed
  close();
  task* t = nullptr;
  std::size_t leftover = 0;
  while (injector_.try_dequeue(t)) {
    discard_task(t);
    ++leftover;
  }
  if (leftover != 0 && !forked()) log("weft: internal error: " + std::to_string(leftover) + " task(s) left after shutdown");
  // After the workers: nothing schedules deadlines any more. In a forked child the timer's
  // thread does not exist (timer.hpp, fork): the timer is abandoned, never destroyed.
  if (forked()) abandon_timer(std::move(timer_));
  timer_.reset();
}

bool pool_impl::forked() const noexcept { return fork_generation_ != fork_generation(); }

void throw_pool_closed(const pool_impl& impl) {
  if (impl.forked()) {
    throw pool_closed("weft: this pool was created before fork(); in the child process it has no workers and "
                      "accepts no tasks");
  }
  throw pool_closed();
}

producer_slot* pool_impl::enter_gate() {
  if (forked() || closed()) return nullptr;  // no slot for a refusal (G1 decides the race)
  producer_slot& slot = producers_.mine();
  if (gate_.enter(slot.in_flight)) return &slot;  // G1
  if (slot.transient) producer_registry::release_transient(slot);  // P4
  return nullptr;
}

submit_status pool_impl::inject_checked(task* t, bool check_capacity) {
  bool queued = false;
  {
    const gate_pass pass(*this);
    if (!pass) return submit_status::closed;
    if (capacity_ != 0) {
      // relaxed: C1/C2 need only the RMW's atomicity (a total order of increments); the
      // credit's only reader that orders anything is C3's waiter, woken by the decrement.
      const std::size_t before = queued_ext_.fetch_add(1, std::memory_order_relaxed);
      if (check_capacity && before >= capacity_) {
        queued_ext_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: undoing our own increment
        return submit_status::full;
      }
    }
    producer_slot& slot = pass.slot();
    slot.count_accepted();  // before the task is visible (idle_now)
    queued = injector_.enqueue(*slot.token, t);
    if (!queued) slot.uncount_accepted();
  }
  if (!queued) {
    release_credits(1);
    throw std::bad_alloc();
  }
  sleep_.notify_work();
  return submit_status::accepted;
}

bool pool_impl::inject(task* t) { return inject_checked(t, false) == submit_status::accepted; }

submit_status pool_impl::inject_external(task* t) { return inject_checked(t, true); }

bool pool_impl::inject_bulk(task* const* tasks, std::size_t n) {
  bool queued = false;
  {
    const gate_pass pass(*this);
    if (!pass) return false;
    producer_slot& slot = pass.slot();
    slot.count_accepted(n);  // before the tasks are visible (idle_now)
#if defined(__GNUC__) && !defined(__clang__)
// g++ 12 reports a write of "8 bytes into a region of size 0" on an atomic load inlined from
// moodycamel's ExplicitProducer::enqueue_bulk (-Wstringop-overflow): a false positive of its
// object-size tracking through the producer's block index (a load writes nothing).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
    queued = injector_.enqueue_bulk(*slot.token, tasks, n);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
    if (!queued) slot.uncount_accepted(n);
  }
  if (!queued) throw std::bad_alloc();
  // One wake-up: the woken worker takes a batch and wakes the next (from_injector).
  sleep_.notify_work();
  return true;
}

bool pool_impl::wait_for_room(std::chrono::steady_clock::time_point deadline, const std::stop_token& stop) {
  struct room {
    const pool_impl* p;
    static bool ready(const void* ctx) noexcept {
      const pool_impl& q = *static_cast<const room*>(ctx)->p;
      // seq_cst: the waiter half of C3 (wait.hpp's protocol).
      return q.queued_ext_.load(std::memory_order_seq_cst) < q.capacity_ || q.closed();
    }
  } r{this};
  if (!stop.stop_possible()) return wait_until(&queued_ext_, &room::ready, &r, deadline);
  // A stop request ends the wait too: the callback wakes the waiters of this address.
  std::stop_callback wake(stop, [this] { notify_address(&queued_ext_); });
  struct room_or_stop {
    room r;
    const std::stop_token* stop;
    static bool ready(const void* ctx) noexcept {
      const auto& s = *static_cast<const room_or_stop*>(ctx);
      return room::ready(&s.r) || s.stop->stop_requested();
    }
  } rs{r, &stop};
  return wait_until(&queued_ext_, &room_or_stop::ready, &rs, deadline) && !stop.stop_requested();
}

bool pool_impl::discard_oldest() noexcept {
  task* t = nullptr;
  if (!injector_.try_dequeue(t)) return false;
  release_credits(1);
  count_discarded();
  count_external(task_result::cancelled);
  cancel_task(t);  // its future gets task_cancelled, its on_done a cancellation
  return true;
}

submit_status pool_impl::inject_to(unsigned source, task* t, bool from_worker) {
  task_source& src = sources_.at(source);
  count_accepted();  // before the task is visible (idle_now); taken back if refused
  bool pushed = false;
  try {
    if (from_worker) {
      // Like a spawn: accepted while draining (the worker is running, so S3 cannot have
      // terminated the pool; any_work covers the source), cancelled when stopping.
      pushed = src.push(t);
    } else {
      const gate_pass pass(*this);  // TS3
      if (!pass) {
        count_rejected_accepted();
        return submit_status::closed;
      }
      pushed = src.push(t);
    }
  } catch (...) {
    count_rejected_accepted();
    throw;
  }
  if (!pushed) {
    count_rejected_accepted();
    return submit_status::full;
  }
  sleep_.notify_work();  // TS2: after the push
  return submit_status::accepted;
}

void pool_impl::set_hooks(std::shared_ptr<const scheduler_hooks> h) {
  std::lock_guard lock(hooks_mu_);
  hooks_owned_.push_back(h);  // kept until ~pool_impl: a worker may still be inside the old hooks
  // release: pairs with the acquire load in hooks(), publishing the struct's fields.
  hooks_.store(h.get(), std::memory_order_release);
}

void pool_impl::close_gate() noexcept {
  // G3: waits for every submitter inside the gate (a bounded enqueue each).
  gate_.close([this](auto&& wait_out) { producers_.for_each([&](producer_slot& s) { wait_out(s.in_flight); }); },
              [] { std::this_thread::yield(); });
  if (capacity_ != 0) notify_address(&queued_ext_);  // C3: submitters blocked for room see the closed bit
  for (unsigned i = 0, n = sources_.count(); i < n; ++i) sources_.at(i).gate_closed();  // TS5: theirs too
}

void pool_impl::begin_drain() noexcept {
  closing_.store(true, std::memory_order_seq_cst);  // seq_cst: S2, read by the last parker
  sleep_.wake_all(false);
}

void pool_impl::start_cancelling() noexcept {
  cancelling_.store(true, std::memory_order_seq_cst);  // seq_cst: S5; read relaxed per task
  stop_.request_stop();
}

void pool_impl::cancel_everything() noexcept {
  cancelling_.store(true, std::memory_order_seq_cst);  // seq_cst: S5; read relaxed per task
  drain_cancelled();     // S6, before the tokens fire: busy workers stay busy meanwhile
  stop_.request_stop();  // S5: the running tasks' tokens
  drain_cancelled();     // what they spawned before they saw the stop
  sleep_.wake_all(false);
}

void pool_impl::drain_cancelled() noexcept {
  // S6: empty every queue from this thread, cancelling each task (cancelling_ is set).
  task* t = nullptr;
  for (bool found = true; found;) {
    found = false;
    for (unsigned i = 0, n = sources_.count(); i < n; ++i) {  // TS3
      while ((t = sources_.at(i).poll(-1)) != nullptr) {
        found = true;
        t->isolation = 0;  // a source may have linked it through task::next (task_source.hpp)
        count_external(run_task(*this, t));
      }
    }
    while (injector_.try_dequeue(t)) {
      found = true;
      release_credits(1);
      count_external(run_task(*this, t));
    }
    for (auto& w : workers_) {
      for (steal_result r; (r = w->steal(t)) != steal_result::empty;) {
        if (r != steal_result::success) continue;
        found = true;
        count_external(run_task(*this, t));
      }
    }
  }
}

bool pool_impl::wait_for_workers(std::chrono::steady_clock::time_point deadline) noexcept {
  for (;;) {
    // acquire: pairs with the release decrement in worker_exited.
    const std::uint32_t live = live_.load(std::memory_order_acquire);
    if (live == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    futex_wait(live_, live, deadline);
  }
}

void pool_impl::worker_exited() noexcept {
  live_.fetch_sub(1, std::memory_order_release);  // release: pairs with wait_for_workers
  futex_wake(live_, 1 << 30);
}

timer_service& pool_impl::timer() {
  std::lock_guard lock(timer_mu_);
  if (!timer_) timer_ = std::make_unique<timer_service>(options_.name.substr(0, 10) + ":timer");
  return *timer_;
}

void pool_impl::hand_back(task* t) noexcept {
  // relaxed: C1, a count (see inject).
  if (capacity_ != 0) queued_ext_.fetch_add(1, std::memory_order_relaxed);
  if (injector_.enqueue(t)) {
    sleep_.notify_work();
  } else {
    release_credits(1);
    run_task(*this, t);
  }
}

bool pool_impl::any_work() const noexcept {
  // seq_cst: the re-check half of T3 (sleep.hpp): pairs with the fence in notify_work.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (injector_.size_approx() != 0) return true;
  for (unsigned i = 0, n = sources_.count(); i < n; ++i) {  // TS2
    if (!sources_.at(i).empty()) return true;
  }
  for (const auto& w : workers_) {
    if (w->queued() != 0) return true;
  }
  return false;
}

void pool_impl::log(std::string_view line) const noexcept {
  try {
    if (options_.logger) {
      options_.logger(line);
      return;
    }
  } catch (...) {  // a logger must not throw; fall back to stderr
  }
  std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
}

void pool_impl::report_exception(std::exception_ptr e) noexcept {
  if (options_.on_task_exception) {
    try {
      options_.on_task_exception(e);
    } catch (const std::exception& ex) {  // the handler's own exception, not the task's
      log(std::string("weft: on_task_exception threw: ") + ex.what());
    } catch (...) {
      log("weft: on_task_exception threw an exception not derived from std::exception");
    }
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log(std::string("weft: a task threw: ") + ex.what());
  } catch (...) {
    log("weft: a task threw an exception not derived from std::exception");
  }
}

bool pool_impl::idle_now() const noexcept {
  // Double collect over monotone counters: F (tasks finished) is read before S (tasks
  // accepted or spawned). Every task is counted in S before it becomes visible to anyone
  // who could finish it, and in F after it finished, so S(t) >= F(t) at every instant.
  // With F read over [a, b] and S over [c, d], b < c: F_read <= F(b) and S_read >= S(c)
  // >= S(b) >= F(b); so F_read == S_read forces F(b) == S(b): at instant b every task that
  // existed had finished. acquire on every F load pairs with the release of the count's
  // increment (worker::bump), so the S loads after it see each spawn and acceptance that
  // happened before a finish we counted (the enqueue/steal chain orders them).
  std::uint64_t f = ext_completed_.load(std::memory_order_acquire) + ext_failed_.load(std::memory_order_acquire) +
                    ext_cancelled_.load(std::memory_order_acquire);
  for (const auto& w : workers_) f += w->finished();
  std::uint64_t s = accepted_ext_.load(std::memory_order_acquire);  // acquire: as above
  // acquire: as above (the slots' counts are published by the enqueue's release, P1).
  producers_.for_each([&](const producer_slot& p) { s += p.accepted.load(std::memory_order_acquire); });
  for (const auto& w : workers_) s += w->spawned();
  return f == s;
}

bool pool_impl::wait_idle(std::chrono::steady_clock::time_point deadline) {
  if (worker* w = current_worker(); w != nullptr && &w->owner_pool() == this) {
    throw std::logic_error(
        "weft::pool::wait_idle called from a task running on one of this pool's own workers: that task is not "
        "finished, so the pool cannot become idle while it waits. Use a task_group to wait for its children");
  }
  struct idle {
    static bool ready(const void* ctx) noexcept { return static_cast<const pool_impl*>(ctx)->idle_now(); }
  };
  // No completion notifies an idle waiter (that would cost every task a check): the wait
  // re-checks on a backoff from 20 us to 1 ms, helping its own pool meanwhile when the
  // caller is a worker of another pool.
  auto nap = std::chrono::microseconds(20);
  for (;;) {
    if (idle_now()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    const auto until = (deadline - now > nap) ? now + nap : deadline;
    if (wait_until(&accepted_ext_, &idle::ready, this, until)) return true;
    nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::milliseconds(1));
  }
}

void pool_impl::count_external(task_result r) noexcept {
  // relaxed: counters.
  (r == task_result::ok ? ext_completed_ : r == task_result::failed ? ext_failed_ : ext_cancelled_)
      .fetch_add(1, std::memory_order_relaxed);
}

metrics pool_impl::snapshot() const noexcept {
  metrics m;
  m.workers = size();
  m.queued = injector_.size_approx();
  for (unsigned i = 0, n = sources_.count(); i < n; ++i) m.queued += sources_.at(i).size_approx();
  // relaxed: counters (see metrics.hpp on snapshot consistency).
  m.completed = ext_completed_.load(std::memory_order_relaxed);
  m.failed = ext_failed_.load(std::memory_order_relaxed);
  m.cancelled = ext_cancelled_.load(std::memory_order_relaxed);
  m.rejected = rejected_.load(std::memory_order_relaxed);
  m.discarded = discarded_.load(std::memory_order_relaxed);
  latency_histogram::counts wait{}, run{};
  std::uint64_t wait_max = 0, run_max = 0, wait_sum = 0, run_sum = 0;
  for (const auto& w : workers_) {
    const auto c = w->read_counters();
    m.queued += static_cast<std::uint64_t>(w->queued());
    m.running += c.running;
    m.completed += c.completed;
    m.failed += c.failed;
    m.cancelled += c.cancelled;
    m.steals += c.steals;
    m.parks += c.parks;
    w->add_latencies(wait, wait_max, wait_sum, run, run_max, run_sum);
  }
  // relaxed: metrics (written under slots_mu_ by growth and retirement).
  m.threads = threads_.load(std::memory_order_relaxed);
  m.peak_threads = peak_threads_.load(std::memory_order_relaxed);
  m.grown = grown_.load(std::memory_order_relaxed);
  m.retired = retired_.load(std::memory_order_relaxed);
  m.queue_wait = latency_histogram::summarize(wait, wait_max, wait_sum);
  m.run_time = latency_histogram::summarize(run, run_max, run_sum);
  // Cancellations delivered while their entries still wait in a queue (submission.hpp,
  // cancel_ledger): cancelled now, no longer queued. acquire fence: pairs with the release
  // fence in submission_base::note_popped, so a popper's count read above implies its
  // `popped` increment is read below (a husk is never counted twice). popped before
  // delivered: a delivery whose popping we do not see yet is still counted here once.
  std::atomic_thread_fence(std::memory_order_acquire);
  const std::uint64_t popped = ledger_->popped.load(std::memory_order_relaxed);        // relaxed: see the fence
  const std::uint64_t delivered = ledger_->delivered.load(std::memory_order_relaxed);  // relaxed: a counter
  if (delivered > popped) {
    const std::uint64_t husks = delivered - popped;
    m.cancelled += husks;
    m.queued -= std::min(m.queued, husks);
  }
  return m;
}

}  // namespace weft::detail

namespace weft {

pool::pool(pool_options options) : impl_(std::make_unique<detail::pool_impl>(std::move(options))) {
  if (!impl_->options().lanes.empty()) {  // weft/lanes.hpp: a layer registered as one task source
    impl_->set_lanes(detail::lanes_source::install(detail::scheduler(*impl_), impl_->options().lanes));
  }
  if (impl_->options().metrics_sink) {  // pool_options::metrics_sink: a thread of its own
    impl_->set_metrics_sink(std::make_unique<detail::metrics_sink>(*impl_));
  }
}

namespace {
// Into a lane (runtime/layers/lanes.hpp); index -1: the default path. A full lane applies
// its full_policy (weft/lanes.hpp). Throws like enqueue, and lane_full for a bounded lane at
// capacity whose policy is reject.
void enqueue_in_lane(detail::pool_impl& impl, detail::task* t, int index) {
  using on_full = detail::lanes_source::on_full;
  const submit_status st = impl.lanes()->submit(detail::scheduler(impl), t, index, on_full::policy);
  if (st == submit_status::closed) detail::throw_pool_closed(impl);
  if (st == submit_status::full) impl.lanes()->throw_full(index);
}
}  // namespace

pool::~pool() {
  if (!impl_) return;
  if (detail::worker* w = detail::current_worker(); w != nullptr && &w->owner_pool() == impl_.get()) {
    impl_->log("weft: a pool is being destroyed by one of its own workers; this cannot complete (the worker would "
               "join itself). Terminating.");
    std::terminate();
  }
  if (impl_->stopping_on_this_thread()) {
    impl_->log("weft: a pool is being destroyed by a cancellation callback that its own stop_now() or "
               "close(deadline) is delivering; this cannot complete (the pool is in use by that call). Terminating.");
    std::terminate();
  }
  // Drain while impl_ is still set: the tasks that run during the drain may call back into
  // this pool (post from a worker, task_group::run, report_unobserved, stats); unique_ptr's
  // reset() nulls impl_ before ~pool_impl runs, so its own close() would be too late.
  // pool_options::drain_timeout: drain until then, then stop (close(deadline) cancels what
  // is queued and fires the running tasks' tokens) and wait for the running tasks.
  if (const auto limit = impl_->options().drain_timeout; limit != std::chrono::steady_clock::duration::max()) {
    impl_->close_until(detail::saturating_deadline(std::chrono::steady_clock::now(), limit));
  }
  impl_->close();
  impl_.reset();
}

void pool::enqueue(detail::task* t) {
  if (impl_->lanes() != nullptr) [[unlikely]] return enqueue_in_lane(*impl_, t, -1);
  detail::scheduler(*impl_).submit(t);
}

submit_status pool::try_enqueue(detail::task* t) {
  if (impl_->lanes() != nullptr) [[unlikely]] return impl_->lanes()->submit(detail::scheduler(*impl_), t, -1);
  return detail::scheduler(*impl_).try_submit(t);
}

submit_status pool::enqueue_until(detail::task* t, std::chrono::steady_clock::time_point deadline,
                                  const std::stop_token& stop) {
  if (impl_->lanes() != nullptr) [[unlikely]] {  // the default lane, waiting for room in it
    return impl_->lanes()->submit(detail::scheduler(*impl_), t, -1, detail::lanes_source::on_full::wait, deadline, stop);
  }
  return detail::scheduler(*impl_).submit_until(t, deadline, stop);
}

void pool::enqueue_bulk(detail::task* const* tasks, std::size_t n) {
  if (impl_->lanes() != nullptr) [[unlikely]] {
    // The route of a plain post, one at a time (weft/lanes.hpp): the default lane under its
    // policy from outside, the deque from a worker. enqueue consumed tasks[i] when it threw.
    std::size_t i = 0;
    try {
      for (; i < n; ++i) enqueue(tasks[i]);
    } catch (...) {
      for (std::size_t k = i + 1; k < n; ++k) detail::scheduler(*impl_).reject(tasks[k]);
      throw;
    }
    return;
  }
  detail::scheduler(*impl_).submit_bulk(tasks, n);
}

void pool::wait_idle() { impl_->wait_idle(std::chrono::steady_clock::time_point::max()); }
bool pool::wait_idle(std::chrono::steady_clock::time_point deadline) { return impl_->wait_idle(deadline); }

void pool::enqueue_submission(detail::task* t, const std::shared_ptr<detail::submission_base>& s,
                              const task_options& options) {
  using steady = std::chrono::steady_clock;
  // Only a submission with a deadline or a timeout reads the clock.
  const bool timed = options.timeout != steady::duration::zero() || options.deadline != steady::time_point::max();
  const steady::time_point now = timed ? steady::now() : steady::time_point{};
  auto deadline = options.deadline;
  if (options.timeout != steady::duration::zero()) {  // zero: none; negative: already expired
    deadline = std::min(deadline, detail::saturating_deadline(now, options.timeout));
  }
  const bool has_deadline = deadline != steady::time_point::max();
  // Before arming and queueing, so that every reader (the timer, the relays, the popper) sees them.
  s->deadline = deadline;
  s->ledger = impl_->ledger();
  int lane = -1;  // weft/lanes.hpp: -1 is the default path
  if (options.lane.given()) {
    try {
      if (impl_->lanes() == nullptr) {
        throw std::invalid_argument("weft::task_options::lane: this pool has no lanes (pool_options::lanes is empty)");
      }
      lane = impl_->lanes()->resolve(options.lane);
    } catch (...) {
      s->abandon();
      impl_->count_rejected();
      detail::discard_task(t);
      throw;
    }
  }
  if (impl_->closed() || impl_->forked()) {
    // Rejected before touching the timer (in a forked child it is abandoned: timer.hpp).
    s->abandon();
    impl_->count_rejected();
    detail::discard_task(t);
    detail::throw_pool_closed(*impl_);
  }
  if (has_deadline && deadline <= now) {
    // Already expired: completed as cancelled here, before post/submit returns (pool.hpp),
    // and never queued, so no worker can start it. The submission goes straight from queued
    // to pending to finished on this thread; nothing else can reach it (it is not armed).
    // Counted before the delivery, so a snapshot taken once the outcome is seen includes it.
    impl_->count_accepted();
    impl_->count_external(detail::task_result::cancelled);
    s->accept();
    detail::cancel_task(t);
    return;
  }
  try {
    if (has_deadline) impl_->timer().schedule(deadline, s);
    s->arm(options.stop_token, impl_->stop_token());
  } catch (...) {
    s->abandon();
    detail::discard_task(t);
    throw;
  }
  try {
    if (lane >= 0) {
      enqueue_in_lane(*impl_, t, lane);
    } else {
      enqueue(t);
    }
  } catch (...) {
    s->abandon();  // rejected: a cancellation that came meanwhile is not delivered
    throw;
  }
  s->accept();  // accepted: delivers a cancellation that came meanwhile (submission.hpp)
}

void pool::report_unobserved(std::exception_ptr e) noexcept { impl_->report_exception(std::move(e)); }
void pool::close() { impl_->close(); }
bool pool::close(std::chrono::steady_clock::time_point deadline) { return impl_->close_until(deadline); }
void pool::stop_now() { impl_->stop_now(); }
bool pool::closed() const noexcept { return impl_->closed(); }
std::stop_token pool::get_stop_token() const noexcept { return impl_->stop_token(); }
unsigned pool::size() const noexcept { return impl_->size(); }
std::vector<lane_metrics> pool::lane_stats() const {
  return impl_->lanes() != nullptr ? impl_->lanes()->stats() : std::vector<lane_metrics>{};
}
const std::string& pool::placement() const noexcept { return impl_->placement(); }
metrics pool::stats() const noexcept { return impl_->snapshot(); }

int pool::current_worker_index() const noexcept {
  detail::worker* w = detail::current_worker();
  return (w != nullptr && &w->owner_pool() == impl_.get()) ? static_cast<int>(w->index()) : -1;
}

}  // namespace weft
