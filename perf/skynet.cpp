// perf/skynet.cpp: the skynet benchmark (github.com/atemerev/skynet).
//
// A 10-ary tree of depth 6: every inner node spawns its 10 children into one group, waits,
// and sums their results; the 10^6 leaves return their index. 1,111,111 tasks in all (the
// root included); the sum is 0 + 1 + ... + 999999 = 499999500000. Wider fan-out than fib:
// the spawning worker's deque holds up to 10 tasks, so thieves find work more easily.
#include <array>
#include <cstdint>
#include <numeric>

#include "harness.hpp"
#include "peers.hpp"
#include "weft/task_group.hpp"

namespace weft_perf {
namespace {

constexpr int kDepth = 6;
constexpr int kFanOut = 10;
constexpr std::uint64_t kResult = 499999500000ULL;
constexpr double kTasks = 1111111;

std::uint64_t sum(const std::array<std::uint64_t, kFanOut>& parts) {
  return std::accumulate(parts.begin(), parts.end(), std::uint64_t{0});
}

std::uint64_t skynet_weft(weft::pool& p, std::uint64_t num, int depth) {
  if (depth == 0) return num;
  std::array<std::uint64_t, kFanOut> parts{};
  weft::task_group g(p);
  for (int i = 0; i < kFanOut; ++i) {
    g.run([&p, &parts, num, depth, i] { parts[i] = skynet_weft(p, num * kFanOut + i, depth - 1); });
  }
  g.wait();
  return sum(parts);
}

void skynet_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  measure(state, [&] { return rt.run([&] { return skynet_weft(rt.pool(), 0, kDepth); }); }, kResult, kTasks,
          metric::time_per_task);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
std::uint64_t skynet_tbb(std::uint64_t num, int depth) {
  if (depth == 0) return num;
  std::array<std::uint64_t, kFanOut> parts{};
  tbb::task_group g;
  for (int i = 0; i < kFanOut; ++i) {
    g.run([&parts, num, depth, i] { parts[i] = skynet_tbb(num * kFanOut + i, depth - 1); });
  }
  g.wait();
  return sum(parts);
}

void skynet_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  measure(state, [&] { return rt.run([] { return skynet_tbb(0, kDepth); }); }, kResult, kTasks,
          metric::time_per_task);
}
#endif

}  // namespace

void register_skynet() {
  register_runtime("skynet", "weft", skynet_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("skynet", "tbb", skynet_tbb_bench);
#endif
}

}  // namespace weft_perf
