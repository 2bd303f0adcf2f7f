// tests/unit/lifecycle_test.cpp: close(deadline), stop_now() and their invalid or repeated
// calls (pool.hpp, lifecycle table; runtime/core/pool_impl.hpp, protocol S1-S6).
//   close(deadline) returns false at the deadline when running tasks outlast it (whether
//   they honour their token or ignore it), with every queued task already completed as
//   cancelled; true when the work finishes in time.
//   stop_now() leaves every future ready: queued ones task_cancelled, running ones having
//   seen their token fire; afterwards the pool rejects submissions.
//   Repeated or late calls are harmless; calls from one of the pool's workers throw
//   std::logic_error.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto kHang = 10s;
// How late close(deadline) may return: scheduling noise on a loaded 2-core machine.
constexpr auto kSlack = 200ms;

bool await_stop(const std::stop_token& st, clock_type::duration limit = kHang) {
  const auto end = clock_type::now() + limit;
  while (!st.stop_requested()) {
    if (clock_type::now() > end) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// A latch that is opened once, by open() or by the destructor of the guard holding it, so
// that a failed assertion cannot leave a pool's destructor waiting on a stuck task.
struct gate {
  std::latch l{1};
  std::atomic<bool> opened{false};
  void open() {
    if (!opened.exchange(true)) l.count_down();
  }
  void wait() { l.wait(); }
};
struct gate_guard {
  std::shared_ptr<gate> g;
  ~gate_guard() { g->open(); }
};

class LifecycleTest : public testing::TestWithParam<int> {
 protected:
  weft::pool_options options() const {
    weft::pool_options o;
    o.workers = GetParam();
    o.deque_capacity = 2;
    return o;
  }
  int workers() const { return GetParam(); }
};

// Every worker runs a long task that honours its token; more are queued behind them, as
// plain submissions and as submissions with options.
TEST_P(LifecycleTest, CloseDeadlineWithLongTasksReturnsFalseOnTimeAndQueuedFuturesAreReady) {
  weft::pool p(options());
  std::latch started(workers());
  std::vector<weft::future<bool>> running;
  for (int i = 0; i < workers(); ++i) {
    running.push_back(p.submit([&](std::stop_token st) {
      started.count_down();
      return await_stop(st);
    }));
  }
  started.wait();
  std::atomic<int> queued_ran{0};
  std::vector<weft::future<int>> queued;
  for (int i = 0; i < 100; ++i) {
    if (i % 2 == 0) {
      queued.push_back(p.submit([&] { return queued_ran.fetch_add(1); }));
    } else {
      weft::task_options o;
      o.timeout = 1h;
      queued.push_back(p.submit([&] { return queued_ran.fetch_add(1); }, o));
    }
  }
  const auto deadline = clock_type::now() + 100ms;
  const bool drained = p.close(deadline);
  const auto returned = clock_type::now();
  EXPECT_FALSE(drained);
  EXPECT_GE(returned, deadline) << "returned before the deadline";
  EXPECT_LE(returned, deadline + kSlack) << "returned late";
  for (std::size_t i = 0; i < queued.size(); ++i) {
    ASSERT_TRUE(queued[i].ready()) << "queued future " << i << " not ready when close(deadline) returned";
  }
  for (auto& f : queued) EXPECT_THROW(f.get(), weft::task_cancelled);
  EXPECT_EQ(queued_ran.load(), 0);
  EXPECT_TRUE(p.get_stop_token().stop_requested());
  for (auto& f : running) {
    ASSERT_EQ(f.wait_for(kHang), std::future_status::ready);
    EXPECT_TRUE(f.get()) << "a running task did not see its token fire";
  }
}

TEST_P(LifecycleTest, CloseDeadlineWithQuickWorkReturnsTrue) {
  weft::pool p(options());
  std::vector<weft::future<int>> fs;
  for (int i = 0; i < 2000; ++i) fs.push_back(p.submit([i] { return i; }));
  EXPECT_TRUE(p.close(clock_type::now() + kHang));
  EXPECT_TRUE(p.closed());
  EXPECT_FALSE(p.get_stop_token().stop_requested()) << "a drain that met its deadline stopped the pool";
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(fs[static_cast<std::size_t>(i)].ready());
    EXPECT_EQ(fs[static_cast<std::size_t>(i)].get(), i);
  }
  EXPECT_TRUE(p.close(clock_type::now()));  // closed and joined: true at once
}

// A task that ignores its token and blocks: close(deadline) still returns on time; the
// queued work is cancelled; once the task is released the pool is destroyed normally.
TEST_P(LifecycleTest, CloseDeadlineWithATaskThatIgnoresItsTokenDoesNotHang) {
  auto g = std::make_shared<gate>();
  std::atomic<int> queued_ran{0};
  std::vector<weft::future<void>> queued;
  weft::future<void> stuck;
  {
    weft::pool p(options());
    gate_guard guard{g};
    std::latch started(1);
    stuck = p.submit([g, &started] {
      started.count_down();
      g->wait();
    });
    started.wait();
    for (int i = 0; i < 50; ++i) queued.push_back(p.submit([&] { queued_ran.fetch_add(1); }));
    const auto deadline = clock_type::now() + 100ms;
    EXPECT_FALSE(p.close(deadline));
    EXPECT_LE(clock_type::now(), deadline + kSlack);
    for (auto& f : queued) {
      // On more than one worker the idle ones may have run some before the deadline.
      ASSERT_TRUE(f.ready());
    }
    EXPECT_FALSE(stuck.ready());
    // A second close(deadline) while the task is still stuck: false again, on time.
    const auto second = clock_type::now() + 20ms;
    EXPECT_FALSE(p.close(second));
    EXPECT_LE(clock_type::now(), second + kSlack);
    g->open();
  }  // the destructor joins the worker that was stuck
  EXPECT_TRUE(stuck.ready());
  int cancelled = 0;
  for (auto& f : queued) {
    try {
      f.get();
    } catch (const weft::task_cancelled&) {
      ++cancelled;
    }
  }
  EXPECT_EQ(cancelled + queued_ran.load(), 50);
  if (workers() == 1) {
    EXPECT_EQ(cancelled, 50) << "the only worker was stuck: nothing queued could run";
  }
}

// stop_now with every worker busy in a task that honours its token and more queued: after
// it returns every future is ready, queued ones with task_cancelled, running ones having
// returned normally after seeing the stop.
TEST_P(LifecycleTest, StopNowLeavesEveryFutureReady) {
  weft::pool p(options());
  std::latch started(workers());
  std::vector<weft::future<bool>> running;
  for (int i = 0; i < workers(); ++i) {
    running.push_back(p.submit([&](std::stop_token st) {
      started.count_down();
      return await_stop(st);
    }));
  }
  started.wait();
  std::atomic<int> queued_ran{0};
  std::vector<weft::future<void>> queued;
  for (int i = 0; i < 100; ++i) queued.push_back(p.submit([&] { queued_ran.fetch_add(1); }));
  weft::task_group g(p);
  for (int i = 0; i < 20; ++i) g.run([&] { queued_ran.fetch_add(1); });
  p.stop_now();
  for (auto& f : running) {
    ASSERT_TRUE(f.ready());
    EXPECT_TRUE(f.get());
  }
  for (auto& f : queued) {
    ASSERT_TRUE(f.ready());
    EXPECT_THROW(f.get(), weft::task_cancelled);
  }
  EXPECT_TRUE(g.idle()) << "group children queued at stop_now were not completed";
  g.wait();
  EXPECT_EQ(queued_ran.load(), 0);
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.cancelled, 120u);
  EXPECT_EQ(m.queued, 0u);
  EXPECT_EQ(m.running, 0u);
}

// stop_now waits for a running task that ignores its token.
TEST_P(LifecycleTest, StopNowWaitsForATaskThatIgnoresItsToken) {
  weft::pool p(options());
  std::latch started(1);
  std::atomic<bool> returned{false};
  p.post([&] {
    started.count_down();
    std::this_thread::sleep_for(50ms);  // the measured quantity, not an ordering device
    returned = true;
  });
  started.wait();
  p.stop_now();
  EXPECT_TRUE(returned.load()) << "stop_now returned while a task was still running";
}

TEST_P(LifecycleTest, EverySubmissionAfterStopNowIsRejected) {
  weft::pool p(options());
  p.stop_now();
  std::atomic<int> ran{0}, on_done_calls{0};
  EXPECT_TRUE(p.closed());
  EXPECT_THROW(p.post([&] { ran.fetch_add(1); }), weft::pool_closed);
  EXPECT_THROW(p.submit([&] { ran.fetch_add(1); }), weft::pool_closed);
  weft::task_options o;
  o.timeout = 1h;
  EXPECT_THROW(p.submit([&] { ran.fetch_add(1); }, o), weft::pool_closed);
  EXPECT_THROW(p.post([&] { ran.fetch_add(1); }, o), weft::pool_closed);
  EXPECT_THROW(p.post([&] { ran.fetch_add(1); }, [&](weft::outcome<void>) { on_done_calls.fetch_add(1); }),
               weft::pool_closed);
  EXPECT_EQ(p.try_post([&] { ran.fetch_add(1); }), weft::submit_status::closed);
  weft::task_group g(p);
  EXPECT_THROW(g.run([&] { ran.fetch_add(1); }), weft::pool_closed);
  EXPECT_EQ(g.wait(), weft::group_status::complete);
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(on_done_calls.load(), 0);
  EXPECT_EQ(p.stats().rejected, 7u);
}

// The destructor drains like close(): tasks that run during that drain may still use the
// pool (post from a worker, run and wait on a task_group, throw to the handler). A chain of
// tasks, each posting the next, is still going when the destructor starts.
TEST_P(LifecycleTest, TasksRunDuringTheDestructorsDrainMayUseThePool) {
  constexpr int kChain = 2000;
  std::atomic<int> links{0}, children{0}, handled{0};
  std::function<void(int)> link;  // outlives the pool: the drain still calls it
  {
    weft::pool_options o = options();
    o.on_task_exception = [&handled](std::exception_ptr) { handled.fetch_add(1); };
    weft::pool p(o);
    link = [&](int i) {
      links.fetch_add(1);
      if (i % 100 == 0) {
        weft::task_group g(p);
        for (int j = 0; j < 4; ++j) g.run([&children] { children.fetch_add(1); });
        g.wait();
      }
      if (i + 1 < kChain) p.post([&link, i] { link(i + 1); });
      if (i % 500 == 0) throw std::runtime_error("to the handler");
    };
    p.post([&link] { link(0); });
  }  // ~pool while the chain runs
  EXPECT_EQ(links.load(), kChain);
  EXPECT_EQ(children.load(), (kChain / 100) * 4);
  EXPECT_EQ(handled.load(), kChain / 500);
}

// ---- repeated and late calls ----

enum class op { close, close_deadline, close_past_deadline, stop_now };
using sequence = std::vector<op>;

std::string name_of(const sequence& s) {
  std::string n;
  for (op o : s) {
    switch (o) {
      case op::close: n += "Close"; break;
      case op::close_deadline: n += "CloseDeadline"; break;
      case op::close_past_deadline: n += "ClosePastDeadline"; break;
      case op::stop_now: n += "StopNow"; break;
    }
  }
  return n;
}

class RepeatedCallsTest : public testing::TestWithParam<sequence> {};

// Each sequence runs on a pool with work in flight; every call returns, the pool ends
// closed, every future is ready, and tasks were neither lost nor run twice.
TEST_P(RepeatedCallsTest, AreHarmless) {
  weft::pool_options o;
  o.workers = 2;
  weft::pool p(o);
  std::vector<std::atomic<int>> runs(500);
  std::vector<weft::future<void>> fs;
  for (std::size_t i = 0; i < runs.size(); ++i) fs.push_back(p.submit([&runs, i] { runs[i].fetch_add(1); }));
  for (op call : GetParam()) {
    switch (call) {
      case op::close: p.close(); break;
      case op::close_deadline: {
        const bool r = p.close(clock_type::now() + kHang);
        EXPECT_TRUE(r) << "quick work, generous deadline";
        break;
      }
      case op::close_past_deadline:
        // On an open pool with work queued this cancels what is left (false); later, it is
        // false until the workers have exited, then true: either way it returns at once.
        p.close(clock_type::now() - 1s);
        break;
      case op::stop_now: p.stop_now(); break;
    }
    EXPECT_TRUE(p.closed());
  }
  for (std::size_t i = 0; i < fs.size(); ++i) {
    ASSERT_TRUE(fs[i].ready()) << i;
    try {
      fs[i].get();
      EXPECT_EQ(runs[i].load(), 1) << i;
    } catch (const weft::task_cancelled&) {
      EXPECT_EQ(runs[i].load(), 0) << i;
    }
  }
  EXPECT_THROW(p.post([] {}), weft::pool_closed);
}

INSTANTIATE_TEST_SUITE_P(
    Sequences, RepeatedCallsTest,
    testing::Values(sequence{op::stop_now, op::stop_now}, sequence{op::close, op::stop_now},
                    sequence{op::close, op::close_deadline}, sequence{op::close_deadline, op::close_deadline},
                    sequence{op::close_past_deadline, op::close_past_deadline, op::close},
                    sequence{op::stop_now, op::close_deadline, op::close},
                    sequence{op::close_past_deadline, op::stop_now, op::close_deadline}),
    [](const testing::TestParamInfo<sequence>& i) { return name_of(i.param); });

// Concurrent stop_now and close(deadline) from two threads: both return, everything ready.
TEST(ConcurrentLifecycleTest, StopNowRacingCloseDeadline) {
  for (int round = 0; round < 20; ++round) {
    weft::pool_options o;
    o.workers = 2;
    weft::pool p(o);
    std::vector<weft::future<void>> fs;
    for (int i = 0; i < 200; ++i) fs.push_back(p.submit([] { std::this_thread::yield(); }));
    std::thread a([&] { p.stop_now(); });
    std::thread b([&] { p.close(clock_type::now() + 5ms); });
    a.join();
    b.join();
    for (auto& f : fs) ASSERT_TRUE(f.ready()) << "round " << round;
  }
}

// ---- calls from one of the pool's own workers ----

TEST_P(LifecycleTest, LifecycleCallsFromAWorkerThrowLogicError) {
  weft::pool p(options());
  struct results {
    bool close = false, close_deadline = false, close_timeout = false, stop_now = false;
  };
  auto r = p.submit([&p] {
    results out;
    try {
      p.close();
    } catch (const std::logic_error&) {
      out.close = true;
    }
    try {
      p.close(clock_type::now() + 1s);
    } catch (const std::logic_error&) {
      out.close_deadline = true;
    }
    try {
      p.close(1s);
    } catch (const std::logic_error&) {
      out.close_timeout = true;
    }
    try {
      p.stop_now();
    } catch (const std::logic_error&) {
      out.stop_now = true;
    }
    return out;
  }).get();
  EXPECT_TRUE(r.close);
  EXPECT_TRUE(r.close_deadline);
  EXPECT_TRUE(r.close_timeout);
  EXPECT_TRUE(r.stop_now);
  // The failed calls changed nothing: the pool is open, unstopped, and runs work.
  EXPECT_FALSE(p.closed());
  EXPECT_FALSE(p.get_stop_token().stop_requested());
  EXPECT_EQ(p.submit([] { return 5; }).get(), 5);
}

// From a worker of another pool these are ordinary calls.
TEST(LifecycleCrossPoolTest, ClosingAnotherPoolFromAWorkerIsFine) {
  weft::pool_options o;
  o.workers = 1;
  weft::pool a(o), b(o);
  auto ok = a.submit([&b] {
    b.stop_now();
    return b.closed();
  });
  EXPECT_TRUE(ok.get());
}

INSTANTIATE_TEST_SUITE_P(Workers, LifecycleTest, testing::Values(1, 2, 4),
                         [](const testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

}  // namespace
