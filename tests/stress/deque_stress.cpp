// tests/stress/deque_stress.cpp: one owner and N thieves on one Chase-Lev deque that starts
// with 2 slots, so it grows while thieves steal from it. The owner pushes bursts and pops
// part of each; thieves steal all the time. Every item must be taken exactly once, and
// each thief must see the items it steals in push order (steals are FIFO).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "core/deque.hpp"

namespace {

using weft::detail::chase_lev_deque;
using weft::detail::deque_owner;
using weft::detail::deque_stealer;
using weft::detail::steal_result;

struct stress_case {
  int thieves;
  unsigned max_burst;  // the owner pushes 1..max_burst items, then pops some
  std::uint64_t items;  // before scaling
};

struct thief_stats {
  std::uint64_t taken = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t lost_races = 0;
};

class DequeStressTest : public testing::TestWithParam<stress_case> {};

TEST_P(DequeStressTest, EveryItemTakenExactlyOnce) {
  const stress_case c = GetParam();
  const std::uint64_t n = weft_test::scaled(c.items);
  chase_lev_deque<std::int64_t> q(2);
  std::vector<std::atomic<std::uint8_t>> taken(n);  // value-initialised to 0
  std::atomic<bool> owner_done{false};
  std::atomic<int> thieves_ready{0};
  std::vector<thief_stats> stats(static_cast<std::size_t>(c.thieves));

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> thieves;
  for (int t = 0; t < c.thieves; ++t) {
    thieves.emplace_back([&, t] {
      deque_stealer<std::int64_t> thief(q);
      thief_stats& s = stats[static_cast<std::size_t>(t)];
      std::int64_t last = -1;
      std::uint64_t empties = 0;
      thieves_ready.fetch_add(1);
      for (;;) {
        std::int64_t x = -1;
        switch (thief.steal(x)) {
          case steal_result::success:
            if (x < 0 || static_cast<std::uint64_t>(x) >= n) {
              ++s.out_of_order;  // garbage: counted as a failure below
              continue;
            }
            taken[static_cast<std::size_t>(x)].fetch_add(1, std::memory_order_relaxed);
            if (x <= last) ++s.out_of_order;
            last = x;
            ++s.taken;
            break;
          case steal_result::lost_race:
            ++s.lost_races;
            break;
          case steal_result::empty:
            // acquire: pairs with the owner's release store; once it is set the owner
            // pushes nothing more, so an empty deque stays empty.
            if (owner_done.load(std::memory_order_acquire)) return;
            // Mostly spin, so thieves are there when items appear; now and then yield, so
            // that with more threads than cores the owner still gets to run.
            if (++empties % 128 == 0) std::this_thread::yield();
            break;
        }
      }
    });
  }
  while (thieves_ready.load() < c.thieves) std::this_thread::yield();

  // The owner, on this thread.
  deque_owner<std::int64_t> owner(q);
  std::mt19937 rng(12345u + static_cast<unsigned>(c.thieves) * 7u + c.max_burst);
  std::uint64_t next = 0, owner_taken = 0, peak = 0, round = 0;
  auto take = [&](std::int64_t x) {
    ASSERT_GE(x, 0);
    ASSERT_LT(static_cast<std::uint64_t>(x), n);
    taken[static_cast<std::size_t>(x)].fetch_add(1, std::memory_order_relaxed);
    ++owner_taken;
  };
  while (next < n) {
    const unsigned burst = 1 + rng() % c.max_burst;
    for (unsigned i = 0; i < burst && next < n; ++i) owner.push(static_cast<std::int64_t>(next++));
    peak = std::max<std::uint64_t>(peak, static_cast<std::uint64_t>(owner.size_approx()));
    // Two alternating regimes. Draining: the owner pops up to twice what it pushed, so the
    // deque keeps running empty and owner and thieves race for the last element over and
    // over. Filling: it pops at most half, so the deque grows while thieves take most.
    const bool draining = (++round / 512) % 2 == 0;
    const unsigned pops = rng() % (draining ? 2 * burst + 1 : burst / 2 + 1);
    for (unsigned i = 0; i < pops; ++i) {
      std::int64_t x = -1;
      if (!owner.pop(x)) break;
      take(x);
    }
  }
  // Drain. A failed pop means empty: either nothing was left or a thief won the last one.
  for (std::int64_t x = -1; owner.pop(x);) take(x);
  EXPECT_EQ(owner.size_approx(), 0);
  owner_done.store(true, std::memory_order_release);  // release: see the thieves' acquire
  for (auto& t : thieves) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::uint64_t stolen = 0, lost = 0, wrong = 0, missing = 0, duplicated = 0;
  for (const auto& s : stats) {
    stolen += s.taken;
    lost += s.lost_races;
    EXPECT_EQ(s.out_of_order, 0u) << "a thief saw items out of push order (steal must be FIFO)";
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    const unsigned v = taken[static_cast<std::size_t>(i)].load(std::memory_order_relaxed);
    if (v == 0) ++missing;
    if (v > 1) ++duplicated;
    if (v != 1 && ++wrong <= 5) ADD_FAILURE() << "item " << i << " taken " << v << " times";
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(owner_taken + stolen, n);
  EXPECT_GT(stolen, 0u) << "the thieves never got anything: the test exercised no concurrency";
  EXPECT_GE(q.capacity(), 2);
  std::cout << "[ stats    ] items " << n << ", owner " << owner_taken << ", stolen " << stolen << ", lost races "
            << lost << ", peak size " << peak << ", final capacity " << q.capacity() << ", " << seconds << " s\n";
  EXPECT_LT(seconds, 240.0);
}

INSTANTIATE_TEST_SUITE_P(Thieves, DequeStressTest,
                         testing::Values(stress_case{1, 64, 10'000'000}, stress_case{3, 64, 10'000'000},
                                         stress_case{3, 4096, 4'000'000}),
                         [](const auto& info) {
                           return "thieves" + std::to_string(info.param.thieves) + "_burst" +
                                  std::to_string(info.param.max_burst);
                         });

}  // namespace
