// tests/unit/lane_policy_test.cpp: full_policy on bounded priority lanes
// (lane_config::capacity, weft/lanes.hpp "A full lane", runtime/layers/lanes.hpp LN6).
// Every policy is driven into a full lane deterministically (the pool's only worker is held
// until the test releases it); blocked submitters are woken by room, close and stop_now; a
// worker never waits for its own lane; post_until and post_bulk take the default lane; and a
// storm of producers against tiny lanes accounts for every submission exactly. Every
// scenario runs in a child process under the watchdog (tests/watchdog.hpp): a lost wake-up
// fails the test instead of hanging it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "full_policy_util.hpp"
#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using namespace full_policy_test;
using weft::full_policy;
using weft::submit_status;

// ---- lanes ----

// One worker; lane 0 "main" (unbounded, where the holder runs) and lane 1 "tight" (capacity 2).
// `lane_policy` unset: the lane follows `pool_policy`.
weft::pool_options tight_lane(full_policy pool_policy, std::optional<full_policy> lane_policy = {}, int workers = 1) {
  weft::pool_options o;
  o.workers = workers;
  o.pinning = weft::pin_policy::none;
  o.when_full = pool_policy;
  o.lanes = {{.name = "main"}, {.name = "tight", .capacity = 2, .when_full = lane_policy}};
  return o;
}
const weft::task_options kTight{.lane = weft::lane{"tight"}};

TEST(LanePolicy, RejectThrowsLaneFullWhichIsAQueueFull) {
  expect_passes([] {
    weft::pool p(tight_lane(full_policy::reject));
    weft_test::worker_blocker hold(p, 1);
    p.post([] {}, kTight);
    p.post([] {}, kTight);
    WEFT_CHILD_CHECK(throws<weft::lane_full>([&] { p.post([] {}, kTight); }));
    WEFT_CHILD_CHECK(throws<weft::queue_full>([&] { (void)p.submit([] { return 1; }, kTight); }));
    hold.release();
    p.close();
    const auto m = p.stats();
    WEFT_CHILD_CHECK(m.rejected == 2 && m.completed == 3 && m.cancelled == 0);
    WEFT_CHILD_CHECK(p.lane_stats()[1].refused == 2);
  });
}

TEST(LanePolicy, ALaneOverrideBeatsThePoolPolicy) {
  expect_passes([] {
    weft::pool p(tight_lane(full_policy::block, full_policy::reject));
    weft_test::worker_blocker hold(p, 1);
    p.post([] {}, kTight);
    p.post([] {}, kTight);
    WEFT_CHILD_CHECK(throws<weft::lane_full>([&] { p.post([] {}, kTight); }));
  });
}

// block waits for room in THAT lane: room in another lane does not release it, a task of
// the lane being taken does.
TEST(LanePolicy, BlockWaitsForRoomInItsOwnLane) {
  expect_passes([] {
    weft::pool p(tight_lane(full_policy::block));  // the lane inherits block
    auto hold = std::make_unique<weft_test::worker_blocker>(p, 1);
    std::vector<int> order;  // written by the pool's one worker only
    p.post([&] { order.push_back(1); }, kTight);
    p.post([&] { order.push_back(2); }, kTight);
    std::atomic<bool> posted{false};
    std::thread producer([&] {
      p.post([&] { order.push_back(3); }, kTight);  // blocks: the lane is full
      posted.store(true);
    });
    p.post([] {});  // the other lane has room and takes tasks; the blocked one stays blocked
    std::this_thread::sleep_for(50ms);
    WEFT_CHILD_CHECK(!posted.load());
    hold->release();  // the worker takes "tight" tasks: room
    producer.join();
    p.close();
    WEFT_CHILD_CHECK((order == std::vector<int>{1, 2, 3}));
    const auto m = p.stats();
    WEFT_CHILD_CHECK(m.rejected == 0 && m.cancelled == 0 && m.completed == 5);
  });
}

// A submitter blocked on a full lane is woken by close() while the lane is still full (the
// worker is held: no room can appear), and by stop_now(), with pool_closed either way.
class LaneBlockWoken : public testing::TestWithParam<bool> {};

TEST_P(LaneBlockWoken, ByCloseOrStopNowWithPoolClosed) {
  const bool stop_now = GetParam();
  expect_passes([stop_now] {
    weft::pool p(tight_lane(full_policy::reject, full_policy::block));
    std::atomic<bool> release{false};
    std::latch held(1);
    p.post([&](std::stop_token st) {
      held.count_down();
      while (!release.load() && !st.stop_requested()) std::this_thread::sleep_for(100us);
    });
    held.wait();
    auto queued = p.submit([] { return 1; }, kTight);
    p.post([] {}, kTight);
    std::atomic<int> outcome{0};  // 1: pool_closed, 2: accepted, 3: anything else
    std::thread blocked([&] {
      try {
        p.post([] {}, kTight);
        outcome.store(2);
      } catch (const weft::pool_closed&) {
        outcome.store(1);
      } catch (...) {
        outcome.store(3);
      }
    });
    std::this_thread::sleep_for(50ms);
    WEFT_CHILD_CHECK(outcome.load() == 0);
    std::thread closer([&] { stop_now ? p.stop_now() : p.close(); });
    // close(): the worker is still held, the lane still full, so only the close can wake it.
    WEFT_CHILD_CHECK(eventually([&] { return outcome.load() != 0; }));
    WEFT_CHILD_CHECK(outcome.load() == 1);
    release.store(true);
    closer.join();
    blocked.join();
    const auto m = p.stats();
    WEFT_CHILD_CHECK(m.rejected == 1);
    if (stop_now) {
      WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { (void)queued.get(); }));
      WEFT_CHILD_CHECK(m.cancelled == 2);
    } else {
      WEFT_CHILD_CHECK(queued.get() == 1);
      WEFT_CHILD_CHECK(m.completed == 3);
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Lifecycle, LaneBlockWoken, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "stop_now" : "close"; });

// The pool's only worker posts into its own full lane under block: it must not wait for
// room only it could make; it runs the task inline.
TEST(LanePolicy, AWorkerPostingIntoItsFullLaneUnderBlockRunsInline) {
  expect_passes([] {
    weft::pool p(tight_lane(full_policy::block));
    std::atomic<int> inline_runs{0}, ran{0};
    std::atomic<bool> posting{true};
    p.submit([&] {
       for (int i = 0; i < 10; ++i) {
         p.post(
             [&] {
               ran.fetch_add(1);
               if (posting.load()) inline_runs.fetch_add(1);  // the only worker is busy posting
             },
             kTight);
       }
       posting.store(false);
     }).get();
    p.close();
    // Two fit in the lane (they run after the poster returns); the other eight ran inline.
    WEFT_CHILD_CHECK(ran.load() == 10);
    WEFT_CHILD_CHECK(inline_runs.load() == 8);
    WEFT_CHILD_CHECK(p.stats().rejected == 0);
  });
}

TEST(LanePolicy, CallerRunsRunsOnTheSubmittingThread) {
  expect_passes([] {
    weft::pool p(tight_lane(full_policy::caller_runs));
    weft_test::worker_blocker hold(p, 1);
    p.post([] {}, kTight);
    p.post([] {}, kTight);
    const auto me = std::this_thread::get_id();
    auto f = p.submit([] { return std::this_thread::get_id(); }, kTight);
    WEFT_CHILD_CHECK(f.wait_for(0s) == std::future_status::ready);
    WEFT_CHILD_CHECK(f.get() == me);
    hold.release();
    p.close();
    const auto m = p.stats();
    WEFT_CHILD_CHECK(m.completed == 4 && m.rejected == 0);
    WEFT_CHILD_CHECK(p.lane_stats()[1].dispatched == 2);
  });
}

TEST(LanePolicy, DiscardOldestCancelsTheLanesOldestTask) {
  expect_passes([] {
    weft::pool p(tight_lane(full_policy::reject, full_policy::discard_oldest));
    weft_test::worker_blocker hold(p, 1);
    p.post([] {});  // lane 0: not a candidate
    auto oldest = p.submit([] { return 1; }, kTight);
    std::atomic<int> done_cancelled{0};
    p.post([] { return 2; },
           [&](weft::outcome<int>&& o) {
             if (o.cancelled()) done_cancelled.fetch_add(1);
           },
           kTight);
    auto third = p.submit([] { return 3; }, kTight);   // discards `oldest`
    auto fourth = p.submit([] { return 4; }, kTight);  // discards the on_done task
    WEFT_CHILD_CHECK(oldest.wait_for(5s) == std::future_status::ready);
    WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { (void)oldest.get(); }));
    WEFT_CHILD_CHECK(done_cancelled.load() == 1);
    hold.release();
    WEFT_CHILD_CHECK(third.get() == 3 && fourth.get() == 4);
    p.close();
    const auto m = p.stats();
    WEFT_CHILD_CHECK(m.discarded == 2 && m.cancelled == 2 && m.rejected == 0);
    WEFT_CHILD_CHECK(m.completed == 4);  // the holder, the lane-0 task, third, fourth
    const auto ls = p.lane_stats();
    WEFT_CHILD_CHECK(ls[1].discarded == 2 && ls[1].dispatched == 2 && ls[0].discarded == 0);
  });
}

// post_until/post_for/submit_until with lanes go to the default lane and wait for room in it.
TEST(LanePolicy, PostUntilWaitsForRoomInTheDefaultLane) {
  expect_passes([] {
    weft::pool_options o;
    o.workers = 1;
    o.pinning = weft::pin_policy::none;
    o.lanes = {{.name = "front", .capacity = 1}, {.name = "side"}};
    weft::pool p(o);
    std::latch release(1), held(1);
    p.post([&] { held.count_down(); release.wait(); }, {.lane = weft::lane{"side"}});
    held.wait();
    WEFT_CHILD_CHECK(p.post_for([] {}, 1s) == submit_status::accepted);
    const auto t0 = std::chrono::steady_clock::now();
    WEFT_CHILD_CHECK(p.post_for([] {}, 30ms) == submit_status::full);
    WEFT_CHILD_CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    std::stop_source stop;
    std::thread stopper([&] {
      std::this_thread::sleep_for(30ms);
      stop.request_stop();
    });
    auto a = p.submit_until([] { return 1; }, std::chrono::steady_clock::time_point::max(), stop.get_token());
    stopper.join();
    WEFT_CHILD_CHECK(a.status == submit_status::full);
    std::thread releaser([&] {
      std::this_thread::sleep_for(30ms);
      release.count_down();
    });
    auto b = p.submit_until([] { return 5; }, std::chrono::steady_clock::now() + 20s);
    releaser.join();
    WEFT_CHILD_CHECK(b && b.result.get() == 5);
    p.close();
    const auto ls = p.lane_stats();
    WEFT_CHILD_CHECK(ls[0].dispatched == 2 && ls[0].refused == 2);
    WEFT_CHILD_CHECK(p.stats().rejected == 2);
  });
}

// post_bulk/submit_bulk take the route of a plain post: the default lane, under its policy.
TEST(LanePolicy, BulkSubmissionTakesTheDefaultLane) {
  expect_passes([] {
    weft::pool_options o;
    o.workers = 1;
    o.pinning = weft::pin_policy::none;
    o.lanes = {{.name = "front", .capacity = 4}, {.name = "side"}};
    weft::pool p(o);
    std::latch release(1), held(1);
    p.post([&] { held.count_down(); release.wait(); }, {.lane = weft::lane{"side"}});
    held.wait();
    std::atomic<int> ran{0};
    std::vector<std::function<void()>> fs(6, [&] { ran.fetch_add(1); });
    WEFT_CHILD_CHECK(throws<weft::lane_full>([&] { p.post_bulk(fs.begin(), fs.end()); }));
    WEFT_CHILD_CHECK(p.lane_stats()[0].depth == 4);
    WEFT_CHILD_CHECK(p.stats().rejected == 2);
    release.count_down();
    p.wait_idle();
    std::vector<std::function<int()>> gs(3, [] { return 7; });
    auto futures = p.submit_bulk(gs.begin(), gs.end());
    for (auto& f : futures) WEFT_CHILD_CHECK(f.get() == 7);
    p.close();
    WEFT_CHILD_CHECK(ran.load() == 4);
    WEFT_CHILD_CHECK(p.lane_stats()[0].dispatched == 7);
  });
}

TEST(LanePolicy, AnInvalidLanePolicyNamesTheField) {
  weft::pool_options o;
  o.workers = 1;
  o.lanes = {{.name = "a"}, {.name = "b", .when_full = static_cast<full_policy>(42)}};
  try {
    weft::pool p(o);
    ADD_FAILURE() << "constructed";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("weft::pool_options::lanes[1].when_full"), std::string::npos) << e.what();
  }
}

// ---- storms: several producers, tiny capacities, exact accounting ----

class LaneStorm : public testing::TestWithParam<full_policy> {};

TEST_P(LaneStorm, EverySubmissionIsAccountedFor) {
  const full_policy policy = GetParam();
  expect_passes(
      [policy] {
        constexpr int kProducers = 4;
        const int per = static_cast<int>(weft_test::scaled(20'000)) + 100;
        weft::pool_options o = weft_test::unpinned(2);
        o.when_full = policy;
        o.lanes = {{.name = "a", .capacity = 2}, {.name = "b", .weight = 3, .capacity = 3}};
        std::atomic<int> ran{0}, refused{0}, cancelled{0};
        std::atomic<std::uint64_t> max_depth_a{0};
        weft::pool p(o);
        std::vector<std::thread> producers;
        for (int k = 0; k < kProducers; ++k) {
          producers.emplace_back([&, k] {
            std::vector<weft::future<void>> mine;
            for (int i = 0; i < per; ++i) {
              try {
                const auto lane = weft::lane{static_cast<unsigned>((i + k) % 2)};
                if (i % 3 == 0) {
                  p.post([&] { ran.fetch_add(1); },
                         [&](weft::outcome<void>&& r) {
                           if (r.cancelled()) cancelled.fetch_add(1);
                         },
                         {.lane = lane});
                } else {
                  mine.push_back(p.submit([&] { ran.fetch_add(1); }, {.lane = lane}));
                }
              } catch (const weft::lane_full&) {
                refused.fetch_add(1);
              }
              if ((i & 127) == 0) {
                const auto d = p.lane_stats()[0].depth;
                auto m = max_depth_a.load();
                while (d > m && !max_depth_a.compare_exchange_weak(m, d)) {
                }
              }
            }
            for (auto& f : mine) {
              try {
                f.get();
              } catch (const weft::task_cancelled&) {
                cancelled.fetch_add(1);
              }
            }
          });
        }
        for (auto& t : producers) t.join();
        p.close();
        const auto m = p.stats();
        const auto total = static_cast<std::uint64_t>(kProducers) * static_cast<std::uint64_t>(per);
        WEFT_CHILD_CHECK(static_cast<std::uint64_t>(ran.load() + refused.load() + cancelled.load()) == total);
        WEFT_CHILD_CHECK(m.completed == static_cast<std::uint64_t>(ran.load()));
        WEFT_CHILD_CHECK(m.cancelled == static_cast<std::uint64_t>(cancelled.load()));
        WEFT_CHILD_CHECK(m.rejected == static_cast<std::uint64_t>(refused.load()));
        WEFT_CHILD_CHECK(m.discarded == m.cancelled);
        const auto ls = p.lane_stats();
        WEFT_CHILD_CHECK(ls[0].refused + ls[1].refused == m.rejected);
        WEFT_CHILD_CHECK(ls[0].discarded + ls[1].discarded == m.discarded);
        WEFT_CHILD_CHECK(ls[0].depth == 0 && ls[1].depth == 0);
        if (policy == full_policy::caller_runs) {
          WEFT_CHILD_CHECK(ls[0].dispatched + ls[1].dispatched <= m.completed);
        } else {
          WEFT_CHILD_CHECK(ls[0].dispatched + ls[1].dispatched == m.completed);
        }
        if (policy != full_policy::reject) WEFT_CHILD_CHECK(m.rejected == 0);
        if (policy != full_policy::discard_oldest) WEFT_CHILD_CHECK(m.cancelled == 0);
        // A refused push counts itself in for a moment before backing out (LN1), so a reader
        // may see up to one such increment per producer above the capacity.
        WEFT_CHILD_CHECK(max_depth_a.load() <= 2 + kProducers);
      },
      240s);
}

INSTANTIATE_TEST_SUITE_P(Policies, LaneStorm,
                         testing::Values(full_policy::reject, full_policy::block, full_policy::caller_runs,
                                         full_policy::discard_oldest),
                         [](const testing::TestParamInfo<full_policy>& i) { return name_of(i.param); });

}  // namespace
