// tests/unit/key_policy_test.cpp: full_policy on the keys of the keyed serializer
// (keyed_options::capacity and when_full, weft/keyed.hpp "A full key", keyed.cpp K7). Every
// policy is driven into a full key deterministically (the key's running job is held until
// the test releases it); blocked producers are woken by room, stop() and the pool's
// stop_now; a job never waits for its own key; caller_runs is refused; and a storm of
// producers against tiny keys accounts for every submission exactly and keeps each key's
// order. Every scenario runs in a child process under the watchdog (tests/watchdog.hpp).
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
#include "weft/keyed.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using namespace full_policy_test;
using weft::full_policy;
using weft::submit_status;

// ---- keys ----

// A serializer over a 2-worker pool, capacity 2 per key. hold(key) starts a job on `key` that
// runs until release (or its token fires), so the key's next `capacity` jobs stay queued.
struct held_key {
  weft::pool p;
  weft::keyed<int> k;
  std::atomic<bool> released{false};
  std::atomic<int> started{0};
  explicit held_key(full_policy policy, std::size_t capacity = 2)
      : p(weft_test::unpinned(2)),
        k(p, {.capacity = capacity, .when_full = policy}) {}
  void hold(int key) {
    const int before = started.load();
    k.post(key, [this](std::stop_token st) {
      started.fetch_add(1);
      while (!released.load() && !st.stop_requested()) std::this_thread::sleep_for(100us);
    });
    while (started.load() == before) std::this_thread::sleep_for(100us);
  }
  void release() { released.store(true); }
};

TEST(KeyPolicy, CallerRunsIsRefusedNamingTheOption) {
  expect_passes([] {
    weft::pool p(weft_test::unpinned(1));
    for (const auto bad : {full_policy::caller_runs, static_cast<full_policy>(42)}) {
      bool named = false;
      try {
        weft::keyed<int> k(p, {.capacity = 4, .when_full = bad});
      } catch (const std::invalid_argument& e) {
        named = std::string(e.what()).find("weft::keyed_options::when_full") != std::string::npos;
      }
      WEFT_CHILD_CHECK(named);
    }
  });
}

TEST(KeyPolicy, RejectThrowsQueueFull) {
  expect_passes([] {
    held_key h(full_policy::reject);
    h.hold(1);
    h.k.post(1, [] {});
    h.k.post(1, [] {});
    WEFT_CHILD_CHECK(throws<weft::queue_full>([&] { h.k.post(1, [] {}); }));
    h.k.post(2, [] {});  // another key has its own room
    h.release();
    h.k.wait_idle();
    const auto s = h.k.stats();
    WEFT_CHILD_CHECK(s.rejected == 1 && s.ran == 4 && s.cancelled == 0);
  });
}

// block waits for room in that key and keeps the key's order.
TEST(KeyPolicy, BlockWaitsForRoomAndKeepsTheKeysOrder) {
  expect_passes([] {
    held_key h(full_policy::block);
    h.hold(7);
    std::vector<int> order;  // the key's jobs run one at a time (the serializer orders them)
    h.k.post(7, [&] { order.push_back(1); });
    h.k.post(7, [&] { order.push_back(2); });
    std::atomic<bool> posted{false};
    std::thread producer([&] {
      h.k.post(7, [&] { order.push_back(3); });
      posted.store(true);
    });
    h.k.post(8, [] {});  // other keys are not held up
    std::this_thread::sleep_for(50ms);
    WEFT_CHILD_CHECK(!posted.load());
    h.release();
    producer.join();
    h.k.wait_idle();
    WEFT_CHILD_CHECK((order == std::vector<int>{1, 2, 3}));
    const auto s = h.k.stats();
    WEFT_CHILD_CHECK(s.ran == 5 && s.rejected == 0 && s.cancelled == 0);
  });
}

// A producer blocked on a full key is woken with pool_closed by the serializer's stop() and
// by the pool's stop_now(), while the key is still full.
class KeyBlockWoken : public testing::TestWithParam<bool> {};

TEST_P(KeyBlockWoken, ByStopOrPoolStopNowWithPoolClosed) {
  const bool pool_stop = GetParam();
  expect_passes([pool_stop] {
    held_key h(full_policy::block, 1);
    h.hold(3);
    auto queued = h.k.submit(3, [] { return 1; });
    std::atomic<int> outcome{0};  // 1: pool_closed, 2: accepted, 3: anything else
    std::thread blocked([&] {
      try {
        h.k.post(3, [] {});
        outcome.store(2);
      } catch (const weft::pool_closed&) {
        outcome.store(1);
      } catch (...) {
        outcome.store(3);
      }
    });
    std::this_thread::sleep_for(50ms);
    WEFT_CHILD_CHECK(outcome.load() == 0);
    std::thread stopper([&] { pool_stop ? h.p.stop_now() : h.k.stop(); });
    WEFT_CHILD_CHECK(eventually([&] { return outcome.load() != 0; }));
    WEFT_CHILD_CHECK(outcome.load() == 1);
    stopper.join();
    blocked.join();
    WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { (void)queued.get(); }));
    h.k.wait_idle();
    const auto s = h.k.stats();
    WEFT_CHILD_CHECK(s.rejected == 1 && s.cancelled == 1 && s.ran == 1);
  });
}

INSTANTIATE_TEST_SUITE_P(Lifecycle, KeyBlockWoken, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "pool_stop_now" : "stop"; });

// A job posting into its own full key under block would wait for itself: refused at once.
TEST(KeyPolicy, AJobBlockingOnItsOwnFullKeyIsRefusedNotDeadlocked) {
  expect_passes([] {
    held_key h(full_policy::block, 1);
    std::atomic<int> refused{0}, until_full{0};
    auto f = h.k.submit(5, [&] {
      h.k.post(5, [] {});  // fills the key (the running job is not counted)
      try {
        h.k.post(5, [] {});
      } catch (const weft::queue_full&) {
        refused.fetch_add(1);
      }
      if (h.k.post_until(5, [] {}, std::chrono::steady_clock::time_point::max()) == weft::keyed_status::full) {
        until_full.fetch_add(1);
      }
      h.k.post(6, [] {});  // another key: fine
    });
    f.get();
    h.k.wait_idle();
    WEFT_CHILD_CHECK(refused.load() == 1 && until_full.load() == 1);
    const auto s = h.k.stats();
    WEFT_CHILD_CHECK(s.ran == 3 && s.rejected == 2);
  });
}

TEST(KeyPolicy, DiscardOldestCancelsTheKeysOldestJob) {
  expect_passes([] {
    held_key h(full_policy::discard_oldest);
    h.hold(1);
    std::vector<int> order;
    auto a = h.k.submit(1, [&] { order.push_back(1); });
    auto b = h.k.submit(1, [&] { order.push_back(2); }, weft::task_options{});
    auto c = h.k.submit(1, [&] { order.push_back(3); });  // discards a
    WEFT_CHILD_CHECK(a.wait_for(5s) == std::future_status::ready);
    WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { a.get(); }));
    auto d = h.k.submit(1, [&] { order.push_back(4); });  // discards b (a job with options)
    WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { b.get(); }));
    WEFT_CHILD_CHECK(h.k.try_post(1, [] {}) == weft::keyed_status::full);
    h.release();
    c.get();
    d.get();
    h.k.wait_idle();
    WEFT_CHILD_CHECK((order == std::vector<int>{3, 4}));
    const auto s = h.k.stats();
    WEFT_CHILD_CHECK(s.discarded == 2 && s.cancelled == 2 && s.ran == 3 && s.rejected == 1);
    WEFT_CHILD_CHECK(s.submitted == s.ran + s.cancelled);
  });
}

TEST(KeyPolicy, PostUntilAndSubmitUntilWaitForRoom) {
  expect_passes([] {
    held_key h(full_policy::reject, 1);
    h.hold(2);
    WEFT_CHILD_CHECK(h.k.post_for(2, [] {}, 1s) == weft::keyed_status::ok);
    const auto t0 = std::chrono::steady_clock::now();
    WEFT_CHILD_CHECK(h.k.post_for(2, [] {}, 30ms) == weft::keyed_status::full);
    WEFT_CHILD_CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    std::stop_source stop;
    std::thread stopper([&] {
      std::this_thread::sleep_for(30ms);
      stop.request_stop();
    });
    auto a = h.k.submit_until(2, [] { return 1; }, std::chrono::steady_clock::time_point::max(), stop.get_token());
    stopper.join();
    WEFT_CHILD_CHECK(a.status == weft::keyed_status::full && !a.result.valid());
    std::thread releaser([&] {
      std::this_thread::sleep_for(30ms);
      h.release();
    });
    auto b = h.k.submit_for(2, [] { return 9; }, 20s);
    releaser.join();
    WEFT_CHILD_CHECK(b && b.result.get() == 9);
    h.k.stop();
    WEFT_CHILD_CHECK(h.k.post_for(2, [] {}, 1s) == weft::keyed_status::closed);
    const auto s = h.k.stats();
    WEFT_CHILD_CHECK(s.rejected == 3);
  });
}

class KeyStorm : public testing::TestWithParam<full_policy> {};

TEST_P(KeyStorm, EverySubmissionIsAccountedForAndEachKeyStaysInOrder) {
  const full_policy policy = GetParam();
  expect_passes(
      [policy] {
        constexpr int kProducers = 4, kKeys = 8;
        const int per = static_cast<int>(weft_test::scaled(10'000)) + 100;
        weft::pool p(weft_test::unpinned(2));
        std::atomic<int> ran{0}, refused{0}, cancelled{0};
        // Per key: the (producer, sequence) of each job that ran, in run order; written only by
        // the key's jobs, which the serializer runs one at a time.
        std::vector<std::vector<std::pair<int, int>>> runs(kKeys);
        {
          weft::keyed<int> k(p, {.batch = 4, .capacity = 2, .when_full = policy});
          std::vector<std::thread> producers;
          for (int w = 0; w < kProducers; ++w) {
            producers.emplace_back([&, w] {
              std::vector<weft::future<void>> mine;
              for (int i = 0; i < per; ++i) {
                const int key = (i * 7 + w) % kKeys;
                auto job = [&, key, w, i] {
                  runs[static_cast<std::size_t>(key)].emplace_back(w, i);
                  ran.fetch_add(1);
                };
                try {
                  if (i % 5 == 0) {
                    if (k.try_post(key, job) == weft::keyed_status::full) refused.fetch_add(1);
                  } else if (i % 5 == 1) {
                    auto a = k.submit_for(key, job, 1ms);
                    if (a) {
                      mine.push_back(std::move(a.result));
                    } else {
                      refused.fetch_add(1);
                    }
                  } else {
                    mine.push_back(k.submit(key, job));
                  }
                } catch (const weft::queue_full&) {
                  refused.fetch_add(1);
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
          k.wait_idle();
          const auto s = k.stats();
          const auto total = static_cast<std::uint64_t>(kProducers) * static_cast<std::uint64_t>(per);
          // A job accepted by try_post and then discarded has no future: its cancellation is
          // seen in stats only. Every other one was seen by its submitter.
          WEFT_CHILD_CHECK(static_cast<std::uint64_t>(ran.load() + refused.load()) + s.cancelled == total);
          WEFT_CHILD_CHECK(s.ran == static_cast<std::uint64_t>(ran.load()));
          WEFT_CHILD_CHECK(s.cancelled >= static_cast<std::uint64_t>(cancelled.load()));
          WEFT_CHILD_CHECK(s.rejected == static_cast<std::uint64_t>(refused.load()));
          WEFT_CHILD_CHECK(s.submitted == s.ran + s.cancelled);
          WEFT_CHILD_CHECK(s.discarded == s.cancelled);
          if (policy != full_policy::discard_oldest) WEFT_CHILD_CHECK(s.cancelled == 0);
          WEFT_CHILD_CHECK(s.active_keys == 0);
        }
        for (const auto& key_runs : runs) {  // per producer, a key's jobs ran in submission order
          std::map<int, int> last;
          for (const auto& [w, i] : key_runs) {
            auto [it, fresh] = last.try_emplace(w, i);
            WEFT_CHILD_CHECK(fresh || it->second < i);
            it->second = i;
          }
        }
      },
      240s);
}

INSTANTIATE_TEST_SUITE_P(Policies, KeyStorm,
                         testing::Values(full_policy::reject, full_policy::block, full_policy::discard_oldest),
                         [](const testing::TestParamInfo<full_policy>& i) { return name_of(i.param); });

}  // namespace
