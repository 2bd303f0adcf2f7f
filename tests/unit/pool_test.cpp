// tests/unit/pool_test.cpp: weft::pool's contract (pool.hpp): post/submit/try_post, the
// lifecycle table (open, draining, closed), exceptions, invalid calls from workers,
// nesting, metrics, thread names. Most tests run on 1, 2 and 4 workers.
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weft/pool.hpp"
#include "weft/task_group.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

void spin_for(std::chrono::microseconds d) {
  const auto end = clock_type::now() + d;
  while (clock_type::now() < end) {
  }
}

// Polls pred until it holds or `limit` passes; returns its last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() > deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

struct log_capture {
  std::mutex mu;
  std::vector<std::string> lines;

  std::function<void(std::string_view)> sink() {
    return [this](std::string_view line) {
      std::lock_guard lock(mu);
      lines.emplace_back(line);
    };
  }
  bool mentions(const std::string& word) {
    std::lock_guard lock(mu);
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(word) != std::string::npos; });
  }
};

// An exception type of our own, so that "same type" is checked, not just std::exception.
struct task_error : std::runtime_error {
  task_error(const std::string& what, int code) : std::runtime_error(what), code(code) {}
  int code;
};

// A callable that records whether it ran and holds a token whose use_count shows whether
// the callable (and every copy of it) has been destroyed.
struct tracked_callable {
  std::shared_ptr<int> token;
  std::shared_ptr<std::atomic<bool>> ran;
  void operator()() const { ran->store(true); }
};

class PoolTest : public testing::TestWithParam<int> {
 protected:
  weft::pool_options options() const {
    weft::pool_options o;
    o.workers = GetParam();
    o.deque_capacity = 2;  // growth on every burst
    return o;
  }
};

TEST_P(PoolTest, PostRunsEveryTaskOnce) {
  constexpr int n = 20'000;
  auto hits = std::make_unique<std::atomic<int>[]>(n);
  weft::pool p(options());
  for (int i = 0; i < n; ++i) p.post([&hits, i] { hits[i].fetch_add(1); });
  p.close();
  for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "task " << i;
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.completed, static_cast<std::uint64_t>(n));
  EXPECT_EQ(m.failed, 0u);
  EXPECT_EQ(m.queued, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.workers, p.size());
  EXPECT_EQ(p.size(), static_cast<unsigned>(GetParam()));
}

TEST_P(PoolTest, SubmitReturnsTheValue) {
  weft::pool p(options());
  std::vector<weft::future<long>> fs;
  for (long i = 0; i < 1000; ++i) fs.push_back(p.submit([i] { return i * i; }));
  for (long i = 0; i < 1000; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].get(), i * i);
}

TEST_P(PoolTest, SubmitVoid) {
  weft::pool p(options());
  std::atomic<bool> ran{false};
  weft::future<void> f = p.submit([&] { ran = true; });
  f.get();
  EXPECT_TRUE(ran.load());
  EXPECT_FALSE(f.valid());
}

TEST_P(PoolTest, PostAcceptsMoveOnlyCallables) {
  weft::pool p(options());
  auto value = std::make_unique<int>(41);
  std::atomic<int> seen{0};
  p.post([v = std::move(value), &seen] { seen = *v + 1; });
  p.close();
  EXPECT_EQ(seen.load(), 42);
}

TEST_P(PoolTest, SubmitExceptionReachesTheFuture) {
  weft::pool p(options());
  weft::future<int> f = p.submit([]() -> int { throw task_error("submit-failed", 17); });
  try {
    f.get();
    FAIL() << "get() returned instead of rethrowing";
  } catch (const task_error& e) {
    EXPECT_STREQ(e.what(), "submit-failed");
    EXPECT_EQ(e.code, 17);
  }
  weft::future<void> g = p.submit([] { throw 5; });
  EXPECT_THROW(g.get(), int);
  p.close();
  EXPECT_EQ(p.stats().failed, 2u);
  EXPECT_EQ(p.stats().completed, 0u);
}

TEST_P(PoolTest, PostExceptionReachesTheHandler) {
  std::mutex mu;
  std::vector<std::exception_ptr> caught;
  weft::pool_options o = options();
  o.on_task_exception = [&](std::exception_ptr e) {
    std::lock_guard lock(mu);
    caught.push_back(e);
  };
  weft::pool p(o);
  for (int i = 0; i < 100; ++i) {
    p.post([i] {
      if (i % 10 == 0) throw task_error("post-failed-" + std::to_string(i), i);
    });
  }
  p.close();
  ASSERT_EQ(caught.size(), 10u);
  std::set<int> codes;
  for (const auto& e : caught) {
    try {
      std::rethrow_exception(e);
    } catch (const task_error& err) {
      EXPECT_EQ(std::string(err.what()), "post-failed-" + std::to_string(err.code));
      codes.insert(err.code);
    } catch (...) {
      ADD_FAILURE() << "the handler received an exception of another type";
    }
  }
  EXPECT_EQ(codes, (std::set<int>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}));
  EXPECT_EQ(p.stats().failed, 10u);
  EXPECT_EQ(p.stats().completed, 90u);
}

TEST_P(PoolTest, DefaultHandlerLogsThroughTheLogger) {
  log_capture log;
  weft::pool_options o = options();
  o.logger = log.sink();
  weft::pool p(o);
  p.post([] { throw std::runtime_error("boom-31337"); });
  p.post([] { throw 42; });
  p.close();
  EXPECT_TRUE(log.mentions("boom-31337"));
  EXPECT_TRUE(log.mentions("not derived from std::exception"));
  EXPECT_EQ(p.stats().failed, 2u);
}

// A handler that throws is reported as the handler's failure, not as another task's.
TEST_P(PoolTest, ThrowingExceptionHandlerIsLoggedAsSuch) {
  log_capture log;
  weft::pool_options o = options();
  o.logger = log.sink();
  o.on_task_exception = [](std::exception_ptr) { throw std::runtime_error("handler-broke-4711"); };
  weft::pool p(o);
  p.post([] { throw std::runtime_error("task-broke"); });
  p.close();
  EXPECT_TRUE(log.mentions("weft: on_task_exception threw: handler-broke-4711"));
  EXPECT_FALSE(log.mentions("a task threw: handler-broke-4711")) << "the handler's exception blamed on a task";
  EXPECT_EQ(p.stats().failed, 1u);
}

TEST_P(PoolTest, AfterCloseCallablesAreDestroyedWithoutRunning) {
  weft::pool p(options());
  p.close();
  EXPECT_TRUE(p.closed());
  auto token = std::make_shared<int>(0);
  auto ran = std::make_shared<std::atomic<bool>>(false);
  EXPECT_THROW(p.post(tracked_callable{token, ran}), weft::pool_closed);
  EXPECT_EQ(token.use_count(), 1) << "post: the callable was kept";
  EXPECT_THROW(p.submit([c = tracked_callable{token, ran}] { c(); return 1; }), weft::pool_closed);
  EXPECT_EQ(token.use_count(), 1) << "submit: the callable was kept";
  EXPECT_EQ(p.try_post(tracked_callable{token, ran}), weft::submit_status::closed);
  EXPECT_EQ(token.use_count(), 1) << "try_post: the callable was kept";
  // A large callable takes the boxed path; it must be freed too.
  std::array<char, 512> big{};
  EXPECT_THROW(p.post([c = tracked_callable{token, ran}, big] { c(); (void)big; }), weft::pool_closed);
  EXPECT_EQ(token.use_count(), 1) << "post (boxed): the callable was kept";
  EXPECT_FALSE(ran->load());
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.rejected, 4u);
  EXPECT_EQ(m.completed + m.failed + m.cancelled, 0u) << "a rejected callable counts as nothing else";
  EXPECT_STREQ(weft::to_string(weft::submit_status::closed), "closed");
  EXPECT_STREQ(weft::to_string(weft::submit_status::accepted), "accepted");
}

TEST_P(PoolTest, TryPostAcceptsWhileOpen) {
  weft::pool p(options());
  std::atomic<int> ran{0};
  EXPECT_EQ(p.try_post([&] { ran.fetch_add(1); }), weft::submit_status::accepted);
  p.close();
  EXPECT_EQ(ran.load(), 1);
}

TEST_P(PoolTest, CloseIsIdempotent) {
  weft::pool p(options());
  std::atomic<int> ran{0};
  p.post([&] { ran.fetch_add(1); });
  EXPECT_FALSE(p.closed());
  EXPECT_NO_THROW(p.close());
  EXPECT_NO_THROW(p.close());
  EXPECT_TRUE(p.closed());
  EXPECT_EQ(ran.load(), 1);
}

TEST_P(PoolTest, ConcurrentCloseFromThreeThreads) {
  constexpr int n = 5000;
  weft::pool p(options());
  std::atomic<int> ran{0};
  for (int i = 0; i < n; ++i) {
    p.post([&] {
      spin_for(2us);
      ran.fetch_add(1);
    });
  }
  std::atomic<int> ready{0};
  std::vector<int> seen_after_close(3, -1);
  std::vector<std::thread> closers;
  for (int t = 0; t < 3; ++t) {
    closers.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < 3) std::this_thread::yield();
      p.close();
      seen_after_close[static_cast<std::size_t>(t)] = ran.load();  // every close() returns after the drain
    });
  }
  for (auto& c : closers) c.join();
  for (int t = 0; t < 3; ++t) EXPECT_EQ(seen_after_close[static_cast<std::size_t>(t)], n) << "closer " << t;
  EXPECT_TRUE(p.closed());
}

TEST_P(PoolTest, DestructorDrainsQueuedTasks) {
  constexpr int n = 10'000;
  std::atomic<int> ran{0};
  {
    weft::pool p(options());
    for (int i = 0; i < n; ++i) {
      p.post([&] {
        spin_for(5us);
        ran.fetch_add(1);
      });
    }
  }
  EXPECT_EQ(ran.load(), n);
}

TEST_P(PoolTest, CloseFromAWorkerThrowsLogicError) {
  weft::pool p(options());
  auto f = p.submit([&] {
    try {
      p.close();
    } catch (const std::logic_error&) {
      return true;
    }
    return false;
  });
  EXPECT_TRUE(f.get()) << "close() on a worker must throw std::logic_error";
  EXPECT_FALSE(p.closed());
  EXPECT_EQ(p.submit([] { return 3; }).get(), 3) << "the pool must stay usable";
  EXPECT_NO_THROW(p.close());
  EXPECT_TRUE(p.closed());
}

TEST_P(PoolTest, NestedSubmitAndGetDoNotDeadlock) {
  weft::pool p(options());
  // depth levels of task -> submit -> get, each level on the pool.
  std::function<int(int)> nest = [&](int depth) -> int {
    if (depth == 0) return 1;
    return p.submit([&nest, depth] { return nest(depth - 1); }).get() + 1;
  };
  EXPECT_EQ(p.submit([&] { return p.submit([] { return 1; }).get() + 1; }).get(), 2);
  EXPECT_EQ(nest(3), 4);
  EXPECT_EQ(nest(12), 13);
  // One task waiting for many children at once.
  auto fan = p.submit([&] {
    std::vector<weft::future<int>> kids;
    for (int i = 0; i < 200; ++i) kids.push_back(p.submit([i] { return i; }));
    int sum = 0;
    for (auto& k : kids) sum += k.get();
    return sum;
  });
  EXPECT_EQ(fan.get(), 199 * 200 / 2);
}

TEST_P(PoolTest, CurrentWorkerIndex) {
  weft::pool p(options());
  weft::pool other(options());
  EXPECT_EQ(p.current_worker_index(), -1);
  std::vector<weft::future<std::pair<int, int>>> fs;
  for (int i = 0; i < 200; ++i) {
    fs.push_back(p.submit([&] { return std::make_pair(p.current_worker_index(), other.current_worker_index()); }));
  }
  for (auto& f : fs) {
    const auto [mine, theirs] = f.get();
    EXPECT_GE(mine, 0);
    EXPECT_LT(mine, static_cast<int>(p.size()));
    EXPECT_EQ(theirs, -1) << "a worker of one pool is no worker of another";
  }
}

TEST_P(PoolTest, ThreadNamesStartWithThePoolName) {
  weft::pool_options o = options();
  o.name = "tpool";
  weft::pool p(o);
  for (int i = 0; i < 20; ++i) {
    auto [name, index] = p.submit([&] {
                            char buf[16] = {};
                            pthread_getname_np(pthread_self(), buf, sizeof buf);
                            return std::make_pair(std::string(buf), p.current_worker_index());
                          }).get();
    EXPECT_EQ(name, "tpool:" + std::to_string(index));
  }
}

TEST_P(PoolTest, PlacementDescribesTheWorkers) {
  weft::pool p(options());
  EXPECT_FALSE(p.placement().empty());
  EXPECT_NE(p.placement().find(std::to_string(p.size()) + " workers"), std::string::npos) << p.placement();
  for (unsigned w = 0; w < p.size(); ++w) {
    EXPECT_NE(p.placement().find(" " + std::to_string(w) + "->"), std::string::npos) << p.placement();
  }
}

TEST_P(PoolTest, TasksSpawnChildrenFromInside) {
  weft::pool p(options());
  std::atomic<int> children{0}, grandchildren{0};
  std::atomic<int> rejected{0};
  for (int root = 0; root < 10; ++root) {
    p.post([&] {
      for (int i = 0; i < 500; ++i) {
        if (p.try_post([&] {
              children.fetch_add(1);
              p.post([&] { grandchildren.fetch_add(1); });
            }) != weft::submit_status::accepted) {
          rejected.fetch_add(1);
        }
      }
    });
  }
  p.close();
  EXPECT_EQ(rejected.load(), 0);
  EXPECT_EQ(children.load(), 5000);
  EXPECT_EQ(grandchildren.load(), 5000);
  EXPECT_EQ(p.stats().completed, 10'010u);
}

// Lifecycle row "draining": external post is refused, a worker's post is part of the drain.
TEST_P(PoolTest, TasksPostedFromWorkersDuringCloseStillRun) {
  weft::pool p(options());
  std::atomic<bool> started{false}, release{false};
  std::atomic<int> children{0};
  std::atomic<int> refused_inside{0};
  p.post([&] {
    started = true;
    while (!release.load()) std::this_thread::sleep_for(100us);
    for (int i = 0; i < 1000; ++i) {
      if (p.try_post([&] {
            children.fetch_add(1);
            p.post([&] { children.fetch_add(1); });  // must not throw while draining
          }) != weft::submit_status::accepted) {
        refused_inside.fetch_add(1);
      }
    }
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  std::thread closer([&] { p.close(); });
  ASSERT_TRUE(eventually([&] { return p.closed(); })) << "close() did not start";
  EXPECT_THROW(p.post([] {}), weft::pool_closed);
  EXPECT_EQ(p.try_post([] {}), weft::submit_status::closed);
  release = true;
  closer.join();
  EXPECT_EQ(refused_inside.load(), 0);
  EXPECT_EQ(children.load(), 2000);
}

// A worker's posts go to its own deque, which its owner pops LIFO (the injection queue
// would give FIFO): on one worker the children of a task run in reverse order.
TEST(PoolOneWorkerTest, ChildrenOfATaskRunLifoOnTheSameWorker) {
  weft::pool_options o;
  o.workers = 1;
  weft::pool p(o);
  std::vector<int> order;
  p.post([&] {
    for (int i = 0; i < 10; ++i) p.post([&order, i] { order.push_back(i); });
  });
  p.close();
  EXPECT_EQ(order, (std::vector<int>{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}));
}

TEST(PoolCrossTest, GetOnAWorkerOfAnotherPool) {
  weft::pool_options o;
  o.workers = 1;
  weft::pool a(o), b(o);
  // A's worker blocks on B's future: it must be woken when B completes it.
  auto f = a.submit([&] {
    return b.submit([] {
              std::this_thread::sleep_for(20ms);
              return 7;
            }).get();
  });
  EXPECT_EQ(f.get(), 7);
  // Ping-pong: A waits on B, whose task waits on A, whose task waits on B...
  std::function<int(int)> ping = [&](int depth) -> int {
    if (depth == 0) return 0;
    weft::pool& target = (depth % 2 == 0) ? a : b;
    return target.submit([&ping, depth] { return ping(depth - 1); }).get() + 1;
  };
  EXPECT_EQ(a.submit([&] { return ping(6); }).get(), 6);
}

TEST(PoolMetricsTest, QueuedAndRunningWhileBlocked) {
  weft::pool_options o;
  o.workers = 1;
  weft::pool p(o);
  std::atomic<bool> started{false}, release{false};
  p.post([&] {
    started = true;
    while (!release.load()) std::this_thread::sleep_for(100us);
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  for (int i = 0; i < 10; ++i) p.post([] {});
  const weft::metrics m = p.stats();
  EXPECT_EQ(m.queued, 10u);
  EXPECT_EQ(m.running, 1u);
  EXPECT_EQ(m.workers, 1u);
  release = true;
  p.close();
  const weft::metrics after = p.stats();
  EXPECT_EQ(after.queued, 0u);
  EXPECT_EQ(after.running, 0u);
  EXPECT_EQ(after.completed, 11u);
}

TEST(PoolMetricsTest, IdleWorkersPark) {
  weft::pool_options o;
  o.workers = 2;
  weft::pool p(o);
  p.submit([] {}).get();
  EXPECT_TRUE(eventually([&] { return p.stats().parks >= p.size(); })) << "parks: " << p.stats().parks;
}

// Parallelism: independent tasks posted to an idle pool run at the same time on all its
// workers. Each task waits (bounded) until all of them have started.
class PoolParallelTest : public testing::TestWithParam<int> {};

TEST_P(PoolParallelTest, IndependentPostsRunInParallelAfterIdle) {
  const int n = GetParam();
  weft::pool_options o;
  o.workers = n;
  weft::pool p(o);
  for (int round = 0; round < 3; ++round) {
    p.submit([] {}).get();
    std::this_thread::sleep_for(50ms);  // every worker parks
    std::atomic<int> started{0}, met{0};
    const auto deadline = clock_type::now() + 3s;
    std::vector<weft::future<void>> done;
    for (int i = 0; i < n; ++i) {
      done.push_back(p.submit([&] {
        started.fetch_add(1);
        while (started.load() < n && clock_type::now() < deadline) std::this_thread::yield();
        if (started.load() >= n) met.fetch_add(1);
      }));
    }
    for (auto& f : done) f.get();  // bounded: each task gives up at the deadline
    EXPECT_EQ(met.load(), n) << "round " << round << ": only " << met.load() << " of " << n
                             << " tasks ever saw all " << n << " running at once; idle workers were not woken";
  }
}

// Work spawned inside the pool spreads: other workers steal it.
TEST_P(PoolParallelTest, SpawnedChildrenAreStolen) {
  const int n = GetParam();
  weft::pool_options o;
  o.workers = n;
  weft::pool p(o);
  std::mutex mu;
  std::set<int> workers_seen;
  p.submit([&] {
     weft::task_group g(p);
     for (int i = 0; i < 2000; ++i) {
       g.run([&] {
         spin_for(20us);
         std::lock_guard lock(mu);
         workers_seen.insert(p.current_worker_index());
       });
     }
     g.wait();
   }).get();
  EXPECT_GT(workers_seen.size(), 1u) << "2000 children of 20us each all ran on one worker";
  EXPECT_GT(p.stats().steals, 0u);
}

// Destroying a pool on one of its own workers cannot complete: it reports and terminates.
TEST(PoolDeathTest, DestroyingThePoolFromItsOwnWorkerTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        weft::pool_options o;
        o.workers = 2;
        auto* p = new weft::pool(o);
        p->post([p] { delete p; });
        std::this_thread::sleep_for(30s);
      },
      "destroyed by one of its own workers");
}

INSTANTIATE_TEST_SUITE_P(Workers, PoolTest, testing::Values(1, 2, 4),
                         [](const auto& info) { return "w" + std::to_string(info.param); });
INSTANTIATE_TEST_SUITE_P(Workers, PoolParallelTest, testing::Values(2, 4),
                         [](const auto& info) { return "w" + std::to_string(info.param); });

}  // namespace

namespace {

// Tasks posted from one outside thread start in submission order when one worker serves
// them (pool.hpp, "Order"; issue 8, #14). The worker takes the injection queue in batches
// onto its deque; it used to poll the queue every 61 tasks even with part of the last batch
// still in its deque, starting the newer task first. Both shapes: all queued before the
// worker looks (it is blocked), and posted while it runs.
TEST(OrderTest, OneProducerOneWorkerStartsInSubmissionOrder) {
  for (const bool queued_first : {true, false}) {
    weft::pool_options o;
    o.workers = 1;
    weft::pool p(o);
    constexpr int n = 5000;
    std::vector<int> order;
    order.reserve(n);  // only the one worker appends
    {
      std::optional<weft_test::worker_blocker> blocked;
      if (queued_first) blocked.emplace(p, 1);
      for (int i = 0; i < n; ++i) p.post([&order, i] { order.push_back(i); });
    }
    p.close();
    ASSERT_EQ(order.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(order[static_cast<std::size_t>(i)], i) << "task " << i << " did not start in submission order"
                                                         << (queued_first ? " (all queued first)" : " (posted while running)");
    }
  }
}

}  // namespace
