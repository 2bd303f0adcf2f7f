// tests/unit/fork_test.cpp: fork() while pools run (runtime/platform/fork.hpp states the contract).
//
// Every child runs under a time limit twice over: alarm() inside the child, and the parent
// waits with a deadline and then SIGKILLs it, so a deadlock in the child (say, a lock held
// across fork by a thread that does not exist there) fails the test instead of hanging CI.
// Children report through their exit status and leave with _exit(): no atexit handlers or
// static destructors of the parent's state run in them (nor LeakSanitizer, which would
// count the dead threads' caches as leaks). Registered from tests/fault/CMakeLists.txt.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "weft/detail/wait.hpp"
#include "weft/weft.hpp"

#if defined(__SANITIZE_THREAD__)
#define WEFT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_TEST_ASAN 1
#endif
#endif

#ifdef WEFT_TEST_TSAN
// ThreadSanitizer kills a child of a multi-threaded process that starts threads (a new pool)
// unless told otherwise; what the child does is exactly what this test is about. And its
// deadlock detector tracks at most 64 mutexes held by one thread, while weft's atfork
// prepare handler holds 257 (the depot and the wait table's buckets, runtime/platform/fork.hpp):
// that would stop the test with a CHECK failure inside TSan, not a finding about weft.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0 detect_deadlocks=0"; }
#endif

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr auto kChildLimit = 20s;

weft::pool_options small_pool(int workers) {
  weft::pool_options o;
  o.workers = workers;
  o.pinning = weft::pin_policy::none;
  return o;
}

// In a child: report a failed check and leave with `code`.
#define CHILD_CHECK(cond, code)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "child: check failed (exit %d): %s\n", code, #cond);          \
      return code;                                                                       \
    }                                                                                    \
  } while (0)

// Forks; the child runs fn and exits with its result (0 = pass). Returns a description of
// how the child ended: "exit 0" is success.
std::string run_in_child(const std::function<int()>& fn, std::chrono::seconds limit = kChildLimit) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return std::string("fork failed: ") + std::strerror(errno);
  if (pid == 0) {
    alarm(static_cast<unsigned>(limit.count()) + 10);  // backstop: SIGALRM kills the child
    int code = 90;
    try {
      code = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: unexpected exception: %s\n", e.what());
      code = 91;
    } catch (...) {
      code = 92;
    }
    _exit(code);
  }
  const auto deadline = clock_type::now() + limit;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return std::string("waitpid failed: ") + std::strerror(errno);
    if (clock_type::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return "child hung (killed after " + std::to_string(limit.count()) + " s)";
    }
    std::this_thread::sleep_for(2ms);
  }
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "ended with status " + std::to_string(status);
}

// What the sanitizers' runtimes cannot do in the child of a multi-threaded process (both
// are limits of the sanitizers shipped with g++ 12, not of weft):
//   TSan cannot start threads there ("dup thread with used id": the child's first thread
//   reuses the id of one of the parent's), so under TSan the children check everything that
//   needs no thread, and say what they skip.
//   Neither allocator is locked around fork (ASan gained that in LLVM 18, TSan later), so a
//   child may hang in malloc if another thread was allocating at that instant: under the
//   sanitizers the parent quiesces its threads before forking, and the test of forking in
//   the middle of submissions is skipped.
#ifdef WEFT_TEST_TSAN
constexpr bool kThreadsInChild = false;
#else
constexpr bool kThreadsInChild = true;
#endif
#if defined(WEFT_TEST_TSAN) || defined(WEFT_TEST_ASAN)
constexpr bool kForkSafeAllocator = false;
#else
constexpr bool kForkSafeAllocator = true;
#endif

// In a child, without starting a thread: the process-wide state weft locks around fork is
// usable. Task blocks: more than two magazines allocated and freed, so the depot is taken
// and given (a depot lock inherited locked would hang here). Wait table: a timed wait and
// a notify on 1024 addresses, which lock every bucket (a bucket lock inherited locked
// would hang here).
int use_process_state(weft::pool& old) {
  for (int i = 0; i < 2000; ++i) {
    try {
      old.post([] {});
      CHILD_CHECK(!"post on the parent's pool did not throw", 50);
    } catch (const weft::pool_closed&) {
    }
  }
  static int keys[1024];
  for (int& k : keys) {
    const bool woke = weft::detail::wait_until(&k, [](const void*) noexcept { return false; }, &k,
                                               std::chrono::steady_clock::now());
    CHILD_CHECK(!woke, 51);
    weft::detail::notify_address(&k);
  }
  return 0;
}

// In a child: a pool created there works (external and nested submission, groups, waits).
int use_a_new_pool() {
  if (!kThreadsInChild) {
    std::fprintf(stderr, "child: skipping a new pool (ThreadSanitizer cannot start threads here)\n");
    return 0;
  }
  weft::pool p(small_pool(2));
  std::atomic<int> ran{0};
  std::vector<weft::future<int>> fs;
  for (int i = 0; i < 1000; ++i) fs.push_back(p.submit([i] { return i; }));  // > one magazine of blocks
  for (int i = 0; i < 1000; ++i) p.post([&] { ran.fetch_add(1); });
  int sum = 0;
  for (auto& f : fs) sum += f.get();
  CHILD_CHECK(sum == 999 * 1000 / 2, 10);
  const int nested = p.submit([&] {
                        weft::task_group g(p);
                        std::atomic<int> n{0};
                        for (int i = 0; i < 16; ++i) g.run([&] { n.fetch_add(1); });
                        g.wait();
                        return n.load() + p.submit([] { return 100; }).get();
                      }).get();
  CHILD_CHECK(nested == 116, 11);
  p.close();
  CHILD_CHECK(ran.load() == 1000, 12);
  return 0;
}

// Keeps a pool busy: tasks that re-post themselves until stopped, counted both ways.
struct busy_load {
  explicit busy_load(weft::pool& p) : pool(p) {}
  void start(int chains) {
    for (int i = 0; i < chains; ++i) step();
  }
  // Stops the chains and waits until the last of them has run (the workers go idle).
  void quiesce() {
    stop.store(true);
    while (ran.load() != posted.load()) std::this_thread::sleep_for(1ms);
  }
  void step() {
    posted.fetch_add(1);
    pool.post([this] {
      ran.fetch_add(1);
      if (!stop.load()) step();
    });
  }
  weft::pool& pool;
  std::atomic<bool> stop{false};
  std::atomic<long> posted{0}, ran{0};
};

TEST(Fork, ChildSeesParentPoolClosedAndCanMakeItsOwn) {
  auto parent_pool = std::make_unique<weft::pool>(small_pool(3));
  busy_load load(*parent_pool);
  load.start(8);
  std::this_thread::sleep_for(20ms);  // the workers are running tasks now
  if (!kForkSafeAllocator) load.quiesce();

  const std::string child = run_in_child([&]() -> int {
    weft::pool& old = *parent_pool;
    try {
      old.post([] {});
      CHILD_CHECK(!"post did not throw", 1);
    } catch (const weft::pool_closed& e) {
      CHILD_CHECK(std::strstr(e.what(), "fork") != nullptr, 2);
    }
    try {
      (void)old.submit([] { return 1; });
      CHILD_CHECK(!"submit did not throw", 3);
    } catch (const weft::pool_closed& e) {
      CHILD_CHECK(std::strstr(e.what(), "fork") != nullptr, 4);
    }
    CHILD_CHECK(old.try_post([] {}) == weft::submit_status::closed, 5);
    {
      weft::task_group g(old);
      bool threw = false;
      try {
        g.run([] {});
      } catch (const weft::pool_closed&) {
        threw = true;
      }
      CHILD_CHECK(threw, 6);
      CHILD_CHECK(g.idle(), 7);
    }
    if (const int rc = use_process_state(old); rc != 0) return rc;
    if (const int rc = use_a_new_pool(); rc != 0) return rc;
    const auto t0 = clock_type::now();
    old.close();
    CHILD_CHECK(clock_type::now() - t0 < 2s, 20);
    const auto t1 = clock_type::now();
    parent_pool.reset();  // destroys the pool created before the fork
    CHILD_CHECK(clock_type::now() - t1 < 2s, 21);
    return 0;
  });
  EXPECT_EQ(child, "exit 0");

  // The parent's pool is untouched by the child's doings.
  EXPECT_EQ(parent_pool->submit([] { return 5; }).get(), 5);
  load.stop.store(true);
  parent_pool->close();
  EXPECT_EQ(load.ran.load(), load.posted.load());
  EXPECT_GT(load.ran.load(), 8);
}

// fork() while other threads submit, wait on futures and groups (the task-block depot and
// the wait table are locked around fork by the atfork handlers; a child that inherited one
// of them locked would hang in use_a_new_pool).
TEST(Fork, ForkWhileOtherThreadsSubmit) {
  if (!kForkSafeAllocator) GTEST_SKIP() << "the sanitizer's allocator is not fork-safe (see the top of the file)";
  weft::pool p(small_pool(2));
  std::atomic<bool> stop{false};
  std::atomic<long> accepted{0}, ran{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 3; ++t) {
    submitters.emplace_back([&, t] {
      while (!stop.load()) {
        if (t == 0) {  // many blocks in flight: magazines move through the depot
          for (int i = 0; i < 600; ++i) {
            p.post([&] { ran.fetch_add(1); });
            accepted.fetch_add(1);
          }
        } else if (t == 1) {  // external waits: wait-table buckets locked and unlocked
          accepted.fetch_add(1);
          ran.fetch_add(p.submit([] { return 1; }).get());
        } else {  // waits on workers: groups with nested submit+get
          weft::task_group g(p);
          for (int i = 0; i < 8; ++i) {
            accepted.fetch_add(1);
            g.run([&] { ran.fetch_add(p.submit([] { return 1; }).get()); });
          }
          g.wait();
        }
      }
    });
  }
  const int forks = 10;
  for (int i = 0; i < forks; ++i) {
    std::this_thread::sleep_for(5ms);
    const std::string child = run_in_child([&] {
      if (const int rc = use_process_state(p); rc != 0) return rc;
      return use_a_new_pool();
    });
    EXPECT_EQ(child, "exit 0") << "fork " << i;
  }
  stop.store(true);
  for (auto& t : submitters) t.join();
  p.close();
  EXPECT_EQ(ran.load(), accepted.load());
}

// A pool created in a child is an ordinary pool, also for a grandchild.
TEST(Fork, PoolCreatedInChildIsForkAwareToo) {
  if (!kThreadsInChild) GTEST_SKIP() << "ThreadSanitizer cannot start threads in a forked child";
  const std::string child = run_in_child([] {
    weft::pool p(small_pool(2));
    CHILD_CHECK(p.submit([] { return 3; }).get() == 3, 40);
    // Under the sanitizers, let the workers finish freeing the task and park before the
    // fork (their allocators are not fork-safe: see the top of the file).
    if (!kForkSafeAllocator) std::this_thread::sleep_for(20ms);
    const std::string grandchild = run_in_child([&] {
      CHILD_CHECK(p.try_post([] {}) == weft::submit_status::closed, 41);
      return use_a_new_pool();
    });
    if (grandchild != "exit 0") {
      std::fprintf(stderr, "grandchild: %s\n", grandchild.c_str());
      return 42;
    }
    CHILD_CHECK(p.submit([] { return 4; }).get() == 4, 43);
    return 0;
  });
  EXPECT_EQ(child, "exit 0");
}

// ---- deadlines (each pool's timer thread) and the first moments of a pool ----

weft::task_options timeout_of(clock_type::duration d) {
  weft::task_options o;
  o.timeout = d;
  return o;
}

// In a child: a pool created there uses deadlines (its own timer thread) and is destroyed.
int use_deadlines_in_a_new_pool() {
  if (!kThreadsInChild) return 0;  // use_a_new_pool says why
  weft::pool p(small_pool(2));
  CHILD_CHECK(p.submit([] { return 6; }, timeout_of(10s)).get() == 6, 60);
  auto late = p.submit([](std::stop_token st) {
    while (!st.stop_requested()) std::this_thread::sleep_for(200us);
    return 1;
  }, timeout_of(5ms));
  // The deadline fires its token, or cancels it if it passes before the task starts.
  CHILD_CHECK(late.wait_for(5s) == std::future_status::ready, 61);
  try {
    CHILD_CHECK(late.get() == 1, 61);
  } catch (const weft::task_cancelled&) {
  }
  return 0;
}

// A child destroying a pool that had used a deadline: the pool's timer thread lives in the
// parent only, so the child must abandon the timer, not join it (which aborted with
// "std::thread::join: No such process").
TEST(Fork, ChildDestroysAPoolWhoseTimerRan) {
  auto parent_pool = std::make_unique<weft::pool>(small_pool(2));
  // Deadlines: the timer thread starts and is parked waiting for the next one.
  EXPECT_EQ(parent_pool->submit([] { return 1; }, timeout_of(10s)).get(), 1);
  auto pending = parent_pool->submit([] { return 2; }, timeout_of(60s));  // an entry stays armed
  EXPECT_EQ(pending.get(), 2);
  auto armed = std::make_shared<std::stop_source>();
  const std::string child = run_in_child([&]() -> int {
    try {
      (void)parent_pool->submit([] { return 1; }, timeout_of(1s));
      CHILD_CHECK(!"submit with a deadline on the parent's pool did not throw", 62);
    } catch (const weft::pool_closed&) {
    }
    const auto t0 = clock_type::now();
    parent_pool.reset();
    CHILD_CHECK(clock_type::now() - t0 < 2s, 63);
    return use_deadlines_in_a_new_pool();
  }, 10s);
  EXPECT_EQ(child, "exit 0");
  EXPECT_EQ(parent_pool->submit([] { return 3; }, timeout_of(10s)).get(), 3);  // untouched here
}

// A child destroying a pool whose metrics sink (pool_options::metrics_sink, runtime/layers/
// metrics_sink.hpp) was inside a call at the fork: the sink's thread lives in the parent
// only, so the child's close() and destructor return at once, never call the sink, and
// abandon the thread's handle instead of joining it (which would abort or hang). A pool
// with a sink made in the child works. The parent's sink keeps ticking and gets its final call.
TEST(Fork, ChildDestroysAPoolWhoseMetricsSinkRuns) {
  std::atomic<int> calls{0};
  std::atomic<int> in_call{0};
  weft::pool_options o = small_pool(2);
  o.metrics_sink = [&](const weft::metrics&) {
    in_call.fetch_add(1);
    calls.fetch_add(1);
    std::this_thread::sleep_for(3ms);  // mostly inside a call when the fork comes
    in_call.fetch_sub(1);
  };
  o.metrics_interval = 1ms;
  auto parent_pool = std::make_unique<weft::pool>(std::move(o));
  EXPECT_EQ(parent_pool->submit([] { return 1; }).get(), 1);
  while (calls.load() < 3) std::this_thread::sleep_for(1ms);
  const std::string child = run_in_child([&]() -> int {
    const int seen = calls.load();  // the child's copy: nothing updates it here
    std::this_thread::sleep_for(10ms);
    CHILD_CHECK(calls.load() == seen, 70);
    const auto t0 = clock_type::now();
    parent_pool->close();
    parent_pool.reset();
    CHILD_CHECK(clock_type::now() - t0 < 2s, 71);
    CHILD_CHECK(calls.load() == seen, 72);  // no final call in the child
    if (!kThreadsInChild) {
      std::fprintf(stderr, "child: skipping a new pool with a sink (ThreadSanitizer cannot start threads here)\n");
      return 0;
    }
    std::atomic<int> child_calls{0};
    std::atomic<std::uint64_t> final_completed{0};
    {
      weft::pool_options c = small_pool(2);
      c.metrics_sink = [&](const weft::metrics& m) {
        child_calls.fetch_add(1);
        final_completed.store(m.completed);
      };
      c.metrics_interval = 1ms;
      weft::pool p(std::move(c));
      for (int i = 0; i < 100; ++i) p.post([] {});
      while (child_calls.load() < 3) std::this_thread::sleep_for(1ms);
    }
    CHILD_CHECK(final_completed.load() == 100, 73);
    return 0;
  }, 10s);
  EXPECT_EQ(child, "exit 0");
  const int before = calls.load();
  while (calls.load() < before + 2) std::this_thread::sleep_for(1ms);  // still ticking here
  parent_pool.reset();
  EXPECT_EQ(in_call.load(), 0);
}

// fork() while other threads submit with deadlines: a submitter (or the timer thread) may
// hold the timer's mutex at that instant; the atfork handlers keep the child from
// inheriting it locked. The child then submits to the parent's pool with a deadline
// (rejected: pool_closed), destroys it, and uses deadlines in a pool of its own.
TEST(Fork, ForkWhileOtherThreadsSubmitWithDeadlines) {
  if (!kForkSafeAllocator) GTEST_SKIP() << "the sanitizer's allocator is not fork-safe (see the top of the file)";
  auto p = std::make_unique<weft::pool>(small_pool(2));
  std::atomic<bool> stop{false};
  std::atomic<long> submitted{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 2; ++t) {
    submitters.emplace_back([&, t] {
      std::vector<weft::future<int>> fs;
      while (!stop.load()) {
        // Deadlines that pass (the timer thread cancels or fires) and some that do not.
        fs.push_back(p->submit([] { return 1; }, timeout_of(t == 0 ? std::chrono::microseconds(50) : 10s)));
        submitted.fetch_add(1);
        if (fs.size() > 64) {
          for (auto& f : fs) f.wait();
          fs.clear();
        }
      }
      for (auto& f : fs) f.wait();
    });
  }
  const int forks = 10;
  for (int i = 0; i < forks; ++i) {
    std::this_thread::sleep_for(3ms);
    const std::string child = run_in_child([&]() -> int {
      try {
        (void)p->submit([] { return 1; }, timeout_of(1s));
        CHILD_CHECK(!"submit with a deadline on the parent's pool did not throw", 64);
      } catch (const weft::pool_closed&) {
      }
      p.reset();
      return use_deadlines_in_a_new_pool();
    }, 5s);
    EXPECT_EQ(child, "exit 0") << "fork " << i;
  }
  stop.store(true);
  for (auto& t : submitters) t.join();
  EXPECT_GT(submitted.load(), 0);
  p->close();
}

// fork() while another thread of the parent is inside close() of a pool (waiting for its
// drain): the child's lifecycle calls on that pool return at once. They used to take the
// pool's close mutex, which the fork caught held by the closing thread.
TEST(Fork, ChildClosesAPoolThatAParentThreadIsClosing) {
  auto p = std::make_unique<weft::pool>(small_pool(1));
  std::atomic<bool> release{false};
  std::latch running(1);
  p->post([&] {
    running.count_down();
    while (!release.load()) std::this_thread::sleep_for(200us);
  });
  running.wait();
  std::thread closer([&] { p->close(); });
  while (!p->closed()) std::this_thread::sleep_for(100us);
  std::this_thread::sleep_for(5ms);  // the closer now waits for the drain
  const std::string child = run_in_child([&]() -> int {
    const auto t0 = clock_type::now();
    p->close();
    CHILD_CHECK(p->close(clock_type::now() + 1s), 80);
    p->stop_now();
    p.reset();
    CHILD_CHECK(clock_type::now() - t0 < 2s, 81);
    return 0;
  }, 5s);
  release.store(true);
  closer.join();
  EXPECT_EQ(child, "exit 0");
}

// fork() within the first milliseconds of a pool's life, while its workers start (and pin
// themselves): nothing they initialise then may leave a lock or a static's guard held in
// the child, whose own pools must start and run. Several rounds: the window is short.
TEST(Fork, ForkRightAfterTheFirstPool) {
  if (!kThreadsInChild) GTEST_SKIP() << "ThreadSanitizer cannot start threads in a forked child";
  if (!kForkSafeAllocator) GTEST_SKIP() << "the sanitizer's allocator is not fork-safe (see the top of the file)";
  // Each round in a fresh process of its own (a grandchild), so that the pool really is
  // the process's first.
  for (int round = 0; round < 12; ++round) {
    const std::string outer = run_in_child([round]() -> int {
      weft::pool_options o = small_pool(2);
      o.pinning = weft::pin_policy::compact;  // workers bind themselves as they start
      weft::pool first(o);
      std::this_thread::sleep_for(std::chrono::microseconds(250 * (round % 8)));
      const std::string inner = run_in_child([] {
        weft::pool_options o2 = small_pool(2);
        o2.pinning = weft::pin_policy::compact;
        weft::pool mine(o2);
        CHILD_CHECK(mine.submit([] { return 8; }).get() == 8, 70);
        return 0;
      }, 3s);
      if (inner != "exit 0") {
        std::fprintf(stderr, "grandchild: %s\n", inner.c_str());
        return 71;
      }
      return 0;
    }, 8s);
    EXPECT_EQ(outer, "exit 0") << "round " << round;
  }
}

}  // namespace
