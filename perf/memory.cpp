// perf/memory.cpp: resident memory during and after a burst of queued tasks.
//
// Each case runs in a fresh forked child, so that its RSS is its own (no allocator state left
// by an earlier case) and its peak (VmHWM) starts from the small benchmark process. The child:
//   1. creates the runtime with ONE worker and records idle RSS (VmRSS, /proc/self/status);
//   2. blocks that worker (a task waiting on a latch) and, from the one outside thread, posts
//      N tiny tasks (each adds 1 to a counter); the worker is released once the queue holds
//      all N (unbounded) or `capacity` (bounded: the later posts block for room);
//   3. waits for the drain (every task counted; weft also wait_idle), sleeps 200 ms (weft's
//      last worker to park calls malloc_trim once more than 32 MiB of task blocks went back to
//      the heap: runtime/core/task_alloc.cpp), then records VmHWM (peak) and VmRSS (after).
// Counters: idle_MiB, peak_MiB, after_MiB, and bytes_per_queued = (peak - idle) / N, the
// memory one queued task costs at the peak. A wrong drain count fails the run.
//
// N: WEFT_PERF_MEMORY_TASKS (default 20'000'000; 1'000'000 in quick mode). One case at a time
// uses several GiB at 20M: run it alone (--benchmark_filter=memory/).
// Runtimes: weft (unbounded), weft_bounded (capacity 1'000'000, full_policy::block), oneTBB
// (an arena of one thread nobody joins, fed by enqueue), the mutex pool.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <latch>
#include <string>
#include <thread>

#include "harness.hpp"
#include "mutex_pool.hpp"
#include "peers.hpp"

namespace weft_perf {
namespace {

constexpr std::size_t kBoundedCapacity = 1'000'000;

std::uint64_t tasks_per_case() {
  if (const char* s = std::getenv("WEFT_PERF_MEMORY_TASKS"); s != nullptr && *s != '\0') return std::strtoull(s, nullptr, 10);
  return quick() ? 1'000'000 : 20'000'000;
}

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM"; the file says kB).
double status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::strtod(line.c_str() + n + 1, nullptr) * 1024.0;
    }
  }
  return 0;
}

struct sample {
  double idle = 0, peak = 0, after = 0, drained = 0;
};

// The child's side of one case. post(f) queues f; release_after: how many posts fill the
// queue before the worker is released; wait_drained() waits for the drain.
template <class Runtime, class Post, class Drained>
sample burst(Runtime& rt, std::uint64_t n, std::uint64_t release_after, const Post& post, const Drained& wait_drained) {
  sample s;
  std::atomic<std::uint64_t> ran{0};
  std::latch started(1), release(1);
  post(rt, [&] {
    started.count_down();
    release.wait();
  });
  started.wait();
  s.idle = status_bytes("VmRSS");  // runtime up, worker blocked, nothing queued
  for (std::uint64_t i = 0; i < n; ++i) {
    if (i == release_after) release.count_down();
    post(rt, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });  // relaxed: only counted
  }
  if (release_after >= n) release.count_down();
  wait_drained(rt);
  while (ran.load(std::memory_order_relaxed) != n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // the last parker's malloc_trim, 100 ms after it parked
  s.peak = status_bytes("VmHWM");
  s.after = status_bytes("VmRSS");
  s.drained = static_cast<double>(ran.load(std::memory_order_relaxed));
  return s;
}

// Runs make_sample() in a forked child and reports its figures as counters.
template <class Case>
void in_child(benchmark::State& state, const Case& make_sample) {
  const std::uint64_t n = tasks_per_case();
  sample s;
  for (auto _ : state) {
    int fds[2];
    if (pipe(fds) != 0) {
      state.SkipWithError("pipe failed");
      return;
    }
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      const sample r = make_sample(n);
      const ssize_t w = write(fds[1], &r, sizeof r);
      _exit(w == static_cast<ssize_t>(sizeof r) ? 0 : 1);
    }
    close(fds[1]);
    const ssize_t got = pid > 0 ? read(fds[0], &s, sizeof s) : -1;
    close(fds[0]);
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    if (got != static_cast<ssize_t>(sizeof s) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("the measuring child failed");
      return;
    }
  }
  if (s.drained != static_cast<double>(n)) {
    state.SkipWithError("not every task ran");
    return;
  }
  constexpr double MiB = 1024.0 * 1024.0;
  state.counters["tasks"] = static_cast<double>(n);
  state.counters["idle_MiB"] = s.idle / MiB;
  state.counters["peak_MiB"] = s.peak / MiB;
  state.counters["after_MiB"] = s.after / MiB;
  state.counters["bytes_per_queued"] = (s.peak - s.idle) / static_cast<double>(n);
}

weft::pool_options one_worker() {
  weft::pool_options o;
  o.workers = 1;
  o.pinning = weft::pin_policy::none;
  return o;
}

auto weft_post = [](weft::pool& p, auto&& f) { p.post(std::forward<decltype(f)>(f)); };
auto weft_drained = [](weft::pool& p) { p.wait_idle(); };

void memory_weft_bench(benchmark::State& state) {
  in_child(state, [](std::uint64_t n) {
    weft::pool p(one_worker());
    return burst(p, n, n, weft_post, weft_drained);
  });
}

void memory_weft_bounded_bench(benchmark::State& state) {
  in_child(state, [](std::uint64_t n) {
    weft::pool_options o = one_worker();
    o.capacity = kBoundedCapacity;
    o.when_full = weft::full_policy::block;
    weft::pool p(std::move(o));
    return burst(p, n, kBoundedCapacity, weft_post, weft_drained);
  });
}

#ifdef WEFT_HAVE_TBB
void memory_tbb_bench(benchmark::State& state) {
  in_child(state, [](std::uint64_t n) {
    tbb_runtime rt(1, tbb_runtime::caller::stays_outside);
    return burst(
        rt, n, n, [](tbb_runtime& r, auto&& f) { r.post(std::forward<decltype(f)>(f)); }, [](tbb_runtime&) {});
  });
}
#endif

void memory_mutex_bench(benchmark::State& state) {
  in_child(state, [](std::uint64_t n) {
    mutex_pool rt(1);
    return burst(
        rt, n, n, [](mutex_pool& r, auto&& f) { r.post(std::forward<decltype(f)>(f)); }, [](mutex_pool&) {});
  });
}

void add(const char* name, void (*fn)(benchmark::State&)) {
  benchmark::RegisterBenchmark(name, fn)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1);
}

}  // namespace

void register_memory() {
  add("memory/weft", memory_weft_bench);
  add("memory/weft_bounded", memory_weft_bounded_bench);
#ifdef WEFT_HAVE_TBB
  add("memory/tbb", memory_tbb_bench);
#endif
  add("memory/mutex", memory_mutex_bench);
}

}  // namespace weft_perf
