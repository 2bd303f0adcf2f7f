// tests/unit/wait_idle_test.cpp: pool::wait_idle (finish everything submitted so far
// without closing), pool_options::drain_timeout (a destructor that stops draining), and
// post_bulk/submit_bulk.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

weft::pool_options workers(int n) {
  weft::pool_options o;
  o.workers = n;
  return o;
}

// A task tree whose leaves finish long after their roots returned: wait_idle must wait for
// the grandchildren too, and the pool stays open afterwards.
void spread(weft::pool& p, std::atomic<int>& leaves, int depth) {
  if (depth == 0) {
    std::this_thread::sleep_for(200us);
    leaves.fetch_add(1);
    return;
  }
  for (int i = 0; i < 3; ++i) p.post([&p, &leaves, depth] { spread(p, leaves, depth - 1); });
}

TEST(WaitIdle, WaitsForEverythingSpawnedAndLeavesThePoolOpen) {
  for (int w : {1, 2, 4}) {
    weft::pool p(workers(w));
    for (int round = 0; round < 5; ++round) {
      std::atomic<int> leaves{0};
      p.post([&] { spread(p, leaves, 5); });
      p.wait_idle();
      EXPECT_EQ(leaves.load(), 243) << "workers " << w << ", round " << round;
      EXPECT_EQ(p.stats().queued, 0u);
      EXPECT_FALSE(p.closed());
    }
  }
}

TEST(WaitIdle, TimesOutWhileATaskRunsAndReturnsOnAnIdlePool) {
  weft::pool p(workers(2));
  EXPECT_TRUE(p.wait_idle_for(0s)) << "a fresh pool is idle";
  std::latch release(1);
  p.post([&] { release.wait(); });
  const auto t0 = clock_type::now();
  EXPECT_FALSE(p.wait_idle_for(30ms));
  EXPECT_GE(clock_type::now() - t0, 30ms);
  release.count_down();
  EXPECT_TRUE(p.wait_idle_for(10s));
  EXPECT_TRUE(p.wait_idle(clock_type::time_point::max()));
}

TEST(WaitIdle, FromItsOwnWorkerIsAnError) {
  weft::pool p(workers(1));
  auto f = p.submit([&] {
    try {
      p.wait_idle();
    } catch (const std::logic_error& e) {
      return std::string(e.what());
    }
    return std::string();
  });
  EXPECT_NE(f.get().find("wait_idle"), std::string::npos);
}

// On a worker of another pool, wait_idle runs that pool's work meanwhile: a 1-worker pool A
// whose task waits for pool B to go idle, while B's task needs A's work to finish.
TEST(WaitIdle, OnAnotherPoolsWorkerHelpsInsteadOfDeadlocking) {
  const auto r = weft_test::run_in_child(
      [] {
        weft::pool a(workers(1));
        weft::pool b(workers(1));
        std::atomic<bool> a_side{false};
        auto done = a.submit([&] {
          b.post([&] {
            auto inner = a.submit([&] { a_side.store(true); });  // queued on A, whose worker waits below
            inner.get();
          });
          b.wait_idle();
          return a_side.load();
        });
        WEFT_CHILD_CHECK(done.get());
      },
      30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// Producers keep submitting while another thread waits: each return of wait_idle covers
// every task whose post had returned before the call (the contract), and nothing is lost.
TEST(WaitIdle, UnderConcurrentSubmissionCoversEverythingPostedBeforeTheCall) {
  weft::pool p(workers(2));
  std::atomic<bool> stop{false};
  std::atomic<long> posted{0}, ran{0};
  std::thread producer([&] {
    while (!stop.load()) {
      for (int i = 0; i < 50; ++i) {
        p.post([&ran, i] {  // i by value: the loop moves on while the task waits
          std::this_thread::sleep_for(std::chrono::microseconds(i % 7));
          ran.fetch_add(1);
        });
        posted.fetch_add(1);
      }
      // An idle window between bursts (the burst has run, nothing is posted for 5 ms), so
      // that waits can see idle even on a loaded machine.
      while (ran.load() != posted.load() && !stop.load()) std::this_thread::sleep_for(50us);
      std::this_thread::sleep_for(5ms);
    }
  });
  while (posted.load() == 0) std::this_thread::yield();
  int returned = 0;
  for (int i = 0; i < 100; ++i) {
    const long before = posted.load();
    if (p.wait_idle_for(100ms)) {
      ++returned;
      EXPECT_GE(ran.load(), before) << "wait_idle returned before a task posted earlier had run";
    }
  }
  stop.store(true);
  producer.join();
  p.wait_idle();
  EXPECT_GT(returned, 0) << "the producer leaves 5 ms idle windows between bursts: some waits must see one";
  EXPECT_EQ(ran.load(), posted.load());
  const auto m = p.stats();
  EXPECT_EQ(m.completed, static_cast<std::uint64_t>(ran.load()));
  EXPECT_EQ(m.queued, 0u);
}

// ---- drain_timeout ----

TEST(DrainTimeout, TheDestructorStopsDrainingAndCancelsWhatIsLeft) {
  const auto r = weft_test::run_in_child(
      [] {
        std::atomic<int> ran{0};
        std::vector<weft::future<void>> futures;
        std::atomic<bool> saw_stop{false};
        const auto t0 = clock_type::now();
        {
          weft::pool_options o = workers(1);
          o.drain_timeout = 50ms;
          weft::pool p(o);
          p.post([&](std::stop_token st) {  // runs until its token fires
            while (!st.stop_requested()) std::this_thread::sleep_for(100us);
            saw_stop.store(true);
          });
          for (int i = 0; i < 1000; ++i) futures.push_back(p.submit([&] {
            std::this_thread::sleep_for(10ms);
            ran.fetch_add(1);
          }));
        }
        const auto took = clock_type::now() - t0;
        WEFT_CHILD_CHECK(saw_stop.load());
        WEFT_CHILD_CHECK(took < 5s);  // draining everything would take 10 s
        int cancelled = 0;
        for (auto& f : futures) {
          try {
            f.get();
          } catch (const weft::task_cancelled&) {
            ++cancelled;
          }
        }
        WEFT_CHILD_CHECK(cancelled + ran.load() == 1000);
        WEFT_CHILD_CHECK(cancelled > 900);
      },
      30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(DrainTimeout, DefaultDrainsEverything) {
  std::atomic<int> ran{0};
  {
    weft::pool p(workers(2));
    for (int i = 0; i < 200; ++i) p.post([&] {
      std::this_thread::sleep_for(100us);
      ran.fetch_add(1);
    });
  }
  EXPECT_EQ(ran.load(), 200);
}

// ---- post_bulk / submit_bulk ----

TEST(Bulk, PostBulkRunsEveryCallableOnce) {
  weft::pool p(workers(2));
  std::vector<int> hits(10'000, 0);
  std::vector<std::function<void()>> fns;
  for (std::size_t i = 0; i < hits.size(); ++i) fns.push_back([&hits, i] { ++hits[i]; });
  p.post_bulk(fns.begin(), fns.end());
  p.wait_idle();
  for (std::size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << i;
  p.post_bulk(fns.begin(), fns.begin());  // empty: nothing, no throw
  EXPECT_EQ(p.stats().completed, 10'000u);
}

TEST(Bulk, SubmitBulkFromOutsideAndFromAWorker) {
  weft::pool p(workers(2));
  std::vector<std::function<int()>> fns;
  for (int i = 0; i < 1000; ++i) fns.push_back([i] { return i * 2; });
  auto futures = p.submit_bulk(fns.begin(), fns.end());
  ASSERT_EQ(futures.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(futures[static_cast<std::size_t>(i)].get(), i * 2);
  auto inner = p.submit([&] {
    std::vector<std::function<int()>> more;
    for (int i = 0; i < 100; ++i) more.push_back([i] { return i; });
    auto fs = p.submit_bulk(more.begin(), more.end());
    long sum = 0;
    for (auto& f : fs) sum += f.get();
    return sum;
  });
  EXPECT_EQ(inner.get(), 4950);
}

TEST(Bulk, ClosedPoolRejectsTheWholeBatch) {
  std::atomic<int> destroyed{0};
  struct probe {
    std::atomic<int>* d;
    bool live = true;
    explicit probe(std::atomic<int>* x) : d(x) {}
    probe(probe&& o) noexcept : d(o.d) { o.live = false; }
    ~probe() {
      if (live) d->fetch_add(1);
    }
    void operator()() const {}
  };
  weft::pool p(workers(1));
  p.close();
  std::vector<probe> batch;
  for (int i = 0; i < 10; ++i) batch.emplace_back(&destroyed);
  destroyed.store(0);
  EXPECT_THROW(p.post_bulk(batch.begin(), batch.end()), weft::pool_closed);
  EXPECT_EQ(p.stats().rejected, 10u);
  batch.clear();
  EXPECT_EQ(destroyed.load(), 10) << "every rejected task body was destroyed";
}

TEST(Bulk, BoundedPoolTakesABatchUnderItsPolicy) {
  weft::pool_options o = workers(1);
  o.capacity = 4;
  o.when_full = weft::full_policy::block;
  weft::pool p(o);
  std::atomic<int> ran{0};
  std::vector<std::function<void()>> fns(1000, [&] { ran.fetch_add(1); });
  p.post_bulk(fns.begin(), fns.end());
  p.wait_idle();
  EXPECT_EQ(ran.load(), 1000);
}

}  // namespace
