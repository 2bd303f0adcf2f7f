// tests/test_util.hpp: helpers shared by weft's tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <latch>
#include <memory>
#include <string>

#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace weft_test {

// Multiplies a stress size by WEFT_STRESS_SCALE (CTest sets 0.05 in sanitizer builds).
inline std::uint64_t scaled(std::uint64_t n) {
  const char* s = std::getenv("WEFT_STRESS_SCALE");
  const double f = (s != nullptr && *s != '\0') ? std::strtod(s, nullptr) : 1.0;
  const auto v = static_cast<std::uint64_t>(static_cast<double>(n) * f);
  return v == 0 ? 1 : v;
}

// Occupies `n` workers of `p` until release() (or destruction; declare it after the pool).
class worker_blocker {
 public:
  worker_blocker(weft::pool& p, int n) : s_(std::make_shared<state>(n)) {
    for (int i = 0; i < n; ++i) {
      p.post([s = s_] {
        s->started.count_down();
        s->release.wait();
      });
    }
    s_->started.wait();
  }
  ~worker_blocker() { release(); }
  worker_blocker(const worker_blocker&) = delete;
  worker_blocker& operator=(const worker_blocker&) = delete;
  void release() {
    if (!s_->released.exchange(true)) s_->release.count_down();
  }

 private:
  struct state {
    explicit state(int n) : started(n) {}
    std::latch started;
    std::latch release{1};
    std::atomic<bool> released{false};
  };
  std::shared_ptr<state> s_;
};

// Fork-join Fibonacci on task_groups, counting every child it runs in `runs`.
inline int counted_fib(weft::pool& p, int n, std::atomic<std::uint64_t>& runs) {
  if (n < 2) return n;
  int a = 0;
  weft::task_group g(p);
  g.run([&] {
    runs.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after the waits that order it
    a = counted_fib(p, n - 1, runs);
  });
  const int b = counted_fib(p, n - 2, runs);
  g.wait();
  return a + b;
}
// fib(n), and how many children counted_fib(n) runs: one per internal node, fib(n+1) - 1.
constexpr int fib_value(int n) { return n < 2 ? n : fib_value(n - 1) + fib_value(n - 2); }
constexpr std::uint64_t fib_children(int n) { return static_cast<std::uint64_t>(fib_value(n + 1)) - 1; }

// A pool of `workers` unpinned workers (tests share the machine with each other).
inline weft::pool_options unpinned(int workers) {
  weft::pool_options o;
  o.workers = workers;
  o.pinning = weft::pin_policy::none;
  return o;
}

}  // namespace weft_test
