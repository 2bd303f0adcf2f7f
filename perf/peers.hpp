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
// - libfork (lazy_pool, busy_pool): a pool of N workers; the benchmark thread submits the
//   root with lf::sync_wait and sleeps until it completes, as with weft.
// - Taskflow: a tf::Executor of N workers; the benchmark thread submits the root with
//   Executor::async and sleeps in future::get, as with weft.
// Peers are compiled here, with the same compiler and flags as weft (their headers' inline
// code included); only their prebuilt shared libraries (libtbb.so) carry the
// distribution's own flags. libfork and Taskflow are header-only, from local checkouts
// (perf/CMakeLists.txt: WEFT_PEER_LIBFORK_DIR, WEFT_PEER_TASKFLOW_DIR).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <span>
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
#ifdef WEFT_HAVE_LIBFORK
#include <libfork/core.hpp>
#include <libfork/schedule.hpp>
#endif
#ifdef WEFT_HAVE_TASKFLOW
#include <taskflow/taskflow.hpp>
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

#ifdef WEFT_HAVE_LIBFORK
// The index of the libfork worker whose context is `me` (`self.context()` in a task) in
// `workers` (libfork_runtime::workers()), for per_thread_tally. Looked up once per thread,
// since a worker belongs to one pool for its whole life.
inline int libfork_worker_index(lf::worker_context* me, std::span<lf::worker_context*> workers) noexcept {
  static thread_local const int index = static_cast<int>(std::ranges::find(workers, me) - workers.begin());
  return index;
}

// libfork v3, with Pool = lf::lazy_pool (workers sleep when there is nothing to steal) or
// lf::busy_pool (workers never sleep). Built without LF_USE_HWLOC, so no worker is bound
// to a core and the NUMA strategy has nothing to act on.
template <class Pool>
class libfork_runtime {
 public:
  explicit libfork_runtime(int threads) : pool_(static_cast<std::size_t>(threads)) {}

  // Runs the async function f(args...) on the pool and returns its result (the calling
  // thread sleeps meanwhile).
  template <class F, class... Args>
  auto run(F&& f, Args&&... args) {
    return lf::sync_wait(pool_, std::forward<F>(f), std::forward<Args>(args)...);
  }

  // The workers' contexts, in the pool's order: a worker's index is its position here.
  std::span<lf::worker_context*> workers() noexcept { return pool_.contexts(); }

 private:
  Pool pool_;
};
#endif

#ifdef WEFT_HAVE_TASKFLOW
class taskflow_runtime {
 public:
  explicit taskflow_runtime(int threads) : executor_(static_cast<std::size_t>(threads)) {}

  tf::Executor& executor() noexcept { return executor_; }

  // Runs f on a worker (a task group can only be made there) and returns its result.
  template <class F>
  auto run(F&& f) {
    return executor_.async(std::forward<F>(f)).get();
  }

  // The calling worker's index, for per_thread_tally. Executor::this_worker_id() is a hash
  // map lookup by thread id, dearer than the other runtimes' thread-local reads, so it is
  // done once per thread: a worker belongs to one executor for its whole life.
  int worker_index() const {
    static thread_local const int index = executor_.this_worker_id();
    return index;
  }

 private:
  tf::Executor executor_;
};
#endif

}  // namespace weft_perf
