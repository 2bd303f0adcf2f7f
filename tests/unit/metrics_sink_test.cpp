// tests/unit/metrics_sink_test.cpp: pool_options::metrics_sink (options.hpp, protocol in
// runtime/layers/metrics_sink.hpp). Every scenario runs in a child under tests/watchdog.hpp:
// a lost wake-up in close() or a sink thread joining itself fails the test, never hangs it.
//
// What is checked, each in the way a user would try to break it:
//   - ticks happen, from one thread that is no worker, never two calls at once;
//   - a sink blocked inside a call stalls no task, and its overrun ticks are skipped;
//   - close(), stop_now(), close(deadline) and ~pool each make one final call with the final
//     counts, return promptly with a 1-hour interval, and no call follows ~pool;
//   - a throwing sink reaches on_task_exception (or the logger) and ticking goes on;
//   - a sink that closes its own pool; the option's validation; duration::max().
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "watchdog.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::run_in_child;

constexpr auto kLimit = 30s;

weft::pool_options with_sink(std::function<void(const weft::metrics&)> sink, std::chrono::steady_clock::duration every,
                             int workers = 2) {
  weft::pool_options o;
  o.workers = workers;
  o.pinning = weft::pin_policy::none;
  o.metrics_sink = std::move(sink);
  o.metrics_interval = every;
  return o;
}

// What a sink saw, recorded from inside its calls.
struct sink_log {
  std::atomic<int> calls{0};
  std::atomic<int> in_call{0};
  std::atomic<bool> overlapped{false};
  std::atomic<bool> on_worker{false};
  std::mutex mu;
  std::vector<std::thread::id> threads;    // guarded by mu
  std::vector<weft::metrics> snapshots;    // guarded by mu
  std::atomic<const weft::pool*> pool{nullptr};

  auto sink() {
    return [this](const weft::metrics& m) {
      if (in_call.fetch_add(1) != 0) overlapped = true;
      if (const weft::pool* p = pool.load(); p != nullptr && p->current_worker_index() != -1) on_worker = true;
      {
        std::lock_guard lock(mu);
        threads.push_back(std::this_thread::get_id());
        snapshots.push_back(m);
      }
      calls.fetch_add(1);
      in_call.fetch_sub(1);
    };
  }
  weft::metrics last() {
    std::lock_guard lock(mu);
    return snapshots.back();
  }
  bool one_thread() {
    std::lock_guard lock(mu);
    for (const auto& id : threads) {
      if (id != threads.front()) return false;
    }
    return true;
  }
  bool none_on(std::thread::id other) {
    std::lock_guard lock(mu);
    for (const auto& id : threads) {
      if (id == other) return false;
    }
    return true;
  }
};

void expect_passed(const weft_test::child_outcome& r) { EXPECT_TRUE(r.passed()) << r.describe(); }

TEST(MetricsSink, TicksFromOneThreadThatIsNoWorker) {
  expect_passed(run_in_child(
      [] {
        sink_log log;
        {
          weft::pool p(with_sink(log.sink(), 5ms));
          log.pool = &p;
          for (int i = 0; i < 2000; ++i) p.post([] {});
          while (log.calls.load() < 5) std::this_thread::sleep_for(1ms);  // ticks come without close
          WEFT_CHILD_CHECK(log.one_thread());
          WEFT_CHILD_CHECK(log.none_on(std::this_thread::get_id()));
          log.pool = nullptr;
        }
        WEFT_CHILD_CHECK(!log.overlapped.load());
        WEFT_CHILD_CHECK(!log.on_worker.load());
        WEFT_CHILD_CHECK(log.one_thread());
      },
      kLimit));
}

// The final call: after the drain (completed is final) and before close() returns.
TEST(MetricsSink, FinalCallHasTheFinalCountsBeforeCloseReturns) {
  expect_passed(run_in_child(
      [] {
        sink_log log;
        weft::pool_options o = with_sink(log.sink(), 1h, 1);
        o.on_task_exception = [](std::exception_ptr) {};
        weft::pool p(std::move(o));
        for (int i = 0; i < 5000; ++i) p.post([] {});
        for (int i = 0; i < 7; ++i) p.post([] { throw std::runtime_error("x"); });
        p.close();
        WEFT_CHILD_CHECK(log.calls.load() == 1);  // no tick in an hour: the final call only
        const weft::metrics m = log.last();
        WEFT_CHILD_CHECK(m.completed == 5000);
        WEFT_CHILD_CHECK(m.failed == 7);
        WEFT_CHILD_CHECK(m.queued == 0 && m.running == 0);
        p.close();  // idempotent: no second final call
        WEFT_CHILD_CHECK(log.calls.load() == 1);
      },
      kLimit));
}

// ~pool (no close() before it) and stop_now and close(deadline) each make the final call;
// with a 1-hour interval each returns promptly (the watchdog's limit is far below an hour).
TEST(MetricsSink, EveryLifecycleCallMakesOneFinalCall) {
  expect_passed(run_in_child(
      [] {
        for (int how = 0; how < 3; ++how) {
          sink_log log;
          {
            weft::pool p(with_sink(log.sink(), 1h));
            for (int i = 0; i < 100; ++i) p.post([] {});
            if (how == 1) p.stop_now();
            if (how == 2) WEFT_CHILD_CHECK(p.close(std::chrono::steady_clock::now() + 10s));
            if (how != 0) WEFT_CHILD_CHECK(log.calls.load() == 1);
          }
          WEFT_CHILD_CHECK(log.calls.load() == 1);
          const weft::metrics m = log.last();
          WEFT_CHILD_CHECK(m.completed + m.cancelled == 100);
        }
      },
      kLimit));
}

// A close(deadline) that times out has not joined the workers: no final call yet; the
// destructor makes it later, with the final counts.
TEST(MetricsSink, TimedOutCloseLeavesTheFinalCallToTheDestructor) {
  expect_passed(run_in_child(
      [] {
        sink_log log;
        {
          weft::pool p(with_sink(log.sink(), 1h, 1));
          std::latch release(1);
          std::latch started(1);
          p.post([&] {
            started.count_down();
            release.wait();
          });
          started.wait();
          WEFT_CHILD_CHECK(!p.close(std::chrono::steady_clock::now() + 20ms));
          WEFT_CHILD_CHECK(log.calls.load() == 0);
          release.count_down();
        }
        WEFT_CHILD_CHECK(log.calls.load() == 1);
        WEFT_CHILD_CHECK(log.last().completed == 1);
      },
      kLimit));
}

// No call after ~pool returns, even with ticks every millisecond.
TEST(MetricsSink, NoCallAfterTheDestructorReturns) {
  expect_passed(run_in_child(
      [] {
        sink_log log;
        {
          weft::pool p(with_sink(log.sink(), 1ms));
          while (log.calls.load() < 3) std::this_thread::sleep_for(1ms);
        }
        const int after = log.calls.load();
        std::this_thread::sleep_for(30ms);
        WEFT_CHILD_CHECK(log.calls.load() == after);
        WEFT_CHILD_CHECK(log.in_call.load() == 0);
      },
      kLimit));
}

// A sink stuck in a call stalls no task (it has its own thread), and the ticks it overran
// are skipped: one call per release, not a backlog.
TEST(MetricsSink, BlockedSinkStallsNoTaskAndSkipsTicks) {
  expect_passed(run_in_child(
      [] {
        std::atomic<int> calls{0};
        std::latch entered(1);
        std::latch release(1);
        {
          weft::pool p(with_sink(
              [&](const weft::metrics&) {
                if (calls.fetch_add(1) == 0) {
                  entered.count_down();
                  release.wait();
                }
              },
              1ms));
          entered.wait();
          // 50 intervals pass while the sink is stuck; tasks run meanwhile.
          for (int i = 0; i < 50; ++i) WEFT_CHILD_CHECK(p.submit([i] { return i; }).get() == i);
          std::this_thread::sleep_for(50ms);
          WEFT_CHILD_CHECK(calls.load() == 1);
          const auto released = std::chrono::steady_clock::now();
          release.count_down();
          // Skipping: at most one call per interval from here (plus the tick in progress);
          // a backlog would deliver the ~50 missed ticks at once.
          std::this_thread::sleep_for(5ms);
          const int after = calls.load();
          const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - released);
          WEFT_CHILD_CHECK(after - 1 <= elapsed.count() + 2);
        }
      },
      kLimit));
}

// A slow sink during close: close waits for the call in progress, then the final call; the
// two never overlap.
TEST(MetricsSink, CloseDuringASlowCall) {
  expect_passed(run_in_child(
      [] {
        std::atomic<int> in_call{0};
        std::atomic<bool> overlapped{false};
        std::atomic<int> calls{0};
        std::latch entered(1);
        weft::pool p(with_sink(
            [&](const weft::metrics&) {
              if (in_call.fetch_add(1) != 0) overlapped = true;
              if (calls.fetch_add(1) == 0) {
                entered.count_down();
                std::this_thread::sleep_for(50ms);
              }
              in_call.fetch_sub(1);
            },
            1ms));
        entered.wait();
        p.close();
        WEFT_CHILD_CHECK(!overlapped.load());
        const int n = calls.load();
        WEFT_CHILD_CHECK(n >= 2);  // the slow call, then the final one
        std::this_thread::sleep_for(20ms);
        WEFT_CHILD_CHECK(calls.load() == n);  // the final call was the last
      },
      kLimit));
}

TEST(MetricsSink, ExceptionGoesToTheHandlerAndTicksContinue) {
  expect_passed(run_in_child(
      [] {
        std::atomic<int> calls{0};
        std::atomic<int> handled{0};
        weft::pool_options o = with_sink(
            [&](const weft::metrics&) {
              calls.fetch_add(1);
              throw std::runtime_error("sink failed");
            },
            2ms);
        o.on_task_exception = [&](std::exception_ptr e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::runtime_error& ex) {
            if (std::string(ex.what()) == "sink failed") handled.fetch_add(1);
          }
        };
        {
          weft::pool p(std::move(o));
          while (calls.load() < 4) std::this_thread::sleep_for(1ms);
        }
        WEFT_CHILD_CHECK(handled.load() == calls.load());  // the final call's too
      },
      kLimit));
}

TEST(MetricsSink, ExceptionWithoutHandlerGoesToTheLog) {
  expect_passed(run_in_child(
      [] {
        std::atomic<int> calls{0};
        std::atomic<int> logged{0};
        weft::pool_options o = with_sink(
            [&](const weft::metrics&) {
              calls.fetch_add(1);
              if (calls.load() % 2 == 0) throw 42;  // not a std::exception either
              throw std::logic_error("bad sink");
            },
            2ms);
        o.logger = [&](std::string_view line) {
          if (line.find("metrics_sink threw") != std::string_view::npos) logged.fetch_add(1);
        };
        {
          weft::pool p(std::move(o));
          while (calls.load() < 4) std::this_thread::sleep_for(1ms);
        }
        WEFT_CHILD_CHECK(logged.load() == calls.load());
      },
      kLimit));
}

// The sink closes its own pool: close() on the sink thread must not wait for the sink
// (itself); the final call follows the current one, and the destructor (on another thread)
// completes.
TEST(MetricsSink, SinkThatClosesItsOwnPool) {
  expect_passed(run_in_child(
      [] {
        std::atomic<weft::pool*> self{nullptr};
        std::atomic<int> calls{0};
        std::atomic<int> at_close{0};
        std::atomic<int> in_call{0};
        std::atomic<bool> overlapped{false};
        std::atomic<bool> did_close{false};
        std::latch closed(1);
        {
          weft::pool p(with_sink(
              [&](const weft::metrics&) {
                if (in_call.fetch_add(1) != 0) overlapped = true;
                const int n = calls.fetch_add(1) + 1;
                if (weft::pool* q = self.load(); q != nullptr && !did_close.exchange(true)) {
                  q->post([] {});
                  q->close();  // on the sink thread: returns without the final call
                  WEFT_CHILD_CHECK(calls.load() == n);
                  at_close = n;
                  closed.count_down();
                }
                in_call.fetch_sub(1);
              },
              2ms));
          self = &p;
          closed.wait();
        }
        WEFT_CHILD_CHECK(calls.load() == at_close.load() + 1);  // then exactly the final call
        WEFT_CHILD_CHECK(!overlapped.load());
      },
      kLimit));
}

// duration::max() saturates: no tick, one final call, no overflow anywhere.
TEST(MetricsSink, HugeIntervalSaturates) {
  expect_passed(run_in_child(
      [] {
        for (auto every : {std::chrono::steady_clock::duration::max(), std::chrono::steady_clock::duration(
                                                                          std::chrono::hours(24 * 365 * 200))}) {
          sink_log log;
          {
            weft::pool p(with_sink(log.sink(), every));
            p.submit([] {}).get();
            std::this_thread::sleep_for(5ms);
            WEFT_CHILD_CHECK(log.calls.load() == 0);
          }
          WEFT_CHILD_CHECK(log.calls.load() == 1);
          WEFT_CHILD_CHECK(log.last().completed == 1);
        }
      },
      kLimit));
}

TEST(MetricsSink, NonPositiveIntervalIsRejected) {
  for (auto every : {std::chrono::steady_clock::duration::zero(), std::chrono::steady_clock::duration(-1),
                     std::chrono::steady_clock::duration::min()}) {
    try {
      weft::pool p(with_sink([](const weft::metrics&) {}, every));
      ADD_FAILURE() << "interval " << every.count() << " ns was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("weft::pool_options::metrics_interval"), std::string::npos) << e.what();
    }
  }
}

// The interval is only checked when a sink is set; without one no thread is started.
TEST(MetricsSink, IntervalWithoutSinkIsIgnored) {
  expect_passed(run_in_child(
      [] {
        weft::pool_options o;
        o.workers = 1;
        o.metrics_interval = std::chrono::steady_clock::duration::zero();
        weft::pool p(std::move(o));
        WEFT_CHILD_CHECK(p.submit([] { return 7; }).get() == 7);
      },
      kLimit));
}

}  // namespace
