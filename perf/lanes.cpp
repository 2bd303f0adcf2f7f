// perf/lanes.cpp: what priority lanes (weft/lanes.hpp) buy and what they cost. Its own
// binary, weft-perf-lanes (Google Benchmark's main), so that it builds without the peers.
//
// lanes_priority/{fifo,lanes}: submit-to-start latency of one high-priority task while a
// flood of low-priority tasks (kLowSpin of busy work each) keeps kBacklog of them queued.
// fifo: the same pool without lanes, every task posted plainly (one FIFO injection queue);
// lanes: lanes {low, high (weight 1000)}, the probe posted to "high". Before each sample the
// producer tops the backlog up to kBacklog, so both see the same queue in front of the
// probe. Counters: p50/p99/max in microseconds over the samples.
//
// lanes_post_cost/{plain,lanes}: 1M empty posts from one producer (this thread) to a pool
// of two workers, timed until the last has run. plain: no lanes; lanes: one lane configured
// (so every external post goes through the lanes source). Counter ns_per_post.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "weft/pool.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
constexpr int kWorkers = 2;
constexpr int kBacklog = 200;
constexpr auto kLowSpin = std::chrono::microseconds(20);
constexpr int kSamples = 200;
constexpr long kPosts = 1'000'000;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

void spin_for(clock_type::duration d) {
  const auto until = clock_type::now() + d;
  while (clock_type::now() < until) {
  }
}

weft::pool_options options(bool lanes) {
  weft::pool_options o;
  o.workers = kWorkers;
  o.pinning = weft::pin_policy::none;
  if (lanes) o.lanes = {{.name = "low"}, {.name = "high", .weight = 1000}};
  return o;
}

void lanes_priority(benchmark::State& state) {
  const bool lanes = state.range(0) != 0;
  weft::pool p(options(lanes));
  std::atomic<long> low_done{0};
  long low_posted = 0;
  std::vector<std::int64_t> ns;
  const weft::task_options high{.lane = lanes ? weft::lane{"high"} : weft::lane{}};
  for (auto _ : state) {
    for (int i = 0; i < kSamples; ++i) {
      for (; low_posted - low_done.load() < kBacklog; ++low_posted) {
        p.post([&low_done] {
          spin_for(kLowSpin);
          low_done.fetch_add(1);
        });
      }
      std::atomic<std::int64_t> started{0};
      const std::int64_t t0 = now_ns();
      if (lanes) {
        p.post([&started] { started.store(now_ns()); }, high);
      } else {
        p.post([&started] { started.store(now_ns()); });
      }
      while (started.load() == 0) std::this_thread::yield();
      ns.push_back(started.load() - t0);
    }
  }
  p.close();
  if (low_done.load() != low_posted || ns.size() % kSamples != 0) state.SkipWithError("lost tasks");
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) { return static_cast<double>(ns[static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1))]) / 1000.0; };
  state.counters["p50_us"] = at(0.5);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = at(1.0);
  state.SetLabel(lanes ? "lanes" : "fifo");
}

void lanes_post_cost(benchmark::State& state) {
  const bool lanes = state.range(0) != 0;
  weft::pool_options o = options(false);
  if (lanes) o.lanes = {{.name = "default"}};
  weft::pool p(o);
  std::atomic<long> ran{0};
  long expected = 0;
  for (auto _ : state) {
    for (long i = 0; i < kPosts; ++i) p.post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
    expected += kPosts;
    while (ran.load(std::memory_order_relaxed) < expected) std::this_thread::yield();
  }
  p.close();
  if (ran.load() != expected) state.SkipWithError("lost tasks");
  state.counters["ns_per_post"] =
      benchmark::Counter(static_cast<double>(expected), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetLabel(lanes ? "lanes" : "plain");
}

BENCHMARK(lanes_priority)->Arg(0)->Arg(1)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(lanes_post_cost)->Arg(0)->Arg(1)->Iterations(3)->Repetitions(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
