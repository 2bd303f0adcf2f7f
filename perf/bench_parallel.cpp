// perf/bench_parallel.cpp: data-parallel loops: weft::parallel_for / parallel_reduce
// (parallel.hpp) against oneTBB's parallel_for / parallel_reduce and OpenMP's
// `parallel for schedule(static)`.
//
// Families:
// - parallel_for_sqrt: a[i] = sqrt(i) * 1.0001 over 100M doubles (800 MB written).
//   Compute-bound: a square root per element (g++ keeps it scalar sqrtsd without
//   -fno-math-errno). On the 2-core reference machine one thread takes 209 ms, against
//   42 ms for a plain store pass a[i] = i * 1.0001 over the same array.
// - parallel_for_triad: the STREAM triad a[i] = b[i] + 3 * c[i] over 3 arrays of 32M
//   doubles (768 MB, 24 bytes moved per element as STREAM counts them): memory-bound.
// - parallel_reduce_sum: the sum of 100M doubles (800 MB read), a[i] = i % 1000, so every
//   partial sum is an integer below 2^53 and the result is exact in any order.
// Quick mode (WEFT_PERF_QUICK) divides every size by 10.
//
// Each runtime runs the loop in its idiomatic form with its default partitioning:
// - weft: weft::parallel_for(pool, 0, n, f) from the benchmark thread, which submits the
//   root to the pool and sleeps (so threads:N is N workers, as in every family);
// - oneTBB: tbb::parallel_for / parallel_reduce over a blocked_range, with the default
//   auto_partitioner, inside arena.execute (N-1 workers plus the caller);
// - OpenMP: `#pragma omp parallel for num_threads(N) schedule(static)` (+ reduction(+:s)).
// The element kernels below are shared, so every runtime compiles the same loop body.
//
// Checks: the arrays are allocated untouched and first touched by the runtime under test
// (the untimed warm-up run writes them), so page placement follows that runtime's threads.
// After every timed iteration (timing paused) every 4096th element is compared with its
// expected value and overwritten with NaN, so a later iteration that skips a piece leaves
// a NaN behind; after the loop one more run is checked element by element. The sum is
// checked every iteration. Any mismatch marks the run with SkipWithError.
//
// Splitting sweep (WEFT_PERF_PARALLEL_SWEEP=1): families parallel_split_sqrt and
// parallel_split_triad run weft's three internal strategies (demand = lazy binary
// splitting, halving = recursive halving, flat = eager pre-split; weft/detail/
// parallel_impl.hpp) with grain = ceil(n / (k * threads)) for k in {1, 2, 4, 8, 16, 64}:
// the measurement behind parallel_for's defaults (weft/parallel.hpp). Off by default: 36
// more benchmarks per thread count.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>

#include "harness.hpp"
#include "peers.hpp"
#include "weft/parallel.hpp"

#ifdef WEFT_HAVE_TBB
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>
#endif

namespace weft_perf {

namespace {

constexpr std::size_t kStride = 4096;  // sampling stride of the per-iteration check
constexpr double kTriadScalar = 3.0;

std::size_t sized(std::size_t n) { return quick() ? n / 10 : n; }
std::size_t sqrt_n() { return sized(100'000'000); }
std::size_t triad_n() { return sized(std::size_t{32} << 20); }
std::size_t reduce_n() { return sized(100'000'000); }

// ---- the element kernels, shared by every runtime ----------------------------------------

inline double sqrt_value(std::size_t i) { return std::sqrt(static_cast<double>(i)) * 1.0001; }
inline double b_value(std::size_t i) { return static_cast<double>(i % 1024); }
inline double c_value(std::size_t i) { return static_cast<double>(i % 7); }
inline double triad_value(std::size_t i) { return b_value(i) + kTriadScalar * c_value(i); }
inline double sum_input(std::size_t i) { return static_cast<double>(i % 1000); }

struct sqrt_kernel {
  double* a;
  void operator()(std::size_t i) const { a[i] = sqrt_value(i); }
};
struct triad_kernel {
  double* a;
  const double* b;
  const double* c;
  void operator()(std::size_t i) const { a[i] = b[i] + kTriadScalar * c[i]; }
};
struct init_kernel {  // the triad's and the sum's inputs, first touched by the runtime
  double* b;
  double* c;
  void operator()(std::size_t i) const {
    if (c != nullptr) {
      b[i] = b_value(i);
      c[i] = c_value(i);
    } else {
      b[i] = sum_input(i);
    }
  }
};

// An array of doubles that nobody has touched yet (new double[n] does not initialise).
std::unique_ptr<double[]> untouched(std::size_t n) { return std::unique_ptr<double[]>(new double[n]); }

// The per-iteration check: mismatches at every kStride-th element (and the last), which
// are then poisoned with NaN for the next iteration to overwrite.
template <class Want>
std::uint64_t sample_and_poison(double* a, std::size_t n, Want want) {
  std::uint64_t bad = 0;
  auto one = [&](std::size_t i) {
    if (a[i] != want(i)) ++bad;
    a[i] = std::numeric_limits<double>::quiet_NaN();
  };
  for (std::size_t i = 0; i < n; i += kStride) one(i);
  one(n - 1);
  return bad;
}

template <class Want>
std::uint64_t full_check(const double* a, std::size_t n, Want want) {
  std::uint64_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad += a[i] != want(i) ? 1 : 0;
  return bad;
}

// The shape of the two array families: `once()` runs the loop over `a` (n elements), whose
// expected contents are want(i). Warm-up, timed loop with paused sampling, checked extra run.
template <class Once, class Want>
void measure_array(benchmark::State& state, Once&& once, double* a, std::size_t n, Want want, double bytes) {
  result_check check(0);
  once();  // warm-up: thread start-up and first touch of `a`
  sample_and_poison(a, n, want);
  for (auto _ : state) {
    once();
    state.PauseTiming();
    check.record(sample_and_poison(a, n, want));
    state.ResumeTiming();
  }
  once();
  check.record(full_check(a, n, want));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * bytes));
  check.report(state);
}

// The expected sum of reduce_n() inputs (exact: integers below 2^53).
std::uint64_t expected_sum(std::size_t n) {
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < n; ++i) s += i % 1000;
  return s;
}

// ---- weft ------------------------------------------------------------------------------

void sqrt_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const std::size_t n = sqrt_n();
  auto a = untouched(n);
  measure_array(
      state, [&] { weft::parallel_for(rt.pool(), std::size_t{0}, n, sqrt_kernel{a.get()}); }, a.get(), n, sqrt_value,
      8.0 * static_cast<double>(n));
  rt.report_stats(state);
}

void triad_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const std::size_t n = triad_n();
  auto a = untouched(n), b = untouched(n), c = untouched(n);
  weft::parallel_for(rt.pool(), std::size_t{0}, n, init_kernel{b.get(), c.get()});
  measure_array(
      state,
      [&] {
        weft::parallel_for(rt.pool(), std::size_t{0}, n, triad_kernel{a.get(), b.get(), c.get()});
      },
      a.get(), n, triad_value, 24.0 * static_cast<double>(n));
  rt.report_stats(state);
}

void reduce_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const std::size_t n = reduce_n();
  auto a = untouched(n);
  weft::parallel_for(rt.pool(), std::size_t{0}, n, init_kernel{a.get(), nullptr});
  const double* in = a.get();
  auto once = [&] {
    const double s = weft::parallel_reduce(
        rt.pool(), std::size_t{0}, n, 0.0, [in](std::size_t i) { return in[i]; }, std::plus<>{});
    return static_cast<std::uint64_t>(s);
  };
  measure(state, once, expected_sum(n), static_cast<double>(n), metric::tasks_per_second);
  state.SetBytesProcessed(
      static_cast<std::int64_t>(static_cast<double>(state.iterations()) * 8.0 * static_cast<double>(n)));
  rt.report_stats(state);
}

// The splitting sweep: strategy How, grain = ceil(n / (k * threads)) with k = range(1).
template <weft::detail::split How>
void sweep_sqrt_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const std::size_t n = sqrt_n();
  const auto pieces = static_cast<std::size_t>(state.range(1)) * static_cast<std::size_t>(threads(state));
  const std::size_t grain = (n + pieces - 1) / pieces;
  auto a = untouched(n);
  measure_array(
      state, [&] { weft::detail::parallel_for_impl<std::size_t>(rt.pool(), How, 0, n, grain, sqrt_kernel{a.get()}); },
      a.get(), n, sqrt_value, 8.0 * static_cast<double>(n));
  rt.report_stats(state);
}

template <weft::detail::split How>
void sweep_triad_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const std::size_t n = triad_n();
  const auto pieces = static_cast<std::size_t>(state.range(1)) * static_cast<std::size_t>(threads(state));
  const std::size_t grain = (n + pieces - 1) / pieces;
  auto a = untouched(n), b = untouched(n), c = untouched(n);
  weft::parallel_for(rt.pool(), std::size_t{0}, n, init_kernel{b.get(), c.get()});
  measure_array(
      state,
      [&] {
        weft::detail::parallel_for_impl<std::size_t>(rt.pool(), How, 0, n, grain,
                                                     triad_kernel{a.get(), b.get(), c.get()});
      },
      a.get(), n, triad_value, 24.0 * static_cast<double>(n));
  rt.report_stats(state);
}

// ---- oneTBB ----------------------------------------------------------------------------

#ifdef WEFT_HAVE_TBB
// The blocked_range form, the one TBB's documentation recommends for performance: the
// kernel runs in a plain loop over each subrange (auto_partitioner, the default).
template <class Kernel>
void tbb_for(std::size_t n, Kernel k) {
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n), [k](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t i = r.begin(); i != r.end(); ++i) k(i);
  });
}

void sqrt_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  const std::size_t n = sqrt_n();
  auto a = untouched(n);
  measure_array(
      state, [&] { rt.run([&] { tbb_for(n, sqrt_kernel{a.get()}); }); }, a.get(), n, sqrt_value,
      8.0 * static_cast<double>(n));
}

void triad_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  const std::size_t n = triad_n();
  auto a = untouched(n), b = untouched(n), c = untouched(n);
  rt.run([&] { tbb_for(n, init_kernel{b.get(), c.get()}); });
  measure_array(
      state, [&] { rt.run([&] {
                     tbb_for(n, triad_kernel{a.get(), b.get(), c.get()});
                   }); }, a.get(), n, triad_value,
      24.0 * static_cast<double>(n));
}

void reduce_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  const std::size_t n = reduce_n();
  auto a = untouched(n);
  rt.run([&] { tbb_for(n, init_kernel{a.get(), nullptr}); });
  const double* in = a.get();
  auto once = [&] {
    const double s = rt.run([&] {
      return tbb::parallel_reduce(
          tbb::blocked_range<std::size_t>(0, n), 0.0,
          [in](const tbb::blocked_range<std::size_t>& r, double acc) {
            for (std::size_t i = r.begin(); i != r.end(); ++i) acc += in[i];
            return acc;
          },
          std::plus<>{});
    });
    return static_cast<std::uint64_t>(s);
  };
  measure(state, once, expected_sum(n), static_cast<double>(n), metric::tasks_per_second);
  state.SetBytesProcessed(
      static_cast<std::int64_t>(static_cast<double>(state.iterations()) * 8.0 * static_cast<double>(n)));
}
#endif

// ---- OpenMP ----------------------------------------------------------------------------

#ifdef WEFT_HAVE_OPENMP
template <class Kernel>
void omp_for(int t, std::size_t n, Kernel k) {
#pragma omp parallel for num_threads(t) schedule(static)
  for (std::size_t i = 0; i < n; ++i) k(i);
}

void sqrt_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  const std::size_t n = sqrt_n();
  auto a = untouched(n);
  measure_array(
      state, [&] { omp_for(rt.threads(), n, sqrt_kernel{a.get()}); }, a.get(), n, sqrt_value,
      8.0 * static_cast<double>(n));
}

void triad_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  const std::size_t n = triad_n();
  auto a = untouched(n), b = untouched(n), c = untouched(n);
  omp_for(rt.threads(), n, init_kernel{b.get(), c.get()});
  measure_array(
      state,
      [&] {
        omp_for(rt.threads(), n, triad_kernel{a.get(), b.get(), c.get()});
      },
      a.get(), n, triad_value, 24.0 * static_cast<double>(n));
}

void reduce_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  const std::size_t n = reduce_n();
  auto a = untouched(n);
  omp_for(rt.threads(), n, init_kernel{a.get(), nullptr});
  const double* in = a.get();
  const int t = rt.threads();
  auto once = [&] {
    double s = 0.0;
#pragma omp parallel for num_threads(t) schedule(static) reduction(+ : s)
    for (std::size_t i = 0; i < n; ++i) s += in[i];
    return static_cast<std::uint64_t>(s);
  };
  measure(state, once, expected_sum(n), static_cast<double>(n), metric::tasks_per_second);
  state.SetBytesProcessed(
      static_cast<std::int64_t>(static_cast<double>(state.iterations()) * 8.0 * static_cast<double>(n)));
}
#endif

bool sweep_enabled() {
  const char* s = std::getenv("WEFT_PERF_PARALLEL_SWEEP");
  return s != nullptr && *s != '\0' && *s != '0';
}

}  // namespace

void register_parallel() {
  register_runtime("parallel_for_sqrt", "weft", sqrt_weft_bench);
  register_runtime("parallel_for_triad", "weft", triad_weft_bench);
  register_runtime("parallel_reduce_sum", "weft", reduce_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("parallel_for_sqrt", "tbb", sqrt_tbb_bench);
  register_runtime("parallel_for_triad", "tbb", triad_tbb_bench);
  register_runtime("parallel_reduce_sum", "tbb", reduce_tbb_bench);
#endif
#ifdef WEFT_HAVE_OPENMP
  register_runtime("parallel_for_sqrt", "omp", sqrt_omp_bench);
  register_runtime("parallel_for_triad", "omp", triad_omp_bench);
  register_runtime("parallel_reduce_sum", "omp", reduce_omp_bench);
#endif
  if (sweep_enabled()) {
    using weft::detail::split;
    const std::vector<std::int64_t> ks = {1, 2, 4, 8, 16, 64};
    register_runtime("parallel_split_sqrt", "demand", sweep_sqrt_bench<split::demand>, "k", ks);
    register_runtime("parallel_split_sqrt", "halving", sweep_sqrt_bench<split::halving>, "k", ks);
    register_runtime("parallel_split_sqrt", "flat", sweep_sqrt_bench<split::flat>, "k", ks);
    register_runtime("parallel_split_triad", "demand", sweep_triad_bench<split::demand>, "k", ks);
    register_runtime("parallel_split_triad", "halving", sweep_triad_bench<split::halving>, "k", ks);
    register_runtime("parallel_split_triad", "flat", sweep_triad_bench<split::flat>, "k", ks);
  }
}

}  // namespace weft_perf
