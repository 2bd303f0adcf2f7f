// tests/fault/fault_points_test.cpp: each fault point is wired where fault.hpp says, and does
// what it says, deterministically (probability 1). The accounting under random faults is in
// fault_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <new>
#include <thread>
#include <vector>

#include "testing/fault.hpp"
#include "core/runtime_sync.hpp"
#include "core/deque.hpp"
#include "weft/weft.hpp"

namespace {

namespace fault = weft::detail::fault;
using weft::detail::chase_lev_deque;
using weft::detail::deque_owner;
using weft::detail::deque_stealer;
using weft::detail::runtime_sync;
using weft::detail::steal_result;
using namespace std::chrono_literals;

static_assert(weft::detail::has_sync_hook<runtime_sync>);
static_assert(!weft::detail::has_sync_hook<weft::detail::std_sync>);

class FaultPoints : public testing::Test {
 protected:
  void SetUp() override { fault::reset(); }
  void TearDown() override { fault::reset(); }
};

weft::pool_options small_pool(int workers) {
  weft::pool_options o;
  o.workers = workers;
  o.pinning = weft::pin_policy::none;
  return o;
}

TEST_F(FaultPoints, DisabledPointsNeverFire) {
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(fault::should_fail(fault::point::task_alloc));
    fault::maybe_delay(fault::point::before_park);
  }
  EXPECT_EQ(fault::injected_failures(fault::point::task_alloc), 0u);
  EXPECT_EQ(fault::injected_delays(fault::point::before_park), 0u);
}

TEST_F(FaultPoints, SameSeedSameDecisions) {
  auto decisions = [] {
    fault::reset();
    fault::seed(42);
    fault::configure(fault::point::task_alloc, 0.5);
    std::vector<bool> v;
    for (int i = 0; i < 256; ++i) v.push_back(fault::should_fail(fault::point::task_alloc));
    return v;
  };
  const std::vector<bool> a = decisions();
  const std::vector<bool> b = decisions();
  EXPECT_EQ(a, b);
  const auto fails = fault::injected_failures(fault::point::task_alloc);
  EXPECT_GT(fails, 64u);  // about half of 256
  EXPECT_LT(fails, 192u);
}

TEST_F(FaultPoints, DequeGrowThrowsAndLeavesTheDequeUnchanged) {
  chase_lev_deque<std::int64_t, runtime_sync> q(2);
  deque_owner<std::int64_t, runtime_sync> owner(q);
  owner.push(0);
  owner.push(1);
  fault::configure(fault::point::deque_grow, 1.0);
  EXPECT_THROW(owner.push(2), std::bad_alloc);
  EXPECT_EQ(fault::injected_failures(fault::point::deque_grow), 1u);
  EXPECT_EQ(q.capacity(), 2);
  EXPECT_EQ(owner.size_approx(), 2);
  fault::configure(fault::point::deque_grow, 0.0);
  owner.push(2);
  EXPECT_EQ(q.capacity(), 4);
  for (std::int64_t want = 2; want >= 0; --want) {
    std::int64_t x = -1;
    ASSERT_TRUE(owner.pop(x));
    EXPECT_EQ(x, want);
  }
}

TEST_F(FaultPoints, StealAndPopHooksPause) {
  chase_lev_deque<std::int64_t, runtime_sync> q(2);
  deque_owner<std::int64_t, runtime_sync> owner(q);
  deque_stealer<std::int64_t, runtime_sync> thief(q);
  fault::configure(fault::point::before_steal_cas, 0.0, 0us, 1.0);
  fault::configure(fault::point::pop_after_fence, 0.0, 5us, 1.0);
  std::int64_t x = -1;
  EXPECT_EQ(thief.steal(x), steal_result::empty);  // returns before the hook
  EXPECT_EQ(fault::injected_delays(fault::point::before_steal_cas), 0u);
  owner.push(1);
  owner.push(2);
  EXPECT_EQ(thief.steal(x), steal_result::success);
  EXPECT_EQ(x, 1);
  EXPECT_EQ(fault::injected_delays(fault::point::before_steal_cas), 1u);
  ASSERT_TRUE(owner.pop(x));
  EXPECT_EQ(x, 2);
  EXPECT_FALSE(owner.pop(x));  // the hook is before the emptiness check: counted too
  EXPECT_EQ(fault::injected_delays(fault::point::pop_after_fence), 2u);
}

TEST_F(FaultPoints, TaskAllocFailureReachesTheSubmitter) {
  weft::pool p(small_pool(2));
  fault::configure(fault::point::task_alloc, 1.0);
  EXPECT_THROW(p.post([] {}), std::bad_alloc);
  EXPECT_THROW(p.try_post([] {}), std::bad_alloc);
  EXPECT_THROW(p.submit([] { return 1; }), std::bad_alloc);
  {
    weft::task_group g(p);
    EXPECT_THROW(g.run([] {}), std::bad_alloc);
    EXPECT_TRUE(g.idle()) << "a rejected run() must not leave the group pending";
    g.wait();
  }
  EXPECT_EQ(fault::injected_failures(fault::point::task_alloc), 4u);
  fault::configure(fault::point::task_alloc, 0.0);
  EXPECT_EQ(p.submit([] { return 7; }).get(), 7);
}

TEST_F(FaultPoints, DequeGrowFailureReachesTheSpawningTask) {
  // One worker, so nothing steals from its deque while the task spawns: the third spawn
  // finds two queued and must grow the deque of capacity 2.
  weft::pool_options o = small_pool(1);
  o.deque_capacity = 2;
  weft::pool p(o);
  std::atomic<int> ran{0};
  fault::configure(fault::point::deque_grow, 1.0);
  const int accepted = p.submit([&] {
                          int n = 0;
                          for (int i = 0; i < 3; ++i) {
                            try {
                              p.post([&] { ran.fetch_add(1); });
                              ++n;
                            } catch (const std::bad_alloc&) {
                            }
                          }
                          return n;
                        }).get();
  EXPECT_EQ(accepted, 2);
  EXPECT_EQ(fault::injected_failures(fault::point::deque_grow), 1u);
  p.close();
  EXPECT_EQ(ran.load(), 2);
}

TEST_F(FaultPoints, WorkersPauseBeforeParking) {
  weft::pool p(small_pool(2));
  fault::configure(fault::point::before_park, 0.0, 10us, 1.0);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fault::injected_delays(fault::point::before_park) == 0 && std::chrono::steady_clock::now() < deadline) {
    p.submit([] {}).get();  // wakes a worker, which parks again afterwards
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_GT(fault::injected_delays(fault::point::before_park), 0u);
}

}  // namespace
