// tests/unit/observer_test.cpp: thread hooks, the task wrapper, the observer and the tracer
// (weft/observer.hpp). Each hook is counted against what the pool did; the wrapper is tried
// the ways a careless user writes one (forgets to call the task, throws).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <unistd.h>

#include "weft/observer.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;

TEST(ThreadHooks, StartAndStopOncePerWorkerWithItsIndex) {
  std::mutex mu;
  std::multiset<unsigned> started, stopped;
  std::atomic<int> unpinned{0};
  {
    weft::pool_options o;
    o.workers = 3;
    o.pinning = weft::pin_policy::none;
    o.on_thread_start = [&](unsigned w, int pu) {
      std::lock_guard lock(mu);
      started.insert(w);
      if (pu == -1) unpinned.fetch_add(1);
    };
    o.on_thread_stop = [&](unsigned w) {
      std::lock_guard lock(mu);
      stopped.insert(w);
    };
    weft::pool p(o);
    p.submit([] {}).get();
  }
  EXPECT_EQ(started, (std::multiset<unsigned>{0, 1, 2}));
  EXPECT_EQ(stopped, (std::multiset<unsigned>{0, 1, 2}));
  EXPECT_EQ(unpinned.load(), 3) << "pin_policy::none: every worker reports PU -1";
}

TEST(ThreadHooks, AThrowingHookIsReportedAndIgnored) {
  std::atomic<int> logged{0};
  weft::pool_options o;
  o.workers = 2;
  o.on_thread_start = [](unsigned, int) { throw std::runtime_error("boom"); };
  o.logger = [&](std::string_view line) {
    if (line.find("on_thread_start") != std::string_view::npos) logged.fetch_add(1);
  };
  weft::pool p(o);
  EXPECT_EQ(p.submit([] { return 5; }).get(), 5);
  p.close();
  EXPECT_EQ(logged.load(), 2);
}

TEST(TaskWrapper, RunsAroundEveryTaskExactlyOnce) {
  std::atomic<int> wrapped{0}, ran{0};
  thread_local int context = 0;  // what a wrapper propagates (a request id, say)
  std::atomic<int> saw_context{0};
  {
    weft::pool_options o;
    o.workers = 2;
    o.wrap_tasks = [&](weft::task_invocation& run) {
      wrapped.fetch_add(1);
      context = 42;
      run();
      run();  // a second call does nothing
      context = 0;
    };
    weft::pool p(o);
    weft::task_group g(p);
    for (int i = 0; i < 1000; ++i) g.run([&] {
      ran.fetch_add(1);
      if (context == 42) saw_context.fetch_add(1);
    });
    g.wait();
  }
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_EQ(saw_context.load(), 1000) << "every task ran inside its wrapper";
  EXPECT_GE(wrapped.load(), 1000);
}

TEST(TaskWrapper, AForgetfulOrThrowingWrapperLosesNoTask) {
  std::atomic<int> reported{0};
  std::atomic<int> calls{0};
  weft::pool_options o;
  o.workers = 1;
  o.wrap_tasks = [&](weft::task_invocation& run) {
    const int n = calls.fetch_add(1);
    if (n % 3 == 0) return;                                    // forgets to run it
    if (n % 3 == 1) throw std::runtime_error("wrapper bug");  // throws before running it
    run();
  };
  o.on_task_exception = [&](std::exception_ptr) { reported.fetch_add(1); };
  weft::pool p(o);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(p.submit([i] { return i; }).get(), i);
  auto bad = p.submit([]() -> int { throw std::logic_error("the task's own"); });
  EXPECT_THROW(bad.get(), std::logic_error) << "a task's exception reaches its future, not the wrapper";
  p.close();
  int throws = 0;
  for (int n = 0; n < calls.load(); ++n) throws += (n % 3 == 1) ? 1 : 0;
  EXPECT_EQ(calls.load(), 31);
  EXPECT_EQ(reported.load(), throws) << "each wrapper exception reported, and only those";
}

struct counting_observer final : weft::observer {
  std::atomic<int> submits{0}, starts{0}, finishes{0}, failed{0}, cancelled{0}, slow{0};
  void on_submit(int) noexcept override { submits.fetch_add(1); }
  void on_start(unsigned) noexcept override { starts.fetch_add(1); }
  void on_finish(const weft::task_event& e) noexcept override {
    finishes.fetch_add(1);
    if (e.result == weft::task_event::outcome::failed) failed.fetch_add(1);
    if (e.result == weft::task_event::outcome::cancelled) cancelled.fetch_add(1);
    if (e.run_ns >= 2'000'000) slow.fetch_add(1);
  }
};

TEST(Observer, SeesEverySubmissionStartAndFinishWithTimes) {
  auto obs = std::make_shared<counting_observer>();
  {
    weft::pool_options o;
    o.workers = 2;
    o.task_observer = obs;
    o.on_task_exception = [](std::exception_ptr) {};
    weft::pool p(o);
    for (int i = 0; i < 500; ++i) p.post([] {});
    p.post([] { throw 1; });
    p.submit([] { std::this_thread::sleep_for(3ms); }).get();
    std::stop_source stop;
    stop.request_stop();
    auto c = p.submit([] {}, weft::task_options{.stop_token = stop.get_token()});
    EXPECT_THROW(c.get(), weft::task_cancelled);
    p.close();
  }
  // 500 posts, the throwing one, the slow one, and the cancelled one: its token had fired,
  // so its queue entry is a husk that a worker pops and completes as cancelled.
  EXPECT_EQ(obs->submits.load(), 503);
  EXPECT_EQ(obs->starts.load(), 503);
  EXPECT_EQ(obs->finishes.load(), 503);
  EXPECT_EQ(obs->failed.load(), 1);
  EXPECT_EQ(obs->cancelled.load(), 1);
  EXPECT_EQ(obs->slow.load(), 1) << "run_ns of the 3 ms task";
}

// The trace file: valid structure, one thread name per worker, slices and flows (a
// thorough check of nesting and flow ends runs in tools/check-trace on a larger run).
TEST(Tracer, WritesTheTraceAtClose) {
  const auto path = std::filesystem::temp_directory_path() / ("weft-trace-" + std::to_string(::getpid()) + ".json");
  {
    weft::pool_options o;
    o.workers = 2;
    o.trace_path = path.string();
    weft::pool p(o);
    weft::task_group g(p);
    for (int i = 0; i < 200; ++i) g.run([] { std::this_thread::sleep_for(10us); });
    g.wait();
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string json = ss.str();
  std::filesystem::remove(path);
  EXPECT_EQ(json.rfind("{\"weft_trace_version\": 1", 0), 0u);
  EXPECT_NE(json.find("weft:0 ("), std::string::npos);
  EXPECT_NE(json.find("weft:1 ("), std::string::npos);
  std::size_t slices = 0;
  for (std::size_t at = 0; (at = json.find("\"ph\":\"X\"", at)) != std::string::npos; ++at) ++slices;
  EXPECT_GE(slices, 200u);
}

TEST(Tracer, AnUnwritablePathIsLoggedNotFatal) {
  std::atomic<int> logged{0};
  {
    weft::pool_options o;
    o.workers = 1;
    o.trace_path = "/nonexistent-dir/trace.json";
    o.logger = [&](std::string_view line) {
      if (line.find("trace") != std::string_view::npos) logged.fetch_add(1);
    };
    weft::pool p(o);
    p.submit([] {}).get();
  }
  EXPECT_EQ(logged.load(), 1);
}

}  // namespace
