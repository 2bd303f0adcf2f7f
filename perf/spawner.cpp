// perf/spawner.cpp: a single spawner. One task spawns 1,000,000 empty children into one
// group and then waits for them.
//
// The pathological case for work stealing: all the work is born on one deque, one task at
// a time, and every other thread can only get it by stealing. A runtime whose thieves take
// one task per steal pays a steal (several cache-line transfers) per task, more than the
// task itself, and the owner's pushes contend with the thieves' takes; oneTBB, Taskflow and
// libfork have been measured 3-8x slower at 2 threads than at 1 here. weft's thieves take
// several tasks at once. The table's speedup column is the figure to read: speedup < 1
// means the run got slower with more threads.
//
// "Empty": each child only counts itself in its own thread's padded slot (the runtime's
// thread index; per_thread_tally in harness.hpp), which is what the result check reads, so
// no cache line is shared between children.
// Runtimes: weft and oneTBB (task_group run in a loop, then wait), OpenMP (`omp task` in a
// loop, then `omp taskwait`; libgomp runs a task inline once 64 x threads are queued),
// libfork (lf::fork in a loop, then lf::join; libfork steals continuations, so the worker
// that forks runs the child at once and a thief takes the rest of the loop), Taskflow (a
// tf::TaskGroup: silent_async in a loop, then corun). libfork and Taskflow have no cheap
// thread index, so each worker looks its index up once (peers.hpp).
#include <cstdint>

#include "harness.hpp"
#include "peers.hpp"
#include "weft/task_group.hpp"

#ifdef WEFT_HAVE_TBB
#include <oneapi/tbb/task_arena.h>
#endif

namespace weft_perf {
namespace {

constexpr std::uint64_t kChildren = 1000000;

void spawner_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  weft::pool& p = rt.pool();
  per_thread_tally tally;
  auto once = [&] {
    tally.reset();
    rt.run([&] {
      weft::task_group g(p);
      for (std::uint64_t i = 0; i < kChildren; ++i) g.run([&] { tally.add(p.current_worker_index()); });
      g.wait();
    });
    return tally.total();
  };
  measure(state, once, kChildren, static_cast<double>(kChildren), metric::time_per_task);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
void spawner_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  per_thread_tally tally;
  auto once = [&] {
    tally.reset();
    rt.run([&] {
      tbb::task_group g;
      for (std::uint64_t i = 0; i < kChildren; ++i) {
        g.run([&] { tally.add(tbb::this_task_arena::current_thread_index()); });
      }
      g.wait();
    });
    return tally.total();
  };
  measure(state, once, kChildren, static_cast<double>(kChildren), metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_OPENMP
void spawner_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  per_thread_tally tally;
  auto once = [&] {
    tally.reset();
    rt.run([&] {
      for (std::uint64_t i = 0; i < kChildren; ++i) {
#pragma omp task shared(tally)
        tally.add(omp_get_thread_num());
      }
#pragma omp taskwait
      return 0;
    });
    return tally.total();
  };
  measure(state, once, kChildren, static_cast<double>(kChildren), metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_LIBFORK
inline constexpr auto spawner_child_libfork = [](auto self, per_thread_tally& tally,
                                                 std::span<lf::worker_context*> workers) LF_STATIC_CALL
    -> lf::task<void> {
  tally.add(libfork_worker_index(self.context(), workers));
  co_return;
};

inline constexpr auto spawner_libfork = [](auto, per_thread_tally& tally, std::span<lf::worker_context*> workers)
                                            LF_STATIC_CALL -> lf::task<void> {
  for (std::uint64_t i = 0; i < kChildren; ++i) co_await lf::fork(spawner_child_libfork)(tally, workers);
  co_await lf::join;
};

template <class Pool>
void spawner_libfork_bench(benchmark::State& state) {
  libfork_runtime<Pool> rt(threads(state));
  per_thread_tally tally;
  auto once = [&] {
    tally.reset();
    rt.run(spawner_libfork, tally, rt.workers());
    return tally.total();
  };
  measure(state, once, kChildren, static_cast<double>(kChildren), metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_TASKFLOW
void spawner_taskflow_bench(benchmark::State& state) {
  taskflow_runtime rt(threads(state));
  tf::Executor& ex = rt.executor();
  per_thread_tally tally;
  auto once = [&] {
    tally.reset();
    rt.run([&] {
      tf::TaskGroup g = ex.task_group();
      for (std::uint64_t i = 0; i < kChildren; ++i) g.silent_async([&] { tally.add(rt.worker_index()); });
      g.corun();
    });
    return tally.total();
  };
  measure(state, once, kChildren, static_cast<double>(kChildren), metric::time_per_task);
}
#endif

}  // namespace

void register_spawner() {
  register_runtime("spawner", "weft", spawner_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("spawner", "tbb", spawner_tbb_bench);
#endif
#ifdef WEFT_HAVE_OPENMP
  register_runtime("spawner", "omp", spawner_omp_bench);
#endif
#ifdef WEFT_HAVE_LIBFORK
  register_runtime("spawner", "libfork-lazy", spawner_libfork_bench<lf::lazy_pool>);
  register_runtime("spawner", "libfork-busy", spawner_libfork_bench<lf::busy_pool>);
#endif
#ifdef WEFT_HAVE_TASKFLOW
  register_runtime("spawner", "taskflow", spawner_taskflow_bench);
#endif
}

}  // namespace weft_perf
