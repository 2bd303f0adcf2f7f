// tests/unit/shutdown_race_test.cpp: lifecycle calls that meet each other
// (runtime/core/pool_impl.hpp, L1-L3).
//   A stop_now() or close(deadline) on one thread escalates a close() that another thread
//   is running (draining a task that only its stop token ends): the later call fires the
//   tokens and cancels the queue, and both calls return.
//   A cancellation callback that stop_now() / close(deadline) delivers on the calling
//   thread and that calls close(), close(deadline) or stop_now() on the same pool gets
//   std::logic_error (pool.hpp) instead of deadlocking.
//   A lifecycle call from a task on one of the pool's own workers throws std::logic_error
//   whose message names the call and says why.
//
// Watchdogs: each scenario that hung before runs on its own thread. Where the hang can be
// undone (the stuck task also watches a test-owned flag) the test raises the flag and
// fails; a self-deadlock cannot be undone, so there the watchdog prints why and ends the
// process with std::_Exit, so that CI never hangs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto kLimit = 5s;  // far above what any of these takes once it works

// Runs fn on its own thread; if it has not finished within `limit`, the process cannot be
// brought back (a thread deadlocked on itself): say so and leave.
template <class F>
void run_or_exit(const char* what, F fn, clock_type::duration limit = kLimit) {
  auto done = std::async(std::launch::async, std::move(fn));
  if (done.wait_for(limit) != std::future_status::ready) {
    std::fprintf(stderr, "FATAL: %s did not finish within the time limit (deadlock); exiting\n", what);
    std::fflush(stderr);
    std::_Exit(3);
  }
  done.get();
}

weft::pool_options one_worker() {
  weft::pool_options o;
  o.workers = 1;
  o.pinning = weft::pin_policy::none;
  return o;
}

// A close() on another thread drains a task that only its stop token (or the test's
// escape flag) ends; `escalate` is the call that must end it.
void close_in_progress_is_escalated_by(const std::function<void(weft::pool&)>& escalate, bool expect_token_fired) {
  weft::pool p(one_worker());
  std::atomic<bool> escape{false};
  std::atomic<bool> token_fired{false};
  std::latch running(1);
  p.post([&](std::stop_token st) {
    running.count_down();
    while (!st.stop_requested() && !escape.load()) std::this_thread::sleep_for(100us);
    token_fired.store(st.stop_requested());
  });
  running.wait();
  std::vector<weft::future<int>> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(p.submit([] { return 1; }));
  std::thread closer([&] { p.close(); });
  while (!p.closed()) std::this_thread::sleep_for(100us);  // the close() is draining now
  std::this_thread::sleep_for(2ms);

  auto call = std::async(std::launch::async, [&] { escalate(p); });
  const bool returned = call.wait_for(kLimit) == std::future_status::ready;
  escape.store(true);  // whatever happened, let the drain end so the test can clean up
  call.get();
  closer.join();
  ASSERT_TRUE(returned) << "the call blocked behind the close() in progress instead of escalating it";
  EXPECT_EQ(token_fired.load(), expect_token_fired);
  for (auto& f : queued) {
    ASSERT_TRUE(f.ready());
    EXPECT_THROW(f.get(), weft::task_cancelled);
  }
}

TEST(ShutdownRaceTest, StopNowEscalatesACloseInProgress) {
  close_in_progress_is_escalated_by([](weft::pool& p) { p.stop_now(); }, true);
}

TEST(ShutdownRaceTest, CloseDeadlineEscalatesACloseInProgress) {
  close_in_progress_is_escalated_by(
      [](weft::pool& p) {
        const auto t0 = clock_type::now();
        EXPECT_FALSE(p.close(clock_type::now() + 20ms));
        EXPECT_LT(clock_type::now() - t0, 2s) << "close(deadline) returned long after its deadline";
      },
      true);
}

// The close() that was escalated returns too, and later calls see a joined pool.
TEST(ShutdownRaceTest, EveryCallerReturnsAfterAnEscalation) {
  weft::pool p(one_worker());
  std::atomic<bool> escape{false};
  std::latch running(1);
  p.post([&](std::stop_token st) {
    running.count_down();
    while (!st.stop_requested() && !escape.load()) std::this_thread::sleep_for(100us);
  });
  running.wait();
  std::vector<std::future<void>> calls;
  for (int i = 0; i < 3; ++i) calls.push_back(std::async(std::launch::async, [&] { p.close(); }));
  while (!p.closed()) std::this_thread::sleep_for(100us);
  calls.push_back(std::async(std::launch::async, [&] { p.stop_now(); }));
  bool all = true;
  for (auto& c : calls) all = c.wait_for(kLimit) == std::future_status::ready && all;
  escape.store(true);
  for (auto& c : calls) c.get();
  ASSERT_TRUE(all) << "a close() or the stop_now() did not return";
  EXPECT_TRUE(p.close(clock_type::now()));  // joined already
  p.stop_now();
}

// ---- a cancellation callback calling back into the stopping pool ----

struct reentry_results {
  std::atomic<int> callbacks{0};
  std::atomic<int> close_threw{0}, close_deadline_threw{0}, stop_now_threw{0};
  std::string close_message;  // written by the one callback that runs first (guarded by `first`)
  std::atomic<bool> first{true};
};

void call_back_into(weft::pool& p, reentry_results& r) {
  r.callbacks.fetch_add(1);
  std::string message;
  try {
    p.close();
  } catch (const std::logic_error& e) {
    r.close_threw.fetch_add(1);
    message = e.what();
  }
  try {
    p.close(clock_type::now() + 1s);
  } catch (const std::logic_error&) {
    r.close_deadline_threw.fetch_add(1);
  }
  try {
    p.stop_now();
  } catch (const std::logic_error&) {
    r.stop_now_threw.fetch_add(1);
  }
  if (r.first.exchange(false)) r.close_message = message;
}

// stop() is stop_now() or close(deadline): it delivers the queued cancellations itself,
// because the only worker is busy in a task that ignores its token until released.
void callback_calls_back_during(const std::function<void(weft::pool&)>& stop) {
  constexpr int kQueued = 5;
  reentry_results r;
  run_or_exit("a cancellation callback calling close()/stop_now() on its own stopping pool", [&] {
    weft::pool p(one_worker());
    auto blocker = std::make_unique<weft_test::worker_blocker>(p, 1);
    weft_test::worker_blocker* b = blocker.get();
    for (int i = 0; i < kQueued; ++i) {
      p.post([] {},
             [&p, &r, b](weft::outcome<void> o) {
               if (!o.cancelled()) return;
               call_back_into(p, r);
               b->release();  // let the stop finish
             });
    }
    stop(p);
    p.close();
  });
  EXPECT_EQ(r.callbacks.load(), kQueued);
  EXPECT_EQ(r.close_threw.load(), kQueued);
  EXPECT_EQ(r.close_deadline_threw.load(), kQueued);
  EXPECT_EQ(r.stop_now_threw.load(), kQueued);
  EXPECT_NE(r.close_message.find("weft::pool::close()"), std::string::npos) << r.close_message;
  EXPECT_NE(r.close_message.find("cancellation callback"), std::string::npos) << r.close_message;
}

TEST(ShutdownRaceTest, CancellationCallbackOfStopNowCallingBackThrowsLogicError) {
  callback_calls_back_during([](weft::pool& p) { p.stop_now(); });
}

TEST(ShutdownRaceTest, CancellationCallbackOfCloseDeadlineCallingBackThrowsLogicError) {
  callback_calls_back_during([](weft::pool& p) { EXPECT_FALSE(p.close(clock_type::now() + 1ms)); });
}

// ---- calls from one of the pool's own workers ----

TEST(ShutdownRaceTest, CallsFromAWorkerNameTheCallAndSayWhy) {
  weft::pool p(one_worker());
  auto messages = p.submit([&p] {
                     std::vector<std::string> out;
                     auto record = [&out](auto&& call) {
                       try {
                         call();
                         out.emplace_back("did not throw");
                       } catch (const std::logic_error& e) {
                         out.emplace_back(e.what());
                       }
                     };
                     record([&] { p.close(); });
                     record([&] { p.close(clock_type::now() + 1s); });
                     record([&] { p.close(1s); });
                     record([&] { p.stop_now(); });
                     return out;
                   }).get();
  ASSERT_EQ(messages.size(), 4u);
  const char* names[] = {"weft::pool::close()", "weft::pool::close(deadline)", "weft::pool::close(deadline)",
                         "weft::pool::stop_now()"};
  for (std::size_t i = 0; i < messages.size(); ++i) {
    EXPECT_NE(messages[i].find(names[i]), std::string::npos) << messages[i];
    EXPECT_NE(messages[i].find("own workers"), std::string::npos) << messages[i];
  }
  EXPECT_FALSE(p.closed());
}

}  // namespace
