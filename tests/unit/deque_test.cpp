// tests/unit/deque_test.cpp: the Chase-Lev deque, single-threaded, against a sequential
// model (std::deque). Tiny initial capacities make growth and index wrap-around happen
// constantly; the concurrent behaviour is in tests/stress/deque_stress.cpp and tests/model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core/deque.hpp"

namespace {

using weft::detail::chase_lev_deque;
using weft::detail::deque_owner;
using weft::detail::deque_stealer;
using weft::detail::steal_result;
using deque_t = chase_lev_deque<std::int64_t>;
using owner_t = deque_owner<std::int64_t>;
using stealer_t = deque_stealer<std::int64_t>;

// Roles are types: a thief's handle cannot push or pop, the owner's handle cannot be copied.
template <class H>
concept can_push = requires(H h) { h.push(std::int64_t{1}); };
template <class H>
concept can_pop = requires(H h, std::int64_t& x) { h.pop(x); };
template <class H>
concept can_steal = requires(H h, std::int64_t& x) { h.steal(x); };
static_assert(can_push<owner_t> && can_pop<owner_t> && !can_steal<owner_t>);
static_assert(!can_push<stealer_t> && !can_pop<stealer_t> && can_steal<stealer_t>);
static_assert(!std::is_copy_constructible_v<owner_t> && std::is_move_constructible_v<owner_t>);
static_assert(std::is_copy_constructible_v<stealer_t>);

// Smallest capacity the deque can have after holding `peak` elements at once.
std::int64_t expected_capacity(std::int64_t initial, std::int64_t peak) {
  std::int64_t c = initial;
  while (c < peak) c *= 2;
  return c;
}

class DequeTest : public testing::TestWithParam<std::int64_t> {
 protected:
  std::int64_t initial() const { return GetParam(); }
};

TEST_P(DequeTest, NewDequeIsEmpty) {
  deque_t q(initial());
  owner_t owner(q);
  stealer_t thief(q);
  std::int64_t x = -1;
  EXPECT_EQ(q.capacity(), initial());
  EXPECT_EQ(owner.size_approx(), 0);
  EXPECT_EQ(thief.size_approx(), 0);
  EXPECT_FALSE(owner.pop(x));
  EXPECT_EQ(thief.steal(x), steal_result::empty);
  EXPECT_EQ(x, -1) << "a failed pop/steal must not write its output";
}

TEST_P(DequeTest, PopIsLifoStealIsFifo) {
  deque_t q(initial());
  owner_t owner(q);
  stealer_t thief(q);
  constexpr std::int64_t n = 100;
  for (std::int64_t i = 0; i < n; ++i) owner.push(i);
  EXPECT_EQ(owner.size_approx(), n);
  std::int64_t x = -1;
  // Steal the first half from the top in push order, pop the rest from the bottom in reverse.
  for (std::int64_t i = 0; i < n / 2; ++i) {
    ASSERT_EQ(thief.steal(x), steal_result::success);
    EXPECT_EQ(x, i);
  }
  for (std::int64_t i = n - 1; i >= n / 2; --i) {
    ASSERT_TRUE(owner.pop(x));
    EXPECT_EQ(x, i);
  }
  EXPECT_FALSE(owner.pop(x));
  EXPECT_EQ(thief.steal(x), steal_result::empty);
  EXPECT_EQ(owner.size_approx(), 0);
}

TEST_P(DequeTest, EmptyAfterDrainingEitherEnd) {
  deque_t q(initial());
  owner_t owner(q);
  stealer_t thief(q);
  std::int64_t x = 0;
  for (int round = 0; round < 10; ++round) {
    owner.push(round);
    ASSERT_EQ(thief.steal(x), steal_result::success);
    EXPECT_EQ(x, round);
    EXPECT_EQ(thief.steal(x), steal_result::empty);
    EXPECT_FALSE(owner.pop(x)) << "owner must see the deque the thief emptied as empty";
    owner.push(round + 100);
    ASSERT_TRUE(owner.pop(x));  // the last element, taken by the owner through the CAS path
    EXPECT_EQ(x, round + 100);
    EXPECT_EQ(thief.steal(x), steal_result::empty);
  }
}

TEST_P(DequeTest, CapacityGrowsByDoubling) {
  deque_t q(initial());
  owner_t owner(q);
  std::int64_t prev = q.capacity();
  for (std::int64_t i = 0; i < 5000; ++i) {
    owner.push(i);
    const std::int64_t cap = q.capacity();
    EXPECT_TRUE(cap == prev || cap == 2 * prev) << "capacity went from " << prev << " to " << cap;
    ASSERT_EQ(cap, expected_capacity(initial(), i + 1)) << "after " << i + 1 << " pushes";
    prev = cap;
  }
  // Growth preserved every element.
  std::int64_t x = 0;
  for (std::int64_t i = 4999; i >= 0; --i) {
    ASSERT_TRUE(owner.pop(x));
    ASSERT_EQ(x, i);
  }
  EXPECT_EQ(q.capacity(), prev) << "the deque never shrinks";
}

// Growth while the live elements straddle the end of the ring (top is not at slot 0).
TEST_P(DequeTest, GrowthWithWrappedIndices) {
  deque_t q(initial());
  owner_t owner(q);
  stealer_t thief(q);
  std::int64_t x = 0;
  std::int64_t next = 0, expect_front = 0;
  // Move top forward by an odd amount so the live range wraps around the ring.
  for (int i = 0; i < 3 * initial() + 1; ++i) {
    owner.push(next++);
    ASSERT_EQ(thief.steal(x), steal_result::success);
    ASSERT_EQ(x, expect_front++);
  }
  for (int i = 0; i < 4 * initial() + 3; ++i) owner.push(next++);  // grows at least twice
  EXPECT_GT(q.capacity(), initial());
  while (thief.steal(x) == steal_result::success) ASSERT_EQ(x, expect_front++);
  EXPECT_EQ(expect_front, next);
}

// Random push/pop/steal sequences against std::deque, with fixed seeds.
class DequeModelTest : public testing::TestWithParam<std::tuple<std::int64_t, unsigned>> {};

TEST_P(DequeModelTest, MatchesSequentialModel) {
  const auto [initial, seed] = GetParam();
  deque_t q(initial);
  owner_t owner(q);
  stealer_t thief(q);
  std::deque<std::int64_t> model;
  std::mt19937_64 rng(seed);
  std::int64_t next = 0, peak = 0;
  // Phases bias toward pushing or toward taking, so the size swings between 0 and a few
  // hundred and every growth step and the empty/last-element paths are hit many times.
  for (int phase = 0; phase < 40; ++phase) {
    const unsigned push_weight = (phase % 2 == 0) ? 6 : 2;
    for (int step = 0; step < 2000; ++step) {
      const unsigned op = static_cast<unsigned>(rng() % 10);
      std::int64_t x = -1;
      if (op < push_weight) {
        owner.push(next);
        model.push_back(next);
        ++next;
      } else if (op % 2 == 0) {
        const bool got = owner.pop(x);
        ASSERT_EQ(got, !model.empty()) << "pop at step " << step << " of phase " << phase;
        if (got) {
          ASSERT_EQ(x, model.back());
          model.pop_back();
        }
      } else {
        const steal_result r = thief.steal(x);
        ASSERT_NE(r, steal_result::lost_race) << "no concurrent thief exists to lose a race to";
        ASSERT_EQ(r == steal_result::success, !model.empty());
        if (r == steal_result::success) {
          ASSERT_EQ(x, model.front());
          model.pop_front();
        }
      }
      peak = std::max(peak, static_cast<std::int64_t>(model.size()));
      ASSERT_EQ(owner.size_approx(), static_cast<std::int64_t>(model.size()));
      ASSERT_EQ(thief.size_approx(), static_cast<std::int64_t>(model.size()));
    }
  }
  EXPECT_EQ(q.capacity(), expected_capacity(initial, peak)) << "peak size " << peak;
  // Drain what is left through both ends, alternating.
  std::int64_t x = 0;
  bool from_top = true;
  while (!model.empty()) {
    if (from_top) {
      ASSERT_EQ(thief.steal(x), steal_result::success);
      ASSERT_EQ(x, model.front());
      model.pop_front();
    } else {
      ASSERT_TRUE(owner.pop(x));
      ASSERT_EQ(x, model.back());
      model.pop_back();
    }
    from_top = !from_top;
  }
  EXPECT_FALSE(owner.pop(x));
  EXPECT_EQ(thief.steal(x), steal_result::empty);
}

// Pointers are what the pool stores; the deque must carry them unchanged.
TEST(DequePointerTest, CarriesPointers) {
  chase_lev_deque<int*> q(2);
  deque_owner<int*> owner(q);
  deque_stealer<int*> thief(q);
  int cells[64] = {};
  for (int& c : cells) owner.push(&c);
  int* p = nullptr;
  ASSERT_EQ(thief.steal(p), steal_result::success);
  EXPECT_EQ(p, &cells[0]);
  ASSERT_TRUE(owner.pop(p));
  EXPECT_EQ(p, &cells[63]);
}

// A moved owner handle keeps working on the same deque; the moved-from one is detached.
TEST(DequeHandleTest, OwnerHandleMoves) {
  deque_t q(2);
  owner_t a(q);
  a.push(7);
  owner_t b(std::move(a));
  b.push(8);
  std::int64_t x = 0;
  ASSERT_TRUE(b.pop(x));
  EXPECT_EQ(x, 8);
  ASSERT_TRUE(b.pop(x));
  EXPECT_EQ(x, 7);
}

INSTANTIATE_TEST_SUITE_P(Capacities, DequeTest, testing::Values<std::int64_t>(2, 4, 1024),
                         [](const auto& info) { return "cap" + std::to_string(info.param); });

INSTANTIATE_TEST_SUITE_P(CapacitiesAndSeeds, DequeModelTest,
                         testing::Combine(testing::Values<std::int64_t>(2, 4, 1024), testing::Values(1u, 42u, 20240601u)),
                         [](const auto& info) {
                           return "cap" + std::to_string(std::get<0>(info.param)) + "_seed" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
