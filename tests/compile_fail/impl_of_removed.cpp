// tests/compile_fail/impl_of_removed.cpp: must NOT compile (tests/CMakeLists.txt checks the
// diagnostic). weft::impl_of(pool&), which handed out the runtime's implementation object,
// is gone from the public namespace: the implementation is reachable only through
// weft::detail::pool_access, which is not part of the contract.
#include "weft/weft.hpp"

int main() {
  weft::pool p;
  (void)&weft::impl_of(p);
}
