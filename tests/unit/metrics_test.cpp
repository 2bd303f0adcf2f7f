// tests/unit/metrics_test.cpp: pool::stats() (metrics.hpp). After close every counter is
// exact: cancelled (pre-fired tokens, tokens fired while queued, deadlines, cancelled group
// children, stop_now), rejected (every way of submitting to a closed pool), and
// completed + failed + cancelled == the number of tasks. The latency distributions sample
// one submission in 64 per submitting thread, are ordered (p50 <= p99 <= max), and measure
// what they claim (run time of 2 ms tasks, queue wait behind a blocked worker).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <latch>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto kHang = 10s;
constexpr std::uint64_t kSampleEvery = 64;  // metrics.hpp: one in 64 per submitting thread

using weft_test::worker_blocker;

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

// Runs body on a fresh thread: its per-thread sample counter starts at zero.
template <class F>
void on_fresh_thread(F&& body) {
  std::thread t(std::forward<F>(body));
  t.join();
}

void expect_ordered(const weft::metrics::distribution& d, const char* what) {
  EXPECT_LE(d.p50, d.p99) << what;
  EXPECT_LE(d.p99, d.max) << what;
}

class MetricsTest : public testing::TestWithParam<int> {
 protected:
  weft::pool_options options() const {
    weft::pool_options o;
    o.workers = GetParam();
    o.deque_capacity = 2;
    o.on_task_exception = [](std::exception_ptr) {};
    return o;
  }
  int workers() const { return GetParam(); }
};

// Every way a task can be cancelled, counted once each.
TEST_P(MetricsTest, CancelledIsExact) {
  constexpr int kPreFired = 30, kFiredQueued = 20, kDeadline = 10, kGroup = 25, kAtStop = 15;
  weft::pool p(options());
  std::atomic<int> ran{0};
  std::stop_source fired;
  fired.request_stop();
  std::stop_source later;
  std::vector<weft::future<void>> deadline_futures;
  weft::task_group g(p);
  {
    worker_blocker blocked(p, workers());
    for (int i = 0; i < kPreFired; ++i) p.post([&] { ran.fetch_add(1); }, token_of(fired.get_token()));
    for (int i = 0; i < kFiredQueued; ++i) {
      p.post([&] { ran.fetch_add(1); }, [](weft::outcome<void>) {}, token_of(later.get_token()));
    }
    later.request_stop();
    for (int i = 0; i < kDeadline; ++i) deadline_futures.push_back(p.submit([&] { ran.fetch_add(1); }, timeout_of(1ms)));
    for (auto& f : deadline_futures) ASSERT_EQ(f.wait_for(kHang), std::future_status::ready);
    g.cancel();
    for (int i = 0; i < kGroup; ++i) g.run([&] { ran.fetch_add(1); });
  }
  EXPECT_EQ(g.wait(), weft::group_status::cancelled);
  // Plain tasks cancelled by stop_now: queued behind blocked workers.
  std::vector<weft::future<void>> at_stop;
  {
    std::latch started(workers());
    for (int i = 0; i < workers(); ++i) {
      p.post([&started](std::stop_token st) {
        started.count_down();
        while (!st.stop_requested()) std::this_thread::sleep_for(100us);
      });
    }
    started.wait();
    for (int i = 0; i < kAtStop; ++i) at_stop.push_back(p.submit([&] { ran.fetch_add(1); }));
    p.stop_now();
  }
  for (auto& f : at_stop) EXPECT_THROW(f.get(), weft::task_cancelled);
  EXPECT_EQ(ran.load(), 0);
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.cancelled, static_cast<std::uint64_t>(kPreFired + kFiredQueued + kDeadline + kGroup + kAtStop));
  EXPECT_EQ(m.completed, static_cast<std::uint64_t>(2 * workers())) << "the blockers of both phases";
  EXPECT_EQ(m.failed, 0u);
  EXPECT_EQ(m.rejected, 0u);
}

// A cancellation delivered while the task still waits in a queue (a token fired, a deadline
// passed) is counted as cancelled, and no longer as queued, when it is delivered, not when
// some worker later pops what is left of it; and it is still counted once in the end.
TEST_P(MetricsTest, CancellationsCountWhenDeliveredNotWhenPopped) {
  constexpr int kByToken = 12, kByDeadline = 8, kPlain = 5;
  weft::pool p(options());
  std::stop_source later;
  std::vector<weft::future<void>> by_deadline;
  {
    worker_blocker blocked(p, workers());
    for (int i = 0; i < kByToken; ++i) p.post([] {}, [](weft::outcome<void>) {}, token_of(later.get_token()));
    for (int i = 0; i < kByDeadline; ++i) by_deadline.push_back(p.submit([] {}, timeout_of(2ms)));
    for (int i = 0; i < kPlain; ++i) p.post([] {});
    later.request_stop();  // delivered here, on this thread, before it returns
    for (auto& f : by_deadline) ASSERT_EQ(f.wait_for(kHang), std::future_status::ready);
    const weft::metrics m = p.stats();  // the workers are still blocked: nothing was popped
    EXPECT_EQ(m.cancelled, static_cast<std::uint64_t>(kByToken + kByDeadline));
    EXPECT_EQ(m.queued, static_cast<std::uint64_t>(kPlain)) << "cancelled tasks still counted as queued";
    EXPECT_EQ(m.completed, 0u);
  }
  p.close();
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.cancelled, static_cast<std::uint64_t>(kByToken + kByDeadline)) << "counted twice once popped?";
  EXPECT_EQ(m.completed, static_cast<std::uint64_t>(workers() + kPlain));
  EXPECT_EQ(m.queued, 0u);
}

// Every way of submitting to a closed pool is rejected and counted once.
TEST_P(MetricsTest, RejectedIsExact) {
  weft::pool p(options());
  p.submit([] {}).get();
  p.close();
  int expected = 0;
  auto reject = [&](auto&& call) {
    ++expected;
    EXPECT_THROW(call(), weft::pool_closed);
  };
  for (int round = 0; round < 3; ++round) {
    reject([&] { p.post([] {}); });
    reject([&] { p.submit([] { return 1; }); });
    reject([&] { p.post([] {}, timeout_of(1h)); });
    reject([&] { p.submit([] {}, timeout_of(1h)); });
    reject([&] { p.post([] {}, [](weft::outcome<void>) {}); });
    reject([&] {
      weft::task_group g(p);
      g.run([] {});
    });
    ++expected;
    EXPECT_EQ(p.try_post([] {}), weft::submit_status::closed);
  }
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.rejected, static_cast<std::uint64_t>(expected));
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.cancelled, 0u);
}

// completed + failed + cancelled == every task the pool accepted, each counter exact, for a
// mix of plain and option submissions, posts, group children and tasks spawned by tasks.
TEST_P(MetricsTest, EveryAcceptedTaskIsCountedOnce) {
  weft::pool p(options());
  std::uint64_t tasks = 0, ok = 0, failed = 0, cancelled = 0;
  std::vector<weft::future<int>> fs;
  for (int i = 0; i < 300; ++i, ++tasks) {
    const bool throws = i % 5 == 0;
    (throws ? failed : ok) += 1;
    if (i % 2 == 0) {
      fs.push_back(p.submit([throws, i] {
        if (throws) throw std::runtime_error("x");
        return i;
      }));
    } else {
      fs.push_back(p.submit(
          [throws, i] {
            if (throws) throw std::runtime_error("x");
            return i;
          },
          timeout_of(1h)));
    }
  }
  // A task that spawns 10 children from inside the pool, two of which throw.
  std::latch children_done(10);
  p.submit([&p, &children_done] {
     for (int i = 0; i < 10; ++i) {
       p.post([i, &children_done] {
         children_done.count_down();
         if (i < 2) throw std::runtime_error("child");
       });
     }
   }).get();
  children_done.wait();  // all ran: none is left for stop_now to cancel
  tasks += 11;
  ok += 9;
  failed += 2;
  {
    weft::task_group g(p);
    for (int i = 0; i < 40; ++i) g.run([i] {
      if (i == 0) throw std::runtime_error("group");  // cancels the rest of the group
    });
    EXPECT_THROW(g.wait(), std::runtime_error);
  }
  tasks += 40;
  failed += 1;  // the rest: completed or cancelled, depending on how far the group got
  for (auto& f : fs) f.wait();
  // Queued work cancelled by stop_now, behind workers that honour the stop.
  std::latch started(workers());
  for (int i = 0; i < workers(); ++i, ++tasks, ++ok) {
    p.post([&started](std::stop_token st) {
      started.count_down();
      while (!st.stop_requested()) std::this_thread::sleep_for(100us);
    });
  }
  started.wait();
  for (int i = 0; i < 50; ++i, ++tasks, ++cancelled) p.post([] {});
  p.stop_now();
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.completed + m.failed + m.cancelled, tasks);
  EXPECT_EQ(m.failed, failed);
  // The 39 group siblings of the thrower split between completed and cancelled.
  EXPECT_GE(m.completed, ok);
  EXPECT_GE(m.cancelled, cancelled);
  EXPECT_EQ(m.completed + m.cancelled, ok + cancelled + 39);
  EXPECT_EQ(m.queued, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.rejected, 0u);
}

// 10'000 posts from one thread: about 10'000 / 64 samples in each distribution.
TEST_P(MetricsTest, LatencySamplesAreOneIn64PerSubmittingThread) {
  constexpr std::uint64_t n = 10'000;
  weft::pool p(options());
  on_fresh_thread([&] {
    for (std::uint64_t i = 0; i < n; ++i) p.post([] {});
  });
  p.close();
  const weft::metrics m = p.stats();
  const std::uint64_t expected = n / kSampleEvery;
  EXPECT_NEAR(static_cast<double>(m.queue_wait.samples), static_cast<double>(expected), 2.0);
  EXPECT_EQ(m.run_time.samples, m.queue_wait.samples) << "the same sampled tasks are timed twice";
  expect_ordered(m.queue_wait, "queue_wait");
  expect_ordered(m.run_time, "run_time");
  EXPECT_GT(m.queue_wait.max, 0u);
}

// Several submitting threads: each samples independently, so the total is about n / 64.
TEST_P(MetricsTest, LatencySamplesFromSeveralThreads) {
  constexpr std::uint64_t per_thread = 3'200;
  constexpr int threads = 4;
  weft::pool p(options());
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (std::uint64_t i = 0; i < per_thread; ++i) p.post([] {});
    });
  }
  for (auto& t : ts) t.join();
  p.close();
  const weft::metrics m = p.stats();
  EXPECT_NEAR(static_cast<double>(m.queue_wait.samples), static_cast<double>(threads * per_thread / kSampleEvery),
              static_cast<double>(threads));
}

// Every task sleeps 2 ms: the run-time median is at least ~1.5 ms (the histogram's buckets
// are within 12.5%, and sleep_for sleeps at least as long as asked).
TEST_P(MetricsTest, RunTimeMeasuresTheTask) {
  constexpr std::uint64_t n = kSampleEvery * 10;
  weft::pool p(options());
  on_fresh_thread([&] {
    for (std::uint64_t i = 0; i < n; ++i) p.post([] { std::this_thread::sleep_for(2ms); });
  });
  p.close();
  const weft::metrics m = p.stats();
  EXPECT_NEAR(static_cast<double>(m.run_time.samples), 10.0, 1.0);
  EXPECT_GE(m.run_time.p50, 1'500'000u) << "p50 " << m.run_time.p50 << " ns";
  EXPECT_GE(m.run_time.max, 2'000'000u);
  expect_ordered(m.run_time, "run_time");
  expect_ordered(m.queue_wait, "queue_wait");
}

// The mean is exact over the samples (metrics.hpp): tasks that sleep 2 ms to 3 ms (known
// from outside the pool) give a mean inside the band spanned by the measured samples,
// between the smallest true run time and max, while p50 is only a bucket bound.
TEST_P(MetricsTest, MeanIsExactOverTheSamples) {
  constexpr std::uint64_t n = kSampleEvery * 8;
  weft::pool p(options());
  std::atomic<std::uint64_t> shortest{~std::uint64_t{0}};
  on_fresh_thread([&] {
    for (std::uint64_t i = 0; i < n; ++i) {
      p.post([&shortest, i] {
        const auto start = clock_type::now();
        std::this_thread::sleep_for(2ms + std::chrono::microseconds(125 * (i % 9)));  // 2.0 .. 3.0 ms
        const auto ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start).count());
        std::uint64_t cur = shortest.load();
        while (ns < cur && !shortest.compare_exchange_weak(cur, ns)) {
        }
      });
    }
  });
  p.close();
  const weft::metrics m = p.stats();
  ASSERT_NEAR(static_cast<double>(m.run_time.samples), 8.0, 1.0);
  EXPECT_GE(m.run_time.mean, 2'000'000u) << "every task slept >= 2 ms";
  EXPECT_GE(m.run_time.mean, shortest.load() - std::min<std::uint64_t>(shortest.load(), 100'000))
      << "mean below the shortest task (the pool's clock reads within the task's)";
  EXPECT_LE(m.run_time.mean, m.run_time.max);
  EXPECT_LT(m.run_time.mean, 50'000'000u) << "2-3 ms tasks: a mean of 50 ms is a bug, not load";
  EXPECT_LE(m.queue_wait.mean, m.queue_wait.max);
}

TEST(MetricsMean, ZeroWithoutSamples) {
  weft::pool_options o;
  o.workers = 1;
  o.latency_sample_every = 0;  // sampling off
  weft::pool p(std::move(o));
  for (int i = 0; i < 100; ++i) p.post([] {});
  p.close();
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.completed, 100u);
  EXPECT_EQ(m.run_time.samples, 0u);
  EXPECT_EQ(m.run_time.mean, 0u);
  EXPECT_EQ(m.queue_wait.mean, 0u);
}

// Tasks queued behind blocked workers for at least 20 ms: the queue-wait maximum shows it.
TEST_P(MetricsTest, QueueWaitMeasuresTimeSpentQueued) {
  weft::pool p(options());
  {
    worker_blocker blocked(p, workers());
    on_fresh_thread([&] {
      for (std::uint64_t i = 0; i < kSampleEvery; ++i) p.post([] {});
    });
    std::this_thread::sleep_for(20ms);  // the quantity measured, not an ordering device
  }
  p.close();
  const weft::metrics m = p.stats();
  ASSERT_GE(m.queue_wait.samples, 1u);
  EXPECT_GE(m.queue_wait.max, 20'000'000u) << "max " << m.queue_wait.max << " ns";
  expect_ordered(m.queue_wait, "queue_wait");
}

INSTANTIATE_TEST_SUITE_P(Workers, MetricsTest, testing::Values(1, 2, 4),
                         [](const testing::TestParamInfo<int>& i) { return "w" + std::to_string(i.param); });

}  // namespace
