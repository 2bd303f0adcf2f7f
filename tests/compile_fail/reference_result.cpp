// tests/compile_fail/reference_result.cpp: must NOT compile (tests/CMakeLists.txt checks
// the diagnostic). A task whose result is kept cannot return a reference: weft::future and
// weft::outcome hold values; pool.hpp rejects it with a static_assert that says so, instead
// of an error deep inside <optional>.
#include "weft/pool.hpp"

int main() {
  static int x = 0;
  weft::pool p;
  auto f = p.submit([]() -> int& { return x; });
  return f.get();
}
