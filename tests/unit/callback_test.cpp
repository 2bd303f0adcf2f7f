// tests/unit/callback_test.cpp: pool::post(f, on_done, options) (pool.hpp). on_done is
// called exactly once per accepted submission, with the value, the exception or a
// cancellation, on the thread that completed the task: a worker for a task that ran, the
// thread whose stop request cancelled it, the pool's timer thread for a deadline. An
// exception thrown by on_done reaches on_task_exception. A rejected submission throws
// pool_closed and never calls on_done, whatever its options.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_util.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto kHang = 10s;

using weft_test::worker_blocker;

template <class Pred>
bool eventually(Pred pred, clock_type::duration limit = kHang) {
  const auto end = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() > end) return pred();
    std::this_thread::sleep_for(200us);
  }
  return true;
}

weft::task_options token_of(std::stop_token t) {
  weft::task_options o;
  o.stop_token = std::move(t);
  return o;
}
weft::task_options timeout_of(clock_type::duration d) {
  weft::task_options o;
  o.timeout = d;
  return o;
}

// What on_done saw: how often, with what, on which thread.
struct done_record {
  enum kind_t { none, value, error, cancelled };
  std::atomic<int> calls{0};
  std::atomic<int> kind{none};
  std::atomic<int> value_seen{-1};
  std::atomic<int> worker_index{-2};
  std::atomic<bool> cancelled_is_task_cancelled{false};
  std::mutex mu;
  std::thread::id thread;  // guarded by mu
  std::string what;        // guarded by mu

  std::thread::id thread_id() {
    std::lock_guard lock(mu);
    return thread;
  }
  std::string message() {
    std::lock_guard lock(mu);
    return what;
  }
};

// An on_done callable that fills a done_record.
template <class R>
auto recorder(weft::pool& p, done_record& r) {
  return [&p, &r](weft::outcome<R> o) {
    {
      std::lock_guard lock(r.mu);
      r.thread = std::this_thread::get_id();
    }
    r.worker_index = p.current_worker_index();
    if (o.has_value()) {
      r.kind = done_record::value;
      if constexpr (!std::is_void_v<R>) r.value_seen = o.value();
    } else {
      r.kind = o.cancelled() ? done_record::cancelled : done_record::error;
      try {
        std::rethrow_exception(o.error());
      } catch (const weft::task_cancelled&) {
        r.cancelled_is_task_cancelled = true;
      } catch (const std::exception& e) {
        std::lock_guard lock(r.mu);
        r.what = e.what();
      }
    }
    r.calls.fetch_add(1);
  };
}

struct handler_log {
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<std::string> whats;  // guarded by mu
  std::function<void(std::exception_ptr)> sink() {
    return [this](std::exception_ptr e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::lock_guard lock(mu);
        whats.emplace_back(ex.what());
      } catch (...) {
        std::lock_guard lock(mu);
        whats.emplace_back("?");
      }
      calls.fetch_add(1);
    };
  }
};

class CallbackTest : public testing::TestWithParam<int> {
 protected:
  weft::pool_options options() {
    weft::pool_options o;
    o.workers = GetParam();
    o.deque_capacity = 2;
    o.on_task_exception = handler.sink();
    return o;
  }
  handler_log handler;
};

TEST_P(CallbackTest, ValueIsDeliveredOnceOnAWorker) {
  done_record r;
  {
    weft::pool p(options());
    p.post([] { return 42; }, recorder<int>(p, r));
    ASSERT_TRUE(eventually([&] { return r.calls.load() == 1; }));
    p.close();
  }
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(r.kind.load(), done_record::value);
  EXPECT_EQ(r.value_seen.load(), 42);
  EXPECT_GE(r.worker_index.load(), 0) << "on_done of a task that ran must run on the worker that ran it";
  EXPECT_NE(r.thread_id(), std::this_thread::get_id());
  EXPECT_EQ(handler.calls.load(), 0);
}

TEST_P(CallbackTest, ExceptionIsDeliveredOnceOnAWorkerAndNotToTheHandler) {
  done_record r;
  {
    weft::pool p(options());
    p.post([]() -> int { throw std::runtime_error("boom"); }, recorder<int>(p, r), timeout_of(1h));
    p.close();
  }
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(r.kind.load(), done_record::error);
  EXPECT_FALSE(r.cancelled_is_task_cancelled.load()) << "a task's own exception reported as task_cancelled";
  EXPECT_EQ(r.message(), "boom");
  EXPECT_GE(r.worker_index.load(), 0);
  EXPECT_EQ(handler.calls.load(), 0) << "on_done received the exception: the handler must not";
}

TEST_P(CallbackTest, VoidTasksToo) {
  done_record r;
  {
    weft::pool p(options());
    p.post([] {}, recorder<void>(p, r));
    p.close();
  }
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(r.kind.load(), done_record::value);
  EXPECT_GE(r.worker_index.load(), 0);
}

// A token that fires while the task is queued: on_done runs at once, on the thread that
// requested stop, with a cancellation; the task never runs.
TEST_P(CallbackTest, CancelledByTokenOnTheThreadThatRequestedStop) {
  done_record r;
  std::atomic<int> ran{0};
  std::stop_source src;
  std::thread::id stopper_id;
  {
    weft::pool p(options());
    {
      worker_blocker blocked(p, GetParam());
      p.post([&] { ran.fetch_add(1); }, recorder<void>(p, r), token_of(src.get_token()));
      EXPECT_EQ(r.calls.load(), 0);
      std::thread stopper([&] {
        src.request_stop();
        // Delivered inside request_stop, before it returns.
        EXPECT_EQ(r.calls.load(), 1) << "on_done did not run inside request_stop";
      });
      stopper_id = stopper.get_id();
      stopper.join();
    }
    p.close();
    EXPECT_EQ(p.stats().cancelled, 1u);
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(r.kind.load(), done_record::cancelled);
  EXPECT_TRUE(r.cancelled_is_task_cancelled.load());
  EXPECT_EQ(r.thread_id(), stopper_id);
  EXPECT_EQ(r.worker_index.load(), -1);
}

// A token that had fired before post: on_done runs before post returns, on the caller.
TEST_P(CallbackTest, TokenFiredBeforePostIsDeliveredOnTheSubmittingThread) {
  done_record r;
  std::atomic<int> ran{0};
  std::stop_source src;
  src.request_stop();
  {
    weft::pool p(options());
    p.post([&] { ran.fetch_add(1); }, recorder<void>(p, r), token_of(src.get_token()));
    EXPECT_EQ(r.calls.load(), 1);
    p.close();
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(r.kind.load(), done_record::cancelled);
  EXPECT_EQ(r.thread_id(), std::this_thread::get_id());
}

// A deadline that passes while queued: on_done runs at the deadline, while every worker is
// still busy, on a thread that is neither a worker nor the submitter (the pool's timer).
TEST_P(CallbackTest, DeadlineWhileQueuedIsDeliveredPromptlyOffTheWorkers) {
  done_record r;
  std::atomic<int> ran{0};
  {
    weft::pool p(options());
    {
      worker_blocker blocked(p, GetParam());
      // 100 ms: long enough that post() itself (which starts the timer thread, slowly under
      // TSan) returns before the deadline; a deadline already passed at submission is
      // delivered on the submitting thread instead (task_options.hpp).
      p.post([&] { ran.fetch_add(1); }, recorder<void>(p, r), timeout_of(100ms));
      ASSERT_TRUE(eventually([&] { return r.calls.load() == 1; }, 2s)) << "not delivered while workers were busy";
    }
    p.close();
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(r.kind.load(), done_record::cancelled);
  EXPECT_TRUE(r.cancelled_is_task_cancelled.load());
  EXPECT_EQ(r.worker_index.load(), -1);
  EXPECT_NE(r.thread_id(), std::this_thread::get_id());
}

// stop_now cancels queued submissions; their on_done runs before stop_now returns.
TEST_P(CallbackTest, StopNowDeliversQueuedCancellationsBeforeReturning) {
  constexpr int n = 50;
  std::vector<std::unique_ptr<done_record>> rs;
  for (int i = 0; i < n; ++i) rs.push_back(std::make_unique<done_record>());
  std::atomic<int> ran{0};
  weft::pool p(options());
  std::latch started(GetParam());
  for (int i = 0; i < GetParam(); ++i) {
    p.post([&started](std::stop_token st) {
      started.count_down();
      while (!st.stop_requested()) std::this_thread::sleep_for(100us);
    });
  }
  started.wait();
  for (int i = 0; i < n; ++i) p.post([&] { ran.fetch_add(1); }, recorder<void>(p, *rs[static_cast<std::size_t>(i)]));
  p.stop_now();
  for (int i = 0; i < n; ++i) {
    auto& r = *rs[static_cast<std::size_t>(i)];
    EXPECT_EQ(r.calls.load(), 1) << i;
    EXPECT_EQ(r.kind.load(), done_record::cancelled) << i;
  }
  EXPECT_EQ(ran.load(), 0);
}

// An exception thrown by on_done (for a value, an error, or a cancellation) goes to
// on_task_exception, once per throw.
TEST_P(CallbackTest, ExceptionFromOnDoneReachesTheHandler) {
  std::stop_source src;
  std::atomic<int> done_calls{0};
  auto throwing_done = [&](const char* what) {
    return [&done_calls, what](weft::outcome<int>) {
      done_calls.fetch_add(1);
      throw std::logic_error(what);
    };
  };
  {
    weft::pool p(options());
    {
      worker_blocker blocked(p, GetParam());
      p.post([&]() -> int { return 1; }, throwing_done("after value"));
      p.post([&]() -> int { throw std::runtime_error("task"); }, throwing_done("after error"));
      p.post([&]() -> int { return 1; }, throwing_done("after cancel"), token_of(src.get_token()));
      src.request_stop();  // the third is delivered (and throws) here, on this thread
      EXPECT_EQ(handler.calls.load(), 1);
    }
    p.close();
  }
  EXPECT_EQ(done_calls.load(), 3);
  ASSERT_EQ(handler.calls.load(), 3);
  std::lock_guard lock(handler.mu);
  std::vector<std::string> seen = handler.whats;
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"after cancel", "after error", "after value"}))
      << "the task's own exception went to on_done, so only on_done's throws reach the handler";
}

// Many submissions, racing stop requests from another thread and short deadlines: each
// on_done runs exactly once, and what it says agrees with whether the task ran.
TEST_P(CallbackTest, ExactlyOnceUnderRacingCancellation) {
  constexpr int n = 4000;
  struct slot {
    std::stop_source src;
    std::atomic<int> ran{0};
    std::atomic<int> calls{0};
    std::atomic<int> kind{done_record::none};
  };
  std::vector<std::unique_ptr<slot>> slots;
  for (int i = 0; i < n; ++i) slots.push_back(std::make_unique<slot>());
  weft::pool p(options());
  std::atomic<int> posted{0};
  std::thread canceller([&] {
    std::minstd_rand rng(7);
    for (int i = 0; i < n; ++i) {
      while (posted.load() <= i) std::this_thread::yield();
      if (rng() % 2 == 0) slots[static_cast<std::size_t>(i)]->src.request_stop();
    }
  });
  for (int i = 0; i < n; ++i) {
    slot& s = *slots[static_cast<std::size_t>(i)];
    weft::task_options o = token_of(s.src.get_token());
    if (i % 5 == 0) o.timeout = std::chrono::microseconds(i % 300);
    p.post(
        [&s, i]() -> int {
          s.ran.fetch_add(1);
          if (i % 7 == 0) throw std::runtime_error("own");
          return i;
        },
        [&s](weft::outcome<int> o) {
          s.kind = o.has_value() ? done_record::value : o.cancelled() ? done_record::cancelled : done_record::error;
          s.calls.fetch_add(1);
        },
        o);
    posted.fetch_add(1);
  }
  canceller.join();
  p.close();
  int cancelled = 0;
  for (int i = 0; i < n; ++i) {
    slot& s = *slots[static_cast<std::size_t>(i)];
    ASSERT_EQ(s.calls.load(), 1) << "submission " << i;
    if (s.kind.load() == done_record::cancelled) {
      EXPECT_EQ(s.ran.load(), 0) << "cancelled, yet it ran: " << i;
      ++cancelled;
    } else {
      EXPECT_EQ(s.ran.load(), 1) << i;
      EXPECT_EQ(s.kind.load(), i % 7 == 0 ? done_record::error : done_record::value) << i;
    }
  }
  EXPECT_EQ(p.stats().cancelled, static_cast<std::uint64_t>(cancelled));
  EXPECT_EQ(handler.calls.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, CallbackTest, testing::Values(1, 2, 4),
                         [](const testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

// ---- rejection: pool_closed, and no on_done, whatever the options ----

enum class reject_case { no_options, live_token, fired_token, past_deadline, zero_left };

class RejectedTest : public testing::TestWithParam<reject_case> {};

TEST_P(RejectedTest, ClosedPoolThrowsAndNeverCallsOnDone) {
  handler_log handler;
  done_record r;
  std::atomic<int> ran{0};
  std::stop_source src;
  if (GetParam() == reject_case::fired_token) src.request_stop();
  weft::task_options o;
  switch (GetParam()) {
    case reject_case::no_options:
      break;
    case reject_case::live_token:
    case reject_case::fired_token:
      o.stop_token = src.get_token();
      break;
    case reject_case::past_deadline:
      o.deadline = clock_type::now() - 1s;
      break;
    case reject_case::zero_left:
      o.timeout = 1ns;
      break;
  }
  {
    weft::pool_options po;
    po.workers = 1;
    po.on_task_exception = handler.sink();
    weft::pool p(po);
    p.post([] {}, timeout_of(1h));  // the timer exists already for the deadline cases
    p.close();
    EXPECT_THROW(p.post([&] { ran.fetch_add(1); }, recorder<void>(p, r), o), weft::pool_closed);
    const weft::metrics m = p.stats();
    EXPECT_EQ(m.rejected, 1u);
    EXPECT_EQ(m.cancelled, 0u) << "a rejected submission is not also a cancelled one";
    std::this_thread::sleep_for(20ms);  // room for a stray delivery by the timer thread
    src.request_stop();                 // ... or by a late stop request
  }
  EXPECT_EQ(r.calls.load(), 0) << "on_done was called for a submission that threw pool_closed";
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(handler.calls.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Options, RejectedTest,
                         testing::Values(reject_case::no_options, reject_case::live_token, reject_case::fired_token,
                                         reject_case::past_deadline, reject_case::zero_left),
                         [](const testing::TestParamInfo<reject_case>& i) {
                           switch (i.param) {
                             case reject_case::no_options: return std::string("NoOptions");
                             case reject_case::live_token: return std::string("LiveToken");
                             case reject_case::fired_token: return std::string("FiredToken");
                             case reject_case::past_deadline: return std::string("PastDeadline");
                             case reject_case::zero_left: return std::string("NanosecondTimeout");
                           }
                           return std::string("?");
                         });

}  // namespace
