// tests/unit/many_workers_test.cpp: pools far wider than the machine, 100 to 256 workers
// (defect 9 of the waiting core: aimed wake-ups reached only workers 0-63, a 64-bit mask;
// and "Core v2 part 2": no 64-worker limit anywhere). On two cores most of these workers
// are asleep most of the time, which is the hostile part: every wake-up has to reach the
// right one. Each scenario runs in a child process under a watchdog (tests/watchdog.hpp).
//   - fork-join fib from outside and from inside a 256-worker pool, exact task counts,
//     clean shutdown
//   - 100 and 256 workers each waiting on its own nested task_group at the same moment,
//     round after round: no hang, exact counts, and no use of the escape hatch (ordinary
//     nested fork-join never needs it, task_group.hpp), which the pool would log.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/future.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::run_in_child;

constexpr auto kLimit = 30s;
constexpr int kWorkers = 256;

// Counts the log lines that mention "isolation" (the escape hatch's line).
struct hatch_log {
  std::atomic<int> lines{0};
  std::function<void(std::string_view)> sink() {
    return [this](std::string_view line) {
      if (line.find("isolation") != std::string_view::npos) lines.fetch_add(1);
    };
  }
};

TEST(ManyWorkers, FibFromOutsideAndInsideAPoolOf256) {
  const auto r = run_in_child(
      [] {
        constexpr int kFib = 20;
        hatch_log log;
        weft::pool_options o = weft_test::unpinned(kWorkers);
        o.logger = log.sink();
        weft::pool p(o);
        WEFT_CHILD_CHECK(p.size() == kWorkers);
        std::atomic<std::uint64_t> runs{0};
        WEFT_CHILD_CHECK(weft_test::counted_fib(p, kFib, runs) == weft_test::fib_value(kFib));  // from outside
        WEFT_CHILD_CHECK(p.submit([&] { return weft_test::counted_fib(p, kFib, runs); }).get() ==
                         weft_test::fib_value(kFib));  // from inside
        p.close();
        WEFT_CHILD_CHECK(runs.load() == 2 * weft_test::fib_children(kFib));
        const weft::metrics m = p.stats();
        WEFT_CHILD_CHECK(m.workers == kWorkers);
        WEFT_CHILD_CHECK(m.completed == 2 * weft_test::fib_children(kFib) + 1);
        WEFT_CHILD_CHECK(m.failed == 0 && m.cancelled == 0);
        WEFT_CHILD_CHECK(log.lines.load() == 0);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 9, fork-join on a pool of 256 workers: " << r.describe();
}

// `waiters` tasks meet at a latch (so each holds its own worker), then each runs a nested
// fork-join and waits on it: that many group waits at once, `rounds` times.
class SimultaneousGroupWaits : public testing::TestWithParam<int> {};

TEST_P(SimultaneousGroupWaits, EveryWaiterCompletesWithoutTheEscapeHatch) {
  const int waiters = GetParam();
  const auto r = run_in_child(
      [waiters] {
        constexpr int kFib = 8;
        hatch_log log;
        weft::pool_options o = weft_test::unpinned(kWorkers);
        o.logger = log.sink();
        weft::pool p(o);
        const std::uint64_t rounds = std::max<std::uint64_t>(3, weft_test::scaled(20));
        std::atomic<std::uint64_t> runs{0};
        for (std::uint64_t round = 0; round < rounds; ++round) {
          auto met = std::make_shared<std::latch>(waiters);
          std::vector<weft::future<int>> fs;
          fs.reserve(static_cast<std::size_t>(waiters));
          for (int i = 0; i < waiters; ++i) {
            fs.push_back(p.submit([&p, &runs, met] {
              met->arrive_and_wait();
              return weft_test::counted_fib(p, kFib, runs);
            }));
          }
          for (auto& f : fs) WEFT_CHILD_CHECK(f.get() == weft_test::fib_value(kFib));
        }
        p.close();
        const std::uint64_t tasks = rounds * static_cast<std::uint64_t>(waiters);
        WEFT_CHILD_CHECK(runs.load() == tasks * weft_test::fib_children(kFib));
        WEFT_CHILD_CHECK(p.stats().completed == tasks * (1 + weft_test::fib_children(kFib)));
        WEFT_CHILD_CHECK(log.lines.load() == 0);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 9, " << waiters << " workers of 256 waiting on nested groups at once: "
                          << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Waiters, SimultaneousGroupWaits, testing::Values(100, kWorkers));

}  // namespace
