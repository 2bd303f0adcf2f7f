// runtime/core/runtime_sync.hpp: the Sync policy of the workers' deques.
//
// std_sync plus the deque's test hook (weft/detail/sync.hpp, sync_point), forwarded to the
// fault-injection points of fault.hpp:
//   deque_grow        -> fault::should_fail(deque_grow): throws std::bad_alloc, as a failed
//                        allocation of the bigger ring would (the deque is left unchanged)
//   before_steal_cas  -> fault::maybe_delay(before_steal_cas)
//   pop_after_fence   -> fault::maybe_delay(pop_after_fence)
// In a build without WEFT_FAULT_INJECTION both fault functions are empty inline constants,
// so hook() is empty and the deque compiles to the same code as chase_lev_deque<T, std_sync>.
#pragma once

#include <new>

#include "testing/fault.hpp"
#include "weft/detail/sync.hpp"

namespace weft::detail {

struct runtime_sync : std_sync {
  static void hook(sync_point p) {
    switch (p) {
      case sync_point::deque_grow:
        if (fault::should_fail(fault::point::deque_grow)) throw std::bad_alloc();
        return;
      case sync_point::before_steal_cas:
        fault::maybe_delay(fault::point::before_steal_cas);
        return;
      case sync_point::pop_after_fence:
        fault::maybe_delay(fault::point::pop_after_fence);
        return;
    }
  }
};

}  // namespace weft::detail
