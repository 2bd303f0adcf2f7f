// perf/peers.hpp: each runtime, set up the same way for every family.
//
// Thread accounting, so that "threads:N" means N threads executing tasks everywhere:
// - weft: a pool of N workers. The benchmark thread is not one of them; in fork-join
//   families it submits the root task and sleeps in future::get.
// - oneTBB, fork-join: an arena of concurrency N that the benchmark thread enters with
//   execute() (reserved_for_masters = 1): N-1 TBB workers plus the caller.
// - oneTBB, external submission: an arena of concurrency N that nobody enters
//   (reserved_for_masters = 0): N TBB workers, fed through arena.enqueue.
// - OpenMP: a parallel region of N threads (the benchmark thread is thread 0); one thread
//   runs the root inside `omp single`, the others execute tasks at the region's barrier.
// - Boost.Asio: a thread_pool of N threads; the benchmark thread posts and waits outside.
// - The mutex pool (mutex_pool.hpp): N threads; the benchmark thread posts and waits.
// Peers are compiled here, with the same compiler and flags as weft (their headers' inline
// code included); only their prebuilt shared libraries (libtbb.so) carry the
// distribution's own flags.
#pragma once

#include <cstdlib>
#include <type_traits>
#include <utility>

#include "harness.hpp"
#include "weft/pool.hpp"

#ifdef WEFT_HAVE_OPENMP
#include <omp.h>
#endif
#ifdef WEFT_HAVE_ASIO
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#endif
#ifdef WEFT_HAVE_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif

namespace weft_perf {

// weft with its default options (compact pinning, default spinning). For diagnosis only,
// WEFT_PERF_PIN (none|compact|scatter) overrides the pinning and WEFT_PERF_SPIN (a number)
// the search rounds before parking (pool_options::spin_rounds, default 64).
class weft_runtime {
 public:
  explicit weft_runtime(int threads) : pool_(options(threads)) {}
  // With latency sampling set (0: off); perf/cost.cpp measures what sampling costs.
  weft_runtime(int threads, unsigned latency_sample_every) : pool_(with_sampling(threads, latency_sample_every)) {}

  weft::pool& pool() noexcept { return pool_; }

  // Runs f on a worker and returns its result (the calling thread sleeps meanwhile).
  template <class F>
  auto run(F&& f) {
    return pool_.submit(std::forward<F>(f)).get();
  }

  // Diagnostic counters, per run of the workload (the untimed warm-up counts as one):
  // steals and parks from pool::stats(), read after the timed loop.
  void report_stats(benchmark::State& state) const {
    const weft::metrics m = pool_.stats();
    const double runs = static_cast<double>(state.iterations()) + 1;
    state.counters["steals"] = benchmark::Counter(static_cast<double>(m.steals) / runs);
    state.counters["parks"] = benchmark::Counter(static_cast<double>(m.parks) / runs);
  }

 private:
  static weft::pool_options options(int threads) {
    weft::pool_options o;
    o.workers = threads;
    o.name = "perf";
    if (const char* pin = std::getenv("WEFT_PERF_PIN"); pin != nullptr && *pin != '\0') {
      o.pinning = weft::parse_pin_policy(pin, "WEFT_PERF_PIN");
    }
    if (const char* spin = std::getenv("WEFT_PERF_SPIN"); spin != nullptr && *spin != '\0') {
      o.spin_rounds = static_cast<unsigned>(std::strtoul(spin, nullptr, 10));
    }
    return o;
  }

  static weft::pool_options with_sampling(int threads, unsigned every) {
    weft::pool_options o = options(threads);
    o.latency_sample_every = every;
    return o;
  }

  weft::pool pool_;
};

#ifdef WEFT_HAVE_TBB
class tbb_runtime {
 public:
  enum class caller { joins, stays_outside };

  // TBB's market creates at most max_allowed_parallelism - 1 workers (by default one fewer
  // than the machine has CPUs), which would leave an arena with no reserved slot one worker
  // short; the global_control lifts the cap for this runtime's lifetime.
  tbb_runtime(int threads, caller c)
      : control_(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads) + 1),
        arena_(threads, c == caller::joins ? 1u : 0u) {
    arena_.initialize();
  }

  tbb::task_arena& arena() noexcept { return arena_; }

  // Fire-and-forget from outside the arena (the arena's FIFO task stream).
  template <class F>
  void post(F&& f) {
    arena_.enqueue(std::forward<F>(f));
  }

  // Runs f inside the arena on the calling thread (which takes a slot) and returns its result.
  template <class F>
  auto run(F&& f) {
    return arena_.execute(std::forward<F>(f));
  }

 private:
  tbb::global_control control_;
  tbb::task_arena arena_;
};
#endif

#ifdef WEFT_HAVE_OPENMP
class omp_runtime {
 public:
  // Dynamic adjustment off, so that num_threads(N) gives N threads.
  explicit omp_runtime(int threads) : threads_(threads) { omp_set_dynamic(0); }

  // Runs f once, inside `omp single` of an N-thread parallel region, and returns its result.
  // f may create tasks (`omp task`); the region's closing barrier executes them.
  template <class F>
  auto run(F&& f) {
    std::invoke_result_t<F&> result{};
#pragma omp parallel num_threads(threads_)
#pragma omp single
    result = f();
    return result;
  }

  int threads() const noexcept { return threads_; }

 private:
  int threads_;
};
#endif

#ifdef WEFT_HAVE_ASIO
class asio_runtime {
 public:
  explicit asio_runtime(int threads) : pool_(static_cast<std::size_t>(threads)) {}
  ~asio_runtime() { pool_.join(); }
  asio_runtime(const asio_runtime&) = delete;
  asio_runtime& operator=(const asio_runtime&) = delete;

  template <class F>
  void post(F&& f) {
    boost::asio::post(pool_, std::forward<F>(f));
  }

 private:
  boost::asio::thread_pool pool_;
};
#endif

}  // namespace weft_perf
