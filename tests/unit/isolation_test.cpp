// tests/unit/isolation_test.cpp: helping waits and opt-in isolation (weft/isolated.hpp,
// task_group.hpp "Waiting helps").
//   - The lock case: a task holds a mutex and, inside weft::isolated, waits on a group while
//     unrelated tasks that need the same mutex are queued (from outside, or by the same task
//     before the region); the waiter never runs them (that would re-lock the mutex on the
//     same thread), nothing deadlocks, on 1 and 2 workers.
//   - Regions nest: the inner region's wait runs none of the outer region's tasks.
//   - Without isolated, a worker's wait helps with any task of its pool: a wait whose
//     progress needs an unrelated queued task completes on a one-worker pool.
//   - A non-worker thread waiting on a group runs nothing: it sleeps until workers finish.
// Re-entry is detected rather than suffered: the unrelated task checks whether its thread
// already holds the lock (or is inside the wait) and records a violation instead of
// deadlocking, so a broken runtime fails the test instead of hanging it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "test_util.hpp"
#include "weft/isolated.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto kHang = 20s;

using weft_test::worker_blocker;

void spin_for(std::chrono::microseconds d) {
  const auto end = clock_type::now() + d;
  while (clock_type::now() < end) {
  }
}

// ---- the lock case ----

enum class unrelated_from { outside, inside_before_region };

// The mutex, who holds it, and the unrelated tasks that need it.
struct lock_scene {
  std::mutex m;
  std::atomic<std::thread::id> holder{};
  std::atomic<int> unrelated_ran{0};
  std::atomic<int> reentered{0};
  std::atomic<int> children{0};

  void unrelated() {
    if (holder.load() == std::this_thread::get_id()) {  // would deadlock: record it instead
      reentered.fetch_add(1);
      return;
    }
    std::lock_guard lock(m);
    unrelated_ran.fetch_add(1);
  }
};

class LockTest : public testing::TestWithParam<std::tuple<int, unrelated_from>> {};

TEST_P(LockTest, IsolatedWaiterHoldingALockNeverRunsAnUnrelatedTaskNeedingIt) {
  // Not a structured binding: clang 14 cannot capture one in a lambda.
  const int workers = std::get<0>(GetParam());
  const unrelated_from from = std::get<1>(GetParam());
  constexpr int kUnrelated = 8;
  constexpr int kChildren = 64;
  weft::pool_options o;
  o.workers = workers;
  o.deque_capacity = 2;
  weft::pool p(o);
  lock_scene s;
  std::latch locked(1), posted(1);
  auto post_unrelated = [&] {
    for (int i = 0; i < kUnrelated; ++i) p.post([&s] { s.unrelated(); });
  };
  auto holder = p.submit([&] {
    std::unique_lock lock(s.m);
    s.holder = std::this_thread::get_id();
    if (from == unrelated_from::inside_before_region) post_unrelated();
    weft::isolated([&] {
      weft::task_group g(p);
      for (int i = 0; i < kChildren; ++i) {
        g.run([&p, &s, i] {
          s.children.fetch_add(1);
          if (i % 8 == 0) {  // some children fork again: nested groups inside the waited one
            weft::task_group inner(p);
            for (int j = 0; j < 4; ++j) inner.run([&s] { s.children.fetch_add(1); });
            inner.wait();
          }
          if (i % 16 == 0) spin_for(200us);  // leaves the waiter with nothing to do for a moment
        });
      }
      if (from == unrelated_from::outside) {
        locked.count_down();
        posted.wait();  // the unrelated tasks are now in the injection queue
      }
      g.wait();
    });
    s.holder = std::thread::id{};
  });
  if (from == unrelated_from::outside) {
    locked.wait();
    post_unrelated();
    posted.count_down();
  }
  ASSERT_EQ(holder.wait_for(kHang), std::future_status::ready) << "deadlock";
  holder.get();
  p.close();
  EXPECT_EQ(s.reentered.load(), 0) << "the waiter ran an unrelated task on the thread that holds the lock";
  EXPECT_EQ(s.unrelated_ran.load(), kUnrelated);
  EXPECT_EQ(s.children.load(), kChildren + (kChildren / 8) * 4);
}

std::string lock_case_name(const testing::TestParamInfo<std::tuple<int, unrelated_from>>& i) {
  static const char* const names[] = {"Outside", "InsideBeforeRegion"};
  return "w" + std::to_string(std::get<0>(i.param)) + "_" + names[static_cast<int>(std::get<1>(i.param))];
}

INSTANTIATE_TEST_SUITE_P(WorkersAndSources, LockTest,
                         testing::Combine(testing::Values(1, 2),
                                          testing::Values(unrelated_from::outside, unrelated_from::inside_before_region)),
                         lock_case_name);

// A child of the waited group waits on a nested group whose only child runs on the other
// worker (blocked there until released). The holder's thread is inside both waits, inside
// the region, so it must not pick up the unrelated tasks queued meanwhile.
TEST(LockNestedWaitTest, ChildWaitingOnANestedGroupDoesNotRunUnrelatedTasksUnderTheLock) {
  constexpr int kUnrelated = 8;
  weft::pool_options o;
  o.workers = 2;
  weft::pool p(o);
  lock_scene s;
  std::latch stolen(1), release(1);
  std::atomic<std::thread::id> grandchild_thread{};
  auto holder = p.submit([&] {
    std::unique_lock lock(s.m);
    s.holder = std::this_thread::get_id();
    weft::isolated([&] {
      weft::task_group g(p);
      g.run([&] {
        weft::task_group h(p);
        h.run([&] {
          grandchild_thread = std::this_thread::get_id();
          stolen.count_down();
          release.wait();
        });
        stolen.wait();  // this thread is busy, so the other worker took the grandchild
        h.wait();
      });
      g.wait();
    });
    s.holder = std::thread::id{};
  });
  stolen.wait();
  for (int i = 0; i < kUnrelated; ++i) p.post([&s] { s.unrelated(); });
  std::this_thread::sleep_for(100ms);
  release.count_down();
  ASSERT_EQ(holder.wait_for(kHang), std::future_status::ready) << "deadlock";
  holder.get();
  p.close();
  EXPECT_NE(grandchild_thread.load(), std::thread::id{});
  EXPECT_EQ(s.reentered.load(), 0) << "a nested wait inside the region ran an unrelated task under the lock";
  EXPECT_EQ(s.unrelated_ran.load() + s.reentered.load(), kUnrelated);
}

// ---- nested groups ----

thread_local int waiting_on_nested = 0;  // > 0 while this thread is inside the nested wait

class NestedTest : public testing::TestWithParam<int> {};

// A child that spawns a nested group inside weft::isolated and waits on it runs none of its
// siblings in the outer group (spawned before the region: below its floor).
TEST_P(NestedTest, IsolatedNestedWaitRunsNoSibling) {
  weft::pool_options o;
  o.workers = GetParam();
  o.deque_capacity = 2;
  weft::pool p(o);
  std::atomic<int> violations{0}, siblings{0}, nested{0};
  auto root = p.submit([&] {
    weft::task_group outer(p);
    for (int i = 0; i < 32; ++i) {
      outer.run([&] {
        if (waiting_on_nested > 0) violations.fetch_add(1);
        siblings.fetch_add(1);
      });
    }
    outer.run([&] {
      weft::isolated([&] {
        weft::task_group inner(p);
        for (int j = 0; j < 16; ++j) {
          inner.run([&] {
            nested.fetch_add(1);
            spin_for(50us);
          });
        }
        ++waiting_on_nested;
        inner.wait();
        --waiting_on_nested;
      });
    });
    outer.wait();
  });
  ASSERT_EQ(root.wait_for(kHang), std::future_status::ready);
  root.get();
  EXPECT_EQ(violations.load(), 0) << "a sibling ran inside a nested group's wait";
  EXPECT_EQ(siblings.load(), 32);
  EXPECT_EQ(nested.load(), 16);
}

INSTANTIATE_TEST_SUITE_P(Workers, NestedTest, testing::Values(1, 2, 4),
                         [](const testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

// ---- without isolation, waits help with anything ----

// On a one-worker pool a task waits on a group whose child blocks until an unrelated task,
// queued from outside, runs. Only the waiting worker can run it: its wait must help.
TEST(HelpingTest, WaitRunsUnrelatedQueuedWorkOnOneWorker) {
  weft::pool_options o;
  o.workers = 1;
  weft::pool p(o);
  std::latch waiting(1);
  std::atomic<bool> unrelated_ran{false};
  auto f = p.submit([&] {
    weft::task_group g(p);
    g.run([&] {
      waiting.count_down();
      while (!unrelated_ran.load()) {
        weft::future<void> nothing = p.submit([] {});  // a wait that helps, inside the child
        nothing.get();
      }
    });
    g.wait();
  });
  waiting.wait();
  p.post([&] { unrelated_ran = true; });
  ASSERT_EQ(f.wait_for(kHang), std::future_status::ready) << "the wait did not help with queued work";
  f.get();
}

// A worker of pool A waits on a group of pool B whose child needs a task it submits to A:
// A's worker is the only one that can run it, and does, inside its wait (issue 8, defect 1:
// this shape livelocked the old escape hatch).
TEST(HelpingTest, WaitOnAnotherPoolsGroupRunsOwnPoolsWork) {
  weft::pool_options oa, ob;
  oa.workers = 1;
  ob.workers = 1;
  weft::pool a(oa), b(ob);
  for (int round = 0; round < 50; ++round) {
    auto f = a.submit([&] {
      weft::task_group g(b);
      int v = 0;
      g.run([&] { v = a.submit([] { return 7; }).get(); });
      g.wait();
      return v;
    });
    ASSERT_EQ(f.wait_for(kHang), std::future_status::ready) << "round " << round;
    EXPECT_EQ(f.get(), 7);
  }
}

// Leaving a region restores helping, also when it ends by an exception: a task queued
// before the region (below its floor) is run by a later ordinary wait on the only worker.
TEST(HelpingTest, RegionEndsOnExceptionAndWaitsHelpAgain) {
  weft::pool_options o;
  o.workers = 1;
  weft::pool p(o);
  auto f = p.submit([&] {
    weft::future<int> below = p.submit([] { return 3; });
    EXPECT_THROW(weft::isolated([] { throw std::runtime_error("x"); }), std::runtime_error);
    weft::task_group g(p);
    int v = 0;
    g.run([&] { v = below.get(); });  // an isolated wait could not run `below`: hang
    g.wait();
    return v;
  });
  ASSERT_EQ(f.wait_for(kHang), std::future_status::ready);
  EXPECT_EQ(f.get(), 3);
}

// isolated() on a thread that is no worker changes nothing and works.
TEST(HelpingTest, IsolatedOutsideThePoolJustRuns) {
  weft::pool p;
  const int v = weft::isolated([&] {
    weft::task_group g(p);
    int x = 0;
    g.run([&] { x = 5; });
    g.wait();
    return x;
  });
  EXPECT_EQ(v, 5);
}

// ---- a non-worker waiter runs nothing ----

class ExternalWaitTest : public testing::TestWithParam<int> {};

// The thread waiting on a group never runs a child: the workers do, once unblocked.
TEST_P(ExternalWaitTest, ExternalWaiterSleepsWhileWorkersRunTheChildren) {
  weft::pool_options o;
  o.workers = GetParam();
  weft::pool p(o);
  auto blocked = std::make_unique<worker_blocker>(p, GetParam());
  const std::thread::id me = std::this_thread::get_id();
  std::atomic<int> on_waiter{0}, ran{0};
  auto check = [&] {
    ran.fetch_add(1);
    if (std::this_thread::get_id() == me || p.current_worker_index() == -1) on_waiter.fetch_add(1);
  };
  weft::task_group g(p);
  for (int i = 0; i < 20; ++i) {
    g.run([&, i] {
      check();
      if (i % 4 == 0) {
        weft::task_group inner(p);
        for (int j = 0; j < 3; ++j) inner.run(check);
        inner.wait();
      }
    });
  }
  std::thread release([&] {
    std::this_thread::sleep_for(20ms);
    blocked->release();
  });
  EXPECT_EQ(g.wait(), weft::group_status::complete);
  release.join();
  EXPECT_EQ(ran.load(), 20 + 5 * 3);
  EXPECT_EQ(on_waiter.load(), 0) << "a child ran on the waiting thread, which is no worker";
}

INSTANTIATE_TEST_SUITE_P(Workers, ExternalWaitTest, testing::Values(1, 2, 4),
                         [](const testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

}  // namespace
