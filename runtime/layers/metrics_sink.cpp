// runtime/layers/metrics_sink.cpp: see metrics_sink.hpp (protocol M1-M5, fork).
#include "metrics_sink.hpp"

#include <pthread.h>

#include <climits>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include "platform/futex.hpp"
#include "core/pool_impl.hpp"
#include "weft/detail/deadline.hpp"

namespace weft::detail {
namespace {

// Threads of sinks abandoned in forked children (see the top of metrics_sink.hpp): never
// joined, never destroyed, reachable (no leak report). A lock-free push: no mutex that a
// later fork could catch held.
struct abandoned_thread {
  std::thread handle;
  abandoned_thread* next = nullptr;
};
constinit std::atomic<abandoned_thread*> abandoned_threads{nullptr};

// The sink whose thread this is (M3): set by run() on its own thread, so no other thread
// ever reads it (thread_ itself is assigned by the constructor after the thread started).
constinit thread_local const metrics_sink* tls_sink = nullptr;

void abandon(std::thread t) noexcept {
  auto* node = new (std::nothrow) abandoned_thread{std::move(t), nullptr};
  if (node == nullptr) {
    // Out of memory: the handle cannot be kept. Detaching the parent's thread in the child
    // only marks its descriptor (which the child has a copy of); nothing ever runs there.
    t.detach();
    return;
  }
  // relaxed load / release CAS: publishes node's fields to whoever walks the list (nobody
  // does; it only keeps the nodes reachable). relaxed on failure: we retry with the value read.
  abandoned_thread* head = abandoned_threads.load(std::memory_order_relaxed);
  do {
    node->next = head;
  } while (!abandoned_threads.compare_exchange_weak(head, node, std::memory_order_release, std::memory_order_relaxed));
}

}  // namespace

metrics_sink::metrics_sink(pool_impl& pool) : pool_(pool), interval_(pool.options().metrics_interval) {
  thread_ = std::thread([this] { run(); });
}

metrics_sink::~metrics_sink() {
  if (pool_.forked()) {
    abandon(std::move(thread_));  // the thread is the parent's (see fork in metrics_sink.hpp)
    return;
  }
  finish();
  if (tls_sink == this) {
    pool_.log("weft: a pool is being destroyed by its own metrics_sink; this cannot complete (the sink's thread "
              "would join itself). Terminating.");
    std::terminate();
  }
  thread_.join();
}

void metrics_sink::finish() noexcept {
  if (pool_.forked()) return;
  // release: pairs with the acquire loads of stop_ in run(); the caller joined the workers
  // (their thread exits happen-before this), so the final snapshot, taken after that load,
  // sees every worker's final counters.
  stop_.store(1, std::memory_order_release);
  futex_wake(stop_, 1);
  if (tls_sink == this) return;  // M3
  // acquire: pairs with the release store of done_ in run(): the final call has returned.
  while (done_.load(std::memory_order_acquire) == 0) futex_wait(done_, 0);
}

void metrics_sink::deliver() noexcept {
  const metrics m = pool_.snapshot();
  try {
    pool_.options().metrics_sink(m);
  } catch (...) {  // M5
    if (pool_.options().on_task_exception) {
      pool_.report_exception(std::current_exception());
      return;
    }
    try {
      throw;
    } catch (const std::exception& e) {
      pool_.log(std::string("weft: pool_options::metrics_sink threw: ") + e.what());
    } catch (...) {
      pool_.log("weft: pool_options::metrics_sink threw an exception not derived from std::exception");
    }
  }
}

void metrics_sink::run() noexcept {
  using steady = std::chrono::steady_clock;
  tls_sink = this;
  pthread_setname_np(pthread_self(), (pool_.options().name.substr(0, 10) + ":sink").c_str());
  // saturating: a huge interval puts the next tick at time_point::max(), an untimed wait.
  steady::time_point next = saturating_deadline(steady::now(), interval_);
  // acquire (every load of stop_ here): pairs with the release store in finish() (M2).
  while (stop_.load(std::memory_order_acquire) == 0) {
    if (steady::now() < next) {
      futex_wait(stop_, 0, next);  // woken by finish(), the deadline, or spuriously: re-check
      continue;
    }
    deliver();
    // M1: the first tick still ahead. Ticks that passed during the call are skipped.
    next = saturating_deadline(next, interval_);
    if (const steady::time_point now = steady::now(); next <= now) {
      const auto missed = (now - next) / interval_;  // whole intervals behind; no overflow:
      next = saturating_deadline(next, (missed + 1) * interval_);  // (missed + 1) * interval <= now - start + interval
    }
  }
  deliver();  // M2: the final call
  // release: pairs with the acquire load in finish(): the final call has returned.
  done_.store(1, std::memory_order_release);
  futex_wake(done_, INT_MAX);
}

void pool_impl::set_metrics_sink(std::unique_ptr<metrics_sink> s) noexcept { metrics_sink_ = std::move(s); }

void pool_impl::finish_metrics_sink() noexcept {
  if (metrics_sink_) metrics_sink_->finish();
}

}  // namespace weft::detail
