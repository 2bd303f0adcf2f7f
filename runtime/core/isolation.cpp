// runtime/core/isolation.cpp: weft::isolated (weft/isolated.hpp).
//
// Protocol. A region has a tag (the address of its isolation_scope, unique while it lives).
// A task spawned by a worker inside a region carries the tag (task::isolation, and bit 0 of
// its deque slot). A worker is inside a region while it runs the region's body or a task
// carrying the region's tag; it then has a floor: the index its deque's next push gets when
// the body or that task started (worker::execute_in_region). Invariants:
//   I1 Only the owner pushes onto a deque (deque.hpp, I1), so every element at or above
//      the floor was pushed by this worker after the floor was taken.
//   I2 Inside a region the worker's waits run only (a) tasks they pop at or above the floor
//      (wait.cpp, wait_isolated) and (b) tasks of the same region they steal from the top
//      of another deque (worker::steal_region_task: the slot's tag bit is checked before
//      the claim, the task's region after it). They never poll the injection queue and
//      never take an injector or steal batch into the deque (those happen only in
//      find_work, which an isolated wait does not call).
//   I3 By I1 and I2, every task an isolated wait runs was spawned inside the region, so it
//      runs nothing unrelated; and a region task that another worker steals makes that
//      worker's waits isolated too while it runs (the tag travels).
//   I4 No ping-pong: the only move between queues is (b)'s rare case of a claimed task of
//      *another* region, which goes to the injection queue, where no isolated wait looks;
//      so isolated waiters cannot livelock each other. A steal batch stops *before*
//      claiming a tagged task (worker::steal_more, deque steal_unless): a region task is
//      never parked in a thief's deque behind an unrelated task the thief runs first.
//   I5 Progress: a region task is in the deque of a worker inside the region, or running,
//      or (I4) in the injection queue for any non-isolated worker. The owner of that deque
//      runs it before leaving the region (above its floor, LIFO) unless it blocks outside
//      weft first (a latch the task itself will count down, say); then (b) lets any
//      isolated waiter of the region take it from the top. An isolated waiter with nothing
//      to run naps on the awaited object (up to 1 ms) and scans again; tasks below its floor
//      stay stealable (it notifies first).
// The model check tests/model/isolation_model.cpp restates these rules, (b) included
// (scenario region_task_in_blocked_deque, with the old never-steal rule as a must-fail
// mutant); LockNestedWaitTest is the unit test of the same shape.
// Regions nest: an inner floor is at least the outer one, and the outer region comes back
// when the inner one ends (also by an exception).
#include "weft/isolated.hpp"

#include "core/worker.hpp"

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
