// perf/cost.cpp: weft-cost, what weft's always-on features cost on fib(30), the workload
// where per-task overhead shows most (2,692,537 tasks that do almost nothing).
//
//   fib_cost/weft            the shipped defaults: queue-wait/run-time latency sampled on 1
//                            task in 64 (pool_options::latency_sample_every), cancellation
//                            checked at every task start
//   fib_cost/weft-nolatency  latency_sample_every = 0: the cost of the latency metrics
//   fib_cost/weft-nocancel   only in weft-cost-nocancel, built against weft_nocancel (the
//                            same sources with WEFT_ABLATE_CANCELLATION: the per-task checks
//                            of group cancellation and stop_now compiled out): the cost of
//                            cancellation support
// tools/weft-cost runs both binaries, interleaved, and prints the ratios.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "fib_weft.hpp"
#include "harness.hpp"
#include "peers.hpp"

namespace weft_perf {
namespace {

constexpr int kN = 30;
constexpr std::uint64_t kResult = 832040;
constexpr double kCalls = 2692537;

void run_fib(benchmark::State& state, weft_runtime& rt) {
  measure(state, [&] { return rt.run([&] { return fib_weft(rt.pool(), kN); }); }, kResult, kCalls,
          metric::time_per_task);
}

void fib_defaults(benchmark::State& state) {
  weft_runtime rt(threads(state));
  run_fib(state, rt);
}

[[maybe_unused]] void fib_no_latency(benchmark::State& state) {
  weft_runtime rt(threads(state), 0);
  run_fib(state, rt);
}

}  // namespace
}  // namespace weft_perf

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
#ifdef WEFT_ABLATE_CANCELLATION
  weft_perf::register_runtime("fib_cost", "weft-nocancel", weft_perf::fib_defaults);
#else
  weft_perf::register_runtime("fib_cost", "weft", weft_perf::fib_defaults);
  weft_perf::register_runtime("fib_cost", "weft-nolatency", weft_perf::fib_no_latency);
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
