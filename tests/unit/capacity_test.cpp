// tests/unit/capacity_test.cpp: bounded submission (pool_options::capacity, full_policy,
// try_post/try_submit, post_until/submit_until; pool_impl.hpp C1-C3).
// Each policy is driven into a full queue deterministically: the pool's only worker is held
// by a task until the test releases it, so exactly `capacity` outside submissions fit.
// Every test ends with exact accounting: what was accepted ran or was cancelled, what was
// refused was destroyed unrun and counted as rejected.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using weft::full_policy;
using weft::submit_status;

weft::pool_options bounded(std::size_t capacity, full_policy policy, int workers = 1) {
  weft::pool_options o;
  o.workers = workers;
  o.capacity = capacity;
  o.when_full = policy;
  return o;
}

// Holds the pool's single worker until release() (or destruction).
class hold {
 public:
  explicit hold(weft::pool& p) {
    p.post([this] {
      started_.count_down();
      while (!released_.load()) std::this_thread::sleep_for(50us);
    });
    started_.wait();
  }
  ~hold() { release(); }
  void release() { released_.store(true); }

 private:
  std::latch started_{1};
  std::atomic<bool> released_{false};
};

struct counted {
  std::atomic<int>* ran;
  std::atomic<int>* destroyed;
  bool live = true;
  counted(std::atomic<int>* r, std::atomic<int>* d) : ran(r), destroyed(d) {}
  counted(counted&& o) noexcept : ran(o.ran), destroyed(o.destroyed) { o.live = false; }
  ~counted() {
    if (live) destroyed->fetch_add(1);
  }
  void operator()() const { ran->fetch_add(1); }
};

TEST(Capacity, TryPostReportsFullThenAcceptsOnceRoomIsMade) {
  std::atomic<int> ran{0}, destroyed{0};
  {
    weft::pool p(bounded(4, full_policy::reject));
    hold h(p);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(p.try_post(counted(&ran, &destroyed)), submit_status::accepted);
    EXPECT_EQ(p.try_post(counted(&ran, &destroyed)), submit_status::full);
    EXPECT_EQ(destroyed.load(), 1) << "a refused callable is destroyed at once";
    auto attempt = p.try_submit([] { return 1; });
    EXPECT_EQ(attempt.status, submit_status::full);
    EXPECT_FALSE(attempt);
    EXPECT_FALSE(attempt.result.valid());
    h.release();
    p.wait_idle();
    EXPECT_EQ(p.try_post(counted(&ran, &destroyed)), submit_status::accepted);
    auto ok = p.try_submit([] { return 7; });
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok.result.get(), 7);
    p.close();
    EXPECT_EQ(p.try_post(counted(&ran, &destroyed)), submit_status::closed);
    const auto m = p.stats();
    EXPECT_EQ(m.rejected, 3u);
    EXPECT_EQ(m.completed, 1u + 4 + 1 + 1);
  }
  EXPECT_EQ(ran.load(), 5);
  EXPECT_EQ(destroyed.load(), 7);
}

TEST(Capacity, RejectPolicyThrowsQueueFull) {
  weft::pool p(bounded(2, full_policy::reject));
  hold h(p);
  p.post([] {});
  p.post([] {});
  EXPECT_THROW(p.post([] {}), weft::queue_full);
  EXPECT_THROW(p.submit([] { return 1; }), weft::queue_full);
  EXPECT_THROW(p.post([] {}, weft::task_options{}), weft::queue_full);
  EXPECT_EQ(p.stats().rejected, 3u);
}

// Tasks spawned by running tasks are never counted: a task can always post to its own full
// pool (folly's blocking queue deadlocks exactly there).
TEST(Capacity, InternalSpawnsAreNeverRefused) {
  const auto r = weft_test::run_in_child(
      [] {
        weft::pool p(bounded(1, full_policy::block, 2));
        std::atomic<int> ran{0};
        p.submit([&] {
           for (int i = 0; i < 1000; ++i) p.post([&] { ran.fetch_add(1); });
           weft::task_group g(p);
           for (int i = 0; i < 1000; ++i) g.run([&] { ran.fetch_add(1); });
           g.wait();
         }).get();
        p.wait_idle();
        WEFT_CHILD_CHECK(ran.load() == 2000);
      },
      30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Capacity, BlockPolicyWaitsForRoomAndCloseWakesItWithPoolClosed) {
  const auto r = weft_test::run_in_child(
      [] {
        weft::pool p(bounded(2, full_policy::block));
        auto h = std::make_unique<hold>(p);
        p.post([] {});
        p.post([] {});
        std::atomic<bool> posted{false};
        std::thread producer([&] {
          p.post([] {});  // blocks: full
          posted.store(true);
        });
        std::this_thread::sleep_for(50ms);
        WEFT_CHILD_CHECK(!posted.load());
        h->release();  // the worker drains: room
        producer.join();
        WEFT_CHILD_CHECK(posted.load());
        p.wait_idle();

        // A submitter blocked when the pool closes gets pool_closed.
        auto h2 = std::make_unique<hold>(p);
        p.post([] {});
        p.post([] {});
        std::atomic<int> closed_seen{0};
        std::thread blocked([&] {
          try {
            p.post([] {});
          } catch (const weft::pool_closed&) {
            closed_seen.fetch_add(1);
          }
        });
        std::this_thread::sleep_for(50ms);
        std::thread closer([&] { p.close(); });
        std::this_thread::sleep_for(20ms);
        h2->release();
        blocked.join();
        closer.join();
        // close() set the closed bit while the worker was still held, so the blocked
        // submitter was woken by the close, not by room, and was told.
        WEFT_CHILD_CHECK(closed_seen.load() == 1);
        const auto m = p.stats();
        WEFT_CHILD_CHECK(m.completed == 7 && m.rejected == 1 && m.cancelled == 0);
      },
      30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Capacity, CallerRunsPolicyRunsOnTheCallingThread) {
  weft::pool p(bounded(1, full_policy::caller_runs));
  hold h(p);
  p.post([] {});
  const auto me = std::this_thread::get_id();
  std::thread::id where;
  p.post([&] { where = std::this_thread::get_id(); });
  EXPECT_EQ(where, me) << "a full pool with caller_runs runs the task before post returns";
  auto f = p.submit([] { return std::this_thread::get_id(); });
  EXPECT_EQ(f.get(), me);
  h.release();
  p.close();
  const auto m = p.stats();
  EXPECT_EQ(m.completed, 4u);
  EXPECT_EQ(m.rejected, 0u);
}

TEST(Capacity, DiscardOldestCancelsTheOldestQueuedTask) {
  weft::pool p(bounded(2, full_policy::discard_oldest));
  hold h(p);
  auto oldest = p.submit([] { return 1; });
  auto second = p.submit([] { return 2; });
  auto newest = p.submit([] { return 3; });
  ASSERT_EQ(oldest.wait_for(5s), std::future_status::ready) << "the discarded task's future is ready at once";
  EXPECT_THROW(oldest.get(), weft::task_cancelled);
  h.release();
  EXPECT_EQ(second.get(), 2);
  EXPECT_EQ(newest.get(), 3);
  p.close();
  const auto m = p.stats();
  EXPECT_EQ(m.discarded, 1u);
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.completed, 3u);  // the holder, second, newest
}

TEST(Capacity, PostUntilTimesOutAndObeysItsStopToken) {
  weft::pool p(bounded(1, full_policy::reject));
  hold h(p);
  EXPECT_EQ(p.post_until([] {}, std::chrono::steady_clock::now() + 1s), submit_status::accepted);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(p.post_for([] {}, 30ms), submit_status::full);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 30ms);
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(30ms);
    stop.request_stop();
  });
  auto attempt = p.submit_until([] { return 1; }, std::chrono::steady_clock::time_point::max(), stop.get_token());
  stopper.join();
  EXPECT_EQ(attempt.status, submit_status::full) << "a stop request ends the wait for room";
  EXPECT_EQ(p.post_for([] {}, std::chrono::nanoseconds::min()), submit_status::full) << "saturated, one attempt";
  h.release();
  auto later = p.submit_until([] { return 5; }, std::chrono::steady_clock::now() + 10s);
  ASSERT_TRUE(later);
  EXPECT_EQ(later.result.get(), 5);
}

// Many producers against a small capacity under every policy: nothing lost, nothing run
// twice, and the queue never held more than the capacity.
class CapacityStorm : public testing::TestWithParam<full_policy> {};

TEST_P(CapacityStorm, ExactAccounting) {
  const auto r = weft_test::run_in_child(
      [] {
        const full_policy policy = GetParam();
        constexpr std::size_t kCap = 8;
        const int per = static_cast<int>(weft_test::scaled(20'000)) + 100;
        std::atomic<int> ran{0}, refused{0}, cancelled{0};
        std::atomic<std::uint64_t> max_queued{0};
        {
          weft::pool p(bounded(kCap, policy, 2));
          std::vector<std::thread> producers;
          for (int k = 0; k < 4; ++k) {
            producers.emplace_back([&] {
              for (int i = 0; i < per; ++i) {
                try {
                  auto f = p.submit([&] { ran.fetch_add(1); });
                  if (policy == full_policy::discard_oldest && (i % 64) == 0) {
                    try {
                      f.get();
                    } catch (const weft::task_cancelled&) {
                      cancelled.fetch_add(1);
                    }
                  }
                } catch (const weft::queue_full&) {
                  refused.fetch_add(1);
                }
                if ((i & 255) == 0) {
                  const auto q = p.stats().queued;
                  auto m = max_queued.load();
                  while (q > m && !max_queued.compare_exchange_weak(m, q)) {
                  }
                }
              }
            });
          }
          for (auto& t : producers) t.join();
          p.close();
          const auto m = p.stats();
          WEFT_CHILD_CHECK(m.completed == static_cast<std::uint64_t>(ran.load()));
          WEFT_CHILD_CHECK(m.completed + m.cancelled + m.rejected == static_cast<std::uint64_t>(4 * per));
          WEFT_CHILD_CHECK(m.rejected == static_cast<std::uint64_t>(refused.load()));
          WEFT_CHILD_CHECK(m.discarded == m.cancelled);
          if (policy == full_policy::block || policy == full_policy::caller_runs) {
            WEFT_CHILD_CHECK(m.rejected == 0 && m.cancelled == 0);
          }
        }
        // stats().queued also counts tasks in the workers' deques (a batch taken from the
        // injection queue): at most kCap in the queue plus one batch of 16 per worker.
        WEFT_CHILD_CHECK(max_queued.load() <= kCap + 2 * 16);
      },
      120s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(Policies, CapacityStorm,
                         testing::Values(full_policy::reject, full_policy::block, full_policy::caller_runs,
                                         full_policy::discard_oldest),
                         [](const testing::TestParamInfo<full_policy>& info) {
                           switch (info.param) {
                             case full_policy::reject:
                               return "reject";
                             case full_policy::block:
                               return "block";
                             case full_policy::caller_runs:
                               return "caller_runs";
                             case full_policy::discard_oldest:
                               return "discard_oldest";
                           }
                           return "unknown";
                         });

}  // namespace
