// tests/unit/coro_test.cpp: weft::task (weft/coro.hpp): fork/join results at several worker
// counts, deep call chains, exceptions from children, cancellation by stop token,
// sync_wait from outside and from a worker of a one-worker pool, schedule() across pools,
// many concurrent sync_waits, closed pools, an exact-count stress, and no heap call per
// task in steady state.
//
// Every scenario runs in a forked child under the watchdog (tests/watchdog.hpp): a broken
// join hangs, and must fail instead. Deep chains and large trees only at -O2 without
// sanitizers: elsewhere symmetric transfer is not a tail call and every transfer of one
// uninterrupted chain costs stack (see weft/coro.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/coro.hpp"

// ---- counting every global operator new (the steady-state test) ----
namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_news{0};
void* counted_new(std::size_t n) {
  // relaxed: a statistic read after the counted work was joined.
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;

// Deep chains only where symmetric transfer is a guaranteed tail call (weft/coro.hpp).
#if defined(__has_feature)
#define WEFT_TEST_HAS_FEATURE(x) __has_feature(x)
#else
#define WEFT_TEST_HAS_FEATURE(x) 0
#endif
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    !WEFT_TEST_HAS_FEATURE(address_sanitizer) && !WEFT_TEST_HAS_FEATURE(thread_sanitizer)
constexpr bool kDeep = true;
#else
constexpr bool kDeep = false;
#endif

constexpr auto kLimit = 120s;

weft::pool_options opts(unsigned workers) {
  weft::pool_options o;
  o.workers = static_cast<int>(workers);
  return o;
}

long fib_serial(int n) { return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2); }

weft::task<long> fib(int n) {
  if (n < 2) co_return n;
  long a = 0;
  co_await weft::fork(a, fib(n - 1));
  const long b = co_await fib(n - 2);
  co_await weft::join();
  co_return a + b;
}

void expect_in_child(const std::function<void()>& scenario) {
  const auto r = weft_test::run_in_child(scenario, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

class coro_workers : public ::testing::TestWithParam<unsigned> {};

TEST_P(coro_workers, fib_is_right) {
  const unsigned n = GetParam();
  expect_in_child([n] {
    weft::pool p(opts(n));
    const int depth = kDeep ? 25 : 12;
    for (int round = 0; round < 3; ++round) WEFT_CHILD_CHECK(weft::sync_wait(p, fib(depth)) == fib_serial(depth));
    WEFT_CHILD_CHECK(weft::sync_wait(p, fib(0)) == 0);
    WEFT_CHILD_CHECK(weft::sync_wait(p, fib(1)) == 1);
  });
}

// A tree of fan-out `width` where every leaf adds one: exactly width^depth, no matter who stole what.
weft::task<std::uint64_t> tree(int depth, int width, std::atomic<std::uint64_t>& leaves) {
  if (depth == 0) {
    leaves.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after sync_wait joined everything
    co_return 1;
  }
  std::vector<std::uint64_t> part(static_cast<std::size_t>(width), 0);
  for (int i = 0; i < width; ++i) co_await weft::fork(part[static_cast<std::size_t>(i)], tree(depth - 1, width, leaves));
  co_await weft::join();
  std::uint64_t sum = 0;
  for (const auto v : part) sum += v;
  co_return sum;
}

TEST_P(coro_workers, tree_counts_every_leaf_once) {
  const unsigned n = GetParam();
  expect_in_child([n] {
    weft::pool p(opts(n));
    const int depth = kDeep ? 6 : 3;
    std::uint64_t expected = 1;
    for (int i = 0; i < depth; ++i) expected *= 8;
    const int rounds = static_cast<int>(weft_test::scaled(20));
    for (int r = 0; r < rounds; ++r) {
      std::atomic<std::uint64_t> leaves{0};
      WEFT_CHILD_CHECK(weft::sync_wait(p, tree(depth, 8, leaves)) == expected);
      WEFT_CHILD_CHECK(leaves.load() == expected);
    }
  });
}

INSTANTIATE_TEST_SUITE_P(workers, coro_workers, ::testing::Values(1u, 2u, 4u, 8u));

weft::task<long> chain(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await chain(n - 1);
}

weft::task<long> fork_chain(int n) {
  if (n == 0) co_return 0;
  long below = 0;
  co_await weft::fork(below, fork_chain(n - 1));
  co_await weft::join();
  co_return below + 1;
}

TEST(coro, deep_call_and_fork_chains) {
  expect_in_child([] {
    weft::pool p(opts(2));
    const int depth = kDeep ? 100'000 : 500;
    WEFT_CHILD_CHECK(weft::sync_wait(p, chain(depth)) == depth);
    WEFT_CHILD_CHECK(weft::sync_wait(p, fork_chain(depth)) == depth);
  });
}

struct child_error : std::runtime_error {
  explicit child_error(int i) : std::runtime_error("child " + std::to_string(i)), index(i) {}
  int index;
};

weft::task<int> maybe_throw(int i, bool do_throw, std::atomic<int>& finished) {
  finished.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after the join
  if (do_throw) throw child_error(i);
  co_return i;
}

weft::task<int> parent_of_failures(std::atomic<int>& finished, int failing) {
  std::vector<int> out(16, -1);
  for (int i = 0; i < 16; ++i) co_await weft::fork(out[static_cast<std::size_t>(i)], maybe_throw(i, i % 16 < failing, finished));
  try {
    co_await weft::join();
  } catch (const child_error&) {
    // every child has finished when the join throws
    if (finished.load() != 16) co_return -100;
    throw;
  }
  int sum = 0;
  for (int v : out) sum += v;
  co_return sum;
}

TEST(coro, child_exception_reaches_the_join_after_all_children) {
  expect_in_child([] {
    for (unsigned workers : {1u, 2u, 4u}) {
      weft::pool p(opts(workers));
      for (int failing : {0, 1, 5, 16}) {
        std::atomic<int> finished{0};
        bool caught = false;
        try {
          const int sum = weft::sync_wait(p, parent_of_failures(finished, failing));
          WEFT_CHILD_CHECK(failing == 0 && sum == 120);
        } catch (const child_error& e) {
          caught = true;
          WEFT_CHILD_CHECK(e.index < failing);
        }
        WEFT_CHILD_CHECK(caught == (failing != 0));
        WEFT_CHILD_CHECK(finished.load() == 16);
      }
    }
  });
}

// A task that throws with children still running: they are joined first, the task's own
// exception wins.
weft::task<void> slow_child(std::atomic<int>& done, bool fail = false) {
  std::this_thread::sleep_for(5ms);
  done.fetch_add(1);
  if (fail) throw std::runtime_error("child");
  co_return;
}
weft::task<void> throws_before_join(std::atomic<int>& done) {
  for (int i = 0; i < 4; ++i) co_await weft::fork(slow_child(done, i == 0));
  throw std::runtime_error("own");
}

TEST(coro, exception_with_unjoined_children_joins_them_first) {
  expect_in_child([] {
    weft::pool p(opts(4));
    for (int r = 0; r < 5; ++r) {
      std::atomic<int> done{0};
      try {
        weft::sync_wait(p, throws_before_join(done));
        WEFT_CHILD_CHECK(false);
      } catch (const std::runtime_error& e) {
        WEFT_CHILD_CHECK(std::string(e.what()) == "own");
      }
      WEFT_CHILD_CHECK(done.load() == 4);
    }
  });
}

weft::task<int> thrower() {
  throw std::logic_error("call");
  co_return 0;
}
weft::task<int> catches_a_call() {
  try {
    co_await thrower();
  } catch (const std::logic_error&) {
    co_return 7;
  }
  co_return 0;
}

TEST(coro, call_exception_reaches_the_caller_and_when_all_combines) {
  expect_in_child([] {
    weft::pool p(opts(2));
    WEFT_CHILD_CHECK(weft::sync_wait(p, catches_a_call()) == 7);
    auto both = [&]() -> weft::task<long> {
      std::atomic<int> n{0};
      auto [a, b, c] = co_await weft::when_all(fib(10), fib(11), slow_child(n));
      (void)c;
      co_return a + b + n.load();
    };
    WEFT_CHILD_CHECK(weft::sync_wait(p, both()) == 55 + 89 + 1);
    bool threw = false;
    try {
      weft::sync_wait(p, weft::when_all(fib(5), thrower()));
    } catch (const std::logic_error&) {
      threw = true;
    }
    WEFT_CHILD_CHECK(threw);
  });
}

weft::task<long> cancellable(int n, std::atomic<long>& started) {
  started.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  const std::stop_token t = co_await weft::this_task::stop_token();
  if (n < 2) {
    if (t.stop_requested()) co_return 0;
    std::this_thread::sleep_for(50us);
    co_return n;
  }
  long a = 0;
  co_await weft::fork(a, cancellable(n - 1, started));
  const long b = co_await cancellable(n - 2, started);
  co_await weft::join();
  co_return a + b;
}

TEST(coro, stop_token_cancels_what_has_not_started) {
  expect_in_child([] {
    weft::pool p(opts(2));
    // Already fired: nothing starts.
    std::stop_source fired;
    fired.request_stop();
    std::atomic<long> started{0};
    bool cancelled = false;
    try {
      weft::sync_wait(p, cancellable(10, started), fired.get_token());
    } catch (const weft::task_cancelled&) {
      cancelled = true;
    }
    WEFT_CHILD_CHECK(cancelled && started.load() == 0);

    // Fired while running: the forks after it do not start, the join throws task_cancelled.
    std::stop_source src;
    started = 0;
    std::jthread stopper([&] {
      while (started.load() < 100) std::this_thread::yield();
      src.request_stop();
    });
    cancelled = false;
    try {
      weft::sync_wait(p, cancellable(kDeep ? 22 : 16, started), src.get_token());
    } catch (const weft::task_cancelled&) {
      cancelled = true;
    }
    WEFT_CHILD_CHECK(cancelled);
    // fib(22) makes 57,313 calls (fib(16) 3,193); their 50 us leaves take far longer than
    // the stop takes to come.
    WEFT_CHILD_CHECK(started.load() < (kDeep ? 57'313 : 3'193));

    // A token that never fires changes nothing.
    std::stop_source idle;
    started = 0;
    WEFT_CHILD_CHECK(weft::sync_wait(p, cancellable(8, started), idle.get_token()) == 21);
  });
}

TEST(coro, sync_wait_inside_a_worker_of_a_one_worker_pool_helps) {
  expect_in_child([] {
    weft::pool p(opts(1));
    auto f = p.submit([&p] { return weft::sync_wait(p, fib(13)); });
    WEFT_CHILD_CHECK(f.get() == 233);
    // Nested: a task that sync_waits from inside a coroutine on the only worker.
    auto nested = [&p]() -> weft::task<long> { co_return weft::sync_wait(p, fib(12)) + co_await fib(3); };
    WEFT_CHILD_CHECK(weft::sync_wait(p, nested()) == 144 + 2);
  });
}

weft::task<int> hop(weft::pool& a, weft::pool& b) {
  co_await weft::schedule(b);
  const int on_b = b.current_worker_index();
  const int on_a_then = a.current_worker_index();
  long x = 0;
  co_await weft::fork(x, fib(12));
  co_await weft::join();
  co_await weft::schedule(a);
  const int on_a = a.current_worker_index();
  co_return (on_b >= 0 && on_a_then < 0 && on_a >= 0 && x == 144) ? 1 : 0;
}

TEST(coro, schedule_moves_between_pools) {
  expect_in_child([] {
    weft::pool a(opts(2));
    weft::pool b(opts(2));
    for (int i = 0; i < 50; ++i) WEFT_CHILD_CHECK(weft::sync_wait(a, hop(a, b)) == 1);
  });
}

weft::task<int> schedule_onto_closed(weft::pool& closed) {
  try {
    co_await weft::schedule(closed);
  } catch (const weft::pool_closed&) {
    co_return 1;
  }
  co_return 0;
}

TEST(coro, closed_pools_refuse) {
  expect_in_child([] {
    weft::pool open(opts(1));
    weft::pool closed(opts(1));
    closed.close();
    bool threw = false;
    try {
      weft::sync_wait(closed, fib(3));
    } catch (const weft::pool_closed&) {
      threw = true;
    }
    WEFT_CHILD_CHECK(threw);
    WEFT_CHILD_CHECK(weft::sync_wait(open, schedule_onto_closed(closed)) == 1);
    weft::task<long> empty;
    threw = false;
    try {
      weft::sync_wait(open, std::move(empty));
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    WEFT_CHILD_CHECK(threw);
  });
}

TEST(coro, many_concurrent_sync_waits) {
  expect_in_child([] {
    weft::pool p(opts(4));
    std::atomic<int> wrong{0};
    {
      std::vector<std::jthread> threads;
      for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&p, &wrong, t] {
          for (int i = 0; i < static_cast<int>(weft_test::scaled(40)); ++i) {
            const int n = 8 + (t + i) % (kDeep ? 8 : 4);
            if (weft::sync_wait(p, fib(n)) != fib_serial(n)) wrong.fetch_add(1);
          }
        });
      }
    }
    WEFT_CHILD_CHECK(wrong.load() == 0);
  });
}

// A child that posts a callable leaves it on top of its parent's continuation: the child's
// pop finds the callable, puts it back, and the parent goes the stolen way (F3 of
// weft/detail/coro_promise.hpp). Results and the join must not notice.
weft::task<int> poster(weft::pool& p, std::atomic<int>& ran) {
  p.post([&ran] { ran.fetch_add(1); });
  co_return 1;
}
weft::task<int> parent_of_posters(weft::pool& p, std::atomic<int>& ran) {
  std::vector<int> out(8, 0);
  for (auto& o : out) co_await weft::fork(o, poster(p, ran));
  co_await weft::join();
  int sum = 0;
  for (int v : out) sum += v;
  co_return sum;
}

TEST(coro, a_callable_posted_above_the_continuation_does_not_confuse_the_join) {
  expect_in_child([] {
    for (unsigned workers : {1u, 4u}) {
      std::atomic<int> ran{0};
      {
        weft::pool p(opts(workers));
        for (int i = 0; i < 20; ++i) WEFT_CHILD_CHECK(weft::sync_wait(p, parent_of_posters(p, ran)) == 8);
      }  // close() runs every posted callable
      WEFT_CHILD_CHECK(ran.load() == 20 * 8);
    }
  });
}

TEST(coro, no_heap_call_per_task_in_steady_state) {
  expect_in_child([] {
    weft::pool p(opts(1));
    const int n = kDeep ? 18 : 12;  // 8,361 (465) frames per run
    for (int i = 0; i < 3; ++i) WEFT_CHILD_CHECK(weft::sync_wait(p, fib(n)) == fib_serial(n));  // warm the caches
    g_news = 0;
    g_counting = true;
    for (int i = 0; i < 5; ++i) WEFT_CHILD_CHECK(weft::sync_wait(p, fib(n)) == fib_serial(n));
    g_counting = false;
    // A handful for the wait machinery is tolerated; one per task (41,805) is not.
    WEFT_CHILD_CHECK(g_news.load() <= 5);
  });
}

}  // namespace
