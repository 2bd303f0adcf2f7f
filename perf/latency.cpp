// perf/latency.cpp: submit -> start latency on an idle pool whose workers are parked.
//
// One sample: the benchmark thread sleeps (kGap, long enough for every runtime's workers
// to stop spinning and park), reads the clock, posts one task from outside, and sleeps
// until the task has run; the task's first action is to read the clock. The latency is
// the difference: the submission itself, the wake-up of a parked thread (a futex wake and
// the scheduler's reaction) and the dequeue. Samples are taken one after another (never
// overlapping), kSamples per repetition; the counters are their p50, p99 and max in
// microseconds (the benchmark's "time" is only the duration of the whole sampling).
//
// The yardstick, "condvar": no pool at all, one thread waiting on a bare
// std::condition_variable; a sample reads the clock, sets the flag under the mutex and
// calls notify_one; the woken thread reacquires the mutex and reads the clock. That is
// the least any parked pool can cost, measured in the same binary, on the same machine,
// at the same time. It does not depend on the thread count; it is repeated per row so
// that every row has its own yardstick.
//
// Runtimes: weft (pool::post), oneTBB (task_arena::enqueue), Boost.Asio (post to a
// thread_pool), the mutex pool (mutex_pool.hpp), condvar.
// Quick mode: 60 samples instead of 200.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "mutex_pool.hpp"
#include "peers.hpp"

namespace weft_perf {
namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto kGap = std::chrono::milliseconds(5);

int samples() { return quick() ? 60 : 200; }

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

// The start of one sample's task, and the hand-back to the waiting benchmark thread.
class probe {
 public:
  void arm() noexcept { done_.store(0, std::memory_order_relaxed); }  // relaxed: before the post that publishes it
  void hit() noexcept {
    started_ = now_ns();
    done_.store(1, std::memory_order_release);  // release: pairs with the acquire in wait()
    done_.notify_one();
  }
  std::int64_t wait() const noexcept {
    done_.wait(0, std::memory_order_acquire);  // acquire: pairs with hit(), makes started_ visible
    return started_;
  }

 private:
  std::int64_t started_ = 0;
  alignas(128) std::atomic<std::uint32_t> done_{0};
};

void report_latencies(benchmark::State& state, std::vector<std::int64_t>& ns, int want) {
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1) + 0.5);
    return static_cast<double>(ns[i]) / 1000.0;
  };
  state.counters["p50_us"] = benchmark::Counter(at(0.50));
  state.counters["p99_us"] = benchmark::Counter(at(0.99));
  state.counters["max_us"] = benchmark::Counter(at(1.0));
  state.counters["samples"] = benchmark::Counter(static_cast<double>(ns.size()));
  result_check check(static_cast<std::uint64_t>(want));
  check.record(ns.size());
  check.report(state);
}

// post(f) submits f to an idle runtime; one iteration takes samples() samples.
template <class Post>
void measure_latency(benchmark::State& state, const Post& post) {
  probe pr;
  // Warm-up: every runtime's threads have run once before the first sample.
  for (int i = 0; i < 2 * threads(state); ++i) {
    pr.arm();
    post([&pr] { pr.hit(); });
    pr.wait();
  }
  std::vector<std::int64_t> ns;
  ns.reserve(static_cast<std::size_t>(samples()));
  for (auto _ : state) {
    for (int i = 0; i < samples(); ++i) {
      std::this_thread::sleep_for(kGap);
      pr.arm();
      const std::int64_t t0 = now_ns();
      post([&pr] { pr.hit(); });
      ns.push_back(pr.wait() - t0);
    }
  }
  report_latencies(state, ns, samples());
}

void latency_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  measure_latency(state, [&rt](auto&& f) { rt.pool().post(f); });
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
void latency_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::stays_outside);
  measure_latency(state, [&rt](auto&& f) { rt.post(f); });
}
#endif

#ifdef WEFT_HAVE_ASIO
void latency_asio_bench(benchmark::State& state) {
  asio_runtime rt(threads(state));
  measure_latency(state, [&rt](auto&& f) { rt.post(f); });
}
#endif

void latency_mutex_bench(benchmark::State& state) {
  mutex_pool rt(threads(state));
  measure_latency(state, [&rt](auto&& f) { rt.post(f); });
}

// One thread parked on a condition variable; post(f) hands it f and wakes it.
class condvar_waiter {
 public:
  condvar_waiter() : thread_([this] { loop(); }) {}
  ~condvar_waiter() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  condvar_waiter(const condvar_waiter&) = delete;
  condvar_waiter& operator=(const condvar_waiter&) = delete;

  template <class F>
  void post(F&& f) {
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = std::forward<F>(f);
      ready_ = true;
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      cv_.wait(lock, [this] { return ready_ || stop_; });
      if (!ready_) return;
      ready_ = false;
      job_();  // reads the clock first thing, with the mutex held, as a pool would after its pop
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::function<void()> job_;  // guarded by m_
  bool ready_ = false;         // guarded by m_
  bool stop_ = false;          // guarded by m_
  std::thread thread_;         // last: started after the fields it uses
};

void latency_condvar_bench(benchmark::State& state) {
  condvar_waiter w;
  measure_latency(state, [&w](auto&& f) { w.post(f); });
}

}  // namespace

void register_latency() {
  register_runtime_once("latency", "weft", latency_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime_once("latency", "tbb", latency_tbb_bench);
#endif
#ifdef WEFT_HAVE_ASIO
  register_runtime_once("latency", "asio", latency_asio_bench);
#endif
  register_runtime_once("latency", "mutex", latency_mutex_bench);
  register_runtime_once("latency", "condvar", latency_condvar_bench);
}

}  // namespace weft_perf
