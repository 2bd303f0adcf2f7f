// Stress: channels, streams and pipelines with exact accounting, sized by WEFT_STRESS_SCALE
// (0.05 under sanitizers). Each run is in a child process under tests/watchdog.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "weft/channel.hpp"
#include "weft/pipeline.hpp"
#include "weft/pool.hpp"
#include "weft/stream.hpp"
#include "watchdog.hpp"

namespace {

using weft::channel_status;

int scaled(int n) {
  const char* s = std::getenv("WEFT_STRESS_SCALE");
  const double scale = s != nullptr ? std::atof(s) : 1.0;
  return std::max(100, static_cast<int>(n * scale));
}

weft::pool_options workers(unsigned n) {
  weft::pool_options o;
  o.workers = n;
  return o;
}

// 8 producers and 8 consumers (half threads, half pool tasks) through a channel of 3:
// every item exactly once, and the sums match.
TEST(ChannelStress, MpmcExactOnce) {
  const int per = scaled(40'000);
  const auto r = weft_test::run_in_child([per] {
    weft::pool pool(workers(4));
    weft::channel<int> ch(3);
    const int producers = 8;
    std::vector<std::atomic<unsigned char>> seen(static_cast<std::size_t>(producers * per));
    std::atomic<int> left{producers};
    auto consume = [&] {
      for (int& v : ch) seen[static_cast<std::size_t>(v)].fetch_add(1);
    };
    std::vector<weft::future<void>> tasks;
    for (int c = 0; c < 4; ++c) tasks.push_back(pool.submit(consume));
    std::vector<std::thread> threads;
    for (int c = 0; c < 4; ++c) threads.emplace_back(consume);
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] {
        for (int i = 0; i < per; ++i) {
          if ((i & 7) == 0) {  // mix the non-blocking path in
            while (ch.try_send(p * per + i) == channel_status::full) std::this_thread::yield();
          } else {
            WEFT_CHILD_CHECK(ch.send(p * per + i) == channel_status::success);
          }
        }
        if (left.fetch_sub(1) == 1) ch.close();
      });
    }
    for (auto& t : threads) t.join();
    for (auto& f : tasks) f.get();
    for (auto& s : seen) WEFT_CHILD_CHECK(s.load() == 1);
  }, std::chrono::seconds(240));
  EXPECT_TRUE(r.passed()) << r.describe();
}

// Four producers into one stream, both orders: every item's result exactly once, indices
// 0..n-1 exactly once, input order strictly increasing.
TEST(StreamStress, ExactOnceBothOrders) {
  const int per = scaled(20'000);
  const auto r = weft_test::run_in_child([per] {
    weft::pool pool(workers(4));
    for (auto order : {weft::stream_order::completion, weft::stream_order::input}) {
      weft::channel<int> in(5);
      const int producers = 4, n = producers * per;
      std::atomic<int> left{producers};
      std::vector<std::thread> threads;
      for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
          for (int i = 0; i < per; ++i) WEFT_CHILD_CHECK(in.send(p * per + i) == channel_status::success);
          if (left.fetch_sub(1) == 1) in.close();
        });
      }
      std::vector<unsigned char> values(static_cast<std::size_t>(n)), indices(static_cast<std::size_t>(n));
      std::size_t last = 0;
      int count = 0;
      for (auto&& [index, o] : weft::stream(pool, in, [](int x) { return x; }, {.max_in_flight = 7, .order = order})) {
        ++values[static_cast<std::size_t>(o.value())];
        ++indices[index];
        if (order == weft::stream_order::input) WEFT_CHILD_CHECK(count == 0 || index == last + 1);
        last = index;
        ++count;
      }
      for (auto& t : threads) t.join();
      WEFT_CHILD_CHECK(count == n);
      for (int i = 0; i < n; ++i) {
        WEFT_CHILD_CHECK(values[static_cast<std::size_t>(i)] == 1);
        WEFT_CHILD_CHECK(indices[static_cast<std::size_t>(i)] == 1);
      }
    }
  }, std::chrono::seconds(240));
  EXPECT_TRUE(r.passed()) << r.describe();
}

// A long pipeline: exact order at the in-order sink, exact counts at the any-order stage.
TEST(PipelineStress, OrderAndCounts) {
  const int n = scaled(200'000);
  const auto r = weft_test::run_in_child([n] {
    weft::pool pool(workers(4));
    int next = 0;
    long any_sum = 0;
    int expect = 0;
    weft::make_pipeline([&]() -> std::optional<int> { return next < n ? std::optional<int>(next++) : std::nullopt; })
        .then(weft::stage_mode::parallel, [](int x) { return x; })
        .then(weft::stage_mode::serial_any_order, [&](int x) {
          any_sum += x;
          return x;
        })
        .then(weft::stage_mode::parallel, [](int x) { return x; })
        .then(weft::stage_mode::serial_in_order, [&](int x) { WEFT_CHILD_CHECK(x == expect++); })
        .run(pool, {.max_tokens = 16});
    WEFT_CHILD_CHECK(expect == n);
    WEFT_CHILD_CHECK(any_sum == static_cast<long>(n - 1) * n / 2);
  }, std::chrono::seconds(240));
  EXPECT_TRUE(r.passed()) << r.describe();
}

}  // namespace
