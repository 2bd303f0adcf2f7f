// perf/idle.cpp: CPU used by a pool that has nothing to do.
//
// Start the runtime, give each of its threads a task (so that all of them have started and
// just gone idle), then measure the process's CPU time (getrusage(RUSAGE_SELF): user +
// system, all threads) across kIdle of wall time during which nothing is submitted. The
// counter "cpu_ms_per_s" is that CPU time in milliseconds per idle second: spinning before
// parking, timed wake-ups and any housekeeping thread all show up in it. The benchmark
// thread sleeps throughout; "none" measures the process with no runtime at all (the
// yardstick: whatever other runtimes left behind; should be about 0).
//
// Before each measurement the benchmark thread sleeps kSettle with no runtime alive, so
// that threads left by an earlier benchmark (libgomp's spinning team, TBB's workers) have
// gone to sleep and are not charged to this one.
// Runtimes: weft, oneTBB (an arena nobody joins, fed by enqueue), Boost.Asio thread_pool,
// the mutex pool, none. Quick mode: 0.5 s idle instead of 1 s.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "harness.hpp"
#include "mutex_pool.hpp"
#include "peers.hpp"

namespace weft_perf {
namespace {

constexpr auto kSettle = std::chrono::milliseconds(200);

std::chrono::milliseconds idle_time() { return std::chrono::milliseconds(quick() ? 500 : 1000); }

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// post(f) submits f to the runtime. Runs n tasks that each wait (up to 100 ms) until all
// have started, so that every one of the runtime's n threads has run one, then measures.
template <class Post>
void measure_idle(benchmark::State& state, int n, const Post& post) {
  countdown done;
  std::atomic<int> started{0};
  done.reset(n);
  for (int i = 0; i < n; ++i) {
    post([&] {
      started.fetch_add(1, std::memory_order_relaxed);  // relaxed: only counted
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      while (started.load(std::memory_order_relaxed) < n && std::chrono::steady_clock::now() < deadline) {
      }
      done.arrive();
    });
  }
  if (n > 0) done.wait();
  double cpu_ms = 0, wall_s = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    std::this_thread::sleep_for(idle_time());
    const double c1 = cpu_seconds();
    wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu_ms = (c1 - c0) * 1000.0;
  }
  state.counters["cpu_ms_per_s"] = benchmark::Counter(cpu_ms / wall_s);
}

void settle() { std::this_thread::sleep_for(kSettle); }

void idle_weft_bench(benchmark::State& state) {
  settle();
  weft_runtime rt(threads(state));
  measure_idle(state, threads(state), [&rt](auto&& f) { rt.pool().post(f); });
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
void idle_tbb_bench(benchmark::State& state) {
  settle();
  tbb_runtime rt(threads(state), tbb_runtime::caller::stays_outside);
  measure_idle(state, threads(state), [&rt](auto&& f) { rt.post(f); });
}
#endif

#ifdef WEFT_HAVE_ASIO
void idle_asio_bench(benchmark::State& state) {
  settle();
  asio_runtime rt(threads(state));
  measure_idle(state, threads(state), [&rt](auto&& f) { rt.post(f); });
}
#endif

void idle_mutex_bench(benchmark::State& state) {
  settle();
  mutex_pool rt(threads(state));
  measure_idle(state, threads(state), [&rt](auto&& f) { rt.post(f); });
}

void idle_none_bench(benchmark::State& state) {
  settle();
  measure_idle(state, 0, [](auto&& f) { f(); });
}

}  // namespace

void register_idle() {
  register_runtime_once("idle", "weft", idle_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime_once("idle", "tbb", idle_tbb_bench);
#endif
#ifdef WEFT_HAVE_ASIO
  register_runtime_once("idle", "asio", idle_asio_bench);
#endif
  register_runtime_once("idle", "mutex", idle_mutex_bench);
  register_runtime_once("idle", "none", idle_none_bench);
}

}  // namespace weft_perf
