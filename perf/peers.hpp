// perf/peers.hpp: each runtime, set up the same way for every family.
//
// Thread accounting, so that "threads:N" means N threads executing tasks everywhere:
// - weft: a pool of N workers. The benchmark thread is not one of them; in fork-join
//   families it submits the root task and sleeps in future::get.
// - oneTBB, fork-join: an arena of concurrency N that the benchmark thread enters with
//   execute() (reserved_for_masters = 1): N-1 TBB workers plus the caller.
// - oneTBB, external submission: an arena of concurrency N that nobody enters
//   (reserved_for_masters = 0): N TBB workers, fed through arena.enqueue.
// Peers are compiled here, with the same compiler and flags as weft (their headers' inline
// code included); only their prebuilt shared libraries (libtbb.so) carry the
// distribution's own flags.
#pragma once

#include <cstdlib>
#include <utility>

#include "harness.hpp"
#include "weft/pool.hpp"

#ifdef WEFT_HAVE_TBB
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#endif

namespace weft_perf {

// weft with its default options (compact pinning, default spinning). WEFT_PERF_PIN
// (none|compact|scatter) overrides the pinning, to separate pinning from scheduling.
class weft_runtime {
 public:
  explicit weft_runtime(int threads) : pool_(options(threads)) {}

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

}  // namespace weft_perf
