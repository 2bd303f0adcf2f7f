// tests/unit/keyed_test.cpp: weft::keyed (weft/keyed.hpp) and the default pool
// (weft/default_pool.hpp). Every scenario runs in a child process under a watchdog
// (tests/watchdog.hpp): a lost wake-up or a head-of-line block fails the test instead of
// hanging it, and the parent never starts a thread (which keeps ThreadSanitizer able to
// start threads in the children).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/default_pool.hpp"
#include "weft/keyed.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using weft_test::run_in_child;
using weft_test::scaled;
using weft_test::unpinned;

constexpr auto kLimit = 120s;  // a correct serializer needs well under 5 s per scenario (release)

void expect_passes(const std::function<void()>& scenario) {
  const auto r = run_in_child(scenario, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// Waits on a latch with a bound, so that a broken serializer fails the check, not the clock.
bool wait_latch(std::latch& l, std::chrono::seconds limit = 60s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!l.try_wait()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

bool wait_flag(const std::atomic<bool>& f, std::chrono::seconds limit = 60s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!f.load()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

template <class E, class F>
bool throws(F&& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  } catch (...) {
  }
  return false;
}

// ---- ordering ----

// 16 producers, 10K keys: per key, jobs never overlap, and each producer's jobs run in its
// submission order.
TEST(Keyed, FifoPerKeyManyProducers) {
  expect_passes([] {
    constexpr int kProducers = 16;
    const std::size_t keys = std::max<std::size_t>(1000, scaled(10000));
    constexpr int kRounds = 3;
    struct slot {
      std::atomic<int> inside{0};
      std::vector<std::uint32_t> seen;  // producer << 16 | round, written only by the key's job
    };
    std::vector<slot> slots(keys);
    std::atomic<int> overlaps{0};
    weft::pool p(unpinned(2));
    {
      weft::keyed<std::size_t> k(p, {.batch = 8});
      std::latch go(kProducers);
      std::vector<std::thread> producers;
      for (int id = 0; id < kProducers; ++id) {
        producers.emplace_back([&, id] {
          go.arrive_and_wait();
          for (int r = 0; r < kRounds; ++r) {
            for (std::size_t key = 0; key < keys; ++key) {
              k.post(key, [&, key, id, r] {
                slot& s = slots[key];
                if (s.inside.fetch_add(1) != 0) overlaps.fetch_add(1);
                s.seen.push_back(static_cast<std::uint32_t>(id) << 16 | static_cast<std::uint32_t>(r));
                s.inside.fetch_sub(1);
              });
            }
          }
        });
      }
      for (auto& t : producers) t.join();
      WEFT_CHILD_CHECK(k.wait_idle_for(60s));
      WEFT_CHILD_CHECK(k.active_keys() == 0);  // the map is empty again
      const weft::keyed_stats st = k.stats();
      WEFT_CHILD_CHECK(st.submitted == keys * kProducers * kRounds);
      WEFT_CHILD_CHECK(st.ran == st.submitted && st.cancelled == 0 && st.rejected == 0 && st.active_keys == 0);
    }
    WEFT_CHILD_CHECK(overlaps.load() == 0);
    for (const slot& s : slots) {
      WEFT_CHILD_CHECK(s.seen.size() == kProducers * kRounds);
      int last[kProducers];
      std::fill(std::begin(last), std::end(last), -1);
      for (std::uint32_t v : s.seen) {
        const int id = static_cast<int>(v >> 16), r = static_cast<int>(v & 0xffff);
        WEFT_CHILD_CHECK(r > last[id]);
        last[id] = r;
      }
    }
  });
}

// A key blocked in a job delays no other key: 100 keys complete their jobs while it still
// runs (latches, no timing), and its own later jobs run after it, in order.
TEST(Keyed, StuckKeyDoesNotDelayOtherKeys) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<int> k(p);
    std::atomic<bool> started{false}, returned{false};
    std::latch release(1);
    k.post(0, [&] {
      started = true;
      (void)wait_latch(release);
      returned = true;
    });
    std::vector<int> after;  // key 0's later jobs, written only by key 0's jobs
    for (int i = 0; i < 10; ++i) k.post(0, [&after, i] { after.push_back(i); });
    WEFT_CHILD_CHECK(wait_flag(started));
    const std::int64_t per_key = static_cast<std::int64_t>(std::max<std::uint64_t>(200, scaled(10000)));
    std::latch done(100 * per_key);
    for (std::int64_t j = 0; j < per_key; ++j) {
      for (int key = 1; key <= 100; ++key) k.post(key, [&] { done.count_down(); });
    }
    WEFT_CHILD_CHECK(wait_latch(done));
    WEFT_CHILD_CHECK(!returned.load());  // all of that happened while key 0 was stuck
    WEFT_CHILD_CHECK(k.active_keys() >= 1);
    release.count_down();
    k.wait_idle();
    WEFT_CHILD_CHECK(returned.load());
    WEFT_CHILD_CHECK(after == (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    WEFT_CHILD_CHECK(k.active_keys() == 0);
  });
}

// A drain runs at most `batch` jobs per turn, then queues behind other keys: with one worker,
// a key queued after a hot key's 10,000 jobs runs after at most a couple of turns of it.
TEST(Keyed, HotKeyYieldsAfterBatch) {
  expect_passes([] {
    weft::pool p(unpinned(1));
    weft::keyed<int> k(p, {.batch = 32});
    std::atomic<int> hot{0};
    int hot_when_cold_ran = -1;
    {
      weft_test::worker_blocker block(p, 1);
      for (int i = 0; i < 10000; ++i) k.post(1, [&] { hot.fetch_add(1, std::memory_order_relaxed); });
      k.post(2, [&] { hot_when_cold_ran = hot.load(); });
    }
    k.wait_idle();
    WEFT_CHILD_CHECK(hot.load() == 10000);
    WEFT_CHILD_CHECK(hot_when_cold_ran >= 0 && hot_when_cold_ran <= 64);
  });
}

// The lost wake-up window: jobs queued while their key's drain is deciding to go idle. Each
// producer submits to a few shared keys and waits for its own job, so the keys go idle and
// busy again constantly; a stranded job fails its bounded wait.
TEST(Keyed, EnqueueDuringDrainExit) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<int> k(p, {.batch = 1});
    constexpr int kThreads = 4;
    const int rounds = static_cast<int>(std::max<std::uint64_t>(500, scaled(20000)));
    std::atomic<int> stranded{0}, ran{0};
    std::vector<std::thread> threads;
    for (int id = 0; id < kThreads; ++id) {
      threads.emplace_back([&, id] {
        for (int r = 0; r < rounds; ++r) {
          const int key = (r + id) % 3;
          auto f = k.submit(key, [&] { ran.fetch_add(1, std::memory_order_relaxed); });
          // and a job that queues another on its own key as its last act (the drain is
          // about to look at an empty queue)
          if (r % 16 == 0) k.post(key, [&k, &ran, key] { k.post(key, [&ran] { ran.fetch_add(1); }); ran.fetch_add(1); });
          if (f.wait_for(30s) != std::future_status::ready) stranded.fetch_add(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    WEFT_CHILD_CHECK(stranded.load() == 0);
    WEFT_CHILD_CHECK(k.wait_idle_for(30s));
    const int extra = kThreads * ((rounds + 15) / 16) * 2;
    WEFT_CHILD_CHECK(ran.load() == kThreads * rounds + extra);
    WEFT_CHILD_CHECK(k.active_keys() == 0);
    WEFT_CHILD_CHECK(k.stats().submitted == k.stats().ran);
  });
}

// ---- stopping ----

// stop(): queued jobs are cancelled and counted, the running job's token fires, new jobs are
// refused; the destructor does the same and waits for the running job.
TEST(Keyed, StopCancelsQueuedAndSignalsRunning) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<int> k(p);
    std::atomic<bool> started{false}, saw_stop{false};
    auto running = k.submit(7, [&](std::stop_token st) {
      started = true;
      const auto until = std::chrono::steady_clock::now() + 60s;
      while (!st.stop_requested() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100us);
      saw_stop = st.stop_requested();
      return 1;
    });
    WEFT_CHILD_CHECK(wait_flag(started));
    std::vector<weft::future<int>> queued;
    for (int i = 0; i < 100; ++i) queued.push_back(k.submit(7, [] { return 2; }));
    for (int i = 0; i < 50; ++i) k.post(7, [] {});
    k.stop();
    WEFT_CHILD_CHECK(k.stopped());
    for (auto& f : queued) WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { f.get(); }));
    WEFT_CHILD_CHECK(running.get() == 1);
    WEFT_CHILD_CHECK(saw_stop.load());
    WEFT_CHILD_CHECK(throws<weft::pool_closed>([&] { k.post(8, [] {}); }));
    WEFT_CHILD_CHECK(k.try_post(8, [] {}) == weft::keyed_status::closed);
    WEFT_CHILD_CHECK(k.wait_idle_for(30s));
    const weft::keyed_stats st = k.stats();
    WEFT_CHILD_CHECK(st.submitted == 151 && st.ran == 1 && st.cancelled == 150 && st.rejected == 2);
    WEFT_CHILD_CHECK(st.active_keys == 0);
  });
}

TEST(Keyed, DestructorCancelsQueuedJobs) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    std::vector<weft::future<void>> queued;
    std::atomic<bool> started{false};
    {
      weft::keyed<std::string> k(p);
      k.post("a", [&](std::stop_token st) {
        started = true;
        while (!st.stop_requested()) std::this_thread::sleep_for(100us);
      });
      WEFT_CHILD_CHECK(wait_flag(started));
      for (int i = 0; i < 1000; ++i) {
        std::string key(1, i % 2 ? 'a' : 'b');
        if (i % 2 == 0) key.append(1, static_cast<char>('0' + i % 7));
        queued.push_back(k.submit(key, [] {}));
      }
      // "b*" keys may have run already; the destructor must not hang either way.
    }
    int cancelled = 0;
    for (auto& f : queued) {
      WEFT_CHILD_CHECK(f.ready());
      try {
        f.get();
      } catch (const weft::task_cancelled&) {
        ++cancelled;
      }
    }
    WEFT_CHILD_CHECK(cancelled >= 500);  // every "a" job was behind the running one
  });
}

// The pool's stop_now stops the serializer: queued jobs cancelled, running ones signalled.
TEST(Keyed, PoolStopNowCancelsQueuedJobs) {
  expect_passes([] {
    weft::pool p(unpinned(1));
    weft::keyed<int> k(p);
    std::atomic<bool> started{false};
    k.post(1, [&](std::stop_token st) {
      started = true;
      while (!st.stop_requested()) std::this_thread::sleep_for(100us);
    });
    WEFT_CHILD_CHECK(wait_flag(started));
    std::vector<weft::future<int>> fs;
    for (int key = 0; key < 20; ++key) fs.push_back(k.submit(key, [] { return 1; }));
    p.stop_now();
    for (auto& f : fs) WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { f.get(); }));
    WEFT_CHILD_CHECK(k.stopped());
    WEFT_CHILD_CHECK(k.wait_idle_for(30s));
    WEFT_CHILD_CHECK(k.stats().cancelled == 20 && k.stats().ran == 1);
    WEFT_CHILD_CHECK(throws<weft::pool_closed>([&] { k.post(3, [] {}); }));
  });
}

// ---- errors, tokens, options ----

TEST(Keyed, ExceptionsReachFutureOrHandler) {
  expect_passes([] {
    std::atomic<int> handled{0};
    weft::pool_options o = unpinned(2);
    o.on_task_exception = [&](std::exception_ptr) { handled.fetch_add(1); };
    weft::pool p(o);
    weft::keyed<int> k(p);
    auto bad = k.submit(1, []() -> int { throw std::runtime_error("boom"); });
    auto good = k.submit(1, [] { return 5; });
    k.post(1, [] { throw std::runtime_error("posted"); });
    auto after = k.submit(1, [] { return 6; });
    WEFT_CHILD_CHECK(throws<std::runtime_error>([&] { bad.get(); }));
    WEFT_CHILD_CHECK(good.get() == 5 && after.get() == 6);  // continue_key
    k.wait_idle();
    WEFT_CHILD_CHECK(handled.load() == 1);
    WEFT_CHILD_CHECK(k.stats().failed == 2 && k.stats().ran == 4);
  });
}

TEST(Keyed, CancelKeyQueuePolicy) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<int> k(p, {.errors = weft::on_error::cancel_key_queue});
    std::latch release(1);
    k.post(1, [&] { (void)wait_latch(release); });
    auto bad = k.submit(1, [] { throw std::runtime_error("boom"); });
    std::vector<weft::future<int>> behind;
    for (int i = 0; i < 10; ++i) behind.push_back(k.submit(1, [] { return 1; }));
    auto other = k.submit(2, [] { return 2; });  // another key is not affected
    release.count_down();
    WEFT_CHILD_CHECK(throws<std::runtime_error>([&] { bad.get(); }));
    for (auto& f : behind) WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { f.get(); }));
    WEFT_CHILD_CHECK(other.get() == 2);
    WEFT_CHILD_CHECK(k.submit(1, [] { return 3; }).get() == 3);  // later jobs run
    k.wait_idle();
    WEFT_CHILD_CHECK(k.stats().cancelled == 10);
  });
}

TEST(Keyed, TaskOptionsTokenAndDeadline) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<int> k(p);
    std::stop_source fired;
    fired.request_stop();
    auto a = k.submit(1, [] { return 1; }, {.stop_token = fired.get_token()});
    auto b = k.submit(1, [] { return 2; }, {.stop_token = {}, .timeout = -1s});
    auto c = k.submit(1, [] { return 3; }, {.stop_token = {}, .timeout = 60s});
    WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { a.get(); }));
    WEFT_CHILD_CHECK(throws<weft::task_cancelled>([&] { b.get(); }));
    WEFT_CHILD_CHECK(c.get() == 3);
    // the submission's own token fires while the job runs: the job's token reports it
    std::stop_source mine;
    std::atomic<bool> started{false};
    auto d = k.submit(
        2,
        [&](std::stop_token st) {
          started = true;
          const auto until = std::chrono::steady_clock::now() + 60s;
          while (!st.stop_requested() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100us);
          return st.stop_requested();
        },
        {.stop_token = mine.get_token()});
    WEFT_CHILD_CHECK(wait_flag(started));
    mine.request_stop();
    WEFT_CHILD_CHECK(d.get());
    WEFT_CHILD_CHECK(!k.stopped());  // only that job was told
    k.wait_idle();
    WEFT_CHILD_CHECK(k.stats().cancelled == 2 && k.stats().ran == 2);
  });
}

TEST(Keyed, CapacityReportsFull) {
  expect_passes([] {
    weft::pool p(unpinned(2));
    weft::keyed<int> k(p, {.capacity = 4});
    std::latch release(1);
    std::atomic<bool> started{false};
    WEFT_CHILD_CHECK(k.try_post(1, [&] {
                       started = true;
                       (void)wait_latch(release);
                     }) == weft::keyed_status::ok);
    WEFT_CHILD_CHECK(wait_flag(started));  // running: no longer counted as queued
    for (int i = 0; i < 4; ++i) WEFT_CHILD_CHECK(k.try_post(1, [] {}) == weft::keyed_status::ok);
    WEFT_CHILD_CHECK(k.try_post(1, [] {}) == weft::keyed_status::full);
    WEFT_CHILD_CHECK(throws<weft::queue_full>([&] { k.post(1, [] {}); }));
    WEFT_CHILD_CHECK(throws<weft::queue_full>([&] { (void)k.submit(1, [] { return 1; }); }));
    WEFT_CHILD_CHECK(k.try_post(2, [] {}) == weft::keyed_status::ok);  // per key
    release.count_down();
    k.flush(1);
    WEFT_CHILD_CHECK(k.try_post(1, [] {}) == weft::keyed_status::ok);
    k.wait_idle();
    const weft::keyed_stats st = k.stats();
    WEFT_CHILD_CHECK(st.rejected == 3 && st.submitted == 7 && st.ran == 7);
    WEFT_CHILD_CHECK(std::string(weft::to_string(weft::keyed_status::full)) == "full");
  });
}

TEST(Keyed, InvalidOptionsAreRejected) {
  expect_passes([] {
    weft::pool p(unpinned(1));
    WEFT_CHILD_CHECK(throws<std::invalid_argument>([&] { weft::keyed<int> k(p, {.batch = 0}); }));
    WEFT_CHILD_CHECK(throws<std::invalid_argument>([&] { weft::keyed<int> k(p, {.shards = 3}); }));
    WEFT_CHILD_CHECK(throws<std::invalid_argument>([&] { weft::keyed<int> k(p, {.batch_time = -1ms}); }));
  });
}

// ---- waiting ----

TEST(Keyed, FlushAndWaitIdleFromWorkersHelp) {
  expect_passes([] {
    weft::pool p(unpinned(1));  // one worker: a blocking wait there would deadlock
    weft::keyed<int> k(p);
    std::atomic<int> b_done{0};
    for (int i = 0; i < 100; ++i) k.post(2, [&] { b_done.fetch_add(1); });
    auto f = k.submit(1, [&] {
      k.flush(2);  // helps: key 2's drain runs on this same worker meanwhile
      return b_done.load();
    });
    WEFT_CHILD_CHECK(f.wait_for(60s) == std::future_status::ready);
    WEFT_CHILD_CHECK(f.get() == 100);
    auto g = k.submit(3, [&] { return throws<std::logic_error>([&] { k.wait_idle(3); }); });
    WEFT_CHILD_CHECK(g.get());
    auto h = k.submit(3, [&] { return throws<std::logic_error>([&] { k.wait_idle(); }); });
    WEFT_CHILD_CHECK(h.get());
    k.wait_idle();
    WEFT_CHILD_CHECK(k.stats().submitted == 103 && k.stats().ran == 103);  // flush markers are not counted
  });
}

// ---- the default pool ----

TEST(DefaultPool, ConcurrentFirstUse) {
  expect_passes([] {
    constexpr int kThreads = 8;
    std::latch go(kThreads);
    std::vector<weft::pool*> seen(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        go.arrive_and_wait();
        seen[i] = &weft::default_pool();
        (void)weft::default_keyed<std::string>();
      });
    }
    for (auto& t : threads) t.join();
    for (auto* s : seen) WEFT_CHILD_CHECK(s == seen[0]);
    WEFT_CHILD_CHECK(weft::submit([] { return 42; }).get() == 42);
    std::vector<int> order;  // written only by key "k"'s jobs
    for (int i = 0; i < 100; ++i) weft::post("k", [&order, i] { order.push_back(i); });
    WEFT_CHILD_CHECK(weft::submit(std::string("k"), [&] { return order.size(); }).get() == 100);
    for (int i = 0; i < 100; ++i) WEFT_CHILD_CHECK(order[static_cast<std::size_t>(i)] == i);
    WEFT_CHILD_CHECK(weft::submit(5, [] { return 1; }).get() == 1);
    WEFT_CHILD_CHECK(weft::submit(5u, [](std::stop_token) { return 2; }).get() == 2);
    std::atomic<bool> posted{false};
    weft::post([&] { posted = true; });
    WEFT_CHILD_CHECK(wait_flag(posted));
    WEFT_CHILD_CHECK(&weft::default_keyed<std::uint64_t>().get_pool() == &weft::default_pool());
  });
}

// A program that uses the default pool and returns from main without closing it exits, even
// with work queued and a job that ignores its stop token (tests/unit/keyed_exit_helper.cpp).
void expect_helper_exits(const char* mode) {
  const auto r = run_in_child(
      [mode] {
        execl(WEFT_KEYED_EXIT_HELPER, WEFT_KEYED_EXIT_HELPER, mode, static_cast<char*>(nullptr));
        _exit(127);
      },
      60s);
  EXPECT_TRUE(r.passed()) << mode << ": " << r.describe();
}

TEST(DefaultPool, ExitWithWorkQueuedTerminates) { expect_helper_exits("queued"); }
TEST(DefaultPool, ExitWithStuckJobTerminates) { expect_helper_exits("stuck"); }

}  // namespace
