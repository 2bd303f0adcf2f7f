// tests/unit/idle_test.cpp: an idle pool uses next to no CPU (pool.hpp: "workers with
// nothing to do spin briefly and then sleep"), and sleeping workers are never lost: work
// posted to an idle pool runs promptly.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// User + system CPU time of the whole process (every thread).
std::chrono::microseconds process_cpu_time() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& tv) { return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec); };
  return std::chrono::duration_cast<std::chrono::microseconds>(us(ru.ru_utime) + us(ru.ru_stime));
}

// Some work that leaves every worker's deque grown and every worker having searched, so the
// pool goes idle from a realistic state rather than from a fresh start.
void warm_up(weft::pool& p) {
  std::atomic<int> ran{0};
  p.submit([&] {
     weft::task_group g(p);
     for (int i = 0; i < 10'000; ++i) g.run([&] { ran.fetch_add(1); });
     g.wait();
   }).get();
  for (int i = 0; i < 1000; ++i) p.post([&] { ran.fetch_add(1); });
  while (ran.load() < 11'000) std::this_thread::sleep_for(1ms);
}

// Parameters: worker count, spin_rounds.
class IdleTest : public testing::TestWithParam<std::tuple<int, unsigned>> {
 protected:
  weft::pool_options options() const {
    weft::pool_options o;
    o.workers = std::get<0>(GetParam());
    o.spin_rounds = std::get<1>(GetParam());
    return o;
  }
};

TEST_P(IdleTest, IdlePoolBurnsAlmostNoCpu) {
  weft::pool p(options());
  warm_up(p);
  std::this_thread::sleep_for(100ms);  // let the searchers give up and park
  const auto cpu_before = process_cpu_time();
  std::this_thread::sleep_for(1s);
  const auto burned = process_cpu_time() - cpu_before;
  EXPECT_LT(burned, 50ms) << "an idle pool of " << p.size() << " workers used "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(burned).count()
                          << " ms of CPU in 1 s";
  EXPECT_GE(p.stats().parks, p.size());
}

TEST_P(IdleTest, PostToAnIdlePoolRunsPromptly) {
  weft::pool p(options());
  warm_up(p);
  for (int round = 0; round < 10; ++round) {
    std::this_thread::sleep_for(round % 2 == 0 ? 50ms : 5ms);  // parked, or just parking
    auto ran = std::make_shared<std::atomic<bool>>(false);  // outlives a task that runs late
    const auto posted = clock_type::now();
    p.post([ran] { ran->store(true); });
    while (!ran->load() && clock_type::now() - posted < 5s) std::this_thread::yield();
    const auto latency = clock_type::now() - posted;
    ASSERT_TRUE(ran->load()) << "round " << round << ": a task posted to an idle pool never ran (lost wake-up)";
    EXPECT_LT(latency, 1s) << "round " << round;
  }
}

// Many external threads post into a pool that keeps going idle between bursts: every task
// runs (a lost wake-up would strand some in the injection queue until the next post).
TEST_P(IdleTest, BurstsSeparatedByIdleTimeAllRun) {
  std::atomic<int> ran{0};  // declared first: it outlives the pool's drain
  weft::pool p(options());
  int expected = 0;
  for (int burst = 0; burst < 20; ++burst) {
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < 50; ++i) p.post([&] { ran.fetch_add(1); });
      });
    }
    for (auto& t : ts) t.join();
    expected += 150;
    const auto deadline = clock_type::now() + 5s;
    while (ran.load() < expected && clock_type::now() < deadline) std::this_thread::sleep_for(100us);
    ASSERT_EQ(ran.load(), expected) << "burst " << burst << ": tasks stranded while workers sleep";
    std::this_thread::sleep_for(std::chrono::milliseconds(burst % 4));
  }
}

INSTANTIATE_TEST_SUITE_P(WorkersAndSpin, IdleTest,
                         testing::Combine(testing::Values(1, 4), testing::Values(0u, 64u)), [](const auto& info) {
                           return "w" + std::to_string(std::get<0>(info.param)) + "_spin" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
