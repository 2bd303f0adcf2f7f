// tests/stress/lanes_stress.cpp: priority lanes under concurrent producers, tasks that
// submit into lanes from workers, a bounded critical lane that overflows, stop tokens that
// fire, and a pool that is closed or stopped while the producers are still submitting.
// Exact accounting: every callable is destroyed exactly once; ran + cancelled + rejected =
// submitted, on the user's side and in the pool's metrics; every future is ready.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stop_token>
#include <thread>
#include <vector>

#include "watchdog.hpp"
#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;

double scale() {
  const char* s = std::getenv("WEFT_STRESS_SCALE");
  return s != nullptr ? std::max(0.01, std::atof(s)) : 1.0;
}

struct ledger {
  std::atomic<long> submitted{0}, accepted{0}, rejected{0}, ran{0}, destroyed{0};
  std::atomic<long> fut_value{0}, fut_cancelled{0};
};

// A callable that counts its run and its destruction; optionally submits a child into a
// lane from the worker it runs on.
struct job {
  ledger* l;
  weft::pool* p;
  unsigned child_lane;  // 0: no child; otherwise lane child_lane - 1
  bool live = true;
  job(ledger* led, weft::pool* pool, unsigned child) : l(led), p(pool), child_lane(child) {}
  job(job&& o) noexcept : l(o.l), p(o.p), child_lane(o.child_lane) { o.live = false; }
  ~job() {
    if (live) l->destroyed.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after the pool is gone
  }
  int operator()() const {
    l->ran.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
    if (child_lane != 0) {
      l->submitted.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
      try {
        p->post(job(l, p, 0), {.lane = weft::lane{child_lane - 1}});
        l->accepted.fetch_add(1, std::memory_order_relaxed);
      } catch (const weft::lane_full&) {
        l->rejected.fetch_add(1, std::memory_order_relaxed);
      } catch (const weft::pool_closed&) {  // options submissions are refused once closed, even here
        l->rejected.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return 1;
  }
};

void run_round(int round, long per_producer, bool stop_at_end) {
  ledger l;
  std::vector<weft::future<int>> futures[3];
  weft::pool_options o;
  o.workers = 3;
  o.lanes = {{.name = "a"},
             {.name = "b", .weight = 3, .max_wait = 2ms},
             {.name = "c", .critical = true, .capacity = 64, .quantum = 4}};
  {
    weft::pool p(o);
    std::atomic<bool> go{false};
    std::vector<std::thread> producers;
    for (int t = 0; t < 3; ++t) {
      producers.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(round * 31 + t));
        std::stop_source cancel;
        while (!go.load()) std::this_thread::yield();
        for (long k = 0; k < per_producer; ++k) {
          const unsigned lane = rng() % 3;
          const unsigned kind = rng() % 5;
          if (k % 97 == 0) {
            cancel.request_stop();  // the tokens handed out so far fire
            cancel = std::stop_source();
          }
          l.submitted.fetch_add(1, std::memory_order_relaxed);
          try {
            switch (kind) {
              case 0:
                p.post(job(&l, &p, 0), {.lane = weft::lane{lane}});
                break;
              case 1:
                futures[t].push_back(p.submit(job(&l, &p, 0), {.lane = weft::lane{lane}}));
                break;
              case 2:
                if (p.try_post(job(&l, &p, 0)) != weft::submit_status::accepted) {
                  l.rejected.fetch_add(1, std::memory_order_relaxed);
                  continue;
                }
                break;
              case 3:
                p.post(job(&l, &p, 0), {.stop_token = cancel.get_token(), .lane = weft::lane{lane}});
                break;
              default:
                p.post(job(&l, &p, 1 + rng() % 3));
                break;
            }
            l.accepted.fetch_add(1, std::memory_order_relaxed);
          } catch (const weft::lane_full&) {
            l.rejected.fetch_add(1, std::memory_order_relaxed);
          } catch (const weft::pool_closed&) {
            l.rejected.fetch_add(1, std::memory_order_relaxed);
          }
        }
      });
    }
    go.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(2 + round % 5));
    if (stop_at_end) {
      p.stop_now();
    } else {
      for (auto& th : producers) th.join();
      p.close();
    }
    for (auto& th : producers) {
      if (th.joinable()) th.join();
    }
    for (auto& fs : futures) {
      for (auto& f : fs) {
        try {
          f.get();
          l.fut_value.fetch_add(1);
        } catch (const weft::task_cancelled&) {
          l.fut_cancelled.fetch_add(1);
        }
      }
    }
    const auto m = p.stats();
    long lanes_dispatched = 0;
    for (const auto& ls : p.lane_stats()) {
      EXPECT_EQ(ls.depth, 0u) << ls.name;
      lanes_dispatched += static_cast<long>(ls.dispatched);
    }
    const long cancelled = l.accepted.load() - l.ran.load();
    EXPECT_GE(cancelled, 0);
    EXPECT_EQ(static_cast<long>(m.completed), l.ran.load()) << "round " << round;
    EXPECT_EQ(static_cast<long>(m.cancelled), cancelled) << "round " << round;
    EXPECT_EQ(static_cast<long>(m.rejected), l.rejected.load()) << "round " << round;
    EXPECT_EQ(m.failed, 0u);
    EXPECT_EQ(m.queued, 0u);
    EXPECT_LE(lanes_dispatched, l.accepted.load());
  }
  EXPECT_EQ(l.destroyed.load(), l.submitted.load()) << "every callable destroyed exactly once, round " << round;
  EXPECT_EQ(l.accepted.load() + l.rejected.load(), l.submitted.load());
  long nfut = 0;
  for (auto& fs : futures) nfut += static_cast<long>(fs.size());
  EXPECT_EQ(l.fut_value.load() + l.fut_cancelled.load(), nfut) << "every future is ready";
}

TEST(LanesStress, ExactAccountingUnderCloseAndStop) {
  const auto r = weft_test::run_in_child(
      [] {
        const int rounds = std::max(4, static_cast<int>(40 * scale()));
        const long per = std::max(200L, static_cast<long>(20'000 * scale()));
        for (int round = 0; round < rounds; ++round) {
          run_round(round, per, round % 2 == 1);
          if (::testing::Test::HasFailure()) break;
        }
        WEFT_CHILD_CHECK(!::testing::Test::HasFailure());
      },
      280s);
  EXPECT_TRUE(r.passed()) << r.describe();
}

}  // namespace
