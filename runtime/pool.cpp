// runtime/pool.cpp: pool construction, external submission, close, metrics.
// The shutdown protocol is written at the top of pool_impl.hpp.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "pool_impl.hpp"
#include "topology.hpp"
#include "weft/pool.hpp"

namespace weft::detail {
namespace {

std::string describe_plan(const topology& topo, const std::vector<std::optional<unsigned>>& plan, pin_policy policy) {
  std::string s = topo.description + "; " + std::to_string(plan.size()) + " workers, pinning " +
                  std::string(to_string(policy)) + ":";
  for (std::size_t i = 0; i < plan.size(); ++i) {
    s += " " + std::to_string(i) + "->" + (plan[i] ? "PU" + std::to_string(*plan[i]) : std::string("any"));
  }
  return s;
}

}  // namespace

pool_impl::pool_impl(pool_options options)
    : topo_(discover_topology()),
      options_(resolve_options(std::move(options), topo_)),
      sleep_(static_cast<unsigned>(options_.workers)) {
  const unsigned n = static_cast<unsigned>(options_.workers);
  std::vector<std::optional<unsigned>> plan = plan_pins(topo_, options_.pinning, n, options_.pus);
  if (options_.pinning != pin_policy::none && !topo_.can_bind) {
    log("weft: this machine does not support thread binding (" + topo_.description + "); running unpinned");
    plan.assign(n, std::nullopt);
  }
  placement_ = describe_plan(topo_, plan, options_.pinning);
  auto buckets = victim_buckets(topo_, plan);
  workers_.reserve(n);
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<worker>(*this, i, plan[i], std::move(buckets[i])));
  unsigned started = 0;
  try {
    for (; started < n; ++started) workers_[started]->start();
  } catch (...) {
    // Could not create every thread: shut down the ones that started, then report.
    gate_.fetch_or(kClosedBit, std::memory_order_seq_cst);  // seq_cst: as in close (S1)
    closing_.store(true, std::memory_order_seq_cst);        // seq_cst: as in close (S2)
    sleep_.wake_all(true);
    for (unsigned i = 0; i < started; ++i) workers_[i]->join();
    throw;
  }
}

pool_impl::~pool_impl() {
  close();
  task* t = nullptr;
  std::size_t leftover = 0;
  while (injector_.try_dequeue(t)) {
    discard_task(t);
    ++leftover;
  }
  if (leftover != 0) log("weft: internal error: " + std::to_string(leftover) + " task(s) left after shutdown");
}

bool pool_impl::inject(task* t) {
  // seq_cst: pairs with close's fetch_or (S1): either close sees our count and waits for
  // us, or we see its closed bit and back out.
  if (gate_.fetch_add(kSubmitter, std::memory_order_seq_cst) & kClosedBit) {
    gate_.fetch_sub(kSubmitter, std::memory_order_release);  // release: pairs with close's acquire wait
    return false;
  }
  const bool queued = injector_.enqueue(t);
  gate_.fetch_sub(kSubmitter, std::memory_order_release);  // release: our enqueue precedes close's drain
  if (!queued) throw std::bad_alloc();
  sleep_.notify_work();
  return true;
}

void pool_impl::close() {
  if (worker* w = current_worker(); w != nullptr && &w->owner_pool() == this) {
    throw std::logic_error("weft::pool::close() called from one of the pool's own workers: it would wait for itself");
  }
  std::lock_guard lock(close_mu_);
  if (joined_) return;
  gate_.fetch_or(kClosedBit, std::memory_order_seq_cst);  // seq_cst: S1, pairs with inject
  // acquire: pairs with the release decrement in inject, so their enqueues are visible.
  while ((gate_.load(std::memory_order_acquire) >> 1) != 0) std::this_thread::yield();
  closing_.store(true, std::memory_order_seq_cst);  // seq_cst: S2, read by the last parker
  sleep_.wake_all(false);
  for (auto& w : workers_) w->join();
  joined_ = true;
}

bool pool_impl::any_work() const noexcept {
  // seq_cst: the re-check half of T3 (sleep.hpp): pairs with the fence in notify_work.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (injector_.size_approx() != 0) return true;
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
  try {
    if (options_.on_task_exception) {
      options_.on_task_exception(e);
      return;
    }
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log(std::string("weft: a posted task threw: ") + ex.what());
  } catch (...) {
    log("weft: a posted task threw an exception not derived from std::exception");
  }
}

}  // namespace weft::detail

namespace weft {

pool::pool(pool_options options) : impl_(std::make_unique<detail::pool_impl>(std::move(options))) {}

pool::~pool() {
  if (!impl_) return;
  if (detail::worker* w = detail::current_worker(); w != nullptr && &w->owner_pool() == impl_.get()) {
    impl_->log("weft: a pool is being destroyed by one of its own workers; this cannot complete (the worker would "
               "join itself). Terminating.");
    std::terminate();
  }
  impl_.reset();
}

void pool::enqueue(detail::task* t) {
  if (try_enqueue(t) == submit_status::closed) throw pool_closed();
}

submit_status pool::try_enqueue(detail::task* t) {
  detail::worker* w = detail::current_worker();
  try {
    if (w != nullptr && &w->owner_pool() == impl_.get()) {
      w->spawn(t);
      return submit_status::accepted;
    }
    if (impl_->inject(t)) return submit_status::accepted;
  } catch (...) {  // bad_alloc from the deque or the queue: the task never ran
    detail::discard_task(t);
    throw;
  }
  detail::discard_task(t);
  return submit_status::closed;
}

void pool::report_unobserved(std::exception_ptr e) noexcept { impl_->report_exception(std::move(e)); }
void pool::close() { impl_->close(); }
bool pool::closed() const noexcept { return impl_->closed(); }
unsigned pool::size() const noexcept { return impl_->size(); }
const std::string& pool::placement() const noexcept { return impl_->placement(); }

int pool::current_worker_index() const noexcept {
  detail::worker* w = detail::current_worker();
  return (w != nullptr && &w->owner_pool() == impl_.get()) ? static_cast<int>(w->index()) : -1;
}

metrics pool::stats() const noexcept {
  metrics m;
  m.workers = impl_->size();
  m.queued = impl_->injector_size();
  for (unsigned i = 0; i < impl_->size(); ++i) {
    detail::worker& w = impl_->worker_at(i);
    const auto c = w.read_counters();
    m.queued += static_cast<std::uint64_t>(w.queued());
    m.running += c.running;
    m.completed += c.completed;
    m.failed += c.failed;
    m.steals += c.steals;
    m.parks += c.parks;
  }
  return m;
}

}  // namespace weft
