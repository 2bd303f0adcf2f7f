// runtime/fault.hpp: fault-injection points for tests, compiled out unless the library is
// built with WEFT_FAULT_INJECTION (CMake option of the same name). In a normal build every
// hook is a constant the optimiser removes.
#pragma once

namespace weft::detail::fault {

enum class point : unsigned {
  task_alloc,        // allocate_task throws std::bad_alloc
  deque_grow,        // growing a worker's deque throws std::bad_alloc
  before_steal_cas,  // a thief pauses between reading the slot and its CAS on top
  pop_after_fence,   // the owner pauses between pop's fence and its load of top
  before_park,       // a worker pauses just before it blocks
  count_
};

#ifdef WEFT_FAULT_INJECTION
bool should_fail(point p) noexcept;
void maybe_delay(point p) noexcept;
#else
constexpr bool should_fail(point) noexcept { return false; }
inline void maybe_delay(point) noexcept {}
#endif

}  // namespace weft::detail::fault
