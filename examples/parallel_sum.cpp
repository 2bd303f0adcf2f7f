// examples/parallel_sum.cpp: weft's parallel algorithms (weft/parallel.hpp) in one page.
//
// Fills a vector with parallel_for, sums it with parallel_reduce (from outside the pool and
// nested inside a task), and runs two independent reductions side by side with
// parallel_invoke. Build against an installed weft:
//
//   g++ -std=c++20 -O2 parallel_sum.cpp $(pkg-config --cflags --libs weft) -o parallel_sum
//
// Run: ./parallel_sum [n]   (default 10,000,000; WEFT_WORKERS sets the pool size)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <vector>

#include "weft/weft.hpp"

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10'000'000;

  weft::pool_options options;
  options.read_environment = true;  // WEFT_WORKERS, WEFT_PIN
  weft::pool pool(options);

  // parallel_for from this (non-worker) thread: the loop runs on the pool's workers while
  // this thread waits. The per-index form: f(i).
  std::vector<double> v(n);
  weft::parallel_for(pool, std::size_t{0}, n, [&](std::size_t i) { v[i] = std::sqrt(static_cast<double>(i)); });

  // The chunk form, f(lo, hi), detected automatically, with an explicit grain: each call
  // gets at most 4096 consecutive indices.
  weft::parallel_for(pool, std::size_t{0}, n, 4096, [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) v[i] *= 2.0;
  });

  // parallel_reduce: map(i) -> T, combine(T, T) -> T. Note the identity 0.0 (a double): 0
  // would make T an int. The result is the same on every run for a given pool size.
  auto element = [&](std::size_t i) { return v[i]; };
  const double sum = weft::parallel_reduce(pool, std::size_t{0}, n, 0.0, element, std::plus<>{});

  // Nested: the same reduction from inside a task. The calling worker runs a piece itself
  // and the pieces it splits off go on its own deque, where the other workers steal them.
  const double again =
      pool.submit([&] { return weft::parallel_reduce(pool, std::size_t{0}, n, 0.0, element, std::plus<>{}); }).get();

  // parallel_invoke: independent computations at once; the last runs on the caller's worker.
  double lo_half = 0.0;
  double hi_half = 0.0;
  weft::parallel_invoke(
      pool, [&] { lo_half = weft::parallel_reduce(pool, std::size_t{0}, n / 2, 0.0, element, std::plus<>{}); },
      [&] { hi_half = weft::parallel_reduce(pool, n / 2, n, 0.0, element, std::plus<>{}); });

  // An exception in a body reaches the caller, after every running piece has finished.
  try {
    weft::parallel_for(pool, std::size_t{0}, n, [&](std::size_t i) {
      if (i == n / 2) throw std::runtime_error("index " + std::to_string(i) + " is bad");
    });
  } catch (const std::runtime_error& e) {
    std::printf("caught: %s\n", e.what());
  }

  std::printf("%u workers; sum of 2*sqrt(i), i < %zu: %.6e (nested: %.6e, halves: %.6e)\n", pool.size(), n, sum, again,
              lo_half + hi_half);
  return sum == again ? 0 : 1;
}
