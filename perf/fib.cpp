// perf/fib.cpp: fib(30) with a task per call.
//
// Every call with n >= 2 spawns fib(n-1) as a child, computes fib(n-2) inline and joins:
// the classic measure of spawn + join overhead, since each task does almost nothing.
// fib(30) = 832040 makes 2,692,537 calls (2 * fib(31) - 1); time/task is time / calls.
// Runtimes: weft and oneTBB (task_group run/wait), weft-coro (weft::task: fork, call, join), OpenMP (`omp task` + `omp taskwait`),
// libfork (lf::fork the first call, lf::call the second, lf::join: its own fib), Taskflow
// (a tf::TaskGroup: silent_async the first call, the second inline, corun: its own
// examples/fibonacci.cpp).
#include <cstdint>

#include "harness.hpp"
#include "peers.hpp"
#include "fib_weft.hpp"
#include "weft/coro.hpp"

namespace weft_perf {
namespace {

constexpr int kN = 30;
constexpr std::uint64_t kResult = 832040;
constexpr double kCalls = 2692537;

void fib_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  measure(state, [&] { return rt.run([&] { return fib_weft(rt.pool(), kN); }); }, kResult, kCalls,
          metric::time_per_task);
  rt.report_stats(state);
}

// weft::task (weft/coro.hpp): fork the first call, co_await the second, join, as libfork.
weft::task<std::uint64_t> fib_coro(int n) {
  if (n < 2) co_return static_cast<std::uint64_t>(n);
  std::uint64_t a = 0;
  co_await weft::fork(a, fib_coro(n - 1));
  const std::uint64_t b = co_await fib_coro(n - 2);
  co_await weft::join();
  co_return a + b;
}

void fib_coro_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  measure(state, [&] { return weft::sync_wait(rt.pool(), fib_coro(kN)); }, kResult, kCalls, metric::time_per_task);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
std::uint64_t fib_tbb(int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  std::uint64_t a = 0;
  tbb::task_group g;
  g.run([&] { a = fib_tbb(n - 1); });
  const std::uint64_t b = fib_tbb(n - 2);
  g.wait();
  return a + b;
}

void fib_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  measure(state, [&] { return rt.run([] { return fib_tbb(kN); }); }, kResult, kCalls, metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_OPENMP
std::uint64_t fib_omp(int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  std::uint64_t a = 0;
#pragma omp task shared(a) firstprivate(n)
  a = fib_omp(n - 1);
  const std::uint64_t b = fib_omp(n - 2);
#pragma omp taskwait
  return a + b;
}

void fib_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  measure(state, [&] { return rt.run([] { return fib_omp(kN); }); }, kResult, kCalls, metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_LIBFORK
inline constexpr auto fib_libfork = [](auto fib, int n) LF_STATIC_CALL -> lf::task<std::uint64_t> {
  if (n < 2) co_return static_cast<std::uint64_t>(n);
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  co_await lf::fork(&a, fib)(n - 1);
  co_await lf::call(&b, fib)(n - 2);
  co_await lf::join;
  co_return a + b;
};

template <class Pool>
void fib_libfork_bench(benchmark::State& state) {
  libfork_runtime<Pool> rt(threads(state));
  measure(state, [&] { return rt.run(fib_libfork, kN); }, kResult, kCalls, metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_TASKFLOW
std::uint64_t fib_taskflow(tf::Executor& ex, int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  std::uint64_t a = 0;
  tf::TaskGroup g = ex.task_group();
  g.silent_async([&ex, &a, n] { a = fib_taskflow(ex, n - 1); });
  const std::uint64_t b = fib_taskflow(ex, n - 2);
  g.corun();
  return a + b;
}

void fib_taskflow_bench(benchmark::State& state) {
  taskflow_runtime rt(threads(state));
  tf::Executor& ex = rt.executor();
  measure(state, [&] { return rt.run([&ex] { return fib_taskflow(ex, kN); }); }, kResult, kCalls,
          metric::time_per_task);
}
#endif

}  // namespace

void register_fib() {
  register_runtime("fib", "weft", fib_weft_bench);
  register_runtime("fib", "weft-coro", fib_coro_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("fib", "tbb", fib_tbb_bench);
#endif
#ifdef WEFT_HAVE_OPENMP
  register_runtime("fib", "omp", fib_omp_bench);
#endif
#ifdef WEFT_HAVE_LIBFORK
  register_runtime("fib", "libfork-lazy", fib_libfork_bench<lf::lazy_pool>);
  register_runtime("fib", "libfork-busy", fib_libfork_bench<lf::busy_pool>);
#endif
#ifdef WEFT_HAVE_TASKFLOW
  register_runtime("fib", "taskflow", fib_taskflow_bench);
#endif
}

}  // namespace weft_perf
