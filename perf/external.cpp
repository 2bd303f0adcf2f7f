// perf/external.cpp: submission from a thread outside the runtime.
//
// One non-worker thread (the benchmark's) submits 1,000,000 empty tasks, then sleeps until
// all have run. This measures the injection path (a shared queue, waking idle workers)
// rather than a worker's own deque. Each task decrements a shared countdown (harness.hpp),
// the same code for every runtime; the last one wakes the submitter.
//
// How each runtime is fed, the idiomatic fire-and-forget call from outside:
// - weft: pool::post (the injection queue; workers take it in batches).
// - oneTBB: task_arena::enqueue (the arena's FIFO task stream; the submitter does not join
//   the arena). The alternative, arena.execute + task_group::run, would make the submitter
//   a member of the arena pushing onto its own deque: fork-join, not external submission.
#include <cstdint>

#include "harness.hpp"
#include "peers.hpp"

namespace weft_perf {
namespace {

constexpr std::int64_t kTasks = 1000000;

// The countdown's value once the round has been waited for: 0 unless a task ran twice.
std::uint64_t leftover(const countdown& c) { return static_cast<std::uint64_t>(c.left()); }

void external_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  countdown c;
  auto once = [&] {
    c.reset(kTasks);
    for (std::int64_t i = 0; i < kTasks; ++i) rt.pool().post([&c] { c.arrive(); });
    c.wait();
    return leftover(c);
  };
  measure(state, once, 0, static_cast<double>(kTasks), metric::tasks_per_second);
  rt.report_stats(state);
  // A task run twice after the countdown reached zero shows up once the pool has drained.
  rt.pool().close();
  result_check drained(0);
  drained.record(leftover(c));
  drained.report(state);
}

#ifdef WEFT_HAVE_TBB
void external_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::stays_outside);
  countdown c;
  auto once = [&] {
    c.reset(kTasks);
    for (std::int64_t i = 0; i < kTasks; ++i) rt.arena().enqueue([&c] { c.arrive(); });
    c.wait();
    return leftover(c);
  };
  measure(state, once, 0, static_cast<double>(kTasks), metric::tasks_per_second);
}
#endif

}  // namespace

void register_external() {
  register_runtime("external", "weft", external_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("external", "tbb", external_tbb_bench);
#endif
}

}  // namespace weft_perf
