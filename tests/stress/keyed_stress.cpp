// tests/stress/keyed_stress.cpp: weft::keyed under long mixed loads, with exact accounting.
// Sized by WEFT_STRESS_SCALE (0.05 under sanitizers); every scenario runs in a child under
// a watchdog (tests/watchdog.hpp).
//   ChurnThroughManyKeys  a million distinct keys, one job each: the key map holds only the
//                         active ones and is empty afterwards
//   MixedLoadWithStop     producers post/submit/try_post (some jobs throw, some carry
//                         tokens, a small capacity) while the serializer is stopped midway:
//                         every job ends exactly once (ran, cancelled or rejected), per-key
//                         order holds for what ran
//   NestedSubmission      jobs that submit to other keys and wait for them (helping waits)
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/keyed.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::run_in_child;
using weft_test::scaled;
using weft_test::unpinned;

void expect_passes(const std::function<void()>& scenario) {
  const auto r = run_in_child(scenario, 500s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(KeyedStress, ChurnThroughManyKeys) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<std::uint64_t> k(p, {.shards = 16});
    const std::uint64_t keys = scaled(1000000);
    std::atomic<std::uint64_t> ran{0};
    std::size_t peak = 0;
    for (std::uint64_t key = 0; key < keys; ++key) {
      k.post(key, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
      if (key % 4096 == 0) peak = std::max(peak, k.active_keys());
    }
    WEFT_CHILD_CHECK(k.wait_idle_for(300s));
    WEFT_CHILD_CHECK(ran.load() == keys);
    WEFT_CHILD_CHECK(k.active_keys() == 0);
    WEFT_CHILD_CHECK(k.stats().submitted == keys && k.stats().ran == keys);
    std::printf("peak active keys %zu of %llu\n", peak, static_cast<unsigned long long>(keys));
  });
}

TEST(KeyedStress, MixedLoadWithStop) {
  expect_passes([] {
    constexpr int kProducers = 8;
    constexpr std::size_t kKeys = 257;
    const std::uint64_t per_producer = scaled(200000);
    struct slot {
      std::atomic<int> inside{0};
      std::vector<std::uint64_t> seen;  // producer << 40 | sequence; written by the key's jobs only
    };
    std::vector<slot> slots(kKeys);
    std::atomic<int> overlaps{0};
    std::atomic<std::uint64_t> handled{0}, attempted{0}, refused{0}, future_cancelled{0}, future_ok{0},
        future_failed{0};
    weft::pool_options po = unpinned(2);
    po.on_task_exception = [&](std::exception_ptr) { handled.fetch_add(1); };
    weft::pool p(po);
    weft::keyed<std::size_t> k(p, {.batch = 16, .capacity = 4096});
    std::atomic<bool> stop_now{false};
    std::vector<std::thread> producers;
    for (int id = 0; id < kProducers; ++id) {
      producers.emplace_back([&, id] {
        std::mt19937_64 rng(static_cast<std::uint64_t>(id) * 7919 + 1);
        std::vector<weft::future<int>> pending;
        for (std::uint64_t i = 0; i < per_producer; ++i) {
          if (id == 0 && i == per_producer / 2) stop_now = true;
          const std::size_t key = rng() % kKeys;
          const std::uint64_t tag = static_cast<std::uint64_t>(id) << 40 | i;
          auto job = [&slots, &overlaps, key, tag, throws = rng() % 97 == 0](std::stop_token) {
            slot& s = slots[key];
            if (s.inside.fetch_add(1) != 0) overlaps.fetch_add(1);
            s.seen.push_back(tag);
            s.inside.fetch_sub(1);
            if (throws) throw std::runtime_error("job failed");
            return 1;
          };
          attempted.fetch_add(1);
          try {
            switch (rng() % 3) {
              case 0:
                k.post(key, job);
                break;
              case 1:
                pending.push_back(k.submit(key, job));
                break;
              default:
                if (k.try_post(key, job) != weft::keyed_status::ok) refused.fetch_add(1);
                break;
            }
          } catch (const weft::queue_full&) {
            refused.fetch_add(1);
          } catch (const weft::pool_closed&) {
            refused.fetch_add(1);
          }
          if (pending.size() > 64) {
            for (auto& f : pending) {
              try {
                f.get();
                future_ok.fetch_add(1);
              } catch (const weft::task_cancelled&) {
                future_cancelled.fetch_add(1);
              } catch (const std::runtime_error&) {
                future_failed.fetch_add(1);
              }
            }
            pending.clear();
          }
        }
        for (auto& f : pending) {
          try {
            f.get();
          } catch (...) {
          }
        }
      });
    }
    while (!stop_now.load()) std::this_thread::sleep_for(1ms);
    k.stop();
    for (auto& t : producers) t.join();
    WEFT_CHILD_CHECK(k.wait_idle_for(300s));
    const weft::keyed_stats st = k.stats();
    WEFT_CHILD_CHECK(overlaps.load() == 0);
    WEFT_CHILD_CHECK(st.submitted + st.rejected == attempted.load());
    WEFT_CHILD_CHECK(st.rejected == refused.load());
    WEFT_CHILD_CHECK(st.submitted == st.ran + st.cancelled);
    WEFT_CHILD_CHECK(st.active_keys == 0 && k.active_keys() == 0);
    std::uint64_t ran = 0;
    for (const slot& s : slots) {
      ran += s.seen.size();
      std::vector<std::int64_t> last(kProducers, -1);
      for (std::uint64_t v : s.seen) {
        const auto id = static_cast<std::size_t>(v >> 40);
        const auto seq = static_cast<std::int64_t>(v & ((std::uint64_t{1} << 40) - 1));
        WEFT_CHILD_CHECK(seq > last[id]);
        last[id] = seq;
      }
    }
    WEFT_CHILD_CHECK(ran == st.ran);
    p.close();
    WEFT_CHILD_CHECK(handled.load() <= st.failed);
    std::printf("submitted %llu ran %llu failed %llu cancelled %llu rejected %llu\n",
                static_cast<unsigned long long>(st.submitted), static_cast<unsigned long long>(st.ran),
                static_cast<unsigned long long>(st.failed), static_cast<unsigned long long>(st.cancelled),
                static_cast<unsigned long long>(st.rejected));
  });
}

TEST(KeyedStress, NestedSubmission) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<int> k(p);
    const int n = static_cast<int>(scaled(20000));
    std::atomic<int> inner{0};
    std::vector<weft::future<int>> outer;
    for (int i = 0; i < n; ++i) {
      outer.push_back(k.submit(i % 8, [&k, &inner, i] {
        auto f = k.submit(8 + i % 8, [&inner] { return inner.fetch_add(1) >= 0 ? 1 : 0; });
        return f.get();  // a worker waiting on another key's job helps
      }));
    }
    int sum = 0;
    for (auto& f : outer) sum += f.get();
    WEFT_CHILD_CHECK(sum == n && inner.load() == n);
    WEFT_CHILD_CHECK(k.wait_idle_for(60s) && k.active_keys() == 0);
  });
}

}  // namespace
