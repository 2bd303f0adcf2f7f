// tests/unit/deadline_test.cpp: limits at the edges of time (weft/detail/deadline.hpp,
// task_options.hpp, future.hpp, pool.hpp).
//   A limit too far away for steady_clock (duration::max(), years(1000), the max() time
//   point of any clock) is no limit: close(timeout) drains everything, a task with such a
//   timeout runs, a wait with such a limit waits until the result is there.
//   A limit already past (a negative timeout, a deadline in the past, a time point of
//   another clock in the past) has expired: the task never runs and its cancellation is
//   delivered before submit/post returns, counted as cancelled; a wait only checks.
//   A deadline that passes while the task is queued cancels it when a worker starts it,
//   even if the pool's timer thread has not got to it (here: it is busy in a callback).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <latch>
#include <ostream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using weft_test::worker_blocker;

constexpr auto kHang = 10s;

weft::pool_options workers(int n) {
  weft::pool_options o;
  o.workers = n;
  o.pinning = weft::pin_policy::none;
  return o;
}

// Runs fn on another thread and fails (instead of hanging) if it does not return in time.
// Only used where the work ends by itself in any case (a task that returns after a while).
template <class F>
auto within(F fn, clock_type::duration limit = kHang) {
  auto f = std::async(std::launch::async, std::move(fn));
  EXPECT_EQ(f.wait_for(limit), std::future_status::ready) << "did not return in time";
  return f.get();
}

// ---- a limit too far away is no limit ----

struct close_case {
  const char* label;
  std::function<bool(weft::pool&)> close;
};
void PrintTo(const close_case& c, std::ostream* os) { *os << c.label; }
class HugeCloseTimeoutTest : public testing::TestWithParam<close_case> {};

TEST_P(HugeCloseTimeoutTest, DrainsEverything) {
  weft::pool p(workers(1));
  std::atomic<int> ran{0};
  std::vector<weft::future<int>> fs;
  fs.push_back(p.submit([&] {
    std::this_thread::sleep_for(20ms);  // the queue is still full when close starts
    ran.fetch_add(1);
    return 1;
  }));
  for (int i = 0; i < 50; ++i) fs.push_back(p.submit([&] { return ran.fetch_add(1), 1; }));
  EXPECT_TRUE(GetParam().close(p)) << "a limit beyond steady_clock's range ran out";
  EXPECT_EQ(ran.load(), 51) << "queued tasks were cancelled instead of run";
  for (auto& f : fs) EXPECT_EQ(f.get(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Limits, HugeCloseTimeoutTest,
    testing::Values(close_case{"years1000", [](weft::pool& p) { return p.close(std::chrono::years(1000)); }},
                    close_case{"steady_duration_max", [](weft::pool& p) { return p.close(clock_type::duration::max()); }},
                    close_case{"hours_max", [](weft::pool& p) { return p.close(std::chrono::hours::max()); }},
                    close_case{"seconds_max", [](weft::pool& p) { return p.close(std::chrono::seconds::max()); }},
                    close_case{"double_infinity",
                               [](weft::pool& p) { return p.close(std::chrono::duration<double>(INFINITY)); }},
                    close_case{"deadline_max", [](weft::pool& p) { return p.close(clock_type::time_point::max()); }}),
    [](const auto& info) { return std::string(info.param.label); });

TEST(DeadlineTest, CloseWithANegativeTimeoutIsAPassedDeadline) {
  weft::pool p(workers(1));
  worker_blocker blocked(p, 1);
  auto f = p.submit([] { return 1; });
  std::thread release([&] {  // so that a close that waits for the worker still ends
    std::this_thread::sleep_for(500ms);
    blocked.release();
  });
  const auto t0 = clock_type::now();
  EXPECT_FALSE(p.close(-5s));
  EXPECT_LT(clock_type::now() - t0, 400ms) << "a negative timeout waited for the running task";
  EXPECT_THROW(f.get(), weft::task_cancelled);
  release.join();
}

TEST(DeadlineTest, MaximalTimeoutRunsTheTask) {
  weft::pool p(workers(2));
  weft::task_options o;
  o.timeout = clock_type::duration::max();
  std::vector<weft::future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(p.submit([i] { return i; }, o));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(fs[i].get(), i) << "cancelled by a timeout of duration::max()";
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.cancelled, 0u);
}

struct wait_case {
  const char* label;
  std::function<std::future_status(const weft::future<int>&)> wait;
};
void PrintTo(const wait_case& c, std::ostream* os) { *os << c.label; }
class HugeWaitTest : public testing::TestWithParam<wait_case> {};

TEST_P(HugeWaitTest, WaitsUntilReady) {
  weft::pool p(workers(1));
  auto f = p.submit([] {
    std::this_thread::sleep_for(20ms);
    return 4;
  });
  const std::future_status s = within([&] { return GetParam().wait(f); });
  EXPECT_EQ(s, std::future_status::ready) << "timed out at once: the limit overflowed";
  EXPECT_TRUE(f.ready());
  EXPECT_EQ(f.get(), 4);
}

using sys_seconds_tp = std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>;
using steady_hours_tp = std::chrono::time_point<clock_type, std::chrono::hours>;

INSTANTIATE_TEST_SUITE_P(
    Limits, HugeWaitTest,
    testing::Values(
        wait_case{"for_duration_max", [](const auto& f) { return f.wait_for(clock_type::duration::max()); }},
        wait_case{"for_hours_max", [](const auto& f) { return f.wait_for(std::chrono::hours::max()); }},
        wait_case{"for_years1000", [](const auto& f) { return f.wait_for(std::chrono::years(1000)); }},
        wait_case{"for_double_infinity",
                  [](const auto& f) { return f.wait_for(std::chrono::duration<double>(INFINITY)); }},
        wait_case{"until_steady_max", [](const auto& f) { return f.wait_until(clock_type::time_point::max()); }},
        wait_case{"until_steady_hours_max", [](const auto& f) { return f.wait_until(steady_hours_tp::max()); }},
        wait_case{"until_system_max",
                  [](const auto& f) { return f.wait_until(std::chrono::system_clock::time_point::max()); }},
        wait_case{"until_system_seconds_max", [](const auto& f) { return f.wait_until(sys_seconds_tp::max()); }}),
    [](const auto& info) { return std::string(info.param.label); });

class PastWaitTest : public testing::TestWithParam<wait_case> {};

TEST_P(PastWaitTest, OnlyChecks) {
  weft::pool p(workers(1));
  worker_blocker blocked(p, 1);
  auto f = p.submit([] { return 4; });
  auto waited = std::async(std::launch::async, [&] { return GetParam().wait(f); });
  // A limit that overflowed into the far future would wait for the task: release it then,
  // so the wait ends and the test fails instead of hanging.
  const bool returned = waited.wait_for(2s) == std::future_status::ready;
  blocked.release();
  const std::future_status s = waited.get();
  ASSERT_TRUE(returned) << "a limit in the past waited for the task";
  EXPECT_EQ(s, std::future_status::timeout);
  EXPECT_EQ(f.get(), 4);
}

INSTANTIATE_TEST_SUITE_P(
    Limits, PastWaitTest,
    testing::Values(
        wait_case{"for_negative", [](const auto& f) { return f.wait_for(-1s); }},
        wait_case{"for_duration_min", [](const auto& f) { return f.wait_for(clock_type::duration::min()); }},
        wait_case{"for_hours_min", [](const auto& f) { return f.wait_for(std::chrono::hours::min()); }},
        wait_case{"until_steady_min", [](const auto& f) { return f.wait_until(clock_type::time_point::min()); }},
        wait_case{"until_system_min",
                  [](const auto& f) { return f.wait_until(std::chrono::system_clock::time_point::min()); }},
        wait_case{"until_system_seconds_min", [](const auto& f) { return f.wait_until(sys_seconds_tp::min()); }}),
    [](const auto& info) { return std::string(info.param.label); });

// ---- a limit already past: never runs, delivered before submit/post returns ----

struct expired_case {
  const char* label;
  std::function<weft::task_options()> options;
};
void PrintTo(const expired_case& c, std::ostream* os) { *os << c.label; }
class ExpiredTest : public testing::TestWithParam<expired_case> {};

TEST_P(ExpiredTest, NeverRunsAndIsCancelledBeforeSubmitReturns) {
  constexpr int kN = 20;
  std::atomic<int> ran{0};
  int ready_at_return = 0, delivered_at_return = 0;
  std::atomic<int> delivered{0};
  std::vector<weft::future<int>> fs;
  {
    weft::pool p(workers(2));  // fresh and idle: a worker could take the task at once
    for (int i = 0; i < kN; ++i) {
      fs.push_back(p.submit([&] { return ran.fetch_add(1); }, GetParam().options()));
      ready_at_return += fs.back().ready() ? 1 : 0;
      const std::thread::id me = std::this_thread::get_id();
      p.post([&] { ran.fetch_add(1); },
             [&, me](weft::outcome<void> o) {
               if (o.cancelled() && std::this_thread::get_id() == me) delivered.fetch_add(1);
             },
             GetParam().options());
      delivered_at_return += delivered.exchange(0);
    }
    const weft::metrics m = p.stats();
    EXPECT_EQ(m.cancelled, 2u * kN) << "counted as cancelled when delivered";
    EXPECT_EQ(m.completed, 0u);
    EXPECT_EQ(m.queued, 0u);
    p.close();
  }
  EXPECT_EQ(ran.load(), 0) << "a task whose limit had already passed ran";
  EXPECT_EQ(ready_at_return, kN) << "futures not ready when submit returned";
  EXPECT_EQ(delivered_at_return, kN) << "on_done not called (as cancelled, on the caller) before post returned";
  for (auto& f : fs) EXPECT_THROW(f.get(), weft::task_cancelled);
}

INSTANTIATE_TEST_SUITE_P(
    Limits, ExpiredTest,
    testing::Values(expired_case{"deadline_past",
                                 [] {
                                   weft::task_options o;
                                   o.deadline = clock_type::now() - 1ms;
                                   return o;
                                 }},
                    expired_case{"deadline_min",
                                 [] {
                                   weft::task_options o;
                                   o.deadline = clock_type::time_point::min();
                                   return o;
                                 }},
                    expired_case{"timeout_negative",
                                 [] {
                                   weft::task_options o;
                                   o.timeout = -1ms;
                                   return o;
                                 }},
                    expired_case{"timeout_min",
                                 [] {
                                   weft::task_options o;
                                   o.timeout = clock_type::duration::min();
                                   return o;
                                 }}),
    [](const auto& info) { return std::string(info.param.label); });

// An expired submission to a closed pool is rejected, like any other.
TEST(DeadlineTest, ExpiredSubmissionToAClosedPoolIsRejected) {
  weft::pool p(workers(1));
  p.close();
  weft::task_options o;
  o.timeout = -1ms;
  std::atomic<int> calls{0};
  EXPECT_THROW(p.submit([] { return 1; }, o), weft::pool_closed);
  EXPECT_THROW(p.post([] {}, [&](weft::outcome<void>) { calls.fetch_add(1); }, o), weft::pool_closed);
  EXPECT_EQ(calls.load(), 0);
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.rejected, 2u);
  EXPECT_EQ(m.cancelled, 0u);
}

// ---- a deadline that passes while queued, with the timer thread busy ----

TEST(DeadlineTest, WorkerDoesNotStartATaskWhoseDeadlinePassed) {
  weft::pool p(workers(1));
  auto blocked = std::make_unique<worker_blocker>(p, 1);
  // Occupy the pool's timer thread: it delivers this cancellation, and on_done waits. (The
  // timeout is long enough for post to return first; were the cancellation delivered by
  // post itself, on this thread, on_done must not wait, and the test cannot go on.)
  std::latch timer_busy(1), free_timer(1);
  const std::thread::id me = std::this_thread::get_id();
  std::atomic<bool> on_this_thread{false};
  p.post([] {},
         [&](weft::outcome<void> o) {
           if (!o.cancelled()) return;
           if (std::this_thread::get_id() == me) {
             on_this_thread.store(true);
             timer_busy.count_down();
             return;
           }
           timer_busy.count_down();
           free_timer.wait();
         },
         [] {
           weft::task_options o;
           o.timeout = 100ms;
           return o;
         }());
  timer_busy.wait();
  if (on_this_thread.load()) {
    free_timer.count_down();
    GTEST_SKIP() << "the first deadline passed before post returned; the timer thread was never occupied";
  }
  std::atomic<int> ran{0};
  weft::task_options o;
  o.timeout = 5ms;
  auto f = p.submit([&] { return ran.fetch_add(1); }, o);
  std::this_thread::sleep_for(20ms);  // past its deadline; the timer cannot deliver it
  EXPECT_FALSE(f.ready());
  blocked.reset();  // the worker now pops it
  const auto status = f.wait_for(kHang);
  free_timer.count_down();
  ASSERT_EQ(status, std::future_status::ready);
  EXPECT_THROW(f.get(), weft::task_cancelled);
  p.close();
  EXPECT_EQ(ran.load(), 0) << "a worker started a task whose deadline had passed";
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.cancelled, 2u);
  EXPECT_EQ(m.completed, 1u) << "the blocker";
}

}  // namespace
