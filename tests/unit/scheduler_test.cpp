// tests/unit/scheduler_test.cpp: the P2300-shaped scheduler (weft/scheduler.hpp) with a
// minimal in-repo receiver: value completion on a worker thread, stopped on a fired token
// (before start and while queued), stopped after close, scheduler equality and queries,
// bulk covering every index once (and its errors), and no allocation in
// schedule/connect/start.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <latch>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <vector>

#include "test_util.hpp"
#include "watchdog.hpp"
#include "weft/scheduler.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_news{0};
void* counted_new(std::size_t n) {
  // relaxed: a statistic read after the counted work completed.
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;
namespace ex = weft::exec;

enum class how { none, value, error, stopped };

// What a receiver saw: which completion, on which worker of the pool (-1: not a worker).
struct record {
  std::atomic<how> got{how::none};
  std::atomic<int> completions{0};
  int worker = -2;
  std::exception_ptr error;
  weft::pool* p = nullptr;

  void done(how h) noexcept {
    worker = p != nullptr ? p->current_worker_index() : -1;
    completions.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after got (release)
    got.store(h, std::memory_order_release);               // release: pairs with wait()'s acquire
  }
  how wait() const {
    const auto until = std::chrono::steady_clock::now() + 30s;
    how h;
    // acquire: pairs with the release store in done().
    while ((h = got.load(std::memory_order_acquire)) == how::none && std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
    }
    return h;
  }
};

struct env {
  std::stop_token token;
  std::stop_token query(ex::get_stop_token_t) const noexcept { return token; }
};

struct receiver {
  using receiver_concept = ex::receiver_t;
  record* r;
  std::stop_token token;
  void set_value() noexcept { r->done(how::value); }
  void set_error(std::exception_ptr e) noexcept {
    r->error = std::move(e);
    r->done(how::error);
  }
  void set_stopped() noexcept { r->done(how::stopped); }
  env get_env() const noexcept { return {token}; }
};

constexpr auto kLimit = 60s;

weft::pool_options opts(int workers) {
  weft::pool_options o;
  o.workers = workers;
  return o;
}

void expect_in_child(const std::function<void()>& scenario) {
  const auto r = weft_test::run_in_child(scenario, kLimit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

TEST(scheduler, value_completes_on_a_worker) {
  expect_in_child([] {
    weft::pool p(opts(2));
    auto sch = weft::scheduler_of(p);
    for (int i = 0; i < 100; ++i) {
      record rec;
      rec.p = &p;
      auto op = ex::connect(ex::schedule(sch), receiver{&rec, {}});
      ex::start(op);
      WEFT_CHILD_CHECK(rec.wait() == how::value);
      WEFT_CHILD_CHECK(rec.worker >= 0 && rec.worker < 2);
      WEFT_CHILD_CHECK(rec.completions.load() == 1);
    }
  });
}

TEST(scheduler, a_fired_token_completes_stopped) {
  expect_in_child([] {
    weft::pool p(opts(1));
    auto sch = weft::scheduler_of(p);
    {  // fired before start: stopped at once, on the caller
      std::stop_source src;
      src.request_stop();
      record rec;
      rec.p = &p;
      auto op = ex::connect(ex::schedule(sch), receiver{&rec, src.get_token()});
      ex::start(op);
      WEFT_CHILD_CHECK(rec.got.load() == how::stopped);
      WEFT_CHILD_CHECK(rec.worker == -1);
    }
    {  // fired while queued behind a busy worker: stopped, on the worker
      weft_test::worker_blocker busy(p, 1);
      std::stop_source src;
      record rec;
      rec.p = &p;
      auto op = ex::connect(ex::schedule(sch), receiver{&rec, src.get_token()});
      ex::start(op);
      src.request_stop();
      busy.release();
      WEFT_CHILD_CHECK(rec.wait() == how::stopped);
      WEFT_CHILD_CHECK(rec.worker == 0);
    }
  });
}

TEST(scheduler, a_closed_pool_completes_stopped) {
  expect_in_child([] {
    weft::pool p(opts(1));
    auto sch = weft::scheduler_of(p);
    p.close();
    record rec;
    auto op = ex::connect(ex::schedule(sch), receiver{&rec, {}});
    ex::start(op);
    WEFT_CHILD_CHECK(rec.got.load() == how::stopped);
  });
}

TEST(scheduler, a_stopped_pool_completes_queued_operations_stopped) {
  expect_in_child([] {
    weft::pool p(opts(1));
    auto sch = weft::scheduler_of(p);
    std::optional<weft_test::worker_blocker> busy(std::in_place, p, 1);
    std::vector<record> recs(8);
    struct holder {  // an operation state is neither copyable nor movable: built in place
      decltype(ex::connect(ex::schedule(sch), receiver{nullptr, {}})) op;
      holder(weft::exec::pool_scheduler s, record* r) : op(ex::connect(ex::schedule(s), receiver{r, {}})) {}
    };
    std::vector<std::unique_ptr<holder>> ops;
    for (auto& r : recs) {
      ops.push_back(std::make_unique<holder>(sch, &r));
      ex::start(ops.back()->op);
    }
    std::jthread stopper([&] { p.stop_now(); });
    std::this_thread::sleep_for(20ms);
    busy->release();
    stopper.join();
    for (auto& r : recs) WEFT_CHILD_CHECK(r.wait() == how::stopped);
  });
}

TEST(scheduler, equality_and_queries) {
  expect_in_child([] {
    weft::pool a(opts(2));
    weft::pool b(opts(1));
    const auto sa = weft::scheduler_of(a);
    WEFT_CHILD_CHECK(sa == weft::scheduler_of(a));
    WEFT_CHILD_CHECK(!(sa == weft::scheduler_of(b)));
    WEFT_CHILD_CHECK(ex::get_forward_progress_guarantee(sa) == ex::forward_progress_guarantee::parallel);
    WEFT_CHILD_CHECK(sa.available_parallelism() == 2);
    const auto s = ex::schedule(sa);
    WEFT_CHILD_CHECK(ex::get_completion_scheduler<ex::set_value_t>(ex::get_env(s)) == sa);
  });
}

TEST(scheduler, bulk_covers_every_index_once) {
  expect_in_child([] {
    weft::pool p(opts(4));
    auto sch = weft::scheduler_of(p);
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{10'000}}) {
      std::vector<std::atomic<int>> hits(n);
      record rec;
      rec.p = &p;
      auto op = ex::connect(ex::bulk(ex::schedule(sch), n, [&](std::size_t i) { hits[i].fetch_add(1); }),
                            receiver{&rec, {}});
      ex::start(op);
      WEFT_CHILD_CHECK(rec.wait() == how::value);
      for (auto& h : hits) WEFT_CHILD_CHECK(h.load() == 1);
    }
    // An exception from f completes with set_error.
    record rec;
    auto op = ex::connect(ex::bulk(ex::schedule(sch), 100, [](int i) {
                            if (i == 42) throw std::runtime_error("42");
                          }),
                          receiver{&rec, {}});
    ex::start(op);
    WEFT_CHILD_CHECK(rec.wait() == how::error);
    bool right = false;
    try {
      std::rethrow_exception(rec.error);
    } catch (const std::runtime_error& e) {
      right = std::string(e.what()) == "42";
    }
    WEFT_CHILD_CHECK(right);
    bool threw = false;
    try {
      (void)ex::bulk(ex::schedule(sch), -1, [](int) {});
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    WEFT_CHILD_CHECK(threw);
  });
}

TEST(scheduler, schedule_connect_start_allocate_nothing) {
  expect_in_child([] {
    weft::pool p(opts(2));
    auto sch = weft::scheduler_of(p);
    auto once = [&] {
      record rec;
      auto op = ex::connect(ex::schedule(sch), receiver{&rec, {}});
      ex::start(op);
      WEFT_CHILD_CHECK(rec.wait() == how::value);
    };
    for (int i = 0; i < 2000; ++i) once();  // warm the injection queue's blocks
    g_news = 0;
    g_counting = true;
    for (int i = 0; i < 1000; ++i) once();
    g_counting = false;
    WEFT_CHILD_CHECK(g_news.load() == 0);
  });
}

}  // namespace
