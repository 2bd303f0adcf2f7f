// tests/compile_fail/throwing_destructor.cpp: must NOT compile (tests/CMakeLists.txt checks
// the diagnostic). A task's captures are destroyed on a worker after it ran, where an
// exception could only terminate the program; a destructor declared noexcept(false) is
// rejected by a static_assert that says why (weft/detail/task.hpp, make_task).
#include "weft/pool.hpp"

struct throws_on_destruction {
  ~throws_on_destruction() noexcept(false) {}
};

int main() {
  weft::pool p;
  p.post([c = throws_on_destruction{}] { (void)c; });
}
