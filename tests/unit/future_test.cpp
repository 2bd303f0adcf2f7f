// tests/unit/future_test.cpp: weft::future (future.hpp): its state table, timed waits from
// every kind of thread, value categories, and the inline/boxed task storage of submit().
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/task.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

static_assert(!std::is_copy_constructible_v<weft::future<int>> && !std::is_copy_assignable_v<weft::future<int>>);
static_assert(std::is_nothrow_move_constructible_v<weft::future<int>> &&
              std::is_nothrow_move_assignable_v<weft::future<int>>);

weft::pool_options workers(int n) {
  weft::pool_options o;
  o.workers = n;
  return o;
}

// A gate a task can block on; gives up after 10 s so that a scheduling bug fails the
// test instead of hanging it.
class bounded_gate {
 public:
  void open() { open_.store(true); }
  void wait() const {
    const auto deadline = clock_type::now() + 10s;
    while (!open_.load() && clock_type::now() < deadline) std::this_thread::sleep_for(100us);
  }

 private:
  std::atomic<bool> open_{false};
};

template <class F>
void expect_no_state(F&& call) {
  try {
    call();
    ADD_FAILURE() << "expected std::future_error";
  } catch (const std::future_error& e) {
    EXPECT_EQ(e.code(), std::make_error_code(std::future_errc::no_state));
  }
}

TEST(FutureTest, DefaultConstructedHasNoState) {
  weft::future<int> f;
  EXPECT_FALSE(f.valid());
  EXPECT_FALSE(f.ready());
  expect_no_state([&] { f.wait(); });
  expect_no_state([&] { (void)f.wait_for(1ms); });
  expect_no_state([&] { (void)f.wait_until(clock_type::now() + 1ms); });
  expect_no_state([&] { (void)f.get(); });
  weft::future<void> v;
  expect_no_state([&] { v.wait(); });
  expect_no_state([&] { v.get(); });
}

TEST(FutureTest, ValidAndReadyFollowTheTask) {
  weft::pool p(workers(1));
  std::latch gate(1);
  weft::future<int> f = p.submit([&] {
    gate.wait();
    return 9;
  });
  EXPECT_TRUE(f.valid());
  EXPECT_FALSE(f.ready());
  gate.count_down();
  f.wait();
  EXPECT_TRUE(f.ready());
  EXPECT_TRUE(f.valid());
  EXPECT_EQ(f.get(), 9);
  EXPECT_FALSE(f.valid());
  EXPECT_FALSE(f.ready());
}

TEST(FutureTest, GetTwiceThrowsFutureError) {
  weft::pool p(workers(1));
  weft::future<int> f = p.submit([] { return 1; });
  EXPECT_EQ(f.get(), 1);
  expect_no_state([&] { (void)f.get(); });
  expect_no_state([&] { f.wait(); });
  // Also after the value was an exception.
  weft::future<int> g = p.submit([]() -> int { throw std::runtime_error("x"); });
  EXPECT_THROW(g.get(), std::runtime_error);
  EXPECT_FALSE(g.valid());
  expect_no_state([&] { (void)g.get(); });
}

TEST(FutureTest, MovesTransferTheState) {
  weft::pool p(workers(1));
  weft::future<int> a = p.submit([] { return 5; });
  weft::future<int> b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  EXPECT_TRUE(b.valid());
  weft::future<int> c = p.submit([] { return 6; });
  c = std::move(b);  // drops c's own state; its task still runs harmlessly
  EXPECT_EQ(c.get(), 5);
  expect_no_state([&] { a.wait(); });
}

TEST(FutureTest, WaitForAReadyFutureReturnsReadyAtOnce) {
  weft::pool p(workers(1));
  weft::future<int> f = p.submit([] { return 1; });
  f.wait();
  EXPECT_EQ(f.wait_for(0ms), std::future_status::ready);
  EXPECT_EQ(f.wait_until(clock_type::now() - 1s), std::future_status::ready);
}

// Where the waiting thread runs: timed waits take different paths on a worker (help, then
// park with a deadline) and elsewhere (futex with a deadline).
enum class waiter { external_thread, worker_of_other_pool, worker_of_same_pool };

class TimedWaitTest : public testing::TestWithParam<waiter> {
 protected:
  // Runs fn on the chosen kind of thread and returns its result.
  template <class R>
  R on_waiter(weft::pool& same, const std::function<R()>& fn) {
    switch (GetParam()) {
      case waiter::external_thread: {
        R r{};
        std::thread t([&] { r = fn(); });
        t.join();
        return r;
      }
      case waiter::worker_of_other_pool: {
        weft::pool other(workers(1));
        return other.submit(fn).get();
      }
      case waiter::worker_of_same_pool:
        return same.submit(fn).get();
    }
    return R{};
  }
};

struct timed_outcome {
  std::future_status first = std::future_status::deferred;
  clock_type::duration waited{};
  std::future_status second = std::future_status::deferred;
};

TEST_P(TimedWaitTest, WaitForTimesOutThenBecomesReady) {
  weft::pool p(workers(2));  // one worker for the blocked task, one for a same-pool waiter
  bounded_gate g;
  weft::future<int> f = p.submit([&] {
    g.wait();
    return 3;
  });
  const timed_outcome out = on_waiter<timed_outcome>(p, [&] {
    timed_outcome o;
    const auto start = clock_type::now();
    o.first = f.wait_for(10ms);
    o.waited = clock_type::now() - start;
    g.open();
    o.second = f.wait_for(10s);
    return o;
  });
  EXPECT_EQ(out.first, std::future_status::timeout);
  EXPECT_GE(out.waited, 10ms) << "wait_for returned timeout early";
  EXPECT_LT(out.waited, 5s);
  EXPECT_EQ(out.second, std::future_status::ready);
  EXPECT_TRUE(f.ready());
  EXPECT_EQ(f.get(), 3);
}

TEST_P(TimedWaitTest, WaitUntilWithSystemClock) {
  weft::pool p(workers(2));
  bounded_gate g;
  weft::future<std::string> f = p.submit([&] {
    g.wait();
    return std::string("done");
  });
  const timed_outcome out = on_waiter<timed_outcome>(p, [&] {
    timed_outcome o;
    const auto start = clock_type::now();
    o.first = f.wait_until(std::chrono::system_clock::now() + 20ms);
    o.waited = clock_type::now() - start;
    EXPECT_EQ(f.wait_until(std::chrono::system_clock::now() - 1s), std::future_status::timeout)
        << "a deadline in the past on a pending future";
    g.open();
    o.second = f.wait_until(std::chrono::system_clock::now() + 10s);
    return o;
  });
  EXPECT_EQ(out.first, std::future_status::timeout);
  EXPECT_GE(out.waited, 15ms);  // system_clock and steady_clock may drift a little apart
  EXPECT_EQ(out.second, std::future_status::ready);
  EXPECT_EQ(f.get(), "done");
}

TEST_P(TimedWaitTest, UntimedWaitWakesWhenTheTaskFinishesLater) {
  weft::pool p(workers(2));
  weft::future<int> f = p.submit([] {
    std::this_thread::sleep_for(30ms);
    return 11;
  });
  EXPECT_EQ(on_waiter<int>(p, [&] { return f.get(); }), 11);
}

INSTANTIATE_TEST_SUITE_P(Waiters, TimedWaitTest,
                         testing::Values(waiter::external_thread, waiter::worker_of_other_pool, waiter::worker_of_same_pool),
                         [](const auto& info) {
                           switch (info.param) {
                             case waiter::external_thread: return std::string("external");
                             case waiter::worker_of_other_pool: return std::string("other_pool_worker");
                             case waiter::worker_of_same_pool: return std::string("same_pool_worker");
                           }
                           return std::string("unknown");
                         });

// Value categories a future must carry.
template <class T>
struct sample;
template <>
struct sample<std::string> {
  static std::string make() { return std::string(1 << 20, 'w') + "end"; }
  static bool check(const std::string& s) { return s.size() == (1u << 20) + 3 && s.back() == 'd' && s[12345] == 'w'; }
};
template <>
struct sample<std::vector<int>> {
  static std::vector<int> make() {
    std::vector<int> v(100'000);
    std::iota(v.begin(), v.end(), 0);
    return v;
  }
  static bool check(const std::vector<int>& v) { return v.size() == 100'000 && v[0] == 0 && v[99'999] == 99'999; }
};
template <>
struct sample<std::unique_ptr<int>> {
  static std::unique_ptr<int> make() { return std::make_unique<int>(77); }
  static bool check(const std::unique_ptr<int>& p) { return p && *p == 77; }
};
template <>
struct sample<std::array<double, 64>> {
  static std::array<double, 64> make() {
    std::array<double, 64> a{};
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.5 * static_cast<double>(i);
    return a;
  }
  static bool check(const std::array<double, 64>& a) { return a[63] == 31.5 && a[1] == 0.5; }
};

template <class T>
class FutureValueTest : public testing::Test {};
using value_types = testing::Types<std::string, std::vector<int>, std::unique_ptr<int>, std::array<double, 64>>;
TYPED_TEST_SUITE(FutureValueTest, value_types);

TYPED_TEST(FutureValueTest, CarriesTheValue) {
  weft::pool p(workers(2));
  weft::future<TypeParam> f = p.submit([] { return sample<TypeParam>::make(); });
  TypeParam v = f.get();
  EXPECT_TRUE(sample<TypeParam>::check(v));
}

TYPED_TEST(FutureValueTest, CarriesTheValueToANestedWaiter) {
  weft::pool p(workers(1));
  auto outer = p.submit([&p] { return sample<TypeParam>::check(p.submit([] { return sample<TypeParam>::make(); }).get()); });
  EXPECT_TRUE(outer.get());
}

// Counts the lives of a callable: how many instances that own the payload were destroyed
// (each move hands ownership on), and how many times it ran.
struct life_counts {
  std::atomic<int> owner_destroyed{0};
  std::atomic<int> runs{0};
};

template <std::size_t PayloadBytes, bool NothrowMove>
struct probe {
  std::shared_ptr<life_counts> counts;
  std::array<unsigned char, PayloadBytes> payload{};
  bool owns = true;

  explicit probe(std::shared_ptr<life_counts> c) : counts(std::move(c)) {
    for (std::size_t i = 0; i < PayloadBytes; ++i) payload[i] = static_cast<unsigned char>(i * 7);
  }
  probe(probe&& o) noexcept(NothrowMove) : counts(o.counts), payload(o.payload), owns(std::exchange(o.owns, false)) {}
  probe(const probe&) = delete;
  ~probe() {
    if (owns) counts->owner_destroyed.fetch_add(1);
  }
  unsigned operator()() {
    counts->runs.fetch_add(1);
    unsigned sum = 0;
    for (unsigned char c : payload) sum += c;
    return sum;
  }
  static unsigned expected_sum() {
    unsigned sum = 0;
    for (std::size_t i = 0; i < PayloadBytes; ++i) sum += static_cast<unsigned char>(i * 7);
    return sum;
  }
};

using small_probe = probe<16, true>;
using throwing_move_probe = probe<16, false>;
using big_probe = probe<512, true>;
// The storage path each probe takes inside submit's wrapper (which adds a shared_ptr).
static_assert(sizeof(small_probe) + 2 * sizeof(void*) <= weft::detail::task_inline_capacity, "inline path");
static_assert(sizeof(big_probe) > weft::detail::task_inline_capacity, "boxed path (too big)");

template <class P>
class CallableStorageTest : public testing::Test {};
using probes = testing::Types<small_probe, throwing_move_probe, big_probe>;
TYPED_TEST_SUITE(CallableStorageTest, probes);

TYPED_TEST(CallableStorageTest, SubmitRunsOnceAndDestroysOnce) {
  auto counts = std::make_shared<life_counts>();
  weft::pool p(workers(2));
  weft::future<unsigned> f = p.submit(TypeParam(counts));
  EXPECT_EQ(f.get(), TypeParam::expected_sum());
  p.close();  // the task block is released after the future is fulfilled
  EXPECT_EQ(counts->runs.load(), 1);
  EXPECT_EQ(counts->owner_destroyed.load(), 1);
}

TYPED_TEST(CallableStorageTest, PostRunsOnceAndDestroysOnce) {
  auto counts = std::make_shared<life_counts>();
  {
    weft::pool p(workers(2));
    for (int i = 0; i < 100; ++i) p.post(TypeParam(counts));
  }
  EXPECT_EQ(counts->runs.load(), 100);
  EXPECT_EQ(counts->owner_destroyed.load(), 100);
}

TEST(FutureTest, ExternalThreadsWaitOnManyFutures) {
  weft::pool p(workers(2));
  constexpr int threads = 4, per_thread = 2000;
  std::vector<long> sums(threads, 0);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::vector<weft::future<long>> fs;
      for (long i = 0; i < per_thread; ++i) fs.push_back(p.submit([i, t] { return i * (t + 1); }));
      // Wait in reverse order so that many waits find their future not ready yet.
      for (auto it = fs.rbegin(); it != fs.rend(); ++it) sums[static_cast<std::size_t>(t)] += it->get();
    });
  }
  for (auto& t : ts) t.join();
  for (long t = 0; t < threads; ++t) {
    EXPECT_EQ(sums[static_cast<std::size_t>(t)], (t + 1) * per_thread * (per_thread - 1) / 2) << "thread " << t;
  }
}

TEST(FutureTest, SeveralThreadsWaitOnOneFuture) {
  weft::pool p(workers(1));
  std::latch gate(1);
  weft::future<int> f = p.submit([&] {
    gate.wait();
    return 1;
  });
  std::atomic<int> woke{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      f.wait();
      woke.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(woke.load(), 0);
  gate.count_down();
  for (auto& t : ts) t.join();
  EXPECT_EQ(woke.load(), 4);
  EXPECT_EQ(f.get(), 1);
}

}  // namespace
