// tests/unit/burst_memory_test.cpp: memory comes back after a burst without destroying the
// pool (runtime/core/task_alloc.cpp: the last worker to park trims the heap once more than
// 32 MiB of task blocks went back to it; runtime/core/pool_impl.hpp: the injection queue's large
// blocks leave whole free pages between the freed task blocks for the trim to return).
//
// 400'000 tasks are queued behind a blocked worker (about 60 MiB of task blocks), then
// drained; resident memory must fall back to within a quarter of the burst's growth. Before
// the injection queue got 1024-pointer blocks the trim returned ~10% of it (BENCHMARKS.md,
// "Memory after a burst"). Runs in a child (fresh heap, own RSS; tests/watchdog.hpp). The
// sanitizers replace malloc (malloc_trim does nothing there): skipped under them.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <latch>
#include <string>
#include <thread>

#include "watchdog.hpp"
#include "weft/pool.hpp"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define WEFT_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define WEFT_TEST_SANITIZED 1
#endif
#endif

namespace weft::detail {
std::uint64_t heap_trims() noexcept;  // runtime/core/task_alloc.cpp: trims run so far
}

namespace {

using namespace std::chrono_literals;

// VmRSS of this process in bytes.
double rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) * 1024.0;
  }
  return 0;
}

TEST(BurstMemory, ResidentMemoryReturnsAfterTheDrain) {
#ifdef WEFT_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizers' allocators do not implement malloc_trim";
#endif
  const auto r = weft_test::run_in_child(
      [] {
        constexpr int n = 400'000;
        weft::pool_options o;
        o.workers = 1;
        o.pinning = weft::pin_policy::none;
        weft::pool p(std::move(o));
        std::atomic<int> ran{0};
        std::latch started(1), release(1);
        p.post([&] {
          started.count_down();
          release.wait();
        });
        started.wait();
        const double idle = rss_bytes();
        for (int i = 0; i < n; ++i) p.post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
        const double peak = rss_bytes();
        WEFT_CHILD_CHECK(peak - idle > 40.0 * (1 << 20));  // the burst is really there
        release.count_down();
        p.wait_idle();
        WEFT_CHILD_CHECK(ran.load() == n);
        // The trim runs when the worker parks, just after wait_idle can return: poll.
        double after = rss_bytes();
        for (int i = 0; i < 500 && after - idle > (peak - idle) / 4; ++i) {
          std::this_thread::sleep_for(10ms);
          after = rss_bytes();
        }
        std::fprintf(stderr, "idle %.1f MiB, peak %.1f MiB, after %.1f MiB\n", idle / (1 << 20), peak / (1 << 20),
                     after / (1 << 20));
        WEFT_CHILD_CHECK(after - idle <= (peak - idle) / 4);
        // The pool still works (nothing was torn down to get there).
        WEFT_CHILD_CHECK(p.submit([] { return 5; }).get() == 5);
      },
      60s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// Bursts that follow each other closely do not pay for a trim in between: the trim waits
// until the pool has stayed idle for 100 ms (worker.cpp, kTrimDelay). Trimming at the first
// park made every burst fault its pages back in (a spawner loop ran 6x slower). Three bursts
// back to back: at most one trim among them (a host that stalls this thread for 100 ms may
// cause one); then an idle pool trims.
TEST(BurstMemory, BackToBackBurstsAreNotTrimmedBetween) {
#ifdef WEFT_TEST_SANITIZED
  GTEST_SKIP() << "the sanitizers' allocators do not implement malloc_trim";
#endif
  const auto r = weft_test::run_in_child(
      [] {
        constexpr int n = 400'000;  // ~55 MiB of task blocks: over the 32 MiB trim threshold
        weft::pool_options o;
        o.workers = 1;
        o.pinning = weft::pin_policy::none;
        weft::pool p(std::move(o));
        std::atomic<int> ran{0};
        const auto burst = [&] {
          std::latch started(1), release(1);
          p.post([&] {
            started.count_down();
            release.wait();
          });
          started.wait();
          for (int i = 0; i < n; ++i) p.post([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
          release.count_down();
          p.wait_idle();
        };
        const std::uint64_t before = weft::detail::heap_trims();
        for (int b = 0; b < 3; ++b) burst();
        const std::uint64_t during = weft::detail::heap_trims() - before;
        WEFT_CHILD_CHECK(ran.load() == 3 * n);
        std::fprintf(stderr, "trims during 3 back-to-back bursts: %llu\n", static_cast<unsigned long long>(during));
        WEFT_CHILD_CHECK(during <= 1u);
        bool trimmed = false;
        for (int i = 0; i < 500 && !trimmed; ++i) {
          std::this_thread::sleep_for(10ms);
          trimmed = weft::detail::heap_trims() > before + during;
        }
        WEFT_CHILD_CHECK(trimmed);  // idle: the trim comes
      },
      60s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

}  // namespace
