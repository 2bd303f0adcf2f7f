// perf/matmul.cpp: cache-oblivious recursive matrix multiply, C = A * B, 1024 x 1024
// doubles (quick: 512 x 512), row-major.
//
// The recursion (Frigo, Leiserson, Prokop, Ramachandran, "Cache-oblivious algorithms",
// FOCS 1999; Cilk's matmul): split each matrix into quadrants and compute
//   phase 1, in parallel: C11 += A11 B11, C12 += A11 B12, C21 += A21 B11, C22 += A21 B12
//   phase 2, in parallel: C11 += A12 B21, C12 += A12 B22, C21 += A22 B21, C22 += A22 B22
// (the two phases write the same quadrants, so they are joined in between), down to a
// 32 x 32 serial base case (i-k-j loops, which g++ -O3 vectorises). 37,449 calls for
// 1024 (8^0 + ... + 8^5), 4,681 for 512; each phase forks 3 tasks and runs the 4th inline.
// The only difference between runtimes is the fork-join of four calls.
//
// Inputs are small integers, so every product and sum is exact in double and the result
// can be checked exactly: after each run, a weighted checksum of C (sum of C[i][j] * w_i *
// v_j) is compared with the value computed in O(n^2) from A and B. Zeroing C and the
// checksum are inside the timed region, for every runtime (about 1% of the time).
// Counters: "time/task" per call, and "flop/s" (2 n^3 per run).
// Runtimes: weft and oneTBB (task_group), OpenMP (`omp task` + `omp taskwait`).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness.hpp"
#include "peers.hpp"
#include "weft/task_group.hpp"

namespace weft_perf {
namespace {

constexpr int kBase = 32;

int size() { return quick() ? 512 : 1024; }

double calls(int n) {
  double total = 0, level = 1;
  for (int m = n; m >= kBase; m /= 2, level *= 8) total += level;
  return total;
}

// A square block of a row-major matrix with leading dimension ld.
struct block {
  double* p;
  int ld;
  block quad(int r, int c, int half) const noexcept {
    return {p + static_cast<std::ptrdiff_t>(r) * half * ld + static_cast<std::ptrdiff_t>(c) * half, ld};
  }
  double& at(int i, int j) const noexcept { return p[static_cast<std::ptrdiff_t>(i) * ld + j]; }
};

void base_case(block c, block a, block b) noexcept {
  for (int i = 0; i < kBase; ++i) {
    for (int k = 0; k < kBase; ++k) {
      const double aik = a.at(i, k);
      double* __restrict crow = &c.at(i, 0);
      const double* __restrict brow = &b.at(k, 0);
      for (int j = 0; j < kBase; ++j) crow[j] += aik * brow[j];
    }
  }
}

// C += A * B for n x n blocks. fork(f0, f1, f2, f3) runs the four calls in parallel and
// returns when all are done: the one place the runtimes differ.
template <class Fork>
void multiply(const Fork& fork, block c, block a, block b, int n) {
  if (n <= kBase) {
    base_case(c, a, b);
    return;
  }
  const int h = n / 2;
  const block c11 = c.quad(0, 0, h), c12 = c.quad(0, 1, h), c21 = c.quad(1, 0, h), c22 = c.quad(1, 1, h);
  const block a11 = a.quad(0, 0, h), a12 = a.quad(0, 1, h), a21 = a.quad(1, 0, h), a22 = a.quad(1, 1, h);
  const block b11 = b.quad(0, 0, h), b12 = b.quad(0, 1, h), b21 = b.quad(1, 0, h), b22 = b.quad(1, 1, h);
  fork([&] { multiply(fork, c11, a11, b11, h); }, [&] { multiply(fork, c12, a11, b12, h); },
       [&] { multiply(fork, c21, a21, b11, h); }, [&] { multiply(fork, c22, a21, b12, h); });
  fork([&] { multiply(fork, c11, a12, b21, h); }, [&] { multiply(fork, c12, a12, b22, h); },
       [&] { multiply(fork, c21, a22, b21, h); }, [&] { multiply(fork, c22, a22, b22, h); });
}

std::int64_t row_weight(int i) { return i % 5 + 1; }
std::int64_t col_weight(int j) { return j % 3 + 1; }

// The matrices, and the checksum a correct product has.
class problem {
 public:
  explicit problem(int n) : n_(n), a_(cells()), b_(cells()), c_(cells()) {
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        a_[index(i, j)] = static_cast<double>((i * 3 + j * 7) % 5 - 2);
        b_[index(i, j)] = static_cast<double>((i * 5 + j * 3) % 7 - 3);
      }
    }
    // sum_ij w_i C_ij v_j = sum_i w_i sum_k A_ik (sum_j B_kj v_j)
    std::vector<std::int64_t> bv(static_cast<std::size_t>(n), 0);
    for (int k = 0; k < n; ++k) {
      for (int j = 0; j < n; ++j) bv[k] += static_cast<std::int64_t>(b_[index(k, j)]) * col_weight(j);
    }
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < n; ++k) want_ += row_weight(i) * static_cast<std::int64_t>(a_[index(i, k)]) * bv[k];
    }
  }

  int n() const noexcept { return n_; }
  std::uint64_t want() const noexcept { return static_cast<std::uint64_t>(want_); }

  // Zeroes C, runs multiply with `fork`, returns C's checksum.
  template <class Fork>
  std::uint64_t run(const Fork& fork) {
    std::fill(c_.begin(), c_.end(), 0.0);
    multiply(fork, {c_.data(), n_}, {a_.data(), n_}, {b_.data(), n_}, n_);
    std::int64_t got = 0;
    for (int i = 0; i < n_; ++i) {
      for (int j = 0; j < n_; ++j) got += row_weight(i) * static_cast<std::int64_t>(c_[index(i, j)]) * col_weight(j);
    }
    return static_cast<std::uint64_t>(got);
  }

 private:
  std::size_t cells() const noexcept { return static_cast<std::size_t>(n_) * static_cast<std::size_t>(n_); }
  std::size_t index(int i, int j) const noexcept { return static_cast<std::size_t>(i) * n_ + j; }

  int n_;
  std::vector<double> a_, b_, c_;
  std::int64_t want_ = 0;
};

void report(benchmark::State& state, int n) {
  report_tasks(state, calls(n), metric::time_per_task);
  state.counters["flop/s"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
}

template <class Runtime, class Fork>
void measure_matmul(benchmark::State& state, Runtime& rt, const Fork& fork) {
  problem pb(size());
  result_check check(pb.want());
  check.record(rt.run([&] { return pb.run(fork); }));  // warm-up, untimed
  for (auto _ : state) check.record(rt.run([&] { return pb.run(fork); }));
  report(state, pb.n());
  check.report(state);
}

void matmul_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  weft::pool& p = rt.pool();
  auto fork = [&p](auto&& f0, auto&& f1, auto&& f2, auto&& f3) {
    weft::task_group g(p);
    g.run(f0);
    g.run(f1);
    g.run(f2);
    f3();
    g.wait();
  };
  measure_matmul(state, rt, fork);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
void matmul_tbb_bench(benchmark::State& state) {
  tbb_runtime rt(threads(state), tbb_runtime::caller::joins);
  auto fork = [](auto&& f0, auto&& f1, auto&& f2, auto&& f3) {
    tbb::task_group g;
    g.run(f0);
    g.run(f1);
    g.run(f2);
    f3();
    g.wait();
  };
  measure_matmul(state, rt, fork);
}
#endif

#ifdef WEFT_HAVE_OPENMP
void matmul_omp_bench(benchmark::State& state) {
  omp_runtime rt(threads(state));
  auto fork = [](auto&& f0, auto&& f1, auto&& f2, auto&& f3) {
#pragma omp task shared(f0)
    f0();
#pragma omp task shared(f1)
    f1();
#pragma omp task shared(f2)
    f2();
    f3();
#pragma omp taskwait
  };
  measure_matmul(state, rt, fork);
}
#endif

}  // namespace

void register_matmul() {
  register_runtime("matmul", "weft", matmul_weft_bench);
#ifdef WEFT_HAVE_TBB
  register_runtime("matmul", "tbb", matmul_tbb_bench);
#endif
#ifdef WEFT_HAVE_OPENMP
  register_runtime("matmul", "omp", matmul_omp_bench);
#endif
}

}  // namespace weft_perf
