// perf/burst_trace.cpp (weft-burst-trace): burst scaling, measured (BENCHMARKS.md, "Burst
// scaling"). Three measurements of an elastic pool (pool_options::min_workers/max_workers):
//   grow     time from the first submission of a sudden load of `max` tasks that can only
//            finish together (each waits on a latch for all the others) until all of them
//            run: the time to grow from min to max threads. Median of 9 fresh pools.
//   idle     CPU time (getrusage, all threads) per second of an idle pool that has shrunk
//            back to min after a burst, next to a fixed pool of `max` workers, idle too.
//   trace    thread count against time under a bursty load (bursts of 100 us spinning
//            tasks posted at once, then silence longer than keep_alive), sampled from stats() every 2 ms; written
//            as "ms threads queued" lines to the file given with --trace (for gnuplot).
// Usage: weft-burst-trace [--min N] [--max N] [--keep-alive-ms N] [--trace FILE]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "weft/pool.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

weft::pool_options options(int min, int max, std::chrono::milliseconds keep_alive) {
  weft::pool_options o;
  o.min_workers = min;
  o.max_workers = max;
  o.keep_alive = keep_alive;
  o.pinning = weft::pin_policy::none;
  return o;
}

void spin_for(std::chrono::microseconds d) {
  const auto until = clock_type::now() + d;
  while (clock_type::now() < until) {
  }
}

double grow_ms(int min, int max) {
  std::vector<double> samples;
  for (int rep = 0; rep < 9; ++rep) {
    weft::pool p(options(min, max, 10s));
    p.submit([] { return 0; }).get();  // the first threads have started and gone idle
    std::this_thread::sleep_for(20ms);
    auto all = std::make_shared<std::latch>(max + 1);
    std::atomic<clock_type::rep> last{0};
    const auto t0 = clock_type::now();
    for (int i = 0; i < max; ++i) {
      p.post([all, &last] {
        last.store(clock_type::now().time_since_epoch().count(), std::memory_order_relaxed);  // relaxed: read after the latch
        all->arrive_and_wait();
      });
    }
    all->arrive_and_wait();  // every task runs: max threads
    const auto t1 = clock_type::time_point(clock_type::duration(last.load(std::memory_order_relaxed)));
    samples.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

double idle_cpu_ms_per_s(const weft::pool& /*alive*/) {
  const double c0 = cpu_seconds();
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(1s);
  const double wall = std::chrono::duration<double>(clock_type::now() - t0).count();
  return (cpu_seconds() - c0) * 1000.0 / wall;
}

}  // namespace

int main(int argc, char** argv) {
  int min = 1, max = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  long keep_alive_ms = 100;
  const char* trace = nullptr;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--min") == 0) min = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--max") == 0) max = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--keep-alive-ms") == 0) keep_alive_ms = std::atol(argv[i + 1]);
    else if (std::strcmp(argv[i], "--trace") == 0) trace = argv[i + 1];
  }
  const std::chrono::milliseconds keep_alive(keep_alive_ms);
  std::printf("burst scaling: min %d, max %d, keep_alive %ld ms, %u hardware threads\n", min, max, keep_alive_ms,
              std::thread::hardware_concurrency());
  std::printf("grow %d -> %d threads under a sudden load: %.3f ms (median of 9)\n", min, max, grow_ms(min, max));

  {
    weft::pool p(options(min, max, keep_alive));
    auto all = std::make_shared<std::latch>(max);
    for (int i = 0; i < max; ++i) p.post([all] { all->arrive_and_wait(); });
    while (p.stats().threads != static_cast<unsigned>(min)) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(50ms);  // the retired threads have left their slots; let them finish exiting
    std::printf("idle at min (%u threads after a burst to %u): %.3f ms CPU per s\n", p.stats().threads,
                p.stats().peak_threads, idle_cpu_ms_per_s(p));
  }
  {
    weft::pool_options o;
    o.workers = max;
    o.pinning = weft::pin_policy::none;
    weft::pool p(o);
    p.submit([] { return 0; }).get();
    std::this_thread::sleep_for(50ms);
    std::printf("idle fixed pool of %d: %.3f ms CPU per s\n", max, idle_cpu_ms_per_s(p));
  }

  if (trace == nullptr) return 0;
  std::FILE* out = std::fopen(trace, "w");
  if (out == nullptr) {
    std::perror(trace);
    return 1;
  }
  weft::pool p(options(min, max, keep_alive));
  std::atomic<bool> stop{false};
  const auto t0 = clock_type::now();
  std::thread sampler([&] {
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled every 2 ms
      const weft::metrics m = p.stats();
      std::fprintf(out, "%.1f %u %llu\n", std::chrono::duration<double, std::milli>(clock_type::now() - t0).count(),
                   m.threads, static_cast<unsigned long long>(m.queued));
      std::this_thread::sleep_for(2ms);
    }
  });
  // Three bursts of growing size (25 x size x max tasks of 100 us, posted at once), each followed by
  // silence of 3 keep_alives.
  std::this_thread::sleep_for(keep_alive);
  for (int burst = 1; burst <= 3; ++burst) {
    for (int i = 0; i < 25 * burst * max; ++i) p.post([] { spin_for(100us); });
    std::this_thread::sleep_for(3 * keep_alive);
  }
  while (p.stats().threads != static_cast<unsigned>(min)) std::this_thread::sleep_for(1ms);  // back to min
  std::this_thread::sleep_for(keep_alive);
  stop.store(true, std::memory_order_relaxed);
  sampler.join();
  std::fclose(out);
  const weft::metrics m = p.stats();
  std::printf("trace: %llu tasks, peak %u threads, grown %llu, retired %llu -> %s\n",
              static_cast<unsigned long long>(m.completed), m.peak_threads, static_cast<unsigned long long>(m.grown),
              static_cast<unsigned long long>(m.retired), trace);
  return 0;
}
