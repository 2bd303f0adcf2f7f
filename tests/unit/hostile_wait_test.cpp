// tests/unit/hostile_wait_test.cpp: the waiting side of the core, as a hostile user sees it.
// Each test is the regression test of one defect of the waiting/joining core; the defect
// number is the issue's. Every scenario runs in a child process under a watchdog
// (tests/watchdog.hpp), so a hang or a crash fails the test with a message naming the
// defect instead of hanging CI. Only the public API is used.
//   1  escape hatch: a worker waiting on another pool's group whose child needs this pool
//   2  lost wake-up: a task posts a child and blocks outside the runtime until it ran
//   4  stale isolation floor: a group created before a helping future::get
//   7  an outside thread waiting on a group churns an unrelated fork-join's deques (a
//      guard: exact counts and loose bounds; no public observable shows the churn robustly)
//   8  cancellation stays exact after many cancel() calls (the fix must keep this)
//   10 a worker blocked in future::get spins: spin_rounds = 1'000'000, and CPU per wait
//   and two pools waiting on each other's futures in a ping-pong chain.
// Deep nesting (defect 3) is in deep_nesting_test.cpp, 256 workers (9) in
// many_workers_test.cpp.
#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/future.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using weft_test::run_in_child;
using weft_test::unpinned;

// Long enough that a sanitizer build (10-50x slower) never false-fails; a correct core
// finishes each scenario in well under 5 s.
constexpr auto kLimit = 30s;

// Counts the pool's log lines that mention a word; thread-safe, never throws.
struct log_capture {
  std::mutex mu;
  std::vector<std::string> lines;  // guarded by mu
  std::function<void(std::string_view)> sink() {
    return [this](std::string_view line) {
      std::lock_guard lock(mu);
      lines.emplace_back(line);
    };
  }
  std::size_t mentioning(std::string_view word) {
    std::lock_guard lock(mu);
    return static_cast<std::size_t>(
        std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(word) != std::string::npos; }));
  }
};

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

// ---- 1: the escape hatch ----

// Runs on a worker of `a`: waits on a group of `b` whose child needs a task queued on `a`.
int wait_on_other_pools_group(weft::pool& a, weft::pool& b) {
  std::atomic<int> got{0};
  weft::task_group g(b);
  g.run([&] { got.store(a.submit([] { return 1; }).get()); });
  g.wait();
  return got.load();
}

weft::pool_options quiet(int workers) {
  weft::pool_options o = unpinned(workers);
  o.logger = [](std::string_view) {};  // the hatch logs once per pool: expected here
  return o;
}

TEST(EscapeHatch, OnlyWorkerWaitingOnAnotherPoolsGroupCompletes) {
  const auto r = run_in_child(
      [] {
        weft::pool a(quiet(1));
        weft::pool b(quiet(1));
        for (int i = 0; i < 20; ++i) {
          WEFT_CHILD_CHECK(a.submit([&] { return wait_on_other_pools_group(a, b); }).get() == 1);
        }
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 1, the escape hatch livelocks (A's only worker waits on a group of B "
                             "whose child needs a task queued on A): "
                          << r.describe();
}

TEST(EscapeHatch, EveryWorkerOfTwoWaitingOnAnotherPoolsGroupCompletes) {
  const auto r = run_in_child(
      [] {
        weft::pool a(quiet(2));
        weft::pool b(quiet(2));
        const std::uint64_t rounds = std::max<std::uint64_t>(20, weft_test::scaled(200));
        for (std::uint64_t i = 0; i < rounds; ++i) {
          auto f1 = a.submit([&] { return wait_on_other_pools_group(a, b); });
          auto f2 = a.submit([&] { return wait_on_other_pools_group(a, b); });
          WEFT_CHILD_CHECK(f1.get() + f2.get() == 2);
        }
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 1, the escape hatch livelocks with both workers of A waiting on groups of B: "
                          << r.describe();
}

// ---- 2: a task posts a child, then blocks outside the runtime until the child ran ----

enum class blocking { latch, condition_variable };

// Posts a child from the calling worker (it goes on this worker's own deque) and blocks,
// without helping, until the child ran: only the other worker can run it, so it must be
// woken for it.
void post_then_block(weft::pool& p, blocking how) {
  if (how == blocking::latch) {
    std::latch done(1);
    p.post([&] { done.count_down(); });
    done.wait();
    return;
  }
  std::mutex m;
  std::condition_variable cv;
  bool ran = false;
  p.post([&] {
    std::lock_guard lock(m);
    ran = true;
    cv.notify_one();
  });
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return ran; });
}

// The race is between the post and the other worker's going to sleep, so the loop runs
// with short searches too (spin_rounds 4 and 8 hit it within a few 10K iterations, the
// default 64 more rarely). It cannot be made certain to hit; it never fails without a bug.
class PostThenBlock : public testing::TestWithParam<std::tuple<blocking, unsigned>> {};

TEST_P(PostThenBlock, ChildPostedFromAWorkerIsAlwaysRunByTheOther) {
  const blocking how = std::get<0>(GetParam());
  const unsigned spin_rounds = std::get<1>(GetParam());
  const auto r = run_in_child(
      [how, spin_rounds] {
        weft::pool_options o = unpinned(2);
        o.spin_rounds = spin_rounds;
        weft::pool p(o);
        // 10^6 iterations or 4 s, whichever comes first (an iteration is a wake-up and a
        // steal, 5-30 us here). One long task does the loop: an outside submit per
        // iteration would go through the injection queue and its full wake-up instead.
        const std::uint64_t n = weft_test::scaled(1'000'000);
        const auto stop = clock_type::now() + 4s;
        const std::uint64_t done = p.submit([&] {
                                      std::uint64_t i = 0;
                                      for (; i < n && (i % 1024 != 0 || clock_type::now() < stop); ++i) {
                                        post_then_block(p, how);
                                      }
                                      return i;
                                    }).get();
        std::fprintf(stderr, "child: %llu iterations\n", static_cast<unsigned long long>(done));
        WEFT_CHILD_CHECK(done > 0);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 2, lost wake-up after a post from a worker (the posting task blocks outside "
                             "the runtime and the other worker sleeps through the post): "
                          << r.describe();
}

INSTANTIATE_TEST_SUITE_P(PrimitivesAndSpins, PostThenBlock,
                         testing::Combine(testing::Values(blocking::latch, blocking::condition_variable),
                                          testing::Values(4u, 8u, 64u)),
                         [](const auto& i) {
                           return std::string(std::get<0>(i.param) == blocking::latch ? "latch" : "condvar") +
                                  "_spin" + std::to_string(std::get<1>(i.param));
                         });

// ---- 4: a group created before a helping future::get ----

// On a worker: a group is created over queued tasks, a future's get then runs them all
// (popping below where the group was created), and only then does the group get its
// child and wait. The child sits on the waiter's own deque; it must run it at once.
int group_after_helping_get(weft::pool& p, std::atomic<int>& unrelated) {
  auto inner = p.submit([] { return 1; });  // at the bottom of this worker's deque
  for (int i = 0; i < 4; ++i) p.post([&] { unrelated.fetch_add(1); });
  weft::task_group g(p);   // created with five tasks of this worker queued
  int v = inner.get();     // pops (runs) all five: the deque is now empty
  std::atomic<int> child{0};
  g.run([&] { child.fetch_add(1); });  // pushed where the posts were
  g.wait();
  return v + child.load();
}

class StaleFloor : public testing::TestWithParam<int> {};

TEST_P(StaleFloor, GroupCreatedBeforeAHelpingGetWaitsPromptlyAndQuietly) {
  const int workers = GetParam();
  const auto r = run_in_child(
      [workers] {
        log_capture log;
        weft::pool_options o = unpinned(workers);
        o.logger = log.sink();
        weft::pool p(o);
        // With two workers the other one is busy outside the runtime: nobody can steal the
        // child, and not every worker is inside a wait, so no escape hatch either.
        std::unique_ptr<weft_test::worker_blocker> busy;
        if (workers > 1) busy = std::make_unique<weft_test::worker_blocker>(p, workers - 1);
        std::atomic<int> unrelated{0};
        const std::uint64_t n = weft_test::scaled(1000);
        const auto start = clock_type::now();
        for (std::uint64_t i = 0; i < n; ++i) {
          auto f = p.submit([&] { return group_after_helping_get(p, unrelated); });
          if (f.wait_for(2s) != std::future_status::ready) weft_test::child_fail(__FILE__, __LINE__, "one iteration blocked for 2 s");
          WEFT_CHILD_CHECK(f.get() == 2);
        }
        const double elapsed = ms_since(start);
        std::fprintf(stderr, "child: %llu iterations in %.1f ms\n", static_cast<unsigned long long>(n), elapsed);
        WEFT_CHILD_CHECK(elapsed < 2500);  // 1000 iterations take a few ms when correct
        busy.reset();
        p.close();
        WEFT_CHILD_CHECK(unrelated.load() == static_cast<int>(4 * n));
        WEFT_CHILD_CHECK(log.mentioning("isolation") == 0);  // the hatch was never needed
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 4, stale isolation floor (a group created before a helping get cannot find "
                             "its own child on its own deque): "
                          << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Workers, StaleFloor, testing::Values(1, 2));

// ---- 7: an outside group waiter next to an unrelated fork-join ----
// The defect (17K-20K hand-backs of the fib's tasks to the injection queue in a 150 ms
// wait) shows in no public counter: the hand-backs are neither steals nor completions, and
// the fib's time and the waiter's CPU move too little to test without flakiness (2x and
// ~3% here). So this is a guard the fix must keep passing: every task runs exactly once,
// and loose bounds on the waiter's CPU and the fib's slowdown.

TEST(ExternalWaiter, LeavesAnUnrelatedForkJoinAlone) {
  const auto r = run_in_child(
      [] {
        constexpr int kFib = 25;
        weft::pool p(unpinned(2));
        std::atomic<std::uint64_t> runs{0};
        auto run_fib = [&] {
          const auto t = clock_type::now();
          WEFT_CHILD_CHECK(p.submit([&] { return weft_test::counted_fib(p, kFib, runs); }).get() ==
                           weft_test::fib_value(kFib));
          return ms_since(t);
        };
        double alone = 1e9;
        for (int i = 0; i < 3; ++i) alone = std::min(alone, run_fib());

        // The outside thread waits on a group whose only child sleeps; meanwhile the fib
        // runs. The waiter may run its own group's task; it has no business with the fib.
        std::latch waiting(1);
        double waiter_cpu = 0, waiter_wall = 0;
        std::thread waiter([&] {
          weft::task_group g(p);
          std::latch started(1);  // the child runs on a worker, not on the waiter itself
          g.run([&] {
            started.count_down();
            std::this_thread::sleep_for(150ms);
          });
          started.wait();
          waiting.count_down();
          const double cpu0 = thread_cpu_ms();
          const auto t0 = clock_type::now();
          g.wait();
          waiter_cpu = thread_cpu_ms() - cpu0;
          waiter_wall = ms_since(t0);
        });
        waiting.wait();
        double beside = 0;
        int fibs = 0;
        const auto start = clock_type::now();
        while (clock_type::now() - start < 150ms) {
          beside = std::max(beside, run_fib());
          ++fibs;
        }
        waiter.join();
        p.close();
        std::fprintf(stderr, "child: fib(%d) alone %.1f ms, beside the waiter up to %.1f ms; waiter cpu %.1f of %.1f ms\n",
                     kFib, alone, beside, waiter_cpu, waiter_wall);
        const std::uint64_t fib_runs = (3 + static_cast<std::uint64_t>(fibs)) * weft_test::fib_children(kFib);
        WEFT_CHILD_CHECK(runs.load() == fib_runs);  // every child ran exactly once
        const weft::metrics m = p.stats();
        // Every task once: the fib children, the fib roots, the waiter's one child.
        WEFT_CHILD_CHECK(m.completed == fib_runs + 3 + static_cast<std::uint64_t>(fibs) + 1);
        WEFT_CHILD_CHECK(m.failed == 0 && m.cancelled == 0);
        // Loose: the waiter sleeps between short naps and leaves the fib's deques alone.
        WEFT_CHILD_CHECK(waiter_cpu < 0.25 * waiter_wall);
        WEFT_CHILD_CHECK(beside < 10 * alone + 50);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 7, an outside group waiter drains the workers' deques into the injection "
                             "queue on every nap: "
                          << r.describe();
}

// ---- 8: cancellation after many cancel() calls ----

// Outer group on the child's main thread; its child creates an inner group, queues 16
// children on the only worker's deque and holds the worker until the outer group is
// cancelled: none of the inner children may run.
void cancel_outer_before_inner_children_start(weft::pool& p) {
  std::atomic<int> inner_ran{0};
  std::atomic<bool> inner_cancelled{false};
  std::latch queued(1), release(1);
  weft::task_group outer(p);
  outer.run([&] {
    weft::task_group inner(p);
    for (int j = 0; j < 16; ++j) inner.run([&] { inner_ran.fetch_add(1); });
    queued.count_down();
    release.wait();  // the only worker stays here: no inner child has started
    inner_cancelled.store(inner.wait() == weft::group_status::cancelled);
  });
  queued.wait();
  outer.cancel();
  release.count_down();
  WEFT_CHILD_CHECK(outer.wait() == weft::group_status::cancelled);
  WEFT_CHILD_CHECK(inner_ran.load() == 0);
  WEFT_CHILD_CHECK(inner_cancelled.load());
}

// A grandchild that is running when the outer group is cancelled sees its token fire.
void cancel_outer_stops_running_grandchild(weft::pool& p) {
  std::latch started(1);
  std::atomic<bool> saw_stop{false};
  weft::task_group outer(p);
  outer.run([&] {
    weft::task_group inner(p);
    inner.run([&](std::stop_token st) {
      started.count_down();
      const auto give_up = clock_type::now() + 10s;
      while (!st.stop_requested() && clock_type::now() < give_up) std::this_thread::yield();
      saw_stop.store(st.stop_requested());
    });
    inner.wait();
  });
  started.wait();
  outer.cancel();
  outer.wait();
  WEFT_CHILD_CHECK(saw_stop.load());
}

TEST(Cancellation, StaysExactAfterManyCancels) {
  const auto r = run_in_child(
      [] {
        weft::pool p(unpinned(1));
        for (int i = 0; i < 10'000; ++i) {  // throwaway cancellations first
          weft::task_group g(p);
          g.cancel();
          WEFT_CHILD_CHECK(g.wait() == weft::group_status::cancelled);
        }
        const std::uint64_t rounds = std::max<std::uint64_t>(20, weft_test::scaled(200));
        for (std::uint64_t i = 0; i < rounds; ++i) {
          cancel_outer_before_inner_children_start(p);
          cancel_outer_stops_running_grandchild(p);
          // Groups nobody cancelled still run every child, nested too.
          std::atomic<std::uint64_t> runs{0};
          WEFT_CHILD_CHECK(p.submit([&] { return weft_test::counted_fib(p, 12, runs); }).get() ==
                           weft_test::fib_value(12));
          WEFT_CHILD_CHECK(runs.load() == weft_test::fib_children(12));
          weft::task_group fresh(p);
          WEFT_CHILD_CHECK(!fresh.is_cancelled());
          std::atomic<int> ran{0};
          for (int j = 0; j < 64; ++j) fresh.run([&] { ran.fetch_add(1); });
          WEFT_CHILD_CHECK(fresh.wait() == weft::group_status::complete);
          WEFT_CHILD_CHECK(ran.load() == 64);
        }
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 8 (guard): cancellation after many cancel() calls: " << r.describe();
}

// ---- 10: a worker blocked in future::get ----

// Main submits a task that sleeps `d` (it starts on one worker), then a task that waits
// until it started and get()s it (on the other worker, with nothing else to run). Returns
// the {wall, thread CPU} of that get() in ms.
std::pair<double, double> timed_get_on_worker(weft::pool& p, std::chrono::milliseconds d) {
  auto started = std::make_shared<std::latch>(1);
  auto slow = p.submit([started, d] {
    started->count_down();
    std::this_thread::sleep_for(d);
    return 7;
  });
  return p.submit([&] {
            started->wait();
            const double cpu0 = thread_cpu_ms();
            const auto t0 = clock_type::now();
            const int v = slow.get();
            const std::pair<double, double> out{ms_since(t0), thread_cpu_ms() - cpu0};
            WEFT_CHILD_CHECK(v == 7);
            return out;
          })
      .get();
}

TEST(BlockedGet, ReturnsPromptlyWithTheLargestSpinRounds) {
  const auto r = run_in_child(
      [] {
        weft::pool_options o = unpinned(2);
        o.spin_rounds = 1'000'000;  // documented as valid (options.hpp)
        weft::pool p(o);
        double worst = 0;
        for (int i = 0; i < 3; ++i) worst = std::max(worst, timed_get_on_worker(p, 10ms).first);
        std::fprintf(stderr, "child: get() of a 10 ms task took up to %.1f ms\n", worst);
        WEFT_CHILD_CHECK(worst < 200);
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 10, with spin_rounds = 1'000'000 a worker's get() of a 10 ms task spins for "
                             "seconds: "
                          << r.describe();
}

TEST(BlockedGet, BurnsLittleCpu) {
  const auto r = run_in_child(
      [] {
        weft::pool p(unpinned(2));
        double wall = 0, cpu = 0;
        for (int i = 0; i < 40; ++i) {
          const auto [w, c] = timed_get_on_worker(p, 10ms);
          wall += w;
          cpu += c;
        }
        std::fprintf(stderr, "child: 40 gets of 10 ms tasks: %.1f ms CPU in %.1f ms\n", cpu, wall);
        WEFT_CHILD_CHECK(cpu < 0.25 * wall);  // a parked waiter costs next to nothing
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "defect 10, a worker blocked in future::get burns CPU for milliseconds per wait: "
                          << r.describe();
}

// ---- two pools waiting on each other's futures ----

// A task of `self` get()s a task of `other`, which get()s a task of `self`, ... n deep.
int ping_pong(weft::pool& self, weft::pool& other, int n) {
  if (n == 0) return 0;
  return other.submit([&other, &self, n] { return ping_pong(other, self, n - 1); }).get() + 1;
}

class TwoPools : public testing::TestWithParam<int> {};

TEST_P(TwoPools, PingPongChainOfFuturesCompletes) {
  const int workers = GetParam();
  const auto r = run_in_child(
      [workers] {
        weft::pool a(unpinned(workers));
        weft::pool b(unpinned(workers));
        // 1000 hops (200 under sanitizers); each is microseconds when correct, up to ~5 ms
        // today (the waiting get spins, defect 10), so the bound is very loose.
        const int hops = weft_test::scaled(100) < 100 ? 200 : 1000;
        for (int i = 0; i < 2; ++i) {
          const auto start = clock_type::now();
          WEFT_CHILD_CHECK(a.submit([&] { return ping_pong(a, b, hops); }).get() == hops);
          const double elapsed = ms_since(start);
          std::fprintf(stderr, "child: %d hops in %.1f ms\n", hops, elapsed);
          WEFT_CHILD_CHECK(elapsed < 12'000);
        }
      },
      kLimit);
  EXPECT_TRUE(r.passed()) << "two pools waiting on each other's futures (A->B->A... 1000 deep): " << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Workers, TwoPools, testing::Values(1, 2));

}  // namespace
