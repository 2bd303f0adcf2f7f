// tests/unit/task_source_test.cpp: the internal scheduler interface (runtime/core/scheduler.hpp)
// and task sources (runtime/core/task_source.hpp): what a layer gets from the core.
// Each property a layer relies on, tried the way a layer would use it: every task put into
// a source ends run, cancelled or rejected (counted); a source's task is found by a parked
// pool (no lost wake-up, TS2) and by a worker whose deque never empties (fairness); close
// drains sources, stop_now cancels what they hold, a closed gate or a full source refuses
// with a status (TS3); the hook points fire as documented.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <latch>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/pool_impl.hpp"
#include "core/scheduler.hpp"
#include "watchdog.hpp"
#include "weft/detail/pool_access.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using weft::submit_status;
using weft::detail::scheduler;
using weft::detail::task;

// A FIFO source with a capacity, as a simple layer would write one.
class fifo_source final : public weft::detail::task_source {
 public:
  explicit fifo_source(std::size_t capacity = SIZE_MAX) : capacity_(capacity) {}
  bool push(task* t) override {
    std::lock_guard lock(mu_);
    if (q_.size() >= capacity_) return false;
    q_.push_back(t);
    return true;
  }
  task* poll(int) noexcept override {
    std::lock_guard lock(mu_);
    if (q_.empty()) return nullptr;
    task* t = q_.front();
    q_.pop_front();
    polled_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a test counter
    return t;
  }
  bool empty() const noexcept override {
    std::lock_guard lock(mu_);
    return q_.empty();
  }
  std::size_t size_approx() const noexcept override {
    std::lock_guard lock(mu_);
    return q_.size();
  }
  std::atomic<std::uint64_t> polled_{0};

 private:
  mutable std::mutex mu_;
  std::deque<task*> q_;
  std::size_t capacity_;
};

// Counts runs and destructions of its callables: every task ends exactly once.
struct ledger {
  std::atomic<int> ran{0};
  std::atomic<int> destroyed{0};
};
struct counted {
  ledger* l;
  bool live = true;
  explicit counted(ledger* led) : l(led) {}
  counted(counted&& o) noexcept : l(o.l) { o.live = false; }
  ~counted() {
    if (live) l->destroyed.fetch_add(1);
  }
  void operator()() const { l->ran.fetch_add(1); }
};

weft::pool_options workers(int n) {
  weft::pool_options o;
  o.workers = n;
  return o;
}

TEST(TaskSource, EveryTaskPutIntoASourceRunsOnce) {
  ledger l;
  {
    weft::pool p(workers(2));
    scheduler s(weft::detail::pool_access::impl(p));
    auto src = std::make_shared<fifo_source>();
    const unsigned id = s.add_source(src);
    for (int i = 0; i < 10'000; ++i) {
      ASSERT_EQ(s.submit_to(id, weft::detail::make_task(counted(&l))), submit_status::accepted);
    }
    p.close();
    EXPECT_EQ(src->polled_.load(), 10'000u);
    EXPECT_EQ(p.stats().completed, 10'000u);
  }
  EXPECT_EQ(l.ran.load(), 10'000);
  EXPECT_EQ(l.destroyed.load(), 10'000);
}

// TS2: a parked pool finds a task put into a source, every time.
TEST(TaskSource, AParkedPoolWakesForEachSourceTask) {
  const auto r = weft_test::run_in_child(
      [] {
        weft::pool p(workers(2));
        scheduler s(weft::detail::pool_access::impl(p));
        const unsigned id = s.add_source(std::make_shared<fifo_source>());
        for (int i = 0; i < 2'000; ++i) {
          std::atomic<bool> done{false};
          WEFT_CHILD_CHECK(s.submit_to(id, weft::detail::make_task([&done] {
            done.store(true);
            done.notify_one();
          })) == submit_status::accepted);
          done.wait(false);
          if (i % 200 == 0) std::this_thread::sleep_for(2ms);  // let the workers park
        }
      },
      60s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// Fairness: a worker whose own deque never empties (each task spawns the next) still runs
// a source's task within a bounded number of its tasks.
TEST(TaskSource, ASpawnChainDoesNotStarveASource) {
  const auto r = weft_test::run_in_child(
      [] {
        weft::pool p(workers(1));
        scheduler s(weft::detail::pool_access::impl(p));
        const unsigned id = s.add_source(std::make_shared<fifo_source>());
        std::atomic<bool> stop{false};
        std::atomic<long> chain{0};
        std::latch started(1);
        struct link {
          weft::pool* p;
          std::atomic<bool>* stop;
          std::atomic<long>* chain;
          void operator()() const {
            chain->fetch_add(1);
            if (!stop->load()) p->post(link{p, stop, chain});
          }
        };
        p.post([&] {
          started.count_down();
          link{&p, &stop, &chain}();
        });
        started.wait();
        WEFT_CHILD_CHECK(s.submit_to(id, weft::detail::make_task([&stop] { stop.store(true); })) ==
                         submit_status::accepted);
        while (!stop.load()) std::this_thread::sleep_for(1ms);
        p.close();
      },
      30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(TaskSource, ClosedGateAndFullSourceRefuseWithAStatusAndCountTheRejection) {
  ledger l;
  {
    weft::pool p(workers(1));
    scheduler s(weft::detail::pool_access::impl(p));
    std::latch release(1);
    std::latch busy(1);
    p.post([&] {
      busy.count_down();
      release.wait();
    });
    busy.wait();
    const unsigned id = s.add_source(std::make_shared<fifo_source>(2));
    EXPECT_EQ(s.submit_to(id, weft::detail::make_task(counted(&l))), submit_status::accepted);
    EXPECT_EQ(s.submit_to(id, weft::detail::make_task(counted(&l))), submit_status::accepted);
    EXPECT_EQ(s.submit_to(id, weft::detail::make_task(counted(&l))), submit_status::full);
    EXPECT_EQ(l.destroyed.load(), 1) << "a refused task is destroyed at once";
    EXPECT_EQ(p.stats().queued, 2u) << "metrics::queued counts source tasks";
    release.count_down();
    p.close();
    EXPECT_EQ(s.submit_to(id, weft::detail::make_task(counted(&l))), submit_status::closed);
    EXPECT_EQ(p.stats().rejected, 2u);
    EXPECT_EQ(l.ran.load(), 2) << "close() drains the source";
  }
  EXPECT_EQ(l.destroyed.load(), 4);
}

// stop_now cancels what sources hold, from the stopping thread, even with every worker stuck.
TEST(TaskSource, StopNowCancelsSourceTasks) {
  ledger l;
  {
    weft::pool p(workers(1));
    scheduler s(weft::detail::pool_access::impl(p));
    std::latch busy(1);
    p.post([&](std::stop_token st) {
      busy.count_down();
      while (!st.stop_requested()) std::this_thread::sleep_for(100us);
    });
    busy.wait();
    const unsigned id = s.add_source(std::make_shared<fifo_source>());
    for (int i = 0; i < 100; ++i) ASSERT_EQ(s.submit_to(id, weft::detail::make_task(counted(&l))), submit_status::accepted);
    p.stop_now();
    const auto m = p.stats();
    EXPECT_EQ(m.cancelled, 100u);
    EXPECT_EQ(m.queued, 0u);
  }
  EXPECT_EQ(l.ran.load(), 0);
  EXPECT_EQ(l.destroyed.load(), 100);
}

TEST(TaskSource, RegistryIsBoundedAndRejectsNull) {
  weft::pool p(workers(1));
  scheduler s(weft::detail::pool_access::impl(p));
  EXPECT_THROW(s.add_source(nullptr), std::invalid_argument);
  for (std::size_t i = 0; i < weft::detail::source_registry::kMaxSources; ++i) {
    EXPECT_EQ(s.add_source(std::make_shared<fifo_source>()), i);
  }
  EXPECT_THROW(s.add_source(std::make_shared<fifo_source>()), std::length_error);
}

// ---- hooks ----

struct hook_counts {
  std::atomic<int> thread_start{0}, thread_stop{0}, task_start{0}, task_finish{0}, park{0}, unpark{0};
  std::atomic<int> failed{0};
  std::mutex mu;
  std::vector<unsigned> started;
};

std::shared_ptr<weft::detail::scheduler_hooks> counting_hooks(hook_counts& c) {
  auto h = std::make_shared<weft::detail::scheduler_hooks>();
  h->ctx = &c;
  h->thread_start = [](void* ctx, unsigned w, int) {
    auto& k = *static_cast<hook_counts*>(ctx);
    k.thread_start.fetch_add(1);
    std::lock_guard lock(k.mu);
    k.started.push_back(w);
  };
  h->thread_stop = [](void* ctx, unsigned) { static_cast<hook_counts*>(ctx)->thread_stop.fetch_add(1); };
  h->task_start = [](void* ctx, unsigned, const task*) { static_cast<hook_counts*>(ctx)->task_start.fetch_add(1); };
  h->task_finish = [](void* ctx, unsigned, const task*, weft::detail::task_result r) {
    auto& k = *static_cast<hook_counts*>(ctx);
    k.task_finish.fetch_add(1);
    if (r == weft::detail::task_result::failed) k.failed.fetch_add(1);
  };
  h->park = [](void* ctx, unsigned) { static_cast<hook_counts*>(ctx)->park.fetch_add(1); };
  h->unpark = [](void* ctx, unsigned) { static_cast<hook_counts*>(ctx)->unpark.fetch_add(1); };
  return h;
}

TEST(SchedulerHooks, FireForEveryThreadTaskAndPark) {
  hook_counts c;
  weft::pool_options o = workers(3);
  o.on_task_exception = [](std::exception_ptr) {};
  {
    weft::detail::pool_impl impl(o, counting_hooks(c));
    scheduler s(impl);
    for (int i = 0; i < 1'000; ++i) s.submit(weft::detail::make_task([] {}));
    s.submit(weft::detail::make_task([] { throw 1; }));
    std::this_thread::sleep_for(20ms);  // let the workers park at least once
    impl.close();
  }
  EXPECT_EQ(c.thread_start.load(), 3);
  EXPECT_EQ(c.thread_stop.load(), 3);
  EXPECT_EQ(c.task_start.load(), 1'001);
  EXPECT_EQ(c.task_finish.load(), 1'001);
  EXPECT_EQ(c.failed.load(), 1);
  EXPECT_GT(c.park.load(), 0);
  EXPECT_EQ(c.park.load(), c.unpark.load()) << "every park is followed by an unpark";
  std::sort(c.started.begin(), c.started.end());
  EXPECT_EQ(c.started, (std::vector<unsigned>{0, 1, 2}));
}

TEST(SchedulerHooks, SetLaterReachesTasksThatStartLater) {
  hook_counts c;
  weft::pool p(workers(2));
  scheduler s(weft::detail::pool_access::impl(p));
  p.submit([] {}).get();
  s.set_hooks(counting_hooks(c));
  for (int i = 0; i < 100; ++i) p.submit([] {}).get();
  EXPECT_EQ(c.task_start.load(), 100);
  EXPECT_EQ(c.thread_start.load(), 0) << "the threads had started before the hooks were set";
}

}  // namespace
