// tests/compile_fail/pool_enqueue_private.cpp: must NOT compile (tests/CMakeLists.txt checks
// the diagnostic). pool's task-block entry points (enqueue, try_enqueue, enqueue_until,
// enqueue_bulk, enqueue_submission, report_unobserved) are not part of the contract: they are
// private, reachable only by weft itself through weft::detail::pool_access. A user who
// builds a task block by hand and queues it is refused at compile time.
#include "weft/pool.hpp"

int main() {
  weft::pool p;
  weft::detail::task* t = weft::detail::make_task([] {});
  p.enqueue(t);
}
