// tests/stress/pool_stress.cpp: millions of tasks posted from 4 external threads into a
// pool whose deques start with 2 slots, while some tasks spawn children from inside the
// pool (post from a worker, task_group) and a few throw. Every execution is counted
// against the root it belongs to; the expected count of each root follows from a seeded
// plan, so a lost or duplicated task anywhere shows up as a wrong per-root count.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kSeed = 0x5EED'CAFE'F00D'1234ULL;

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// What root i does, decided by its hash.
struct plan {
  enum kind_t { plain, throws, post_children, group_children } kind;
  unsigned children;   // for post_children / group_children
  bool grandchildren;  // each child posts one more task
  unsigned executions() const { return 1 + children * (grandchildren ? 2 : 1); }
};

plan plan_for(std::uint64_t i) {
  const std::uint64_t h = mix(kSeed ^ i);
  const unsigned children = 1 + static_cast<unsigned>((h >> 20) % 4);
  const bool grand = ((h >> 30) & 1) != 0;
  if (h % 1024 == 0) return {plan::throws, 0, false};
  switch ((h >> 10) % 16) {
    case 0:
    case 1: return {plan::post_children, children, grand};
    case 2: return {plan::group_children, children, grand};
    case 3:  // a wide fan-out now and then, so that idle workers have something to steal
      if ((h >> 40) % 16 == 0) return {plan::group_children, 64, false};
      return {plan::plain, 0, false};
    default: return {plan::plain, 0, false};
  }
}

struct stress_error : std::runtime_error {
  stress_error() : std::runtime_error("planned failure") {}
};

struct shared_state {
  explicit shared_state(std::uint64_t roots) : hits(roots) {}
  std::vector<std::atomic<std::uint8_t>> hits;  // executions per root
  std::atomic<std::uint64_t> roots_started{0};
  std::atomic<std::uint64_t> handler_calls{0};
  std::atomic<std::uint64_t> wrong_handler_type{0};
  std::atomic<std::uint64_t> rejected_inside{0};
};

void hit(shared_state& s, std::uint64_t root) { s.hits[root].fetch_add(1, std::memory_order_relaxed); }

void child(weft::pool& p, shared_state& s, std::uint64_t root, bool grand) {
  hit(s, root);
  if (grand) p.post([&s, root] { hit(s, root); });
}

void run_root(weft::pool& p, shared_state& s, std::uint64_t root) {
  s.roots_started.fetch_add(1, std::memory_order_relaxed);
  const plan pl = plan_for(root);
  hit(s, root);
  switch (pl.kind) {
    case plan::plain:
      break;
    case plan::throws:
      throw stress_error();
    case plan::post_children:
      for (unsigned c = 0; c < pl.children; ++c) {
        if (p.try_post([&p, &s, root, g = pl.grandchildren] { child(p, s, root, g); }) != weft::submit_status::accepted) {
          s.rejected_inside.fetch_add(1);
        }
      }
      break;
    case plan::group_children: {
      weft::task_group g(p);
      for (unsigned c = 0; c < pl.children; ++c) g.run([&p, &s, root, gr = pl.grandchildren] { child(p, s, root, gr); });
      g.wait();
      break;
    }
  }
}

TEST(PoolStressTest, EveryTaskRunsExactlyOnce) {
  const std::uint64_t roots = weft_test::scaled(5'200'000);
  constexpr int producers = 4;
  constexpr std::uint64_t max_outstanding = 100'000;  // keeps the queues' memory bounded

  std::uint64_t expected_total = 0, expected_failures = 0;
  for (std::uint64_t i = 0; i < roots; ++i) {
    const plan pl = plan_for(i);
    expected_total += pl.executions();
    expected_failures += pl.kind == plan::throws ? 1 : 0;
  }
  ASSERT_GT(expected_failures, 0u);

  auto state = std::make_unique<shared_state>(roots);
  shared_state& s = *state;
  weft::pool_options o;
  o.workers = 3;  // more workers than cores: preemption inside the lock-free paths too
  o.deque_capacity = 2;
  o.on_task_exception = [&s](std::exception_ptr e) {
    s.handler_calls.fetch_add(1);
    try {
      std::rethrow_exception(e);
    } catch (const stress_error&) {
    } catch (...) {
      s.wrong_handler_type.fetch_add(1);
    }
  };
  weft::pool p(o);

  const auto start = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> posted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < producers; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = static_cast<std::uint64_t>(t); i < roots; i += producers) {
        // relaxed: a throttle only.
        while (posted.load(std::memory_order_relaxed) - s.roots_started.load(std::memory_order_relaxed) > max_outstanding) {
          std::this_thread::yield();
        }
        if (i % 7 == 0) {
          ASSERT_EQ(p.try_post([&p, &s, i] { run_root(p, s, i); }), weft::submit_status::accepted);
        } else {
          p.post([&p, &s, i] { run_root(p, s, i); });
        }
        posted.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  p.close();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::uint64_t total = 0, wrong = 0;
  for (std::uint64_t i = 0; i < roots; ++i) {
    const unsigned got = s.hits[i].load(std::memory_order_relaxed);
    const unsigned want = plan_for(i).executions();
    total += got;
    if (got != want && ++wrong <= 5) ADD_FAILURE() << "root " << i << " ran " << got << " tasks, expected " << want;
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(total, expected_total);
  EXPECT_EQ(s.rejected_inside.load(), 0u);
  EXPECT_EQ(s.handler_calls.load(), expected_failures);
  EXPECT_EQ(s.wrong_handler_type.load(), 0u);

  const weft::metrics m = p.stats();
  EXPECT_EQ(m.completed, expected_total - expected_failures);
  EXPECT_EQ(m.failed, expected_failures);
  EXPECT_EQ(m.queued, 0u);
  EXPECT_EQ(m.running, 0u);
  EXPECT_EQ(m.workers, 3u);
  std::cout << "[ stats    ] roots " << roots << ", tasks " << expected_total << ", failures " << expected_failures
            << ", steals " << m.steals << ", parks " << m.parks << ", " << seconds << " s\n";
  EXPECT_LT(seconds, 240.0);
}

}  // namespace
