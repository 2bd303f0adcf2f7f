// tests/unit/batch_test.cpp: weft::run_batch, weft::stream_batch and weft::parallel_map
// (batch.hpp): submission order, completion order, both error policies, the caller's token,
// the pool's stop, empty ranges, void and move-only results, batches from inside tasks,
// streams dropped early, closed pools and submissions that fail part-way. Every test runs
// on pools of 1, 2 and 4 workers.
//
// Where a test needs a deterministic execution order it parks all workers but one in
// `blockers` first: the one free worker then takes the batch from the injection queue in
// submission order.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <iterator>
#include <latch>
#include <map>
#include <memory>
#include <random>
#include <ranges>
#include <semaphore>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "weft/batch.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

static_assert(std::ranges::input_range<weft::batch_stream<int>>);
static_assert(std::ranges::input_range<weft::batch_stream<void>>);

struct task_error : std::runtime_error {
  explicit task_error(std::size_t i) : std::runtime_error("task " + std::to_string(i)), index(i) {}
  std::size_t index;
};

// Polls pred until it holds or `limit` passes; returns its last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = clock_type::now() + limit;
  while (!pred()) {
    if (clock_type::now() > deadline) return pred();
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// Waits (bounded) for a task's stop token; true if it fired.
bool wait_for_stop(const std::stop_token& token) {
  return eventually([&] { return token.stop_requested(); });
}

// Parks `count` workers of `p` in tasks until release() (or destruction).
class blockers {
 public:
  blockers(weft::pool& p, unsigned count) : state_(std::make_shared<state>(count)) {
    for (unsigned i = 0; i < count; ++i) {
      p.post([s = state_] {
        s->started.count_down();
        s->gate.acquire();
        s->finished.fetch_add(1);
      });
    }
    state_->started.wait();
  }
  ~blockers() { release(); }
  void release() {
    if (released_) return;
    released_ = true;
    state_->gate.release(static_cast<std::ptrdiff_t>(state_->count));
    eventually([&] { return state_->finished.load() == state_->count; });
  }

 private:
  struct state {
    explicit state(unsigned n) : count(n), started(n) {}
    unsigned count;
    std::latch started;
    std::counting_semaphore<> gate{0};
    std::atomic<unsigned> finished{0};
  };
  std::shared_ptr<state> state_;
  bool released_ = false;
};

// A forward iterator over a vector that calls `hook(position)` before each increment: the
// submitter increments between two posts, so the hook runs at a known point of submission.
template <class T>
class hooked_iterator {
 public:
  using iterator_concept = std::forward_iterator_tag;
  using iterator_category = std::forward_iterator_tag;
  using value_type = T;
  using difference_type = std::ptrdiff_t;

  hooked_iterator() = default;
  hooked_iterator(T* p, T* base, const std::function<void(std::size_t)>* hook) : p_(p), base_(base), hook_(hook) {}
  T& operator*() const { return *p_; }
  hooked_iterator& operator++() {
    (*hook_)(static_cast<std::size_t>(p_ - base_));
    ++p_;
    return *this;
  }
  hooked_iterator operator++(int) {
    auto copy = *this;
    ++*this;
    return copy;
  }
  bool operator==(const hooked_iterator& o) const { return p_ == o.p_; }
  friend difference_type operator-(const hooked_iterator& a, const hooked_iterator& b) { return a.p_ - b.p_; }

 private:
  T* p_ = nullptr;
  T* base_ = nullptr;
  const std::function<void(std::size_t)>* hook_ = nullptr;
};
static_assert(std::forward_iterator<hooked_iterator<int>>);

using job = std::function<int(std::stop_token)>;

class BatchTest : public testing::TestWithParam<int> {
 protected:
  weft::pool_options options() const {
    weft::pool_options o;
    o.workers = GetParam();
    o.deque_capacity = 2;  // exercise deque growth while batches are pushed from workers
    return o;
  }
  unsigned workers() const { return static_cast<unsigned>(GetParam()); }
};

// ---- order ----

TEST_P(BatchTest, RunBatchKeepsSubmissionOrderWithRandomDurations) {
  weft::pool p(options());
  std::mt19937 rng(12345);
  std::vector<job> jobs;
  for (int i = 0; i < 64; ++i) {
    const auto d = std::chrono::microseconds(rng() % 400);
    jobs.emplace_back([i, d](std::stop_token) {
      std::this_thread::sleep_for(d);
      return i * 10;
    });
  }
  auto results = weft::run_batch(p, jobs);
  ASSERT_EQ(results.size(), jobs.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].has_value()) << i;
    EXPECT_EQ(results[i].value(), static_cast<int>(i) * 10);
  }
}

// Task i may finish only when the consumer opens gate i; the consumer opens them in
// reverse, so the stream must yield W-1, ..., 0 although they were submitted 0, ..., W-1.
TEST_P(BatchTest, StreamYieldsInCompletionOrder) {
  if (workers() < 2) GTEST_SKIP() << "one worker runs one task at a time: completion order is submission order";
  weft::pool p(options());
  const std::size_t n = workers();
  std::latch all_started(static_cast<std::ptrdiff_t>(n));
  std::vector<std::unique_ptr<std::binary_semaphore>> gates;
  for (std::size_t i = 0; i < n; ++i) gates.push_back(std::make_unique<std::binary_semaphore>(0));
  std::vector<std::function<std::size_t()>> jobs;
  for (std::size_t i = 0; i < n; ++i) {
    jobs.emplace_back([&, i] {
      all_started.count_down();
      gates[i]->acquire();
      return i;
    });
  }
  auto stream = weft::stream_batch(p, jobs);
  EXPECT_EQ(stream.size(), n);
  all_started.wait();
  for (std::size_t k = n; k-- > 0;) {
    gates[k]->release();
    auto item = stream.next();
    ASSERT_TRUE(item.has_value());
    EXPECT_EQ(item->index, k);
    EXPECT_EQ(item->result.value(), k);
  }
  EXPECT_FALSE(stream.next().has_value());
}

TEST_P(BatchTest, StreamRangeForYieldsEveryIndexOnce) {
  weft::pool p(options());
  std::vector<job> jobs;
  for (int i = 0; i < 50; ++i) jobs.emplace_back([i](std::stop_token) { return i + 1; });
  std::vector<int> seen(jobs.size(), 0);
  for (auto&& [index, outcome] : weft::stream_batch(p, jobs)) {
    ASSERT_LT(index, seen.size());
    ++seen[index];
    EXPECT_EQ(outcome.value(), static_cast<int>(index) + 1);
  }
  EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
}

// ---- collect_all ----

// One worker serves the batch, in order: 0 returns, 1 throws, 2 fires the caller's token
// (and sees its own stop token fire), 3.. have not started and come back cancelled.
TEST_P(BatchTest, CollectAllReturnsValuesExceptionsAndCancellations) {
  weft::pool p(options());
  blockers hold(p, workers() - 1);
  std::stop_source caller;
  std::atomic<int> ran_after_stop{0};
  bool two_saw_stop = false;
  std::vector<job> jobs;
  jobs.emplace_back([](std::stop_token) { return 7; });
  jobs.emplace_back([](std::stop_token) -> int { throw task_error(1); });
  jobs.emplace_back([&](std::stop_token t) {
    caller.request_stop();
    two_saw_stop = t.stop_requested();
    return 2;
  });
  for (int i = 3; i < 8; ++i) jobs.emplace_back([&](std::stop_token) { return ++ran_after_stop; });

  auto r = weft::run_batch(p, jobs, weft::error_policy::collect_all, caller.get_token());
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r[0].value(), 7);
  ASSERT_FALSE(r[1].has_value());
  EXPECT_FALSE(r[1].cancelled());
  EXPECT_THROW(std::rethrow_exception(r[1].error()), task_error);
  EXPECT_EQ(r[2].value(), 2);
  EXPECT_TRUE(two_saw_stop);
  for (std::size_t i = 3; i < 8; ++i) {
    EXPECT_TRUE(r[i].cancelled()) << i;
    EXPECT_THROW(std::rethrow_exception(r[i].error()), weft::task_cancelled);
  }
  EXPECT_EQ(ran_after_stop.load(), 0);
}

TEST_P(BatchTest, CallerTokenFiredBeforeCancelsEverything) {
  weft::pool p(options());
  std::stop_source caller;
  caller.request_stop();
  std::atomic<int> ran{0};
  std::vector<job> jobs(10, [&](std::stop_token) { return ++ran; });
  for (auto policy : {weft::error_policy::collect_all, weft::error_policy::fail_fast}) {
    auto r = weft::run_batch(p, jobs, policy, caller.get_token());
    ASSERT_EQ(r.size(), jobs.size());
    for (const auto& o : r) EXPECT_TRUE(o.cancelled());
    std::size_t yielded = 0;
    for (auto&& [index, outcome] : weft::stream_batch(p, jobs, policy, caller.get_token())) {
      EXPECT_TRUE(outcome.cancelled()) << index;
      ++yielded;
    }
    EXPECT_EQ(yielded, jobs.size());
  }
  EXPECT_THROW(weft::parallel_map(p, std::vector<int>{1, 2}, [](int x) { return x; }, weft::error_policy::fail_fast,
                                  caller.get_token()),
               weft::task_cancelled);
  EXPECT_EQ(ran.load(), 0);
}

// ---- fail_fast ----

// One worker serves the batch in order: 0..3 run, 3 throws, 4.. never run.
TEST_P(BatchTest, FailFastCancelsTasksNotStartedAndRethrows) {
  weft::pool p(options());
  blockers hold(p, workers() - 1);
  constexpr std::size_t n = 10;
  std::vector<std::atomic<int>> ran(n);
  std::vector<std::function<void()>> jobs;
  for (std::size_t i = 0; i < n; ++i) {
    jobs.emplace_back([&, i] {
      ran[i].fetch_add(1);
      if (i == 3) throw task_error(i);
    });
  }
  try {
    weft::run_batch(p, jobs, weft::error_policy::fail_fast);
    ADD_FAILURE() << "run_batch did not throw";
  } catch (const task_error& e) {
    EXPECT_EQ(e.index, 3u);
  }
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(ran[i].load(), i <= 3 ? 1 : 0) << i;
}

TEST_P(BatchTest, FailFastStreamThrowsAtTheFailedItem) {
  weft::pool p(options());
  blockers hold(p, workers() - 1);
  constexpr std::size_t n = 10;
  std::vector<std::atomic<int>> ran(n);
  std::vector<std::function<std::size_t()>> jobs;
  for (std::size_t i = 0; i < n; ++i) {
    jobs.emplace_back([&, i] {
      ran[i].fetch_add(1);
      if (i == 3) throw task_error(i);
      return i;
    });
  }
  auto stream = weft::stream_batch(p, jobs, weft::error_policy::fail_fast);
  for (std::size_t i = 0; i < 3; ++i) {
    auto item = stream.next();
    ASSERT_TRUE(item.has_value());
    EXPECT_EQ(item->index, i);
  }
  EXPECT_THROW(stream.next(), task_error);
  EXPECT_FALSE(stream.next().has_value());
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(ran[i].load(), i <= 3 ? 1 : 0) << i;
}

// Element 0 is running when element 1 throws: its stop token fires, and run_batch returns
// only after it has ended.
TEST_P(BatchTest, FailFastFiresTheStopTokenOfRunningTasks) {
  if (workers() < 2) GTEST_SKIP() << "needs a second worker to run the failing task beside a running one";
  weft::pool p(options());
  std::latch zero_started(1);
  std::atomic<bool> zero_saw_stop{false}, zero_ended{false};
  std::vector<job> jobs;
  jobs.emplace_back([&](std::stop_token t) {
    zero_started.count_down();
    zero_saw_stop = wait_for_stop(t);
    std::this_thread::sleep_for(5ms);  // run_batch must still wait for us
    zero_ended = true;
    return 0;
  });
  jobs.emplace_back([&](std::stop_token) -> int {
    zero_started.wait();
    throw task_error(1);
  });
  for (int i = 2; i < 6; ++i) jobs.emplace_back([](std::stop_token) { return 0; });
  EXPECT_THROW(weft::run_batch(p, jobs, weft::error_policy::fail_fast), task_error);
  EXPECT_TRUE(zero_ended.load());
  EXPECT_TRUE(zero_saw_stop.load());
}

TEST_P(BatchTest, FailFastWithoutFailureReturnsEveryValue) {
  weft::pool p(options());
  std::vector<job> jobs;
  for (int i = 0; i < 20; ++i) jobs.emplace_back([i](std::stop_token) { return i; });
  auto r = weft::run_batch(p, jobs, weft::error_policy::fail_fast);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(r[static_cast<std::size_t>(i)].value(), i);
}

// ---- the pool's stop ----

TEST_P(BatchTest, StopNowReachesRunningAndQueuedTasks) {
  weft::pool p(options());
  const std::size_t n = workers() + 3;
  std::atomic<unsigned> started{0};
  std::vector<job> jobs(n, [&](std::stop_token t) {
    started.fetch_add(1);
    return wait_for_stop(t) ? 1 : 0;
  });
  // Stop only once every element is posted (else posting the rest throws pool_closed, which
  // PoolClosedPartWayWaitsForWhatWasPosted covers): the last increment follows the last post.
  std::atomic<bool> all_posted{false};
  const std::function<void(std::size_t)> hook = [&](std::size_t pos) {
    if (pos == n - 1) all_posted = true;
  };
  using it = hooked_iterator<job>;
  job* base = jobs.data();
  std::vector<weft::outcome<int>> r;
  std::thread caller([&] { r = weft::run_batch(p, it(base, base, &hook), it(base + n, base, &hook)); });
  EXPECT_TRUE(eventually([&] { return all_posted.load() && started.load() >= workers(); }));
  p.stop_now();
  caller.join();
  ASSERT_EQ(r.size(), n);
  std::size_t values = 0;
  for (auto& o : r) {
    if (o.has_value()) {
      ++values;
      EXPECT_EQ(o.value(), 1);  // saw its stop token
    } else {
      EXPECT_TRUE(o.cancelled());
    }
  }
  EXPECT_EQ(values, started.load());
  EXPECT_GE(values, workers());
}

// ---- shapes of batches ----

TEST_P(BatchTest, EmptyRangesPostNothingEvenOnAClosedPool) {
  weft::pool p(options());
  p.close();
  std::vector<job> none;
  EXPECT_TRUE(weft::run_batch(p, none).empty());
  EXPECT_TRUE(weft::run_batch(p, none.begin(), none.end(), weft::error_policy::fail_fast).empty());
  auto stream = weft::stream_batch(p, none);
  EXPECT_EQ(stream.size(), 0u);
  EXPECT_FALSE(stream.next().has_value());
  EXPECT_TRUE(stream.begin() == stream.end());
  EXPECT_TRUE(weft::parallel_map(p, std::vector<int>{}, [](int x) { return x; }).empty());
}

TEST_P(BatchTest, VoidTasks) {
  weft::pool p(options());
  std::vector<std::atomic<int>> hits(16);
  std::vector<std::function<void()>> jobs;
  for (std::size_t i = 0; i < hits.size(); ++i) {
    jobs.emplace_back([&, i] {
      hits[i].fetch_add(1);
      if (i == 5) throw task_error(i);
    });
  }
  auto r = weft::run_batch(p, jobs);
  for (std::size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i].has_value(), i != 5) << i;
    EXPECT_EQ(hits[i].load(), 1) << i;
  }
  EXPECT_THROW(r[5].value(), task_error);
  std::size_t count = 0;
  for (auto&& item : weft::stream_batch(p, jobs)) {
    EXPECT_EQ(item.result.has_value(), item.index != 5);
    ++count;
  }
  EXPECT_EQ(count, jobs.size());
}

// Move-only callables run in place (run_batch) or are moved into the stream; move-only
// results are moved out.
TEST_P(BatchTest, MoveOnlyCallablesAndResults) {
  weft::pool p(options());
  auto make_jobs = [] {
    struct task {
      std::unique_ptr<int> v;
      std::unique_ptr<int> operator()() { return std::make_unique<int>(*v * 2); }
    };
    std::vector<task> jobs;
    for (int i = 0; i < 8; ++i) jobs.push_back(task{std::make_unique<int>(i)});
    return jobs;
  };
  auto jobs = make_jobs();
  auto r = weft::run_batch(p, jobs);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(*r[static_cast<std::size_t>(i)].value(), 2 * i);
  int sum = 0;
  for (auto&& [index, outcome] : weft::stream_batch(p, make_jobs())) sum += *outcome.value();
  EXPECT_EQ(sum, 2 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7));
  auto more = make_jobs();
  auto stream = weft::stream_batch(p, std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  EXPECT_EQ(stream.size(), 8u);
}

// A view that makes its callables on the fly: each is made on the worker that runs it.
TEST_P(BatchTest, RangeOfPrvalueCallables) {
  weft::pool p(options());
  auto jobs = std::views::iota(0, 12) | std::views::transform([](int i) { return [i] { return i * i; }; });
  auto r = weft::run_batch(p, jobs);
  ASSERT_EQ(r.size(), 12u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(r[static_cast<std::size_t>(i)].value(), i * i);
  int count = 0;
  for (auto&& item : weft::stream_batch(p, jobs)) count += item.result.value() >= 0;
  EXPECT_EQ(count, 12);
}

// ---- from inside a task ----

TEST_P(BatchTest, BatchesFromInsideATaskDoNotDeadlock) {
  weft::pool p(options());
  auto nested = [&p] {
    std::vector<job> jobs;
    for (int i = 0; i < 32; ++i) jobs.emplace_back([i](std::stop_token) { return i; });
    int sum = 0;
    for (auto& o : weft::run_batch(p, jobs, weft::error_policy::fail_fast)) sum += o.value();
    for (auto&& [index, outcome] : weft::stream_batch(p, jobs)) sum += outcome.value();
    {
      auto dropped = weft::stream_batch(p, jobs);  // destroyed unconsumed, on a worker
      sum += dropped.next()->result.value() * 0;
    }
    for (int v : weft::parallel_map(p, std::views::iota(0, 32), [](int x) { return x; })) sum += v;
    return sum;
  };
  auto f = p.submit(nested);
  ASSERT_EQ(f.wait_for(60s), std::future_status::ready) << "a batch awaited inside a task deadlocked";
  EXPECT_EQ(f.get(), 3 * (31 * 32 / 2));
}

// ---- streams dropped early ----

TEST_P(BatchTest, StreamDestructorCancelsAndWaitsWithoutLeaking) {
  weft::pool p(options());
  std::atomic<int> active{0}, ran{0};
  std::vector<std::function<std::string(std::stop_token)>> jobs;
  for (int i = 0; i < 200; ++i) {
    jobs.emplace_back([&, i](std::stop_token t) {
      active.fetch_add(1);
      ran.fetch_add(1);
      std::string s(100, static_cast<char>('a' + i % 26));  // heap: a leak would show in ASan
      if (i % 7 == 0) std::this_thread::sleep_for(t.stop_requested() ? 0ms : 1ms);
      active.fetch_sub(1);
      return s;
    });
  }
  {
    auto stream = weft::stream_batch(p, std::move(jobs));  // the stream owns the callables
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(stream.next().has_value());
  }
  EXPECT_EQ(active.load(), 0) << "a task outlived its stream";
  const int ran_at_destruction = ran.load();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(ran.load(), ran_at_destruction) << "a task started after its stream was destroyed";
  EXPECT_GE(ran_at_destruction, 3);
}

TEST_P(BatchTest, StreamCancelYieldsTheRestAsCancelled) {
  weft::pool p(options());
  blockers hold(p, workers() - 1);
  std::latch first_running(1);
  std::binary_semaphore go(0);
  std::vector<job> jobs;
  jobs.emplace_back([&](std::stop_token t) {
    first_running.count_down();
    go.acquire();
    return t.stop_requested() ? 1 : 0;
  });
  for (int i = 1; i < 6; ++i) jobs.emplace_back([](std::stop_token) { return 5; });
  auto stream = weft::stream_batch(p, jobs);
  first_running.wait();
  stream.cancel();
  go.release();
  std::size_t cancelled = 0, values = 0;
  for (auto&& [index, outcome] : stream) {
    if (outcome.cancelled()) {
      ++cancelled;
    } else {
      ++values;
      EXPECT_EQ(index, 0u);
      EXPECT_EQ(outcome.value(), 1);  // the running task saw its stop token
    }
  }
  EXPECT_EQ(values, 1u);
  EXPECT_EQ(cancelled, 5u);
}

// ---- closed pools and failed submissions ----

TEST_P(BatchTest, ClosedPoolThrowsPoolClosed) {
  weft::pool p(options());
  p.close();
  std::atomic<int> ran{0};
  std::vector<job> jobs(4, [&](std::stop_token) { return ++ran; });
  EXPECT_THROW(weft::run_batch(p, jobs), weft::pool_closed);
  EXPECT_THROW(weft::stream_batch(p, jobs), weft::pool_closed);
  EXPECT_THROW(weft::parallel_map(p, std::vector<int>{1}, [](int x) { return x; }), weft::pool_closed);
  EXPECT_EQ(ran.load(), 0);
}

// The pool closes after element 4 was posted: posting element 5 throws pool_closed, and the
// batch has cancelled or waited for 0..4 before the exception leaves run_batch.
TEST_P(BatchTest, PoolClosedPartWayWaitsForWhatWasPosted) {
  weft::pool p(options());
  std::atomic<int> active{0};
  std::vector<std::atomic<int>> ran(10);
  std::vector<job> jobs;
  for (std::size_t i = 0; i < ran.size(); ++i) {
    jobs.emplace_back([&, i](std::stop_token) {
      active.fetch_add(1);
      ran[i].fetch_add(1);
      std::this_thread::sleep_for(1ms);
      active.fetch_sub(1);
      return 0;
    });
  }
  std::thread closer;
  const std::function<void(std::size_t)> hook = [&](std::size_t pos) {
    if (pos != 4) return;
    closer = std::thread([&] { p.close(); });
    ASSERT_TRUE(eventually([&] { return p.closed(); }));
  };
  using it = hooked_iterator<job>;
  job* base = jobs.data();
  EXPECT_THROW(weft::run_batch(p, it(base, base, &hook), it(base + jobs.size(), base, &hook)), weft::pool_closed);
  EXPECT_EQ(active.load(), 0) << "a task of the batch was still running after run_batch threw";
  closer.join();
  for (std::size_t i = 0; i < ran.size(); ++i) EXPECT_LE(ran[i].load(), i <= 4 ? 1 : 0) << i;
}

// The user's iterator throws after three posts: the exception propagates once the posted
// elements have ended, for the result vector and for the stream alike.
TEST_P(BatchTest, IteratorThrowingPartWayLeavesNothingRunning) {
  weft::pool p(options());
  std::atomic<int> active{0};
  std::vector<job> jobs(8, [&](std::stop_token t) {
    active.fetch_add(1);
    if (!t.stop_requested()) std::this_thread::sleep_for(2ms);
    active.fetch_sub(1);
    return 0;
  });
  const std::function<void(std::size_t)> hook = [](std::size_t pos) {
    if (pos == 2) throw std::length_error("iterator");
  };
  using it = hooked_iterator<job>;
  job* base = jobs.data();
  const it first(base, base, &hook), last(base + jobs.size(), base, &hook);
  EXPECT_THROW(weft::run_batch(p, first, last), std::length_error);
  EXPECT_EQ(active.load(), 0);
  EXPECT_THROW(weft::stream_batch(p, first, last), std::length_error);  // while copying: nothing posted
  EXPECT_EQ(active.load(), 0);
}

// ---- parallel_map ----

TEST_P(BatchTest, ParallelMapKeepsInputOrder) {
  weft::pool p(options());
  std::vector<std::string> words{"a", "bb", "ccc", "dddd", "eeeee", "", "gg"};
  const auto sizes = weft::parallel_map(p, words, [](const std::string& w) { return w.size(); });
  ASSERT_EQ(sizes.size(), words.size());
  for (std::size_t i = 0; i < words.size(); ++i) EXPECT_EQ(sizes[i], words[i].size());
  const std::map<std::string, int> files{{"config.json", 3}, {"data.json", 5}};  // seed 002's ProcessMap
  const auto doubled = weft::parallel_map(p, files, [](const auto& kv, std::stop_token) { return kv.second * 2; });
  EXPECT_EQ(doubled, (std::vector<int>{6, 10}));
}

TEST_P(BatchTest, ParallelMapThrows) {
  weft::pool p(options());
  blockers hold(p, workers() - 1);
  std::vector<std::atomic<int>> ran(8);
  auto fn = [&](int i) {
    ran[static_cast<std::size_t>(i)].fetch_add(1);
    if (i == 2 || i == 6) throw task_error(static_cast<std::size_t>(i));
    return i;
  };
  try {  // fail_fast (default): the first failure, in order on one worker: 2; 3.. never run
    weft::parallel_map(p, std::views::iota(0, 8), fn);
    ADD_FAILURE();
  } catch (const task_error& e) {
    EXPECT_EQ(e.index, 2u);
  }
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(ran[i].exchange(0), i <= 2 ? 1 : 0) << i;
  try {  // collect_all: everything runs, then the lowest-indexed failure
    weft::parallel_map(p, std::views::iota(0, 8), fn, weft::error_policy::collect_all);
    ADD_FAILURE();
  } catch (const task_error& e) {
    EXPECT_EQ(e.index, 2u);
  }
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(ran[i].load(), 1) << i;
}

INSTANTIATE_TEST_SUITE_P(Workers, BatchTest, testing::Values(1, 2, 4),
                         [](const testing::TestParamInfo<int>& info) { return "w" + std::to_string(info.param); });

}  // namespace
