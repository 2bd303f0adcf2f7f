// weft::pipeline: order of serial_in_order stages under random delays, the token bound on
// live items with a slow last stage, serial stages really serial, exceptions (first wins,
// the rest cancelled), cancellation by token, and a run from inside a task. Scenarios run
// under tests/watchdog.hpp (fail, never hang).
#include "weft/pipeline.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weft/pool.hpp"
#include "watchdog.hpp"

using namespace std::chrono_literals;

namespace {

weft::pool_options workers(unsigned n) {
  weft::pool_options o;
  o.workers = n;
  return o;
}

constexpr auto kLimit = std::chrono::seconds(60);

void random_delay(int x, int max_us) {
  std::minstd_rand rng(static_cast<unsigned>(x + 1) * 2654435761u);
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % static_cast<unsigned>(max_us)));
}

// Counts items alive: made by the source, destroyed after the last stage (or when dropped).
struct tracked {
  static std::atomic<int> live;
  static std::atomic<int> peak;
  int value;
  bool owns = true;  // a moved-from object no longer counts: live counts items, not objects
  explicit tracked(int v) : value(v) { note(live.fetch_add(1) + 1); }
  tracked(tracked&& o) noexcept : value(o.value), owns(o.owns) { o.owns = false; }
  tracked(const tracked&) = delete;
  tracked& operator=(tracked&&) = delete;
  ~tracked() {
    if (owns) live.fetch_sub(1);
  }
  static void note(int now) {
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
};
std::atomic<int> tracked::live{0};
std::atomic<int> tracked::peak{0};

TEST(Pipeline, SerialInOrderOutputEqualsInputOrder) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(4));
    constexpr int n = 400;
    int next = 0;
    std::vector<int> out;
    auto status = weft::make_pipeline([&]() -> std::optional<int> {
                    if (next == n) return std::nullopt;
                    return next++;
                  })
                      .then(weft::stage_mode::parallel, [](int x) {
                        random_delay(x, 300);
                        return x * 2;
                      })
                      .then(weft::stage_mode::serial_any_order, [](int x) { return x + 1; })
                      .then(weft::stage_mode::parallel, [](int x) {
                        random_delay(x * 7, 200);
                        return x;
                      })
                      .then(weft::stage_mode::serial_in_order, [&](int x) { out.push_back(x); })
                      .run(pool, {.max_tokens = 8});
    WEFT_CHILD_CHECK(status == weft::pipeline_status::completed);
    WEFT_CHILD_CHECK(out.size() == static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) WEFT_CHILD_CHECK(out[static_cast<std::size_t>(i)] == 2 * i + 1);
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// Serial stages run one call at a time (any order and in order alike).
TEST(Pipeline, SerialStagesAreNeverConcurrent) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(4));
    int next = 0;
    std::atomic<int> inside_any{0}, inside_ordered{0};
    std::atomic<bool> overlap{false};
    auto enter = [&](std::atomic<int>& c) {
      if (c.fetch_add(1) != 0) overlap.store(true);
      std::this_thread::sleep_for(50us);
      c.fetch_sub(1);
    };
    long sum = 0;
    weft::make_pipeline([&]() -> std::optional<int> { return next < 200 ? std::optional<int>(next++) : std::nullopt; })
        .then(weft::stage_mode::serial_any_order, [&](int x) {
          enter(inside_any);
          return x;
        })
        .then(weft::stage_mode::parallel, [](int x) { return x; })
        .then(weft::stage_mode::serial_in_order, [&](int x) {
          enter(inside_ordered);
          sum += x;
        })
        .run(pool, {.max_tokens = 6});
    WEFT_CHILD_CHECK(!overlap.load());
    WEFT_CHILD_CHECK(sum == 199L * 200 / 2);
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// A slow last stage: the source is held back so that live items never exceed the tokens.
TEST(Pipeline, SlowLastStageKeepsLiveItemsWithinTheTokenLimit) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(4));
    constexpr int tokens = 5;
    int next = 0;
    int consumed = 0;
    tracked::live.store(0);
    tracked::peak.store(0);
    weft::make_pipeline([&]() -> std::optional<tracked> {
      if (next == 300) return std::nullopt;
      return tracked(next++);
    })
        .then(weft::stage_mode::parallel, [](tracked t) { return t; })
        .then(weft::stage_mode::serial_in_order, [&](tracked t) {
          std::this_thread::sleep_for(200us);
          WEFT_CHILD_CHECK(t.value == consumed);
          ++consumed;
        })
        .run(pool, {.max_tokens = tokens});
    WEFT_CHILD_CHECK(consumed == 300);
    WEFT_CHILD_CHECK(tracked::live.load() == 0);
    WEFT_CHILD_CHECK(tracked::peak.load() <= tokens);
    WEFT_CHILD_CHECK(tracked::peak.load() >= 2);  // the bound was approached, not trivially met
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// The same bound counted by the stages themselves: items started by the source and not yet
// finished by the sink.
TEST(Pipeline, ItemsInFlightNeverExceedTokens) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(4));
    constexpr int tokens = 3;
    std::atomic<int> in_flight{0}, worst{0};
    int next = 0;
    weft::make_pipeline([&]() -> std::optional<int> {
      if (next == 200) return std::nullopt;
      const int now = in_flight.fetch_add(1) + 1;
      int w = worst.load();
      while (now > w && !worst.compare_exchange_weak(w, now)) {
      }
      return next++;
    })
        .then(weft::stage_mode::parallel, [](int x) { return x; })
        .then(weft::stage_mode::serial_any_order, [&](int) {
          std::this_thread::sleep_for(100us);
          in_flight.fetch_sub(1);
        })
        .run(pool, {.max_tokens = tokens});
    WEFT_CHILD_CHECK(worst.load() <= tokens);
    WEFT_CHILD_CHECK(worst.load() >= 2);  // and there was overlap at all
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Pipeline, FirstExceptionWinsAndCancelsTheRest) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(4));
    int next = 0;
    std::atomic<int> sunk{0};
    try {
      weft::make_pipeline([&]() -> std::optional<int> { return next < 100000 ? std::optional<int>(next++) : std::nullopt; })
          .then(weft::stage_mode::parallel, [](int x, std::stop_token st) {
            if (x == 50) throw std::runtime_error("fifty");
            if (x > 50) {
              while (!st.stop_requested()) std::this_thread::sleep_for(100us);
              throw std::runtime_error("later");  // loses: the first one wins
            }
            return x;
          })
          .then(weft::stage_mode::serial_in_order, [&](int) { sunk.fetch_add(1); })
          .run(pool, {.max_tokens = 8});
      WEFT_CHILD_CHECK(!"no exception");
    } catch (const std::runtime_error& e) {
      WEFT_CHILD_CHECK(std::string(e.what()) == "fifty");
    }
    WEFT_CHILD_CHECK(next < 100000);  // the source stopped early
    WEFT_CHILD_CHECK(sunk.load() <= 50);
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Pipeline, SourceExceptionPropagates) {
  weft::pool pool(workers(2));
  int next = 0;
  EXPECT_THROW(weft::make_pipeline([&]() -> std::optional<int> {
                 if (next == 10) throw std::logic_error("source");
                 return next++;
               })
                   .then(weft::stage_mode::serial_in_order, [](int) {})
                   .run(pool),
               std::logic_error);
}

TEST(Pipeline, StopTokenCancels) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(2));
    std::stop_source stop;
    std::atomic<int> produced{0};
    std::thread canceller([&] {
      while (produced.load() < 20) std::this_thread::sleep_for(1ms);
      stop.request_stop();
    });
    auto status = weft::make_pipeline([&](std::stop_token) -> std::optional<int> { return produced.fetch_add(1); })
                      .then(weft::stage_mode::parallel, [](int x) {
                        std::this_thread::sleep_for(100us);
                        return x;
                      })
                      .then(weft::stage_mode::serial_in_order, [](int) {})
                      .run(pool, {.max_tokens = 4, .stop_token = stop.get_token()});
    canceller.join();
    WEFT_CHILD_CHECK(status == weft::pipeline_status::cancelled);
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// run() from a task on a one-worker pool: its wait must run the pipeline's own tasks.
TEST(Pipeline, RunFromInsideATaskOnOneWorker) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(1));
    auto f = pool.submit([&] {
      int next = 0;
      long sum = 0;
      weft::make_pipeline([&]() -> std::optional<int> { return next < 100 ? std::optional<int>(next++) : std::nullopt; })
          .then(weft::stage_mode::parallel, [](int x) { return x * x; })
          .then(weft::stage_mode::serial_in_order, [&](int x) { sum += x; })
          .run(pool, {.max_tokens = 4});
      return sum;
    });
    WEFT_CHILD_CHECK(f.get() == 328350);
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Pipeline, MoveOnlyItemsAndClosedPool) {
  weft::pool pool(workers(2));
  int next = 0;
  int total = 0;
  weft::make_pipeline([&]() -> std::optional<std::unique_ptr<int>> {
    return next < 10 ? std::optional<std::unique_ptr<int>>(std::make_unique<int>(next++)) : std::nullopt;
  })
      .then(weft::stage_mode::parallel, [](std::unique_ptr<int> p) { return *p; })
      .then(weft::stage_mode::serial_any_order, [&](int x) { total += x; })
      .run(pool);
  EXPECT_EQ(total, 45);
  pool.close();
  EXPECT_THROW(weft::make_pipeline([]() -> std::optional<int> { return 1; })
                   .then(weft::stage_mode::parallel, [](int) {})
                   .run(pool),
               weft::pool_closed);
}

}  // namespace
