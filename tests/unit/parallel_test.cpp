// tests/unit/parallel_test.cpp: weft::parallel_for, parallel_reduce, parallel_invoke
// (parallel.hpp): every index exactly once over sizes x grains x pool sizes, both body forms,
// every internal splitting strategy, index types, nesting (a pool of one worker included),
// calls from outside and from inside tasks, exceptions, invalid arguments.
#include "weft/parallel.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "weft/weft.hpp"

namespace {

constexpr long kDefaultGrain = 0;  // parameter value meaning "the overload without a grain"

weft::pool_options workers(int n) {
  weft::pool_options o;
  o.workers = n;
  o.deque_capacity = 2;  // tiny: the deques grow while the tests run
  return o;
}

// One counter per index. An index run twice (or never) shows as a count other than 1.
class hit_counter {
 public:
  explicit hit_counter(std::size_t n) : hits_(std::make_unique<std::atomic<int>[]>(n)), n_(n) {}
  void hit(std::size_t i) { hits_[i].fetch_add(1, std::memory_order_relaxed); }
  int at(std::size_t i) const { return hits_[i].load(std::memory_order_relaxed); }
  // The indices whose count differs from `want`, as text (at most a few), or "".
  std::string wrong(int want) const {
    std::string out;
    int shown = 0;
    for (std::size_t i = 0; i < n_; ++i) {
      if (at(i) == want) continue;
      if (++shown > 5) return out + " ...";
      out += " [" + std::to_string(i) + "]=" + std::to_string(at(i));
    }
    return out;
  }

 private:
  std::unique_ptr<std::atomic<int>[]> hits_;
  std::size_t n_;
};

enum class where { outside, inside };

void PrintTo(where w, std::ostream* os) { *os << (w == where::outside ? "outside" : "inside"); }

// Runs body from the chosen side: the test thread, or a task on p.
void on_side(weft::pool& p, where w, const std::function<void()>& body) {
  if (w == where::outside)
    body();
  else
    p.submit(body).get();
}

// Pool size x calling side, the parameters of most suites below.
using pool_side = std::tuple<int, where>;
const auto pool_sides = testing::Combine(testing::Values(1, 2, 4), testing::Values(where::outside, where::inside));

std::string pool_side_name(const testing::TestParamInfo<pool_side>& info) {
  return "workers" + std::to_string(std::get<0>(info.param)) +
         (std::get<1>(info.param) == where::outside ? "_outside" : "_inside");
}

// ---- coverage: sizes x grains x pool sizes ---------------------------------------------

using coverage_param = std::tuple<std::size_t, long, int, where>;

class ParallelForCoverage : public testing::TestWithParam<coverage_param> {
 protected:
  std::size_t size() const { return std::get<0>(GetParam()); }
  long grain() const { return std::get<1>(GetParam()); }
  int pool_size() const { return std::get<2>(GetParam()); }
  where side() const { return std::get<3>(GetParam()); }
};

TEST_P(ParallelForCoverage, EveryIndexExactlyOnce) {
  weft::pool p(workers(pool_size()));
  hit_counter hits(size());
  std::atomic<int> off_pool{0};
  auto body = [&](std::size_t i) {
    if (p.current_worker_index() < 0) off_pool.fetch_add(1, std::memory_order_relaxed);
    hits.hit(i);
  };
  on_side(p, side(), [&] {
    if (grain() == kDefaultGrain)
      weft::parallel_for(p, std::size_t{0}, size(), body);
    else
      weft::parallel_for(p, std::size_t{0}, size(), grain(), body);
  });
  EXPECT_EQ(hits.wrong(1), "");
  EXPECT_EQ(off_pool.load(), 0) << "the body ran on a thread that is not one of the pool's workers";
}

TEST_P(ParallelForCoverage, ChunkFormCoversTheRangeInChunksOfAtMostGrain) {
  weft::pool p(workers(pool_size()));
  hit_counter hits(size());
  std::atomic<int> bad_chunks{0};
  std::atomic<std::size_t> largest{0};
  auto body = [&](std::size_t lo, std::size_t hi) {
    if (lo >= hi || hi > size()) bad_chunks.fetch_add(1);
    std::size_t seen = largest.load();
    while (hi - lo > seen && !largest.compare_exchange_weak(seen, hi - lo)) {
    }
    for (std::size_t i = lo; i < hi; ++i) hits.hit(i);
  };
  on_side(p, side(), [&] {
    if (grain() == kDefaultGrain)
      weft::parallel_for(p, std::size_t{0}, size(), body);
    else
      weft::parallel_for(p, std::size_t{0}, size(), grain(), body);
  });
  EXPECT_EQ(hits.wrong(1), "");
  EXPECT_EQ(bad_chunks.load(), 0);
  const std::size_t limit = grain() == kDefaultGrain
                                ? weft::detail::default_grain<std::size_t>(size(), static_cast<unsigned>(pool_size()))
                                : static_cast<std::size_t>(grain());
  EXPECT_LE(largest.load(), limit);
  if (grain() == kDefaultGrain && size() >= 1000) {
    EXPECT_LE(largest.load(), size() / 8) << "the default grain should give each worker several pieces";
  }
}

TEST_P(ParallelForCoverage, ReduceMatchesAccumulate) {
  weft::pool p(workers(pool_size()));
  std::vector<std::uint64_t> v(size());
  std::iota(v.begin(), v.end(), std::uint64_t{1});
  for (auto& x : v) x = x * x % 1000003;
  const std::uint64_t want = std::accumulate(v.begin(), v.end(), std::uint64_t{7});
  std::uint64_t got = 0;
  auto map = [&](std::size_t i) { return v[i]; };
  on_side(p, side(), [&] {
    got = grain() == kDefaultGrain
              ? weft::parallel_reduce(p, std::size_t{0}, size(), std::uint64_t{0}, map, std::plus<>{})
              : weft::parallel_reduce(p, std::size_t{0}, size(), grain(), std::uint64_t{0}, map, std::plus<>{});
  });
  EXPECT_EQ(got + 7, want);
}

std::string coverage_name(const testing::TestParamInfo<coverage_param>& info) {
  const long g = std::get<1>(info.param);
  return "n" + std::to_string(std::get<0>(info.param)) + "_grain" +
         (g == kDefaultGrain ? "Default" : std::to_string(g)) + "_workers" + std::to_string(std::get<2>(info.param)) +
         (std::get<3>(info.param) == where::outside ? "_outside" : "_inside");
}

INSTANTIATE_TEST_SUITE_P(SizesGrainsPools, ParallelForCoverage,
                         testing::Combine(testing::Values<std::size_t>(0, 1, 2, 7, 1000, std::size_t{1} << 20),
                                          testing::Values(1L, 7L, kDefaultGrain), testing::Values(1, 2, 4),
                                          testing::Values(where::outside, where::inside)),
                         coverage_name);

// ---- every internal splitting strategy --------------------------------------------------

using strategy_param = std::tuple<weft::detail::split, long, int>;

class SplitStrategy : public testing::TestWithParam<strategy_param> {};

TEST_P(SplitStrategy, EveryIndexExactlyOnceFromBothSides) {
  const auto [how, grain, n_workers] = GetParam();
  weft::pool p(workers(n_workers));
  constexpr long kFirst = -50000;  // a signed range across zero
  constexpr long kLast = 70001;
  for (where w : {where::outside, where::inside}) {
    hit_counter hits(kLast - kFirst);
    on_side(p, w, [&, how = how, grain = grain] {
      weft::detail::parallel_for_impl<long>(p, how, kFirst, kLast - kFirst, grain,
                                            [&](long i) { hits.hit(static_cast<std::size_t>(i - kFirst)); });
    });
    EXPECT_EQ(hits.wrong(1), "") << (w == where::outside ? "outside" : "inside");
  }
}

TEST_P(SplitStrategy, StopsAfterTheFirstException) {
  const auto [how, grain, n_workers] = GetParam();
  weft::pool p(workers(n_workers));
  constexpr long kN = 200000;
  hit_counter hits(kN);
  try {
    weft::detail::parallel_for_impl<long>(p, how, 0L, kN, grain, [&](long i) {
      hits.hit(static_cast<std::size_t>(i));
      if (i == kN / 3) throw std::runtime_error("index " + std::to_string(i));
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "index " + std::to_string(kN / 3));
  }
  EXPECT_EQ(hits.at(kN / 3), 1);
  EXPECT_EQ(hits.wrong(1).find("=2"), std::string::npos) << "an index ran twice:" << hits.wrong(1);
  if (n_workers == 1) {
    // One worker runs the pieces in index order (it pops its own deque LIFO and every
    // strategy pushes the far end first): exactly the indices up to the failing one ran.
    std::size_t ran = 0;
    for (std::size_t i = 0; i < kN; ++i) ran += static_cast<std::size_t>(hits.at(i));
    EXPECT_EQ(ran, std::size_t{kN / 3 + 1}) << "pieces after the failure were not skipped";
  }
}

std::string strategy_name(const testing::TestParamInfo<strategy_param>& info) {
  static const char* const names[] = {"demand", "halving", "flat"};
  return std::string(names[static_cast<int>(std::get<0>(info.param))]) + "_grain" +
         std::to_string(std::get<1>(info.param)) + "_workers" + std::to_string(std::get<2>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Strategies, SplitStrategy,
                         testing::Combine(testing::Values(weft::detail::split::demand, weft::detail::split::halving,
                                                          weft::detail::split::flat),
                                          testing::Values(1L, 7L, 1000L), testing::Values(1, 2, 4)),
                         strategy_name);

// ---- index types ------------------------------------------------------------------------

template <class T>
class IndexTypes : public testing::Test {};
using index_types = testing::Types<signed char, unsigned char, short, unsigned short, int, unsigned, long long,
                                   unsigned long long, char>;
TYPED_TEST_SUITE(IndexTypes, index_types);

// The last 100 values of the type (its top end: no overflow at last == max).
TYPED_TEST(IndexTypes, TopOfTheRangeSumsExactly) {
  using T = TypeParam;
  weft::pool p(workers(2));
  const T last = std::numeric_limits<T>::max();
  const T first = static_cast<T>(last - 100);
  std::atomic<long long> sum{0};
  std::atomic<int> calls{0};
  weft::parallel_for(p, first, last, 3, [&](T i) {
    static_assert(std::is_same_v<decltype(i), T>);
    sum.fetch_add(static_cast<long long>(i) - static_cast<long long>(first));
    calls.fetch_add(1);
  });
  EXPECT_EQ(calls.load(), 100);
  EXPECT_EQ(sum.load(), 99 * 100 / 2);
  const long long r = weft::parallel_reduce(
      p, first, last, 5, 0LL, [&](T i) { return static_cast<long long>(i - first); }, std::plus<>{});
  EXPECT_EQ(r, 99 * 100 / 2);
}

TEST(ParallelFor, WholeRangeOfASignedType) {
  weft::pool p(workers(2));
  hit_counter hits(65536);
  weft::parallel_for(p, std::numeric_limits<short>::min(), std::numeric_limits<short>::max(),
                     [&](short i) { hits.hit(static_cast<std::size_t>(i + 32768)); });
  for (std::size_t i = 0; i < 65535; ++i) ASSERT_EQ(hits.at(i), 1) << i;
  EXPECT_EQ(hits.at(65535), 0) << "last is excluded";
}

TEST(ParallelFor, MixedIndexTypesUseTheCommonType) {
  weft::pool p(workers(2));
  const std::vector<int> v(1000, 1);
  std::atomic<int> sum{0};
  weft::parallel_for(p, 0, v.size(), [&](auto i) {
    static_assert(std::is_same_v<decltype(i), std::size_t>);
    sum.fetch_add(v[i]);
  });
  EXPECT_EQ(sum.load(), 1000);
}

// ---- invalid arguments ------------------------------------------------------------------

// Runs call, expects std::invalid_argument whose message contains `word`.
template <class Call>
void expect_invalid(Call call, const std::string& word) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one naming " << word;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
  }
}

TEST(ParallelFor, InvalidArgumentsThrowBeforeAnythingRuns) {
  weft::pool p(workers(2));
  std::atomic<int> calls{0};
  auto body = [&](long) { calls.fetch_add(1); };
  expect_invalid([&] { weft::parallel_for(p, 0L, 10L, 0, body); }, "grain");
  expect_invalid([&] { weft::parallel_for(p, 0L, 10L, -3, body); }, "grain");
  expect_invalid([&] { weft::parallel_for(p, 0L, 10L, std::numeric_limits<long long>::min(), body); }, "grain");
  expect_invalid([&] { weft::parallel_for(p, 10L, 0L, body); }, "first");
  expect_invalid([&] { weft::parallel_for(p, -1, std::size_t{5}, [](std::size_t) {}); }, "first");
  expect_invalid(
      [&] {
        weft::parallel_reduce(
            p, 0, 10, 0, 0, [](int i) { return i; }, std::plus<>{});
      },
      "grain");
  expect_invalid(
      [&] {
        weft::parallel_reduce(
            p, 3, 2, 0, [](int i) { return i; }, std::plus<>{});
      },
      "first");
  EXPECT_EQ(calls.load(), 0);
}

TEST(ParallelFor, EmptyRangeRunsNothingEvenWithAHugeGrain) {
  weft::pool p(workers(1));
  weft::parallel_for(p, 5, 5, [](int) { ADD_FAILURE(); });
  weft::parallel_for(p, 5, 5, std::numeric_limits<unsigned long long>::max(), [](int) { ADD_FAILURE(); });
  EXPECT_EQ(weft::parallel_reduce(
                p, 5, 5, 42, [](int) { return 1; }, std::plus<>{}),
            42);
}

// ---- nesting ----------------------------------------------------------------------------

class Nesting : public testing::TestWithParam<pool_side> {};

TEST_P(Nesting, ParallelForInsideParallelForCoversTheProduct) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  constexpr int kOuter = 64;
  constexpr int kInner = 1000;
  hit_counter hits(kOuter * kInner);
  on_side(p, side, [&] {
    weft::parallel_for(p, 0, kOuter, 1, [&](int i) {
      EXPECT_GE(p.current_worker_index(), 0);
      weft::parallel_for(p, 0, kInner, [&](int j) { hits.hit(static_cast<std::size_t>(i * kInner + j)); });
    });
  });
  EXPECT_EQ(hits.wrong(1), "");
}

TEST_P(Nesting, ThreeLevelsOfReduceInsideForInsideInvoke) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  std::atomic<long> total{0};
  auto level = [&] {
    weft::parallel_for(p, 0, 16, 1, [&](int) {
      total.fetch_add(weft::parallel_reduce(
          p, 0L, 500L, 1L, 0L, [](long j) { return j; }, std::plus<>{}));
    });
  };
  on_side(p, side, [&] { weft::parallel_invoke(p, level, level, level); });
  EXPECT_EQ(total.load(), 3L * 16 * (499 * 500 / 2));
}

INSTANTIATE_TEST_SUITE_P(Pools, Nesting, pool_sides, pool_side_name);

TEST(ParallelFor, FromAWorkerTheCallerRunsAPieceItself) {
  weft::pool p(workers(2));
  std::atomic<int> by_caller{0};
  p.submit([&] {
     const int me = p.current_worker_index();
     weft::parallel_for(p, 0, 1000, 10, [&](int) {
       if (p.current_worker_index() == me) by_caller.fetch_add(1);
     });
   }).get();
  EXPECT_GT(by_caller.load(), 0);
}

TEST(ParallelFor, FromAWorkerOfAnotherPoolTheWorkRunsOnTheTargetPool) {
  weft::pool a(workers(1));
  weft::pool b(workers(2));
  std::atomic<int> off_b{0};
  a.submit([&] {
     weft::parallel_for(b, 0, 10000, 10, [&](int) {
       if (b.current_worker_index() < 0) off_b.fetch_add(1);
     });
   }).get();
  EXPECT_EQ(off_b.load(), 0);
}

// ---- exceptions -------------------------------------------------------------------------

class Exceptions : public testing::TestWithParam<pool_side> {};

TEST_P(Exceptions, OneThrowingIndexReachesTheCallerAndNoIndexRunsTwice) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  constexpr int kN = 100000;
  for (int bad : {0, kN / 2, kN - 1}) {
    hit_counter hits(kN);
    bool caught = false;
    on_side(p, side, [&] {
      try {
        weft::parallel_for(p, 0, kN, 16, [&](int i) {
          hits.hit(static_cast<std::size_t>(i));
          if (i == bad) throw std::out_of_range("bad " + std::to_string(i));
        });
      } catch (const std::out_of_range& e) {
        caught = std::string(e.what()) == "bad " + std::to_string(bad);
      }
    });
    EXPECT_TRUE(caught) << bad;
    EXPECT_EQ(hits.at(static_cast<std::size_t>(bad)), 1);
    EXPECT_EQ(hits.wrong(1).find("=2"), std::string::npos) << hits.wrong(1);
  }
}

TEST_P(Exceptions, TheCallerGetsItOnlyAfterEveryPieceFinished) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  std::atomic<int> running{0};
  std::atomic<int> running_at_throw_out{-1};
  on_side(p, side, [&] {
    try {
      weft::parallel_for(p, 0, 64, 1, [&](int i) {
        running.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(i == 0 ? 0 : 2));
        running.fetch_sub(1);
        if (i == 0) throw std::runtime_error("first");
      });
    } catch (const std::runtime_error&) {
      running_at_throw_out.store(running.load());
    }
  });
  EXPECT_EQ(running_at_throw_out.load(), 0);
}

TEST_P(Exceptions, EveryIndexThrowingStopsTheLoopEarly) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  std::atomic<int> thrown{0};
  on_side(p, side, [&] {
    EXPECT_THROW(weft::parallel_for(p, 0, 10000, 1,
                                    [&](int) {
                                      thrown.fetch_add(1);
                                      throw 17;
                                    }),
                 int);
  });
  EXPECT_GE(thrown.load(), 1);
  // Pieces already running when the first failure lands may still throw; no new ones start.
  EXPECT_LE(thrown.load(), 16 * n_workers) << "splitting and spawning should stop after the first failure";
}

TEST_P(Exceptions, ReduceMapOrCombineThrowing) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  on_side(p, side, [&] {
    EXPECT_THROW(weft::parallel_reduce(
                     p, 0, 100000, 0L,
                     [](int i) -> long {
                       if (i == 77777) throw std::length_error("map");
                       return i;
                     },
                     std::plus<>{}),
                 std::length_error);
    EXPECT_THROW(weft::parallel_reduce(
                     p, 0, 100000, 10, 0L, [](int i) -> long { return i; },
                     [](long a, long b) -> long {
                       if (a + b > 4000000000L) throw std::overflow_error("combine");
                       return a + b;
                     }),
                 std::overflow_error);
  });
}

INSTANTIATE_TEST_SUITE_P(Pools, Exceptions, pool_sides, pool_side_name);

// ---- parallel_reduce --------------------------------------------------------------------

TEST(ParallelReduce, CombinesInIndexOrderSoOnlyAssociativityIsNeeded) {
  weft::pool p(workers(4));
  // String concatenation: associative, not commutative.
  std::string want;
  for (int i = 0; i < 2000; ++i) want += static_cast<char>('a' + i % 26);
  for (long grain : {1L, 3L, 64L, 5000L}) {
    const std::string got = weft::parallel_reduce(
        p, 0, 2000, grain, std::string(), [](int i) { return std::string(1, static_cast<char>('a' + i % 26)); },
        [](std::string a, std::string b) { return a + b; });
    EXPECT_EQ(got, want) << "grain " << grain;
  }
}

TEST(ParallelReduce, FloatingPointSumIsDeterministicForAGrain) {
  std::vector<double> v(1 << 18);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1.0 / static_cast<double>(i + 1) * ((i % 3 == 0) ? -1e8 : 1.0);
  auto sum = [&](weft::pool& p) {
    return weft::parallel_reduce(
        p, std::size_t{0}, v.size(), 1000, 0.0, [&](std::size_t i) { return v[i]; }, std::plus<>{});
  };
  weft::pool p1(workers(1));
  weft::pool p4(workers(4));
  const double first = sum(p1);
  for (int r = 0; r < 20; ++r) {
    // Bitwise equal, whatever the pool size or the timing.
    EXPECT_EQ(sum(p4), first);
    EXPECT_EQ(sum(p1), first);
  }
}

TEST(ParallelReduce, MoveOnlyAndNonDefaultConstructibleResults) {
  struct total {
    explicit total(long v) : value(std::make_unique<long>(v)) {}
    std::unique_ptr<long> value;
  };
  weft::pool p(workers(2));
  // identity is copied per piece: use a copyable wrapper around the move-only part.
  struct box {
    explicit box(long v) : t(v) {}
    box(const box& o) : t(*o.t.value) {}
    box(box&&) noexcept = default;
    box& operator=(box&&) noexcept = default;
    total t;
  };
  const box r = weft::parallel_reduce(
      p, 0, 10000, 7, box(0), [](int i) { return box(i); }, [](box a, box b) { return box(*a.t.value + *b.t.value); });
  EXPECT_EQ(*r.t.value, 9999L * 10000 / 2);
}

// ---- parallel_invoke --------------------------------------------------------------------

template <std::size_t... I>
void invoke_n(weft::pool& p, std::vector<std::atomic<int>>& ran, std::index_sequence<I...>) {
  weft::parallel_invoke(p, [&ran] { ran[I].fetch_add(1); }...);
}

class Invoke : public testing::TestWithParam<pool_side> {};

TEST_P(Invoke, OneToFiveCallablesEachRunOnce) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  std::vector<std::atomic<int>> ran(5);
  on_side(p, side, [&] {
    invoke_n(p, ran, std::make_index_sequence<1>{});
    invoke_n(p, ran, std::make_index_sequence<2>{});
    invoke_n(p, ran, std::make_index_sequence<3>{});
    invoke_n(p, ran, std::make_index_sequence<4>{});
    invoke_n(p, ran, std::make_index_sequence<5>{});
  });
  const int want[] = {5, 4, 3, 2, 1};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ran[static_cast<std::size_t>(i)].load(), want[i]) << i;
}

TEST_P(Invoke, FirstExceptionAfterAllFinished) {
  const auto [n_workers, side] = GetParam();
  weft::pool p(workers(n_workers));
  std::atomic<int> running{0};
  auto slow = [&] {
    running.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    running.fetch_sub(1);
  };
  on_side(p, side, [&] {
    try {
      weft::parallel_invoke(
          p, slow, [] { throw std::domain_error("middle"); }, slow, slow);
      ADD_FAILURE() << "no exception";
    } catch (const std::domain_error& e) {
      EXPECT_STREQ(e.what(), "middle");
      EXPECT_EQ(running.load(), 0) << "rethrown while a sibling was still running";
    }
  });
}

TEST(ParallelInvoke, TheLastRunsOnTheCallingWorkerAndNothingOnAnOutsideCaller) {
  weft::pool p(workers(2));
  int last_on = -2;
  int caller = -3;
  p.submit([&] {
     caller = p.current_worker_index();
     weft::parallel_invoke(
         p, [] {}, [] {}, [&] { last_on = p.current_worker_index(); });
   }).get();
  EXPECT_EQ(last_on, caller);
  std::atomic<int> off_pool{0};
  auto probe = [&] {
    if (p.current_worker_index() < 0) off_pool.fetch_add(1);
  };
  weft::parallel_invoke(p, probe, probe, probe);
  EXPECT_EQ(off_pool.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Pools, Invoke, pool_sides, pool_side_name);

// ---- pools that cannot take the work ----------------------------------------------------

TEST(ParallelFor, FromOutsideAClosedPoolThrowsPoolClosedAndRunsNothing) {
  weft::pool p(workers(2));
  p.close();
  std::atomic<int> calls{0};
  EXPECT_THROW(weft::parallel_for(p, 0, 100, [&](int) { calls.fetch_add(1); }), weft::pool_closed);
  EXPECT_THROW(weft::parallel_invoke(p, [&] { calls.fetch_add(1); }), weft::pool_closed);
  EXPECT_THROW(weft::parallel_reduce(
                   p, 0, 100, 0, [](int i) { return i; }, std::plus<>{}),
               weft::pool_closed);
  EXPECT_EQ(calls.load(), 0);
}

TEST(ParallelFor, CancellingAnEnclosingGroupSkipsWhatHasNotStarted) {
  weft::pool p(workers(2));
  constexpr int kN = 20000;
  std::atomic<int> ran{0};
  std::atomic<bool> returned{false};
  weft::task_group g(p);
  g.run([&] {
    weft::parallel_for(p, 0, kN, 1, [&](int) {
      ran.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    });
    returned.store(true);
  });
  while (ran.load() == 0) std::this_thread::yield();
  g.cancel();
  EXPECT_EQ(g.wait(), weft::group_status::cancelled);
  EXPECT_TRUE(returned.load()) << "parallel_for returns normally when cancelled";
  EXPECT_LT(ran.load(), kN / 2) << "pieces kept running after the cancellation";
}

TEST(ParallelFor, OneWorkerDeepNestingDoesNotDeadlock) {
  weft::pool p(workers(1));
  std::function<long(int)> tree = [&](int depth) -> long {
    if (depth == 0) return 1;
    return weft::parallel_reduce(
        p, 0, 3, 1, 0L, [&](int) { return tree(depth - 1); }, std::plus<>{});
  };
  std::atomic<long> leaves{0};
  weft::parallel_for(p, 0, 4, 1, [&](int) { leaves.fetch_add(tree(6)); });
  EXPECT_EQ(leaves.load(), 4 * 729);
}

}  // namespace
