// perf/fib_weft.hpp: fib with a task per call on weft (fib.cpp, cost.cpp).
#pragma once

#include <cstdint>

#include "weft/task_group.hpp"

namespace weft_perf {

inline std::uint64_t fib_weft(weft::pool& p, int n) {
  if (n < 2) return static_cast<std::uint64_t>(n);
  std::uint64_t a = 0;
  weft::task_group g(p);
  g.run([&] { a = fib_weft(p, n - 1); });
  const std::uint64_t b = fib_weft(p, n - 2);
  g.wait();
  return a + b;
}

}  // namespace weft_perf
