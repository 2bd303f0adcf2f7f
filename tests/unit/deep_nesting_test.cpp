// tests/unit/deep_nesting_test.cpp: waits nested far deeper than a thread's stack allows
// if every wait helps by running the next task on top of itself (defect 3 of the waiting
// core). A runtime may nest helping, but must bound it by the stack it has left (oneTBB
// does); past that it has to complete the work some other way. Each scenario runs in a
// child process under a watchdog (tests/watchdog.hpp): a stack overflow is a crash of the
// child (SIGSEGV, or AddressSanitizer's report and exit status 1), a failed test here.
//   - a chain of submit + get, 100'000 deep, on 1 and 2 workers
//   - a chain of task_groups (create, run the next level, wait), 100'000 deep
//   - 20'000 independent tasks of one pool, each blocked on a future of another pool
//   - a binary fork-join tree of depth 20 on one worker (not deep: wide; a sanity bound)
// The depth is the point, so it is not scaled like the stress sizes, except that sanitizer
// builds (which use several times the stack per frame and run 10-50x slower) go 30'000
// deep: still well past the ~17'000 at which helping overflows an 8 MiB stack today.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/future.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::run_in_child;
using weft_test::unpinned;

constexpr auto kLimit = 30s;

int chain_depth() {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer records the whole call stack at every synchronisation, so a chain's cost
  // grows with the square of its depth (1,000 levels: 0.5 s; 6,000: 15 s). The release and
  // ASan builds prove the depth; this one proves the segment switches race-free.
  return 4'000;
#else
  return static_cast<int>(std::max<std::uint64_t>(30'000, weft_test::scaled(100'000)));
#endif
}

// Each level submits the next to the same pool and get()s it.
int submit_chain(weft::pool& p, int depth) {
  if (depth == 0) return 0;
  return p.submit([&p, depth] { return submit_chain(p, depth - 1); }).get() + 1;
}

// Each level creates a group, runs the next level in it and waits.
int group_chain(weft::pool& p, int depth) {
  if (depth == 0) return 0;
  int below = 0;
  weft::task_group g(p);
  g.run([&p, &below, depth] { below = group_chain(p, depth - 1); });
  g.wait();
  return below + 1;
}

class DeepNesting : public testing::TestWithParam<int> {};

TEST_P(DeepNesting, SubmitGetChain) {
  const int workers = GetParam();
  const auto r = run_in_child(
      [workers] {
        weft::pool p(unpinned(workers));
        const int depth = chain_depth();
        WEFT_CHILD_CHECK(p.submit([&] { return submit_chain(p, depth); }).get() == depth);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 3a, a submit+get chain " << chain_depth()
                          << " deep overflows the stack by helping: " << r.describe();
}

TEST_P(DeepNesting, TaskGroupChain) {
  const int workers = GetParam();
  const auto r = run_in_child(
      [workers] {
        weft::pool p(unpinned(workers));
        const int depth = chain_depth();
        WEFT_CHILD_CHECK(p.submit([&] { return group_chain(p, depth); }).get() == depth);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 3b, a task_group chain " << chain_depth()
                          << " deep overflows the stack by helping: " << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Workers, DeepNesting, testing::Values(1, 2));

// 20'000 tasks queued on A's only worker, each blocked on a future of B whose tasks are
// held until all 20'000 have started (metrics::running) or a second has passed: a helping
// get() on A starts the next queued task on top of the blocked one, 20'000 times.
TEST(CrossPoolNesting, TwentyThousandTasksEachWaitingOnAnotherPool) {
  const auto r = run_in_child(
      [] {
        constexpr int kTasks = 20'000;
        weft::pool a(unpinned(1));
        weft::pool b(unpinned(1));
        std::latch gate(1);
        std::vector<weft::future<int>> fs;
        fs.reserve(kTasks);
        for (int i = 0; i < kTasks; ++i) {
          fs.push_back(a.submit([&b, &gate, i] {
            return b.submit([&gate, i] {
                      gate.wait();
                      return i;
                    })
                .get();
          }));
        }
        // Open the gate once every task has started (a helping runtime nests them all) or
        // after a second (a runtime that bounds its nesting has them wait their turn).
        const auto give_up = std::chrono::steady_clock::now() + 1s;
        while (a.stats().running < kTasks && std::chrono::steady_clock::now() < give_up) {
          std::this_thread::sleep_for(1ms);
        }
        gate.count_down();
        std::int64_t sum = 0;
        for (auto& f : fs) sum += f.get();
        WEFT_CHILD_CHECK(sum == std::int64_t{kTasks} * (kTasks - 1) / 2);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 3c, 20'000 tasks of one pool waiting on futures of another nest on its "
                             "only worker's stack: "
                          << r.describe();
}

// Binary fork-join: both halves on task_groups, 2^depth leaves.
std::int64_t tree(weft::pool& p, int depth) {
  if (depth == 0) return 1;
  std::int64_t left = 0;
  weft::task_group g(p);
  g.run([&p, &left, depth] { left = tree(p, depth - 1); });
  const std::int64_t right = tree(p, depth - 1);
  g.wait();
  return left + right;
}

TEST(ForkJoinTree, DepthTwentyOnOneWorker) {
  const auto r = run_in_child(
      [] {
        weft::pool p(unpinned(1));
        const int depth = weft_test::scaled(100) < 100 ? 15 : 20;  // 2^20 tasks; 2^15 under sanitizers
        WEFT_CHILD_CHECK(p.submit([&] { return tree(p, depth); }).get() == std::int64_t{1} << depth);
        WEFT_CHILD_CHECK(tree(p, depth) == std::int64_t{1} << depth);  // and from outside
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "binary fork-join of depth 20 on one worker: " << r.describe();
}

}  // namespace
