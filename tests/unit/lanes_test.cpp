// tests/unit/lanes_test.cpp: priority lanes (weft/lanes.hpp, runtime/layers/lanes.hpp).
// The guarantees of the header, each tried where it could break: the weighted window bound
// (exhaustively on the picker, and live on a one-worker pool whose dispatch order is
// recorded), the picker's bound under churn, max_wait plus one task, the critical quantum,
// a low-priority flood against a high-priority task, routing (default lane, fork-join stays
// on the deque), invalid configurations and lanes, bounded lanes, close and stop_now.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "layers/lanes.hpp"
#include "core/pool_impl.hpp"
#include "watchdog.hpp"
#include "weft/detail/pool_access.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using weft::detail::lane_picker;

weft::pool_options with_lanes(int workers, std::vector<weft::lane_config> lanes) {
  weft::pool_options o;
  o.workers = workers;
  o.lanes = std::move(lanes);
  return o;
}

// Checks the window bound of weft/lanes.hpp on a dispatch sequence during which every lane
// stayed backlogged: for every window [a, b) and lane i, floor(W*w_i/S) - 1 <= count <=
// ceil(W*w_i/S) + 1. Returns the first violation, or "".
std::string check_windows(const std::vector<int>& seq, const std::vector<unsigned>& w) {
  const std::size_t n = w.size();
  std::int64_t sum = 0;
  for (unsigned x : w) sum += x;
  std::vector<std::vector<std::int64_t>> prefix(n, std::vector<std::int64_t>(seq.size() + 1, 0));
  for (std::size_t k = 0; k < seq.size(); ++k) {
    for (std::size_t i = 0; i < n; ++i) prefix[i][k + 1] = prefix[i][k] + (seq[k] == static_cast<int>(i) ? 1 : 0);
  }
  for (std::size_t a = 0; a < seq.size(); ++a) {
    for (std::size_t b = a + 1; b <= seq.size(); ++b) {
      const auto len = static_cast<std::int64_t>(b - a);
      for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t got = prefix[i][b] - prefix[i][a];
        const std::int64_t lo = len * w[i] / sum - 1;
        const std::int64_t hi = (len * w[i] + sum - 1) / sum + 1;
        if (got < lo || got > hi) {
          return "lane " + std::to_string(i) + " got " + std::to_string(got) + " in window [" + std::to_string(a) + ", " +
                 std::to_string(b) + "), bounds [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
        }
      }
    }
  }
  return "";
}

std::vector<int> backlogged_sequence(const std::vector<unsigned>& w, std::size_t steps) {
  lane_picker p(w);
  const std::uint32_t all = (1u << w.size()) - 1;
  std::vector<int> seq;
  for (std::size_t k = 0; k < steps; ++k) {
    const int i = p.choose(all);
    seq.push_back(i);
    p.commit(static_cast<unsigned>(i), all);
  }
  return seq;
}

TEST(LanePicker, WindowBoundHoldsForEveryWeightVectorUpToFourLanes) {
  std::vector<unsigned> w;
  std::size_t cases = 0;
  for (std::size_t n = 1; n <= 4; ++n) {
    const unsigned top = n <= 2 ? 12 : n == 3 ? 7 : 5;
    w.assign(n, 1);
    for (;;) {
      unsigned sum = 0;
      for (unsigned x : w) sum += x;
      const std::string bad = check_windows(backlogged_sequence(w, 3 * sum), w);
      ASSERT_EQ(bad, "") << "weights of " << n << " lanes, first " << w[0];
      ++cases;
      std::size_t k = 0;  // next weight vector (odometer)
      while (k < n && w[k] == top) w[k++] = 1;
      if (k == n) break;
      ++w[k];
    }
  }
  EXPECT_GT(cases, 700u);
}

TEST(LanePicker, WindowBoundHoldsForLargeRandomWeights) {
  std::mt19937 rng(7);
  for (int round = 0; round < 8; ++round) {
    const std::size_t n = 2 + rng() % 15;
    std::vector<unsigned> w(n);
    for (auto& x : w) x = 1 + rng() % (round % 2 == 0 ? 9u : 400u);
    const std::string bad = check_windows(backlogged_sequence(w, 600), w);
    ASSERT_EQ(bad, "") << "round " << round;
  }
}

// Lanes come and go; a lane that stays backlogged is served within 2 * sum(w) + lanes steps.
TEST(LanePicker, NoBackloggedLaneStarvesUnderChurn) {
  std::mt19937 rng(11);
  const std::vector<unsigned> w{1, 7, 30, 2, 60};
  lane_picker p(w);
  std::int64_t sum = 0;
  for (unsigned x : w) sum += x;
  std::vector<std::int64_t> waiting(w.size(), 0);
  std::uint32_t mask = 1;  // lane 0 always backlogged: it must keep being served
  for (int step = 0; step < 200'000; ++step) {
    if (step % 3 == 0) mask = 1u | (static_cast<std::uint32_t>(rng()) & 0x1eu);
    const int i = p.choose(mask);
    ASSERT_GE(i, 0);
    ASSERT_TRUE(((mask >> i) & 1u) != 0) << "served a lane that has nothing";
    p.commit(static_cast<unsigned>(i), mask);
    waiting[0] = i == 0 ? 0 : waiting[0] + 1;
    ASSERT_LE(waiting[0], 2 * sum + static_cast<std::int64_t>(w.size())) << "lane 0 starved at step " << step;
  }
  EXPECT_EQ(p.choose(0), -1);
}

// ---- live pools ----

// One worker, held by a task in lane 0 until `release`; `run` is what the test does while
// the worker is held (fill the lanes); returns once the pool has closed.
struct held_pool {
  weft::pool p;
  std::latch held{1};
  std::latch release{1};
  explicit held_pool(std::vector<weft::lane_config> lanes) : p(with_lanes(1, std::move(lanes))) {
    p.post([this] {
      held.count_down();
      release.wait();
    });
    held.wait();
  }
};

TEST(Lanes, WeightedWindowBoundOnOneWorker) {
  const std::vector<unsigned> w{1, 2, 3, 5};
  std::vector<weft::lane_config> cfg;
  for (std::size_t i = 0; i < w.size(); ++i) cfg.push_back({.name = "l" + std::to_string(i), .weight = w[i]});
  constexpr int kPerLane = 120;
  std::vector<int> seq;  // written by the one worker only; read after close
  {
    held_pool h(cfg);
    for (int k = 0; k < kPerLane; ++k) {
      for (unsigned i = 0; i < w.size(); ++i) h.p.post([&seq, i] { seq.push_back(static_cast<int>(i)); }, {.lane = weft::lane{i}});
    }
    h.release.count_down();
    h.p.close();
  }
  ASSERT_EQ(seq.size(), kPerLane * w.size());
  // The prefix during which every lane was backlogged: up to the first lane's last task.
  std::vector<int> left(w.size(), kPerLane);
  std::size_t end = 0;
  while (end < seq.size() && --left[static_cast<std::size_t>(seq[end])] > 0) ++end;
  ASSERT_GT(end, 100u);
  seq.resize(end);
  EXPECT_EQ(check_windows(seq, w), "");
}

TEST(Lanes, AHeadWaitsAtMostMaxWaitPlusOneTask) {
  const auto max_wait = 20ms;
  std::mutex mu;
  std::vector<std::pair<int, clock_type::time_point>> starts;  // (lane, start)
  auto record = [&](int lane) {
    std::lock_guard lock(mu);
    starts.emplace_back(lane, clock_type::now());
  };
  clock_type::time_point posted;
  {
    held_pool h({{.name = "bulk", .weight = 1000}, {.name = "slow", .weight = 1, .max_wait = max_wait}});
    for (int k = 0; k < 300; ++k) {
      h.p.post([&] {
        record(0);
        std::this_thread::sleep_for(1ms);
      });
    }
    h.p.post([&] { record(1); }, {.lane = weft::lane{"slow"}});
    posted = clock_type::now();  // after the task entered the lane
    h.release.count_down();
    h.p.close();
  }
  const auto slow = std::find_if(starts.begin(), starts.end(), [](const auto& s) { return s.first == 1; });
  ASSERT_NE(slow, starts.end());
  ASSERT_NE(slow + 1, starts.end()) << "the slow lane must have overtaken bulk work (weight 1 against 1000)";
  int late = 0;  // bulk tasks started once the head was overdue, before it
  for (auto it = starts.begin(); it != slow; ++it) late += it->second > posted + max_wait ? 1 : 0;
  EXPECT_LE(late, 1) << "the overdue head waited behind " << late << " tasks";
  EXPECT_GE(slow->second - posted, max_wait / 2) << "served by max_wait, not earlier by weight";
}

TEST(Lanes, CriticalLaneYieldsOnceAfterItsQuantum) {
  std::vector<char> seq;
  {
    held_pool h({{.name = "normal"}, {.name = "crit", .critical = true, .capacity = 64, .quantum = 3}});
    for (int k = 0; k < 10; ++k) h.p.post([&seq] { seq.push_back('C'); }, {.lane = weft::lane{"crit"}});
    for (int k = 0; k < 4; ++k) h.p.post([&seq] { seq.push_back('N'); }, {.lane = weft::lane{0u}});
    h.release.count_down();
    h.p.close();
  }
  EXPECT_EQ(std::string(seq.begin(), seq.end()), "CCCNCCCNCCCNCN");
}

TEST(Lanes, ABoundedLaneRefusesWhenFullAndCountsIt) {
  std::atomic<int> ran{0}, destroyed{0};
  struct counted {
    std::atomic<int>* ran;
    std::atomic<int>* destroyed;
    bool live = true;
    counted(std::atomic<int>* r, std::atomic<int>* d) : ran(r), destroyed(d) {}
    counted(counted&& o) noexcept : ran(o.ran), destroyed(o.destroyed) { o.live = false; }
    ~counted() {
      if (live) destroyed->fetch_add(1);
    }
    void operator()() const { ran->fetch_add(1); }
  };
  {
    held_pool h({{.name = "normal"}, {.name = "crit", .critical = true, .capacity = 4, .quantum = 1}});
    const weft::task_options crit{.lane = weft::lane{"crit"}};
    for (int k = 0; k < 4; ++k) h.p.post(counted(&ran, &destroyed), crit);
    EXPECT_THROW(h.p.post(counted(&ran, &destroyed), crit), weft::lane_full);
    EXPECT_THROW(h.p.submit([] { return 1; }, crit), weft::lane_full);
    EXPECT_EQ(destroyed.load(), 1) << "the refused callable is destroyed at once";
    const auto ls = h.p.lane_stats();
    ASSERT_EQ(ls.size(), 2u);
    EXPECT_EQ(ls[1].depth, 4u);
    EXPECT_EQ(ls[1].refused, 2u);
    EXPECT_EQ(h.p.stats().rejected, 2u);
    h.release.count_down();
    h.p.close();
    EXPECT_EQ(h.p.lane_stats()[1].dispatched, 4u);
  }
  EXPECT_EQ(ran.load(), 4);
  EXPECT_EQ(destroyed.load(), 5);
}

// A flood of low-lane work on every worker: a high-lane task starts before any worker has
// started more than one further low task.
TEST(Lanes, AFloodOfLowWorkDelaysAHighTaskByAtMostOneTaskPerWorker) {
  constexpr int kWorkers = 2;
  for (const bool critical : {false, true}) {
    std::vector<weft::lane_config> cfg{{.name = "low"}};
    if (critical) {
      cfg.push_back({.name = "high", .critical = true, .capacity = 8, .quantum = 1});
    } else {
      cfg.push_back({.name = "high", .weight = 100});
    }
    weft::pool p(with_lanes(kWorkers, cfg));
    constexpr int kLow = 400;
    std::vector<std::atomic<std::int64_t>> low_start(kLow);  // ns since `origin`, by start order
    std::atomic<int> low_started{0};
    std::atomic<bool> stop{false};
    const auto origin = clock_type::now();
    auto since = [origin] { return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - origin).count(); };
    for (int k = 0; k < kLow; ++k) {
      p.post([&] {
        low_start[static_cast<std::size_t>(low_started.fetch_add(1))].store(since());
        if (!stop.load()) std::this_thread::sleep_for(1ms);
      });
    }
    while (low_started.load() < 20) std::this_thread::sleep_for(1ms);
    std::atomic<std::int64_t> high_start{0};
    auto fut = p.submit([&] { high_start.store(since()); }, {.lane = weft::lane{"high"}});
    const std::int64_t queued_by = since();  // the high task was in its lane before this
    fut.get();
    stop.store(true);
    p.close();
    // Low tasks that started after the high task was queued and before it started: each
    // worker may start at most one (it polled just before the high task arrived).
    int overtaking = 0;
    for (const auto& t : low_start) overtaking += (t.load() > queued_by && t.load() < high_start.load()) ? 1 : 0;
    EXPECT_LE(overtaking, kWorkers) << (critical ? "critical" : "weighted") << " high lane";
    const auto after = std::count_if(low_start.begin(), low_start.end(), [&](const auto& t) { return t.load() > high_start.load(); });
    EXPECT_GT(after, 100) << "the flood was still queued when the high task ran";
  }
}

TEST(Lanes, RoutingDefaultLaneAndForkJoinStayOnTheDeque) {
  weft::pool p(with_lanes(2, {{.name = "default"}, {.name = "other", .weight = 3}}));
  p.submit([] {}).get();                                       // no lane, from outside: lane 0
  p.submit([] {}, {.stop_token = {}}).get();                   // options without a lane: lane 0
  p.submit([] {}, {.lane = weft::lane{"other"}}).get();        // named
  p.submit([&p] {                                              // from a worker:
     weft::task_group g(p);
     for (int i = 0; i < 50; ++i) g.run([] {});                // children: the deque
     p.post([] {});                                            // plain post: the deque
     p.submit([] {}, {.lane = weft::lane{1u}}).get();          // a lane: the lane
     g.wait();
   }).get();
  p.close();
  const auto ls = p.lane_stats();
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0].name, "default");
  EXPECT_EQ(ls[0].dispatched, 3u);
  EXPECT_EQ(ls[1].dispatched, 2u);
  EXPECT_EQ(p.stats().completed, 4u + 50u + 2u);
}

TEST(Lanes, WithoutLanesNothingIsRegistered) {
  weft::pool p(with_lanes(1, {}));
  EXPECT_EQ(weft::detail::pool_access::impl(p).sources().count(), 0u);
  EXPECT_EQ(weft::detail::pool_access::impl(p).lanes(), nullptr);
  EXPECT_TRUE(p.lane_stats().empty());
  EXPECT_THROW(p.post([] {}, {.lane = weft::lane{0u}}), std::invalid_argument);
  EXPECT_EQ(p.stats().rejected, 1u);
  weft::pool q(with_lanes(1, {{.name = "a"}}));
  EXPECT_EQ(weft::detail::pool_access::impl(q).sources().count(), 1u) << "one source for all the lanes";
}

TEST(Lanes, AnUnknownLaneIsRejectedNamingTheOption) {
  weft::pool p(with_lanes(1, {{.name = "a"}, {.name = "b"}}));
  std::atomic<int> ran{0};
  for (const weft::lane& bad : {weft::lane{"c"}, weft::lane{2u}}) {
    try {
      p.post([&] { ran.fetch_add(1); }, {.lane = bad});
      ADD_FAILURE() << "an unknown lane was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("weft::task_options::lane"), std::string::npos) << e.what();
    }
  }
  p.close();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(p.stats().rejected, 2u);
}

struct bad_config {
  const char* id;  // the test's name
  std::vector<weft::lane_config> lanes;
  const char* names;  // expected in the message
};

class LanesInvalidConfig : public ::testing::TestWithParam<bad_config> {};

TEST_P(LanesInvalidConfig, ThrowsNamingTheField) {
  try {
    weft::pool p(with_lanes(1, GetParam().lanes));
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam().names), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Lanes, LanesInvalidConfig,
    ::testing::Values(
        bad_config{"ZeroWeight", {{.name = "a"}, {.name = "b"}, {.name = "c", .weight = 0}}, "weft::pool_options::lanes[2].weight"},
        bad_config{"HugeWeight", {{.name = "a", .weight = 1'000'001}}, "lanes[0].weight"},
        bad_config{"EmptyName", {{.name = ""}}, "lanes[0].name"},
        bad_config{"DuplicateName", {{.name = "a"}, {.name = "a"}}, "lanes[1].name"},
        bad_config{"NegativeMaxWait", {{.name = "a", .max_wait = -1ms}}, "lanes[0].max_wait"},
        bad_config{"UnboundedCritical", {{.name = "a", .critical = true, .quantum = 2}}, "lanes[0].capacity"},
        bad_config{"CriticalWithoutQuantum", {{.name = "a", .critical = true, .capacity = 2}}, "lanes[0].quantum"},
        bad_config{"QuantumOnWeightedLane", {{.name = "a", .quantum = 2}}, "lanes[0].quantum"},
        bad_config{"TwoCriticalLanes", {{.name = "a", .critical = true, .capacity = 1, .quantum = 1},
                    {.name = "b", .critical = true, .capacity = 1, .quantum = 1}},
                   "lanes[1].critical"},
        bad_config{"TooManyLanes", std::vector<weft::lane_config>(17, weft::lane_config{.name = "x"}), "weft::pool_options::lanes:"}),
    [](const ::testing::TestParamInfo<bad_config>& info) { return std::string(info.param.id); });

TEST(Lanes, EdgeDurationsAndLookupsWork) {
  weft::pool p(with_lanes(2, {{.name = "a", .max_wait = clock_type::duration::max()},
                              {.name = "b", .weight = 1'000'000, .max_wait = 1ns}}));
  std::atomic<int> ran{0};
  for (int k = 0; k < 100; ++k) {
    p.post([&] { ran.fetch_add(1); }, {.lane = weft::lane{"a"}});
    p.post([&] { ran.fetch_add(1); }, {.lane = weft::lane{std::string("b")}});  // a temporary name
  }
  EXPECT_EQ(p.try_post([&] { ran.fetch_add(1); }), weft::submit_status::accepted);
  p.close();
  EXPECT_EQ(ran.load(), 201);
  EXPECT_EQ(p.lane_stats()[0].dispatched, 101u);
}

TEST(Lanes, CloseDrainsEveryLane) {
  std::atomic<int> ran{0};
  {
    held_pool h({{.name = "a"}, {.name = "b", .weight = 4, .max_wait = 1ms}, {.name = "c", .critical = true, .capacity = 100, .quantum = 2}});
    for (int k = 0; k < 300; ++k) h.p.post([&] { ran.fetch_add(1); }, {.lane = weft::lane{static_cast<unsigned>(k % 3)}});
    h.release.count_down();
    h.p.close();
    EXPECT_EQ(ran.load(), 300);
    for (const auto& l : h.p.lane_stats()) EXPECT_EQ(l.depth, 0u) << l.name;
    EXPECT_EQ(h.p.stats().completed, 301u);
  }
}

TEST(Lanes, StopNowCancelsLaneTasksWithExactCounts) {
  const auto r = weft_test::run_in_child(
      [] {
        weft::pool p(with_lanes(1, {{.name = "a"}, {.name = "b", .weight = 2}}));
        std::latch busy(1);
        p.post([&](std::stop_token st) {
          busy.count_down();
          while (!st.stop_requested()) std::this_thread::sleep_for(100us);
        });
        busy.wait();
        std::vector<weft::future<int>> futs;
        for (int k = 0; k < 200; ++k) futs.push_back(p.submit([k] { return k; }, {.lane = weft::lane{static_cast<unsigned>(k % 2)}}));
        for (int k = 0; k < 50; ++k) p.post([] {});  // plain: the default lane
        p.stop_now();
        int cancelled = 0;
        for (auto& f : futs) {
          try {
            f.get();
          } catch (const weft::task_cancelled&) {
            ++cancelled;
          }
        }
        WEFT_CHILD_CHECK(cancelled == 200);
        bool closed = false;
        try {
          p.post([] {}, {.lane = weft::lane{"b"}});
        } catch (const weft::pool_closed&) {
          closed = true;
        }
        WEFT_CHILD_CHECK(closed);
        WEFT_CHILD_CHECK(p.try_post([] {}) == weft::submit_status::closed);
        const auto m = p.stats();
        // ran (the holder) + cancelled + rejected = submitted (1 + 250 + 2)
        WEFT_CHILD_CHECK(m.completed == 1);
        WEFT_CHILD_CHECK(m.cancelled == 250);
        WEFT_CHILD_CHECK(m.rejected == 2);
        WEFT_CHILD_CHECK(m.queued == 0);
      },
      60s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// A parked pool wakes for each lane task, every time (TS2 through the layer).
TEST(Lanes, AParkedPoolWakesForEachLaneTask) {
  const auto r = weft_test::run_in_child(
      [] {
        weft::pool p(with_lanes(2, {{.name = "a"}, {.name = "b", .weight = 3, .max_wait = 5ms}}));
        for (int i = 0; i < 1'000; ++i) {
          p.submit([] {}, {.lane = weft::lane{static_cast<unsigned>(i % 2)}}).get();
          if (i % 100 == 0) std::this_thread::sleep_for(2ms);  // let the workers park
        }
        const auto ls = p.lane_stats();
        WEFT_CHILD_CHECK(ls[0].dispatched == 500 && ls[1].dispatched == 500);
        WEFT_CHILD_CHECK(ls[1].wait_samples == 500);  // a max_wait lane times every task
      },
      60s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

}  // namespace
