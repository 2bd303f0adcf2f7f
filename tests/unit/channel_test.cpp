// weft::channel: statuses, close semantics, deadlines, stop tokens, MPMC exact-once delivery,
// and waits on a worker that must help instead of deadlocking. Scenarios that could hang run
// in a child process under tests/watchdog.hpp.
#include "weft/channel.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

TEST(Channel, ZeroCapacityIsRejectedNamingIt) {
  try {
    weft::channel<int> ch(0);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("capacity"), std::string::npos) << e.what();
  }
}

TEST(Channel, TryStatusesDistinguishFullEmptyAndClosed) {
  weft::channel<std::unique_ptr<int>> ch(2);
  EXPECT_EQ(ch.try_receive().status(), channel_status::empty);
  EXPECT_EQ(ch.try_send(std::make_unique<int>(1)), channel_status::success);
  EXPECT_EQ(ch.try_send(std::make_unique<int>(2)), channel_status::success);
  auto third = std::make_unique<int>(3);
  EXPECT_EQ(ch.try_send(std::move(third)), channel_status::full);
  ASSERT_NE(third, nullptr) << "a rejected try_send must leave the value untouched";
  EXPECT_EQ(ch.size(), 2u);
  EXPECT_TRUE(ch.close());
  EXPECT_FALSE(ch.close()) << "close is idempotent and says who closed";
  EXPECT_EQ(ch.try_send(std::move(third)), channel_status::closed);
  ASSERT_NE(third, nullptr);
  auto a = ch.try_receive();
  ASSERT_TRUE(a);
  EXPECT_EQ(**a, 1);  // FIFO, and queued items survive close
  auto b = ch.try_receive();
  ASSERT_TRUE(b);
  EXPECT_EQ(**b, 2);
  EXPECT_EQ(ch.try_receive().status(), channel_status::closed);
  EXPECT_EQ(ch.receive().status(), channel_status::closed) << "a drained, closed channel never blocks";
  EXPECT_EQ(ch.send(std::make_unique<int>(4)), channel_status::closed);
}

TEST(Channel, IterationDrainsThenEnds) {
  weft::channel<int> ch(8);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(ch.try_send(i), channel_status::success);
  ch.close();
  std::vector<int> seen;
  for (int& v : ch) seen.push_back(v);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Channel, DeadlinesTimeOutAndPastDeadlinesOnlyTry) {
  const auto r = weft_test::run_in_child([] {
    weft::channel<int> ch(1);
    const auto t0 = std::chrono::steady_clock::now();
    WEFT_CHILD_CHECK(ch.receive_for(30ms).status() == channel_status::timeout);
    WEFT_CHILD_CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    WEFT_CHILD_CHECK(ch.receive_for(-5s).status() == channel_status::timeout);
    WEFT_CHILD_CHECK(ch.send_for(1, 0ms) == channel_status::success);  // room: succeeds at once
    WEFT_CHILD_CHECK(ch.send_for(2, 20ms) == channel_status::timeout);
    WEFT_CHILD_CHECK(ch.send_until(2, std::chrono::system_clock::now() - 1h) == channel_status::timeout);
    auto v = ch.receive_for(std::chrono::hours::max());  // saturates to "no limit"; an item is there
    WEFT_CHILD_CHECK(v && *v == 1);
  }, 30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Channel, StopTokenEndsWaitsOfBothSides) {
  const auto r = weft_test::run_in_child([] {
    weft::channel<int> ch(1);
    std::stop_source stop;
    std::thread t([&] {
      std::this_thread::sleep_for(20ms);
      stop.request_stop();
    });
    WEFT_CHILD_CHECK(ch.receive(stop.get_token()).status() == channel_status::stopped);
    t.join();
    WEFT_CHILD_CHECK(ch.try_send(1) == channel_status::success);
    WEFT_CHILD_CHECK(ch.send(2, stop.get_token()) == channel_status::stopped);  // already fired
    std::stop_source later;
    std::thread u([&] {
      std::this_thread::sleep_for(20ms);
      later.request_stop();
    });
    WEFT_CHILD_CHECK(ch.send(2, later.get_token()) == channel_status::stopped);
    u.join();
    WEFT_CHILD_CHECK(ch.size() == 1);
  }, 30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Channel, CloseWakesBlockedSendersAndReceivers) {
  const auto r = weft_test::run_in_child([] {
    weft::channel<int> empty(1), full(1);
    WEFT_CHILD_CHECK(full.try_send(0) == channel_status::success);
    std::atomic<int> woke{0};
    std::thread rx([&] {
      if (empty.receive().status() == channel_status::closed) woke.fetch_add(1);
    });
    std::thread tx([&] {
      if (full.send(1) == channel_status::closed) woke.fetch_add(1);
    });
    std::this_thread::sleep_for(20ms);
    empty.close();
    full.close();
    rx.join();
    tx.join();
    WEFT_CHILD_CHECK(woke.load() == 2);
  }, 30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// 8 producers, 8 consumers, a tiny capacity (wrap-around and full/empty transitions all
// the time): every item is received exactly once.
void mpmc_exact_once(int per_producer, bool on_pool) {
  constexpr int producers = 8, consumers = 8;
  weft::channel<int> ch(3);
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(producers * per_producer));
  std::atomic<int> producers_left{producers};
  auto produce = [&](int p) {
    for (int i = 0; i < per_producer; ++i) WEFT_CHILD_CHECK(ch.send(p * per_producer + i) == channel_status::success);
    if (producers_left.fetch_sub(1) == 1) ch.close();
  };
  auto consume = [&] {
    for (int& v : ch) seen[static_cast<std::size_t>(v)].fetch_add(1);
  };
  if (on_pool) {
    // Consumers are tasks of a pool (their waits help); producers are plain threads.
    weft::pool pool(workers(4));
    std::vector<weft::future<void>> fs;
    for (int c = 0; c < consumers; ++c) fs.push_back(pool.submit(consume));
    std::vector<std::thread> ps;
    for (int p = 0; p < producers; ++p) ps.emplace_back(produce, p);
    for (auto& t : ps) t.join();
    for (auto& f : fs) f.get();
  } else {
    std::vector<std::thread> ts;
    for (int p = 0; p < producers; ++p) ts.emplace_back(produce, p);
    for (int c = 0; c < consumers; ++c) ts.emplace_back(consume);
    for (auto& t : ts) t.join();
  }
  for (auto& s : seen) WEFT_CHILD_CHECK(s.load() == 1);
}

TEST(Channel, MpmcExactOnceThreads) {
  const auto r = weft_test::run_in_child([] { mpmc_exact_once(2000, false); }, 60s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Channel, MpmcExactOnceConsumersOnPool) {
  const auto r = weft_test::run_in_child([] { mpmc_exact_once(2000, true); }, 60s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// A receive on the only worker of a pool, whose producer is another task of that pool
// queued behind it: the receive must run the producer while it waits.
TEST(Channel, WorkerSideReceiveOnOneWorkerPoolDoesNotDeadlock) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(1));
    weft::channel<int> ch(4);
    auto consumer = pool.submit([&] {
      int sum = 0;
      for (int& v : ch) sum += v;
      return sum;
    });
    pool.post([&] {
      for (int i = 1; i <= 4; ++i) WEFT_CHILD_CHECK(ch.try_send(i) == channel_status::success);
      ch.close();
    });
    WEFT_CHILD_CHECK(consumer.get() == 10);
  }, 30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// The same with many more items than the capacity: the producer never blocks a worker; it
// sends what fits and re-posts itself when the channel says full (the pattern the header
// recommends for producers on a pool).
struct reposting_producer {
  weft::pool* pool;
  weft::channel<int>* ch;
  std::shared_ptr<int> next;
  int last;
  void operator()() const {
    while (*next <= last) {
      if (ch->try_send(int{*next}) != channel_status::success) {
        pool->post(*this);
        return;
      }
      ++*next;
    }
    ch->close();
  }
};

TEST(Channel, WorkerSideReceiveWithReschedulingProducer) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(1));
    weft::channel<int> ch(2);
    auto consumer = pool.submit([&] {
      long sum = 0;
      int expect = 1;
      for (int& v : ch) {
        WEFT_CHILD_CHECK(v == expect++);
        sum += v;
      }
      return sum;
    });
    pool.post(reposting_producer{&pool, &ch, std::make_shared<int>(1), 1000});
    WEFT_CHILD_CHECK(consumer.get() == 1000L * 1001 / 2);
  }, 30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// A receive with a deadline on a worker returns timeout (it helps meanwhile, but ends).
TEST(Channel, WorkerSideDeadlineAndStop) {
  const auto r = weft_test::run_in_child([] {
    weft::pool pool(workers(1));
    weft::channel<int> ch(1);
    std::stop_source stop;
    auto f = pool.submit([&] {
      WEFT_CHILD_CHECK(ch.receive_for(20ms).status() == channel_status::timeout);
      return ch.receive(stop.get_token()).status();
    });
    std::this_thread::sleep_for(50ms);
    stop.request_stop();
    WEFT_CHILD_CHECK(f.get() == channel_status::stopped);
  }, 30s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(Channel, StatusNames) {
  EXPECT_STREQ(weft::to_string(channel_status::full), "full");
  EXPECT_STREQ(weft::to_string(channel_status::closed), "closed");
  EXPECT_STREQ(weft::to_string(channel_status::stopped), "stopped");
}

}  // namespace
