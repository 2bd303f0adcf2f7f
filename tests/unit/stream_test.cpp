// weft::stream over a channel, and weft::process_map. Every scenario that waits on other
// threads runs in a child process under tests/watchdog.hpp (fail, never hang).
#include "weft/stream.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weft/map_batch.hpp"
#include "weft/pool.hpp"
#include "watchdog.hpp"

using namespace std::chrono_literals;
using weft::channel_status;

namespace {

weft::pool_options workers(unsigned n) {
  weft::pool_options o;
  o.workers = n;
  return o;
}

constexpr auto kLimit = std::chrono::seconds(60);

// The measurement, made deterministic: the producer does not close the channel (nor
// send anything more) until the consumer has its first result. stream_batch would need the
// whole input first; a stream must deliver while the producer is still open.
TEST(Stream, FirstResultArrivesBeforeTheProducerCloses) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(2));
    weft::channel<int> in(4);
    std::atomic<bool> got_first{false};
    std::thread producer([&] {
      WEFT_CHILD_CHECK(in.send(21) == channel_status::success);
      while (!got_first.load()) std::this_thread::sleep_for(1ms);
      WEFT_CHILD_CHECK(in.send(1) == channel_status::success);
      in.close();
    });
    auto results = weft::stream(pool, in, [](int x) { return 2 * x; });
    auto first = results.next();
    WEFT_CHILD_CHECK(first && first->index == 0 && first->result.value() == 42);
    WEFT_CHILD_CHECK(!in.closed());
    got_first.store(true);
    auto second = results.next();
    WEFT_CHILD_CHECK(second && second->result.value() == 2);
    WEFT_CHILD_CHECK(!results.next());
    producer.join();
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

void ordered_run(unsigned pool_workers, std::size_t window) {
  weft::pool pool(workers(pool_workers));
  weft::channel<int> in(8);
  constexpr int n = 300;
  std::thread producer([&] {
    for (int i = 0; i < n; ++i) WEFT_CHILD_CHECK(in.send(i) == channel_status::success);
    in.close();
  });
  auto delay = [](int x) {
    std::minstd_rand rng(static_cast<unsigned>(x) * 2654435761u);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
    return x * 3;
  };
  int expect = 0;
  for (auto&& [index, o] : weft::stream(pool, in, delay, {.max_in_flight = window, .order = weft::stream_order::input})) {
    WEFT_CHILD_CHECK(index == static_cast<std::size_t>(expect));
    WEFT_CHILD_CHECK(o.value() == 3 * expect);
    ++expect;
  }
  WEFT_CHILD_CHECK(expect == n);
  producer.join();
}

TEST(Stream, InputOrderWithRandomDelays) {
  const auto r = weft_test::run_in_child([] {
    ordered_run(4, 8);
    ordered_run(3, 1);  // a window of one: strictly one at a time
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Stream, CompletionOrderDeliversEachItemOnce) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(4));
    weft::channel<int> in(2);
    constexpr int n = 500;
    std::thread producer([&] {
      for (int i = 0; i < n; ++i) WEFT_CHILD_CHECK(in.send(i) == channel_status::success);
      in.close();
    });
    std::vector<int> seen(n, 0);
    for (auto&& item : weft::stream(pool, in, [](int x, std::stop_token) { return x; })) {
      WEFT_CHILD_CHECK(item.result.value() == static_cast<int>(item.index));  // one producer: index == value
      ++seen[static_cast<std::size_t>(item.result.value())];
    }
    for (int s : seen) WEFT_CHILD_CHECK(s == 1);
    producer.join();
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// A slow consumer slows the producer: items sent never exceed those consumed plus the
// in-flight bound plus the channel's capacity (plus the one the consumer holds).
TEST(Stream, BackpressureBoundsWhatIsTaken) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(4));
    constexpr std::size_t cap = 2, window = 4;
    weft::channel<int> in(cap);
    std::atomic<std::size_t> sent{0};
    std::atomic<std::size_t> max_running{0}, running{0};
    std::thread producer([&] {
      for (int i = 0; i < 200; ++i) {
        if (in.send(i) != channel_status::success) break;
        sent.fetch_add(1);
      }
      in.close();
    });
    auto slow_consumer_view = weft::stream(pool, in, [&](int x) {
      const std::size_t now = running.fetch_add(1) + 1;
      std::size_t m = max_running.load();
      while (now > m && !max_running.compare_exchange_weak(m, now)) {
      }
      running.fetch_sub(1);
      return x;
    }, {.max_in_flight = window});
    std::size_t consumed = 0;
    for (auto&& item : slow_consumer_view) {
      (void)item;
      if (consumed < 20) std::this_thread::sleep_for(2ms);  // let the producer run ahead if it could
      WEFT_CHILD_CHECK(sent.load() <= consumed + 1 + window + cap);
      ++consumed;
    }
    WEFT_CHILD_CHECK(consumed == 200);
    WEFT_CHILD_CHECK(max_running.load() <= window);
    producer.join();
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Stream, CollectAllDeliversEachExceptionWithItsItem) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(2));
    weft::channel<int> in(16);
    for (int i = 0; i < 10; ++i) WEFT_CHILD_CHECK(in.try_send(i) == channel_status::success);
    in.close();
    int failures = 0, values = 0;
    for (auto&& [index, o] : weft::stream(pool, in, [](int x) {
           if (x % 3 == 0) throw std::runtime_error("bad " + std::to_string(x));
           return x;
         })) {
      if (o.has_value()) {
        ++values;
      } else {
        ++failures;
        WEFT_CHILD_CHECK(index % 3 == 0);
      }
    }
    WEFT_CHILD_CHECK(failures == 4 && values == 6);
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Stream, FailFastThrowsItemErrorWithTheIndexAndStops) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(2));
    weft::channel<int> in(64);
    for (int i = 0; i < 50; ++i) WEFT_CHILD_CHECK(in.try_send(i) == channel_status::success);
    // Left open: the failure, not the input's end, must end the stream.
    auto s = weft::stream(pool, in, [](int x, std::stop_token st) {
      if (x == 7) throw std::runtime_error("seven");
      // Later ones wait for the cancel, but not for ever: with both workers in such waits,
      // item 7 could otherwise never start.
      const auto give_up = std::chrono::steady_clock::now() + 200ms;
      while (x > 7 && !st.stop_requested() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
      return x;
    }, {.max_in_flight = 4, .order = weft::stream_order::input, .policy = weft::error_policy::fail_fast});
    int yielded = 0;
    try {
      while (auto item = s.next()) {
        WEFT_CHILD_CHECK(item->index == static_cast<std::size_t>(yielded));
        ++yielded;
      }
      WEFT_CHILD_CHECK(!"no item_error");
    } catch (const weft::item_error& e) {
      WEFT_CHILD_CHECK(e.index() == 7);
      WEFT_CHILD_CHECK(std::string(e.what()).find("seven") != std::string::npos);
    }
    WEFT_CHILD_CHECK(yielded == 7);
    WEFT_CHILD_CHECK(!s.next());
    WEFT_CHILD_CHECK(in.size() > 0);  // nothing more was taken from the channel
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Stream, StopTokenCancelsAndEndsAfterInFlightItems) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(2));
    weft::channel<int> in(8);  // never closed: only the token can end the stream
    std::stop_source stop;
    std::thread producer([&] {
      for (int i = 0; i < 8; ++i) WEFT_CHILD_CHECK(in.send(i) == channel_status::success);
    });
    auto s = weft::stream(pool, in, [](int x, std::stop_token st) {
      while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
      return x;
    }, {.max_in_flight = 2, .stop_token = stop.get_token()});
    std::this_thread::sleep_for(20ms);
    stop.request_stop();
    int n = 0;
    while (auto item = s.next()) ++n;
    WEFT_CHILD_CHECK(n <= 2);  // only what was in flight
    producer.join();
    WEFT_CHILD_CHECK(in.size() >= 6);  // the rest stays in the channel
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Stream, DestructorCancelsAndWaitsForRunningTasks) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(2));
    weft::channel<int> in(8);
    std::atomic<int> running{0};
    for (int i = 0; i < 8; ++i) WEFT_CHILD_CHECK(in.try_send(i) == channel_status::success);
    {
      auto s = weft::stream(pool, in, [&](int x, std::stop_token st) {
        running.fetch_add(1);
        while (!st.stop_requested()) std::this_thread::sleep_for(1ms);
        running.fetch_sub(1);
        return x;
      }, {.max_in_flight = 2});
      std::this_thread::sleep_for(10ms);
    }
    WEFT_CHILD_CHECK(running.load() == 0);
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// The consumer is a task on the only worker; the producer a plain thread. The consumer's
// waits must run the stream's own tasks.
TEST(Stream, ConsumerOnTheOnlyWorker) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(1));
    weft::channel<int> in(2);
    std::thread producer([&] {
      for (int i = 0; i < 100; ++i) WEFT_CHILD_CHECK(in.send(i) == channel_status::success);
      in.close();
    });
    auto total = pool.submit([&] {
      long sum = 0;
      for (auto&& item : weft::stream(pool, in, [](int x) { return x; }, {.max_in_flight = 3})) sum += item.result.value();
      return sum;
    });
    WEFT_CHILD_CHECK(total.get() == 99L * 100 / 2);
    producer.join();
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// Results into an output channel: every item arrives there once, in input order here, and
// the output is closed when the stream ends. A slow reader of the output holds back the
// input (sent <= read + 1 + in flight + both capacities).
TEST(Stream, StreamToAnOutputChannel) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(3));
    weft::channel<int> in(2);
    weft::channel<weft::batch_item<long>> out(2);
    constexpr int n = 200;
    constexpr std::size_t window = 3;
    std::atomic<std::size_t> sent{0};
    std::thread producer([&] {
      for (int i = 0; i < n; ++i) {
        WEFT_CHILD_CHECK(in.send(i) == channel_status::success);
        sent.fetch_add(1);
      }
      in.close();
    });
    auto link = weft::stream_to(pool, in, out, [](int x) { return long{x} * x; },
                                {.max_in_flight = window, .order = weft::stream_order::input});
    std::size_t read = 0;
    for (auto& [index, o] : out) {
      WEFT_CHILD_CHECK(index == read);
      WEFT_CHILD_CHECK(o.value() == static_cast<long>(index * index));
      if (read < 20) std::this_thread::sleep_for(1ms);
      WEFT_CHILD_CHECK(sent.load() <= read + 1 + window + 2 + 2);
      ++read;
    }
    WEFT_CHILD_CHECK(read == n);
    link.wait();
    WEFT_CHILD_CHECK(out.closed());
    producer.join();
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// The output's reader leaves (closes it): the stream is cancelled, the link's wait returns.
TEST(Stream, StreamToStopsWhenTheOutputIsClosed) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(2));
    weft::channel<int> in(4);  // never closed
    weft::channel<weft::batch_item<int>> out(1);
    std::thread producer([&] {
      for (int i = 0; i < 4; ++i) WEFT_CHILD_CHECK(in.send(i) == channel_status::success);
    });
    auto link = weft::stream_to(pool, in, out, [](int x) { return x; }, {.max_in_flight = 2});
    auto first = out.receive();
    WEFT_CHILD_CHECK(first.has_value());
    out.close();
    link.wait();
    producer.join();
  }, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Stream, ClosedPoolIsRejected) {
  weft::pool pool(workers(1));
  pool.close();
  weft::channel<int> in(1);
  EXPECT_THROW(weft::stream(pool, in, [](int x) { return x; }), weft::pool_closed);
}

// ---- process_map (seed 002's ProcessMap) ----

TEST(ProcessMap, CollectAllReturnsAMapAndEveryError) {
  weft::pool pool(workers(2));
  const std::map<std::string, int> in{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}};
  auto r = weft::process_map(pool, in, [](const std::string& k, int v) {
    if (k == "c") throw std::runtime_error("c is bad");
    return v * 10;
  }, weft::error_policy::collect_all);
  EXPECT_EQ(r.values, (std::map<std::string, int>{{"a", 10}, {"b", 20}, {"d", 40}}));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors.begin()->first, "c");
  EXPECT_FALSE(r.failed_key);
  EXPECT_FALSE(r.complete());
}

TEST(ProcessMap, FailFastKeepsPartialResultsAndNamesTheKey) {
  weft::pool pool(workers(1));  // from outside a 1-worker pool: entries run in map order
  std::map<int, int> in;
  for (int i = 0; i < 20; ++i) in[i] = i;
  auto r = weft::process_map(pool, in, [](const std::pair<const int, int>& e, std::stop_token) {
    if (e.first == 5) throw std::runtime_error("five");
    return e.second + 100;
  });
  ASSERT_TRUE(r.failed_key);
  EXPECT_EQ(*r.failed_key, 5);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.values.size() + r.errors.size() + r.cancelled.size(), 20u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r.values.at(i), i + 100);
  EXPECT_FALSE(r.values.contains(5));
  EXPECT_FALSE(r.cancelled.empty()) << "the failure cancels what has not started";
}

TEST(ProcessMap, EmptyMap) {
  weft::pool pool(workers(1));
  const std::map<int, int> in;
  auto r = weft::process_map(pool, in, [](int, int v) { return v; });
  EXPECT_TRUE(r.complete());
  EXPECT_TRUE(r.values.empty());
}

}  // namespace
