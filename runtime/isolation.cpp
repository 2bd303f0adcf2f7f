// runtime/isolation.cpp: weft::isolated (weft/isolated.hpp).
//
// Protocol. A region has a tag (the address of its isolation_scope, unique while it lives).
// A task spawned by a worker inside a region carries the tag (task::isolation, and bit 0 of
// its deque slot). A worker is inside a region while it runs the region's body or a task
// carrying the region's tag; it then has a floor: the index its deque's next push gets when
// the body or that task started (worker::execute_in_region). Invariants:
//   I1 Only the owner pushes onto a deque (deque.hpp, I1), so every element at or above
//      the floor was pushed by this worker after the floor was taken.
//   I2 Inside a region the worker's waits run only tasks they pop at or above the floor
//      (wait.cpp, wait_isolated): they never steal, never poll the injection queue and
//      never take an injector or steal batch into the deque (those happen only in
//      find_work, which an isolated wait does not call).
//   I3 By I1 and I2, every task at or above the floor was spawned inside the region, so an
//      isolated wait runs nothing unrelated; and a region task that another worker steals
//      makes that worker's waits isolated too while it runs (the tag travels).
//   I4 No hand-back: nothing is moved from one queue to another, so isolated waiters
//      cannot livelock each other. A steal batch stops *before* claiming a tagged task
//      (worker::steal_more, deque steal_unless): a region task is never parked in a thief's
//      deque behind an unrelated task the thief runs first (which might block on the lock
//      the region's owner holds while the owner waits for the region task).
//   I5 Progress: a region task is either in the deque of a worker inside the region (which
//      runs it before leaving: above its floor, LIFO), or running. Once nothing is left at
//      or above an isolated waiter's floor nothing new appears there (I1), so it sleeps on
//      the awaited object; tasks below the floor stay stealable (it notifies first).
// Regions nest: an inner floor is at least the outer one, and the outer region comes back
// when the inner one ends (also by an exception).
#include "weft/isolated.hpp"

#include "worker.hpp"

namespace weft::detail {

isolation_scope::isolation_scope() noexcept {
  if (worker* w = tls_worker) {
    worker_ = w;
    // The tag: this scope's address, unique among the regions alive at any moment.
    const worker::isolation outer = w->exchange_isolation({reinterpret_cast<std::uintptr_t>(this), w->mark()});
    previous_tag_ = outer.tag;
    previous_floor_ = outer.floor;
  }
}

isolation_scope::~isolation_scope() {
  if (worker_ != nullptr) static_cast<worker*>(worker_)->exchange_isolation({previous_tag_, previous_floor_});
}

}  // namespace weft::detail
