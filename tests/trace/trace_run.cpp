// tests/trace/trace_run.cpp: a deterministic run traced to argv[1] (weft/observer.hpp),
// checked by tools/check-trace: fork-join on 2 workers (steals), posts from outside
// (flows from the submitters' track), helping waits (nested slices) and idle gaps (parks).
#include <chrono>
#include <cstdio>
#include <thread>

#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {
long fib(weft::pool& p, int n) {
  if (n < 2) return n;
  long a = 0;
  weft::task_group g(p);
  g.run([&] { a = fib(p, n - 1); });
  const long b = fib(p, n - 2);
  g.wait();
  return a + b;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: trace_run OUT.json\n");
    return 2;
  }
  weft::pool_options o;
  o.workers = 2;
  o.trace_path = argv[1];
  long f = 0;
  {
    weft::pool p(o);
    f = p.submit([&] { return fib(p, 15); }).get();
    for (int i = 0; i < 100; ++i) p.post([] { std::this_thread::sleep_for(std::chrono::microseconds(20)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // idle: the workers park
    p.submit([] {}).get();
  }
  if (f != 610) {
    std::fprintf(stderr, "fib(15) = %ld, expected 610\n", f);
    return 1;
  }
  return 0;
}
