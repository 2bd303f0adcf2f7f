// perf/nqueens.cpp: N-queens, counting the solutions with a task per valid placement.
//
// A node is a board with queens on its first `row` rows (bitmasks of the attacked columns
// and diagonals, as in the classic bit-twiddling solver). Every node spawns one child task
// per column where a queen can go on the next row, waits for them all, and returns the sum
// of their counts; a full board counts 1. No cut-off: every valid partial placement is a
// task, so the work per task is a few dozen instructions and the tree is irregular (BOTS
// nqueens without its depth cut-off).
//   n = 12: 14,200 solutions, 856,189 tasks (the empty board included).
//   quick:  n = 11: 2,680 solutions, 166,926 tasks.
// Runtimes: weft and oneTBB (task_group), OpenMP (`omp task` + `omp taskwait`), libfork
// (lf::fork every placement but the last, lf::call the last, lf::join: the idiom of its
// own fib and UTS; its own nqueens forks the last one too), Taskflow (a
// tf::TaskGroup: silent_async per placement, corun, as in its own benchmarks/nqueens).
#include <array>
#include <cstdint>
#include <numeric>

#include "harness.hpp"
#include "peers.hpp"
#include "weft/coro.hpp"
#include "weft/task_group.hpp"

namespace weft_perf {
namespace {

constexpr int kMaxN = 16;

struct problem {
  int n;
  std::uint64_t solutions;
  double tasks;
};

const problem& input() {
  static const problem full{12, 14200, 856189};
  static const problem small{11, 2680, 166926};
  return quick() ? small : full;
}

// The placements so far: attacked columns and diagonals for the next row.
struct board {
  std::uint32_t cols = 0, left = 0, right = 0;  // left/right: diagonals, shifted per row
  int row = 0;

  std::uint32_t free(int n) const noexcept { return ~(cols | left | right) & ((1u << n) - 1); }
  board place(std::uint32_t bit) const noexcept {
    return {cols | bit, (left | bit) << 1, (right | bit) >> 1, row + 1};
  }
};

std::uint64_t sum(const std::array<std::uint64_t, kMaxN>& parts, int k) {
  return std::accumulate(parts.begin(), parts.begin() + k, std::uint64_t{0});
}

std::uint64_t nqueens_weft(weft::pool& p, int n, board b) {
  if (b.row == n) return 1;
  std::array<std::uint64_t, kMaxN> parts;
  int k = 0;
  weft::task_group g(p);
  for (std::uint32_t avail = b.free(n); avail != 0; avail &= avail - 1, ++k) {
    const board child = b.place(avail & (~avail + 1));
    g.run([&p, &parts, n, child, k] { parts[k] = nqueens_weft(p, n, child); });
  }
  g.wait();
  return sum(parts, k);
}

void nqueens_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const problem& in = input();
  measure(state, [&] { return rt.run([&] { return nqueens_weft(rt.pool(), in.n, board{}); }); }, in.solutions,
          in.tasks, metric::time_per_task);
  rt.report_stats(state);
}

// weft::task: fork every placement but the last, co_await the last, join (as libfork).
weft::task<std::uint64_t> nqueens_coro(int n, board b) {
  if (b.row == n) co_return 1;
  std::array<std::uint64_t, kMaxN> parts;
  int k = 0;
  for (std::uint32_t avail = b.free(n); avail != 0; avail &= avail - 1, ++k) {
    const board child = b.place(avail & (~avail + 1));
    if ((avail & (avail - 1)) != 0) {
      co_await weft::fork(parts[k], nqueens_coro(n, child));
    } else {
      parts[k] = co_await nqueens_coro(n, child);  // the last placement
    }
  }
  co_await weft::join();
  co_return sum(parts, k);
}

void nqueens_coro_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const problem& in = input();
  measure(state, [&] { return weft::sync_wait(rt.pool(), nqueens_coro(in.n, board{})); }, in.solutions, in.tasks,
          metric::time_per_task);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
std::uint64_t nqueens_tbb(int n, board b) {
  if (b.row == n) return 1;
  std::array<std::uint64_t, kMaxN> parts;
  int k = 0;
  tbb::task_group g;
  for (std::uint32_t avail = b.free(n); avail != 0; avail &= avail - 1, ++k) {
    const board child = b.place(avail & (~avail + 1));
    g.run([&parts, n, child, k] { parts[k] = nqueens_tbb(n, child); });
  }
  g.wait();
  return sum(parts, k);
}

void nqueens_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  const problem& in = input();
  measure(state, [&] { return rt.run([&] { return nqueens_tbb(in.n, board{}); }); }, in.solutions, in.tasks,
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_OPENMP
std::uint64_t nqueens_omp(int n, board b) {
  if (b.row == n) return 1;
  std::array<std::uint64_t, kMaxN> parts;
  int k = 0;
  for (std::uint32_t avail = b.free(n); avail != 0; avail &= avail - 1, ++k) {
    const board child = b.place(avail & (~avail + 1));
#pragma omp task shared(parts) firstprivate(n, child, k)
    parts[k] = nqueens_omp(n, child);
  }
#pragma omp taskwait
  return sum(parts, k);
}

void nqueens_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  const problem& in = input();
  measure(state, [&] { return rt.run([&] { return nqueens_omp(in.n, board{}); }); }, in.solutions, in.tasks,
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_LIBFORK
inline constexpr auto nqueens_libfork = [](auto nqueens, int n, board b) LF_STATIC_CALL -> lf::task<std::uint64_t> {
  if (b.row == n) co_return 1;
  std::array<std::uint64_t, kMaxN> parts;
  int k = 0;
  for (std::uint32_t avail = b.free(n); avail != 0; avail &= avail - 1, ++k) {
    const board child = b.place(avail & (~avail + 1));
    if ((avail & (avail - 1)) != 0) {
      co_await lf::fork(&parts[k], nqueens)(n, child);
    } else {
      co_await lf::call(&parts[k], nqueens)(n, child);  // the last placement
    }
  }
  co_await lf::join;
  co_return sum(parts, k);
};

template <class Pool>
void nqueens_libfork_bench(benchmark::State& state) {
  libfork_runtime<Pool> rt(threads(state));
  const problem& in = input();
  measure(state, [&] { return rt.run(nqueens_libfork, in.n, board{}); }, in.solutions, in.tasks,
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_TASKFLOW
std::uint64_t nqueens_taskflow(tf::Executor& ex, int n, board b) {
  if (b.row == n) return 1;
  std::array<std::uint64_t, kMaxN> parts;
  int k = 0;
  tf::TaskGroup g = ex.task_group();
  for (std::uint32_t avail = b.free(n); avail != 0; avail &= avail - 1, ++k) {
    const board child = b.place(avail & (~avail + 1));
    g.silent_async([&ex, &parts, n, child, k] { parts[k] = nqueens_taskflow(ex, n, child); });
  }
  g.corun();
  return sum(parts, k);
}

void nqueens_taskflow_bench(benchmark::State& state) {
  taskflow_runtime rt(threads(state));
  tf::Executor& ex = rt.executor();
  const problem& in = input();
  measure(state, [&] { return rt.run([&] { return nqueens_taskflow(ex, in.n, board{}); }); }, in.solutions,
          in.tasks, metric::time_per_task);
}
#endif

}  // namespace

void register_nqueens() {
  register_runtime("nqueens", "weft", nqueens_weft_bench);
  register_runtime("nqueens", "weft-coro", nqueens_coro_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("nqueens", "tbb", nqueens_tbb_bench);
#endif
#ifdef WEFT_HAVE_OPENMP
  register_runtime("nqueens", "omp", nqueens_omp_bench);
#endif
#ifdef WEFT_HAVE_LIBFORK
  register_runtime("nqueens", "libfork-lazy", nqueens_libfork_bench<lf::lazy_pool>);
  register_runtime("nqueens", "libfork-busy", nqueens_libfork_bench<lf::busy_pool>);
#endif
#ifdef WEFT_HAVE_TASKFLOW
  register_runtime("nqueens", "taskflow", nqueens_taskflow_bench);
#endif
}

}  // namespace weft_perf
