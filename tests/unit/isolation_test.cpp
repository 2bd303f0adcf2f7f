// tests/unit/isolation_test.cpp: isolated waiting (task_group.hpp, "Waiting is isolated").
//   - The lock case: a task holds a mutex and waits on a group while an unrelated task that
//     needs the same mutex is queued (from outside, or from inside before the wait); the
//     waiter never runs it (that would re-lock the mutex on the same thread), nothing
//     deadlocks, on 1 and 2 workers.
//   - Nested groups: while a child waits on its own nested group, it runs none of its
//     siblings (they are outside the nested group's subtree).
//   - A non-worker thread waiting on a group runs the group's children itself.
//   - The escape hatch: when every worker is blocked in a wait and only work that isolation
//     forbids is queued, a waiter runs it anyway and the pool logs one line about it; and
//     ordinary nested fork-join, or a child waiting on a future, never triggers it.
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
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "test_util.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto kHang = 20s;

using weft_test::worker_blocker;

struct log_capture {
  std::mutex mu;
  std::vector<std::string> lines;  // guarded by mu
  std::function<void(std::string_view)> sink() {
    return [this](std::string_view line) {
      std::lock_guard lock(mu);
      lines.emplace_back(line);
    };
  }
  std::size_t count_mentioning(std::string_view word) {
    std::lock_guard lock(mu);
    return static_cast<std::size_t>(
        std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(word) != std::string::npos; }));
  }
};

void spin_for(std::chrono::microseconds d) {
  const auto end = clock_type::now() + d;
  while (clock_type::now() < end) {
  }
}

// ---- the lock case ----

enum class unrelated_from { outside, inside_before_group, inside_before_wait };

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

TEST_P(LockTest, WaiterHoldingALockNeverRunsAnUnrelatedTaskNeedingIt) {
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
    if (from == unrelated_from::inside_before_group) post_unrelated();
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
    if (from == unrelated_from::inside_before_wait) post_unrelated();
    if (from == unrelated_from::outside) {
      locked.count_down();
      posted.wait();  // the unrelated tasks are now in the injection queue
    }
    g.wait();
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
  static const char* const names[] = {"Outside", "InsideBeforeGroup", "InsideBeforeWait"};
  return "w" + std::to_string(std::get<0>(i.param)) + "_" + names[static_cast<int>(std::get<1>(i.param))];
}

INSTANTIATE_TEST_SUITE_P(WorkersAndSources, LockTest,
                         testing::Combine(testing::Values(1, 2),
                                          testing::Values(unrelated_from::outside, unrelated_from::inside_before_group,
                                                          unrelated_from::inside_before_wait)),
                         lock_case_name);

// The same promise one level further down: a child of the waited group waits on a nested
// group whose only child runs on the other worker (it blocks there until released). The
// thread is inside both waits, so it must not pick up the unrelated tasks queued meanwhile.
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
    s.holder = std::thread::id{};
  });
  // The other worker runs the grandchild (blocked until released): only then are the
  // unrelated tasks queued, so that the lock holder's thread is the only one free to take
  // them. Give it time to park in h.wait() before the grandchild finishes; only the window
  // in which a broken runtime can misbehave depends on this delay.
  stolen.wait();
  for (int i = 0; i < kUnrelated; ++i) p.post([&s] { s.unrelated(); });
  std::this_thread::sleep_for(100ms);
  release.count_down();
  ASSERT_EQ(holder.wait_for(kHang), std::future_status::ready) << "deadlock";
  holder.get();
  p.close();
  EXPECT_NE(grandchild_thread.load(), std::thread::id{});
  EXPECT_EQ(s.reentered.load(), 0)
      << "a child's nested group wait ran an unrelated task on the thread holding the lock (not isolated)";
  EXPECT_EQ(s.unrelated_ran.load() + s.reentered.load(), kUnrelated);
}

// ---- nested groups ----

thread_local int waiting_on_nested = 0;  // > 0 while this thread is inside the nested wait

class NestedTest : public testing::TestWithParam<int> {};

// A child waiting on its own nested group runs only that group's subtree: never one of its
// siblings in the outer group.
TEST_P(NestedTest, NestedWaitRunsOnlyTheNestedSubtree) {
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

// ---- a non-worker waiter helps ----

class ExternalHelpTest : public testing::TestWithParam<int> {};

// Every worker is blocked: the thread waiting on the group runs all its children (and the
// children's nested groups) itself.
TEST_P(ExternalHelpTest, ExternalWaiterRunsTheChildrenItself) {
  weft::pool_options o;
  o.workers = GetParam();
  weft::pool p(o);
  worker_blocker blocked(p, GetParam());
  const std::thread::id me = std::this_thread::get_id();
  std::atomic<int> elsewhere{0}, ran{0};
  auto check = [&] {
    ran.fetch_add(1);
    if (std::this_thread::get_id() != me || p.current_worker_index() != -1) elsewhere.fetch_add(1);
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
  EXPECT_EQ(g.wait(), weft::group_status::complete);
  EXPECT_EQ(ran.load(), 20 + 5 * 3);
  EXPECT_EQ(elsewhere.load(), 0) << "children ran off the waiting thread although every worker was blocked";
}

INSTANTIATE_TEST_SUITE_P(Workers, ExternalHelpTest, testing::Values(1, 2, 4),
                         [](const testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

// ---- the escape hatch ----

constexpr std::string_view kHatchWord = "isolation";  // the hatch's log line names the cause

// A future's wait is not isolated (task_group.hpp): on a one-worker pool, a task waits on
// a group whose child waits on the future of an unrelated task queued in the injection
// queue. The child's future wait runs that task itself: no hang, and no escape hatch
// (nothing was stuck).
TEST(EscapeHatchTest, ChildWaitingOnAFutureRunsTheQueuedTaskItselfWithoutTheHatch) {
  log_capture log;
  weft::pool_options o;
  o.workers = 1;
  o.logger = log.sink();
  weft::pool p(o);
  std::latch a_running(1), u_posted(1);
  weft::future<int> fu;
  std::atomic<int> u_depth{-1};  // 1 when U ran nested inside A's wait on the only worker
  std::atomic<int> a_depth{0};
  auto fa = p.submit([&] {
    a_depth = 1;
    weft::task_group g(p);
    a_running.count_down();
    u_posted.wait();
    g.run([&] { fu.wait(); });
    g.wait();
    a_depth = 0;
    return 1;
  });
  a_running.wait();
  fu = p.submit([&] {
    u_depth = a_depth.load();
    return 7;
  });
  u_posted.count_down();
  ASSERT_EQ(fa.wait_for(kHang), std::future_status::ready) << "hang: the child's future wait did not run U";
  EXPECT_EQ(fa.get(), 1);
  EXPECT_EQ(fu.get(), 7);
  EXPECT_EQ(u_depth.load(), 1) << "one worker: U can only have run inside A's wait";
  EXPECT_EQ(log.count_mentioning(kHatchWord), 0u) << "the escape hatch fired although the future wait could run U";
}

// The hatch across pools: P's only worker waits on a group of pool Q whose child waits on
// a task queued on P. None of P's tasks belongs to that group; the hatch runs it.
TEST(EscapeHatchTest, WorkerWaitingOnAnotherPoolsGroupRunsItsOwnQueuedTaskThroughTheHatch) {
  log_capture plog, qlog;
  weft::pool_options o;
  o.workers = 1;
  o.logger = plog.sink();
  weft::pool p(o);
  o.logger = qlog.sink();
  weft::pool q(o);
  std::latch a_running(1), u_posted(1);
  weft::future<int> fu;
  std::atomic<int> u_worker{-2};
  auto fa = p.submit([&] {
    weft::task_group g(q);
    a_running.count_down();
    u_posted.wait();
    g.run([&] { fu.wait(); });
    g.wait();
    return 1;
  });
  a_running.wait();
  fu = p.submit([&] {
    u_worker = p.current_worker_index();
    return 7;
  });
  u_posted.count_down();
  ASSERT_EQ(fa.wait_for(kHang), std::future_status::ready) << "hang";
  EXPECT_EQ(fu.get(), 7);
  EXPECT_EQ(u_worker.load(), 0);
  EXPECT_EQ(plog.count_mentioning(kHatchWord), 1u);
  EXPECT_EQ(qlog.count_mentioning(kHatchWord), 0u);
}

// Ordinary nested fork-join never needs the hatch: every wait either has work of its own
// subtree to run or completes once the other workers finish theirs, so nothing can hang
// and the hatch must not fire (it would break isolation, and log, for nothing). Whether it
// misfires depends on timing, so each case runs on many fresh pools.
int fib(weft::pool& p, int n) {
  if (n < 2) return n;
  int a = 0;
  weft::task_group g(p);
  g.run([&] { a = fib(p, n - 1); });
  const int b = fib(p, n - 2);
  g.wait();
  return a + b;
}

TEST(EscapeHatchTest, OrdinaryNestedForkJoinNeverUsesTheHatch) {
  for (int workers : {1, 2, 4}) {
    // Two workers is where a misfire shows up most (about 1 pool in 50 at the time of
    // writing); more pools there make a broken hatch fail this test most of the time.
    const int pools = workers == 2 ? 150 : 30;
    for (const bool also_outside : {false, true}) {
      int pools_that_logged = 0;
      for (int i = 0; i < pools; ++i) {
        log_capture log;
        weft::pool_options o;
        o.workers = workers;
        o.deque_capacity = 2;
        o.logger = log.sink();
        {
          weft::pool p(o);
          auto inside = p.submit([&] { return fib(p, 18); });
          if (also_outside) {
            EXPECT_EQ(fib(p, 16), 987);  // groups waited on from outside, helped by this thread
          }
          EXPECT_EQ(inside.get(), 2584);
        }
        if (log.count_mentioning(kHatchWord) != 0) ++pools_that_logged;
      }
      EXPECT_EQ(pools_that_logged, 0) << "the escape hatch fired in plain fork-join on " << workers << " workers"
                                      << (also_outside ? " (with fork-join from outside too)" : "") << ", in "
                                      << pools_that_logged << " of " << pools << " pools";
    }
  }
}

}  // namespace
