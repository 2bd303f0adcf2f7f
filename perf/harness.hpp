// perf/harness.hpp: what every benchmark family shares.
//
// A family is one workload (fib, skynet, external, ...) written once per runtime, in one
// file, perf/<family>.cpp, that defines register_<family>() (declared below, called from
// main.cpp). Each runtime's version is registered as "<family>/<runtime>" with one
// argument, the thread count, so that results read "fib/weft/threads:2" and
// "fib/tbb/threads:2" and tools/weft-bench can pair them.
//
// Rules every benchmark here follows (STYLE.md, Benchmarks):
// - real time (UseRealTime), reported in milliseconds;
// - the runtime (pool, arena) is built before the timed loop and torn down after it, and
//   one untimed run of the workload precedes the loop (thread start-up, lazy worker
//   creation and first-touch allocation are not measured, for any runtime);
// - every iteration's result is recorded and checked after the loop; a wrong one marks
//   the run with SkipWithError, so a broken runtime cannot report a fast time;
// - the work per iteration is exported as counters: "tasks" (per iteration), and either
//   "time/task" (seconds per task) or "tasks/s", both from real time.
#pragma once

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace weft_perf {

// Families (one file each). Add a family: write perf/<name>.cpp, declare it here, call it
// from main.cpp, add the file to perf/CMakeLists.txt.
void register_fib();
void register_skynet();
void register_nqueens();
void register_uts();
void register_spawner();
void register_matmul();
void register_parallel();  // bench_parallel.cpp: parallel_for_sqrt, parallel_for_triad, parallel_reduce_sum
void register_external();
void register_latency();
void register_idle();
void register_keyed();  // keyed.cpp: keyed serializers, and the head-of-line case
void register_memory();  // memory.cpp: RSS during and after a burst of 20M queued tasks

// Quick mode (WEFT_PERF_QUICK=1, set by `tools/weft-bench --quick`): families shrink their
// slowest inputs (each says how in its header comment and in its "tasks" counter), so
// that the whole suite takes a few minutes on 2 cores. Recorded in the JSON context.
bool quick() noexcept;

// Thread counts to sweep: the powers of two below the number of usable CPUs (the
// process's affinity mask, as nproc counts them), then that number; in quick mode only
// 1, 2 and that number. WEFT_PERF_THREADS ("1,2,8") overrides the list.
const std::vector<int>& thread_counts();

// The thread count of the running benchmark (always its first argument).
inline int threads(const benchmark::State& state) { return static_cast<int>(state.range(0)); }

// Registers fn as "<family>/<runtime>/threads:<n>" for every thread count, with the house
// settings (real time, milliseconds).
void register_runtime(const std::string& family, const std::string& runtime, void (*fn)(benchmark::State&));

// As above with a second argument, swept over `values` for every thread count:
// "<family>/<runtime>/threads:<n>/<param>:<v>"; read it with state.range(1).
// tools/weft-bench makes one table per value ("external producers:2").
void register_runtime(const std::string& family, const std::string& runtime, void (*fn)(benchmark::State&),
                      const std::string& param, const std::vector<std::int64_t>& values);

// As the first form, for a benchmark that does one long measurement per repetition
// (latency, idle CPU): a single iteration, whose figures are its counters.
void register_runtime_once(const std::string& family, const std::string& runtime, void (*fn)(benchmark::State&));

// The derived per-task figure a family reports next to its time.
enum class metric { time_per_task, tasks_per_second };

// Sets the counters for `tasks` tasks per iteration: "tasks", and "time/task" or "tasks/s".
void report_tasks(benchmark::State& state, double tasks, metric m);

// Collects every iteration's result; report() marks the run as failed if any was wrong.
class result_check {
 public:
  explicit result_check(std::uint64_t want) noexcept : want_(want) {}
  void record(std::uint64_t got) noexcept {
    if (got != want_) {
      ++wrong_;
      last_wrong_ = got;
    }
  }
  // Call after the timed loop. Returns false (and has called SkipWithError) on a failure.
  bool report(benchmark::State& state) const;

 private:
  std::uint64_t want_;
  std::uint64_t wrong_ = 0;
  std::uint64_t last_wrong_ = 0;
};

// The common shape of a fork-join family: `once()` runs the whole workload and returns its
// result. One untimed call, the timed loop, then the counters and the check.
template <class Once>
void measure(benchmark::State& state, Once&& once, std::uint64_t want, double tasks, metric m) {
  result_check check(want);
  check.record(once());  // warm-up, untimed
  for (auto _ : state) check.record(once());
  report_tasks(state, tasks, m);
  check.report(state);
}

// Per-thread tallies, one padded slot per thread index, for workloads whose tasks are too
// small to share one atomic counter (a contended fetch_add would cost more than the task).
// Each thread adds to its own slot (the runtime's thread index); the total is read after
// the runtime has joined all the work (the join is the synchronisation).
class per_thread_tally {
 public:
  static constexpr int kSlots = 256;
  void reset() noexcept {
    for (auto& s : slots_) s.n = 0;
  }
  // slot: the runtime's index of the calling thread, 0 .. kSlots-1 (anything else, e.g. a
  // non-worker's -1, goes to the last slot).
  void add(int slot) noexcept { ++slots_[static_cast<unsigned>(slot) < kSlots - 1 ? slot : kSlots - 1].n; }
  std::uint64_t total() const noexcept {
    std::uint64_t t = 0;
    for (const auto& s : slots_) t += s.n;
    return t;
  }

 private:
  struct alignas(128) slot_t {
    std::uint64_t n = 0;
  };
  slot_t slots_[kSlots];
};

// Completion of N tasks that run somewhere else, for a thread that waits outside the
// runtime (the same for every runtime, so it costs each of them the same). Reused across
// iterations: a late notify_one from the previous round touches a live object.
class countdown {
 public:
  // Before the tasks are published: the runtime's own publication (queue insertion) is
  // the release that makes these stores visible to the tasks.
  void reset(std::int64_t n) noexcept {
    left_.store(n, std::memory_order_relaxed);  // relaxed: published by the task hand-off
    done_.store(0, std::memory_order_relaxed);  // relaxed: as above
  }
  void arrive() noexcept {
    // acq_rel: the last arrival acquires every earlier one's effects (release sequence)
    // and passes them on through done_.
    if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      done_.store(1, std::memory_order_release);  // release: pairs with the acquire in wait()
      done_.notify_one();
    }
  }
  void wait() const noexcept { done_.wait(0, std::memory_order_acquire); }  // acquire: pairs with arrive()
  // Tasks not yet arrived (negative if some ran twice); exact once the runtime is idle.
  std::int64_t left() const noexcept { return left_.load(std::memory_order_acquire); }

 private:
  alignas(128) std::atomic<std::int64_t> left_{0};  // written by every task
  alignas(128) std::atomic<std::uint32_t> done_{0};  // written by the last task, read by the waiter
};

}  // namespace weft_perf
