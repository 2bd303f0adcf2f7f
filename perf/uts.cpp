// perf/uts.cpp: UTS, the Unbalanced Tree Search benchmark (Olivier, Huan, Liu, Prins,
// Dinan, Sadayappan, Tseng, "UTS: An Unbalanced Tree Search Benchmark", LCPC 2006).
//
// The tree is generated as it is searched. A node's state is 20 bytes; the root's is
// SHA-1 of 16 zero bytes and the seed (big-endian), child i's is SHA-1(parent's state ||
// i as 4 big-endian bytes). A node's number of children comes from its state, as in the
// reference uts.c for a geometric tree with the FIXED shape: below depth d, a geometric
// distribution with mean b (p = 1 / (1 + b), children = floor(log(1 - u) / log(1 - p))
// with u = (last 4 state bytes, big-endian, & 0x7fffffff) / 2^31, at most 100), at depth
// d none. SHA-1 is perf/sha1.cpp.
//
//   full:  T1 of the UTS sample trees, "-t 1 -a 3 -d 10 -b 4 -r 19": 4,130,071 nodes,
//          depth 10 (the published count; any error in the hash or the formula changes it).
//   quick: the same tree cut at depth 8 ("-d 8"): its first 9 levels, 257,042 nodes.
//
// Every node is a task: it computes its child count, spawns one task per child (which
// hashes its own state), waits, and returns the size of its subtree. Unlike fib the tree
// is unpredictable (80% of T1's nodes are leaves) and each task does real work (one SHA-1
// block, about 0.3 us), so it tests load balance more than spawn cost.
// Runtimes: weft and oneTBB (task_group), OpenMP (`omp task` + `omp taskwait`), libfork
// (lf::fork every child but the last, lf::call the last, lf::join, as its own UTS does),
// Taskflow (a tf::TaskGroup: silent_async per child, corun). In all of them the child task
// hashes its own state.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "harness.hpp"
#include "peers.hpp"
#include "sha1.hpp"
#include "weft/task_group.hpp"

namespace weft_perf {
namespace {

constexpr int kMaxChildren = 100;  // the reference's MAXNUMCHILDREN

struct tree {
  int depth;        // -d: nodes at this depth are leaves
  double branching;  // -b: expected children of an inner node
  int seed;         // -r
  std::uint64_t nodes;
};

const tree& input() {
  static const tree t1{10, 4.0, 19, 4130071};
  static const tree t1_cut{8, 4.0, 19, 257042};
  return quick() ? t1_cut : t1;
}

struct node {
  sha1_digest state;
  int height;
};

void put_be32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

node root(const tree& t) {
  std::uint8_t bytes[20] = {};
  put_be32(bytes + 16, static_cast<std::uint32_t>(t.seed));
  return {sha1(bytes, sizeof bytes), 0};
}

node child(const node& parent, int i) {
  std::uint8_t bytes[24];
  std::memcpy(bytes, parent.state.data(), 20);
  put_be32(bytes + 20, static_cast<std::uint32_t>(i));
  return {sha1(bytes, sizeof bytes), parent.height + 1};
}

int num_children(const tree& t, const node& n) {
  if (n.height >= t.depth) return 0;  // FIXED shape: b_i = 0, so p = 1 and no children
  const double p = 1.0 / (1.0 + t.branching);
  const std::uint32_t r = ((std::uint32_t{n.state[16]} << 24) | (std::uint32_t{n.state[17]} << 16) |
                           (std::uint32_t{n.state[18]} << 8) | std::uint32_t{n.state[19]}) &
                          0x7fffffffu;
  const double u = static_cast<double>(r) / 2147483648.0;
  const int c = static_cast<int>(std::floor(std::log(1.0 - u) / std::log(1.0 - p)));
  return c > kMaxChildren ? kMaxChildren : c;
}

using parts_t = std::array<std::uint64_t, kMaxChildren>;

std::uint64_t sum(const parts_t& parts, int k) {
  return std::accumulate(parts.begin(), parts.begin() + k, std::uint64_t{0});
}

std::uint64_t uts_weft(weft::pool& p, const tree& t, const node& n) {
  const int k = num_children(t, n);
  if (k == 0) return 1;
  parts_t parts;  // only the first k are written and read
  weft::task_group g(p);
  for (int i = 0; i < k; ++i) {
    g.run([&p, &t, &n, &parts, i] { parts[i] = uts_weft(p, t, child(n, i)); });
  }
  g.wait();
  return 1 + sum(parts, k);
}

void uts_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  const tree& t = input();
  const node r = root(t);
  measure(state, [&] { return rt.run([&] { return uts_weft(rt.pool(), t, r); }); }, t.nodes,
          static_cast<double>(t.nodes), metric::time_per_task);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
std::uint64_t uts_tbb(const tree& t, const node& n) {
  const int k = num_children(t, n);
  if (k == 0) return 1;
  parts_t parts;
  tbb::task_group g;
  for (int i = 0; i < k; ++i) {
    g.run([&t, &n, &parts, i] { parts[i] = uts_tbb(t, child(n, i)); });
  }
  g.wait();
  return 1 + sum(parts, k);
}

void uts_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  const tree& t = input();
  const node r = root(t);
  measure(state, [&] { return rt.run([&] { return uts_tbb(t, r); }); }, t.nodes, static_cast<double>(t.nodes),
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_OPENMP
std::uint64_t uts_omp(const tree& t, const node& n) {
  const int k = num_children(t, n);
  if (k == 0) return 1;
  parts_t parts;
  for (int i = 0; i < k; ++i) {
#pragma omp task shared(t, n, parts) firstprivate(i)
    parts[i] = uts_omp(t, child(n, i));
  }
#pragma omp taskwait
  return 1 + sum(parts, k);
}

void uts_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  const tree& t = input();
  const node r = root(t);
  measure(state, [&] { return rt.run([&] { return uts_omp(t, r); }); }, t.nodes, static_cast<double>(t.nodes),
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_LIBFORK
// The subtree of parent's child i, which hashes its own state first; i < 0: the subtree of
// parent itself (the root).
inline constexpr auto uts_libfork = [](auto uts, const tree& t, const node& parent, int i) LF_STATIC_CALL
    -> lf::task<std::uint64_t> {
  const node n = i < 0 ? parent : child(parent, i);
  const int k = num_children(t, n);
  if (k == 0) co_return 1;
  parts_t parts;  // only the first k are written and read
  for (int c = 0; c < k - 1; ++c) co_await lf::fork(&parts[c], uts)(t, n, c);
  co_await lf::call(&parts[k - 1], uts)(t, n, k - 1);
  co_await lf::join;
  co_return 1 + sum(parts, k);
};

template <class Pool>
void uts_libfork_bench(benchmark::State& state) {
  libfork_runtime<Pool> rt(threads(state));
  const tree& t = input();
  const node r = root(t);
  measure(state, [&] { return rt.run(uts_libfork, t, r, -1); }, t.nodes, static_cast<double>(t.nodes),
          metric::time_per_task);
}
#endif

#ifdef WEFT_HAVE_TASKFLOW
std::uint64_t uts_taskflow(tf::Executor& ex, const tree& t, const node& n) {
  const int k = num_children(t, n);
  if (k == 0) return 1;
  parts_t parts;
  tf::TaskGroup g = ex.task_group();
  for (int i = 0; i < k; ++i) {
    g.silent_async([&ex, &t, &n, &parts, i] { parts[i] = uts_taskflow(ex, t, child(n, i)); });
  }
  g.corun();
  return 1 + sum(parts, k);
}

void uts_taskflow_bench(benchmark::State& state) {
  taskflow_runtime rt(threads(state));
  tf::Executor& ex = rt.executor();
  const tree& t = input();
  const node r = root(t);
  measure(state, [&] { return rt.run([&] { return uts_taskflow(ex, t, r); }); }, t.nodes,
          static_cast<double>(t.nodes), metric::time_per_task);
}
#endif

}  // namespace

void register_uts() {
  register_runtime("uts", "weft", uts_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("uts", "tbb", uts_tbb_bench);
#endif
#ifdef WEFT_HAVE_OPENMP
  register_runtime("uts", "omp", uts_omp_bench);
#endif
#ifdef WEFT_HAVE_LIBFORK
  register_runtime("uts", "libfork-lazy", uts_libfork_bench<lf::lazy_pool>);
  register_runtime("uts", "libfork-busy", uts_libfork_bench<lf::busy_pool>);
#endif
#ifdef WEFT_HAVE_TASKFLOW
  register_runtime("uts", "taskflow", uts_taskflow_bench);
#endif
}

}  // namespace weft_perf
