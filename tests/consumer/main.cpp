// Uses only the installed public headers; exits non-zero on any wrong answer.
#include <weft/weft.hpp>

#include <cstdio>

static long fib(weft::pool& p, int n) {
  if (n < 2) return n;
  long a = 0;
  weft::task_group g(p);
  g.run([&] { a = fib(p, n - 1); });
  const long b = fib(p, n - 2);
  g.wait();
  return a + b;
}

int main() {
  weft::pool p(weft::pool_options{.workers = 2});
  const long f = p.submit([&] { return fib(p, 20); }).get();
  p.close();
  bool threw = false;
  try {
    p.post([] {});
  } catch (const weft::pool_closed&) {
    threw = true;
  }
  std::printf("fib(20) = %ld, post after close threw: %s\n", f, threw ? "yes" : "no");
  return (f == 6765 && threw) ? 0 : 1;
}
