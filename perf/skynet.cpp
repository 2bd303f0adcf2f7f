// perf/skynet.cpp: the skynet benchmark (github.com/atemerev/skynet).
//
// A 10-ary tree of depth 6: every inner node spawns its 10 children into one group, waits,
// and sums their results; the 10^6 leaves return their index. 1,111,111 tasks in all (the
// root included); the sum is 0 + 1 + ... + 999999 = 499999500000. Wider fan-out than fib:
// the spawning worker's deque holds up to 10 tasks, so thieves find work more easily.
//
// Runtimes: weft and oneTBB (task_group: spawn 10, wait, sum), OpenMP (10 `omp task`,
// `omp taskwait`), and Boost.Asio by continuation, since an asio::thread_pool task must not
// block waiting for other tasks: every inner node allocates a join record and posts its
// 10 children; each child adds its result to the record, and the last one to arrive posts
// nothing but completes the node, passing the sum up (the root's completion wakes the
// benchmark thread). Same tree, same sum, same task count.
// libfork: lf::fork the first 9 children, lf::call the last, lf::join (libfork's idiom: the
// last child needs no fork, as in its own UTS). Taskflow: a tf::TaskGroup, 10 silent_async
// and corun, as in its own benchmarks/skynet.
#include <array>
#include <atomic>
#include <cstdint>
#include <numeric>

#include "harness.hpp"
#include "peers.hpp"
#include "weft/coro.hpp"
#include "weft/task_group.hpp"

namespace weft_perf {
namespace {

constexpr int kDepth = 6;
constexpr int kFanOut = 10;
constexpr std::uint64_t kResult = 499999500000ULL;
constexpr double kTasks = 1111111;

std::uint64_t sum(const std::array<std::uint64_t, kFanOut>& parts) {
  return std::accumulate(parts.begin(), parts.end(), std::uint64_t{0});
}

std::uint64_t skynet_weft(weft::pool& p, std::uint64_t num, int depth) {
  if (depth == 0) return num;
  std::array<std::uint64_t, kFanOut> parts{};
  weft::task_group g(p);
  for (int i = 0; i < kFanOut; ++i) {
    g.run([&p, &parts, num, depth, i] { parts[i] = skynet_weft(p, num * kFanOut + i, depth - 1); });
  }
  g.wait();
  return sum(parts);
}

void skynet_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  measure(state, [&] { return rt.run([&] { return skynet_weft(rt.pool(), 0, kDepth); }); }, kResult, kTasks,
          metric::time_per_task);
  rt.report_stats(state);
}

// weft::task: fork the first 9 children, co_await the last, join (as libfork).
weft::task<std::uint64_t> skynet_coro(std::uint64_t num, int depth) {
  if (depth == 0) co_return num;
  std::array<std::uint64_t, kFanOut> parts{};
  for (int i = 0; i < kFanOut - 1; ++i) co_await weft::fork(parts[i], skynet_coro(num * kFanOut + i, depth - 1));
  parts[kFanOut - 1] = co_await skynet_coro(num * kFanOut + kFanOut - 1, depth - 1);
  co_await weft::join();
  co_return sum(parts);
}

void skynet_coro_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  measure(state, [&] { return weft::sync_wait(rt.pool(), skynet_coro(0, kDepth)); }, kResult, kTasks,
          metric::time_per_task);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
std::uint64_t skynet_tbb(std::uint64_t num, int depth) {
  if (depth == 0) return num;
  std::array<std::uint64_t, kFanOut> parts{};
  tbb::task_group g;
  for (int i = 0; i < kFanOut; ++i) {
    g.run([&parts, num, depth, i] { parts[i] = skynet_tbb(num * kFanOut + i, depth - 1); });
  }
  g.wait();
  return sum(parts);
}

void skynet_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  measure(state, [&] { return rt.run([] { return skynet_tbb(0, kDepth); }); }, kResult, kTasks,
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_OPENMP
std::uint64_t skynet_omp(std::uint64_t num, int depth) {
  if (depth == 0) return num;
  std::array<std::uint64_t, kFanOut> parts{};
  for (int i = 0; i < kFanOut; ++i) {
#pragma omp task shared(parts) firstprivate(num, depth, i)
    parts[i] = skynet_omp(num * kFanOut + i, depth - 1);
  }
#pragma omp taskwait
  return sum(parts);
}

void skynet_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  measure(state, [&] { return rt.run([] { return skynet_omp(0, kDepth); }); }, kResult, kTasks,
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_LIBFORK
inline constexpr auto skynet_libfork = [](auto skynet, std::uint64_t num, int depth) LF_STATIC_CALL
    -> lf::task<std::uint64_t> {
  if (depth == 0) co_return num;
  std::array<std::uint64_t, kFanOut> parts{};
  for (int i = 0; i < kFanOut - 1; ++i) co_await lf::fork(&parts[i], skynet)(num * kFanOut + i, depth - 1);
  co_await lf::call(&parts[kFanOut - 1], skynet)(num * kFanOut + kFanOut - 1, depth - 1);
  co_await lf::join;
  co_return sum(parts);
};

template <class Pool>
void skynet_libfork_bench(benchmark::State& state) {
  libfork_runtime<Pool> rt(threads(state));
  measure(state, [&] { return rt.run(skynet_libfork, std::uint64_t{0}, kDepth); }, kResult, kTasks,
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_TASKFLOW
std::uint64_t skynet_taskflow(tf::Executor& ex, std::uint64_t num, int depth) {
  if (depth == 0) return num;
  std::array<std::uint64_t, kFanOut> parts{};
  tf::TaskGroup g = ex.task_group();
  for (int i = 0; i < kFanOut; ++i) {
    g.silent_async([&ex, &parts, num, depth, i] { parts[i] = skynet_taskflow(ex, num * kFanOut + i, depth - 1); });
  }
  g.corun();
  return sum(parts);
}

void skynet_taskflow_bench(benchmark::State& state) {
  taskflow_runtime rt(threads(state));
  tf::Executor& ex = rt.executor();
  measure(state, [&] { return rt.run([&ex] { return skynet_taskflow(ex, 0, kDepth); }); }, kResult, kTasks,
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_ASIO
// An inner node waiting for its children: the last child to arrive completes it.
struct asio_join {
  std::atomic<int> pending{kFanOut};
  std::atomic<std::uint64_t> sum{0};
  asio_join* parent = nullptr;  // null for the root
};

struct asio_skynet {
  asio_runtime& rt;
  countdown& done;
  std::uint64_t result = 0;  // written by the root's completion, read after done.wait()

  void complete(asio_join* j, std::uint64_t value) {
    while (j != nullptr) {
      j->sum.fetch_add(value, std::memory_order_relaxed);  // relaxed: published by the acq_rel below
      // acq_rel: the last child acquires every sibling's sum (release sequence on pending).
      if (j->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      value = j->sum.load(std::memory_order_relaxed);  // relaxed: ordered by the acquire above
      asio_join* parent = j->parent;
      delete j;
      j = parent;
    }
    result = value;
    done.arrive();  // release: pairs with done.wait()
  }

  void node(std::uint64_t num, int depth, asio_join* parent) {
    if (depth == 0) {
      complete(parent, num);
      return;
    }
    auto* j = new asio_join;
    j->parent = parent;
    for (int i = 0; i < kFanOut; ++i) {
      rt.post([this, num, depth, i, j] { node(num * kFanOut + i, depth - 1, j); });
    }
  }
};

void skynet_asio_bench(benchmark::State& state) {
  countdown done;  // declared first: outlives the pool's threads (a late notify_one)
  asio_runtime rt(threads(state));
  asio_skynet tree{rt, done};
  auto once = [&] {
    done.reset(1);
    rt.post([&tree] { tree.node(0, kDepth, nullptr); });
    done.wait();
    return tree.result;
  };
  measure(state, once, kResult, kTasks, metric::time_per_task);
}
#endif

}  // namespace

void register_skynet() {
  register_runtime("skynet", "weft", skynet_weft_bench);
  register_runtime("skynet", "weft-coro", skynet_coro_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("skynet", "tbb", skynet_tbb_bench);
#endif
#ifdef WEFT_HAVE_OPENMP
  register_runtime("skynet", "omp", skynet_omp_bench);
#endif
#ifdef WEFT_HAVE_ASIO
  register_runtime("skynet", "asio", skynet_asio_bench);
#endif
#ifdef WEFT_HAVE_LIBFORK
  register_runtime("skynet", "libfork-lazy", skynet_libfork_bench<lf::lazy_pool>);
  register_runtime("skynet", "libfork-busy", skynet_libfork_bench<lf::busy_pool>);
#endif
#ifdef WEFT_HAVE_TASKFLOW
  register_runtime("skynet", "taskflow", skynet_taskflow_bench);
#endif
}

}  // namespace weft_perf
