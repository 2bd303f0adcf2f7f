// weft/task_group.hpp: fork-join on a pool.
//
// A task_group collects tasks spawned with run() and lets one thread wait for all of them:
//
//   int fib(weft::pool& p, int n) {
//     if (n < 2) return n;
//     int a = 0;
//     weft::task_group g(p);
//     g.run([&] { a = fib(p, n - 1); });
//     int b = fib(p, n - 2);
//     g.wait();
//     return a + b;
//   }
//
// run(f): f is callable as f() or f(std::stop_token). From one of the pool's workers, f goes
//   on that worker's own deque (no lock, no allocation in steady state); from any other
//   thread, on the pool's injection queue. Children may call run() on the same group.
//   Throws pool_closed when called from outside a closed pool (f is destroyed, the group
//   is unchanged), std::bad_alloc when out of memory.
// wait(): returns when every task run() so far has finished or was cancelled. If a child
//   threw, rethrows the first exception (after all children finished) and clears it, so
//   the group can be reused. Returns group_status::cancelled if the group was cancelled.
// cancel(): children that have not started will not run (they count as finished); running
//   children see their std::stop_token fire. Cancelling a group cancels the groups created
//   inside its children (nested groups), transitively. The first exception of a child also
//   cancels the group (as in oneTBB).
// The destructor waits for children still running (they reference the group); an
// exception nobody waited for goes to the pool's on_task_exception handler.
//
// Waiting helps. While a worker waits on a group it runs other tasks of its pool (its own
// deque first, so the group's children it spawned come first; then the injection queue and
// other workers' deques), exactly as a wait on a weft::future does and as oneTBB's waits do
// outside this_task_arena::isolate. Helping is bounded by stack use: a task started with
// little stack left runs on a fresh stack segment (runtime/stack.hpp), so deep nesting of
// groups, futures and loops never overflows the stack. A thread outside the pool that waits
// runs nothing: it sleeps until the last child finishes.
// Code that holds a lock and waits, and must not run unrelated tasks meanwhile (which
// might take the same lock), opts into isolation with weft::isolated (weft/isolated.hpp).
//
// Cost: run() is an allocation-free push plus one relaxed increment; a child start checks
// one global count of groups that are cancelled right now (while any is, children walk the
// chain of enclosing groups; the count comes back down when such a group is reset by its
// wait() or destroyed); wait() on a finished group is one load.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "weft/detail/submission.hpp"
#include "weft/detail/task.hpp"
#include "weft/detail/wait.hpp"
#include "weft/pool.hpp"

namespace weft {

enum class group_status { complete, cancelled };

namespace detail {

// Groups in the process whose `cancelled` flag is set right now (see the cost note above).
extern std::atomic<std::uint64_t> cancelled_groups;

struct stop_link;

// A group's cancellation and isolation context (oneTBB calls this task_group_context).
struct group_context {
  const group_context* parent = nullptr;  // the group of the task that created this one
  pool* owner = nullptr;
  std::atomic<bool> cancelled{false};
  mutable std::atomic<stop_link*> link{nullptr};  // created on first get_stop_token()

  bool cancelled_in_chain() const noexcept {
#ifdef WEFT_ABLATE_CANCELLATION  // perf/cost.cpp only: measures what this check costs
    return false;
#endif
    // relaxed: an increment that happens-before this check (cancel() sequenced before the
    // run() whose push we acquired) is visible; a concurrent cancel may be missed, which
    // only means a child that was starting anyway runs.
    if (cancelled_groups.load(std::memory_order_relaxed) == 0) return false;
    for (const group_context* c = this; c != nullptr; c = c->parent) {
      // acquire: pairs with the release store in cancel().
      if (c->cancelled.load(std::memory_order_acquire)) return true;
    }
    return false;
  }
  std::stop_token token() const;  // task_group.cpp
  void cancel() noexcept;         // task_group.cpp
  // Clears the flag (a reused or destroyed group); no child may be running. task_group.cpp
  void reset_cancelled() noexcept;
  void destroy_link() noexcept {
    // relaxed: called only when no child runs and no other thread uses the group.
    if (link.load(std::memory_order_relaxed) != nullptr) destroy_link_slow();
  }
  void destroy_link_slow() noexcept;  // task_group.cpp
};

// The group of the task the calling thread is running, or null (runtime/worker.cpp).
const group_context* current_scope() noexcept;
// Fills parent from the calling thread (runtime/worker.cpp).
void enter_scope(group_context& g) noexcept;

}  // namespace detail

class task_group {
 public:
  explicit task_group(pool& p) noexcept {
    ctx_.owner = &p;
    detail::enter_scope(ctx_);
  }
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  template <class F>
  void run(F&& f) {
    // relaxed: the increment reaches the child (and any waiter) through the enqueue below,
    // whose deque push / queue insertion is a release the executing thread acquires.
    pending_.fetch_add(1, std::memory_order_relaxed);
    detail::task* t = nullptr;
    try {
      t = detail::make_task(child<std::decay_t<F>>{this, std::forward<F>(f)});
    } catch (...) {
      finish_one();
      throw;
    }
    t->scope = &ctx_;
    // enqueue consumes t: queued, or destroyed (without finishing) before it throws.
    try {
      ctx_.owner->enqueue(t);
    } catch (...) {
      finish_one();
      throw;
    }
  }

  group_status wait();
  void cancel() noexcept { ctx_.cancel(); }
  bool is_cancelled() const noexcept { return ctx_.cancelled_in_chain(); }
  // The token children receive: fires on cancel(), on cancellation of an enclosing group,
  // and when the pool is stopped.
  std::stop_token get_stop_token() const { return ctx_.token(); }

  // True when no child is pending (a snapshot).
  bool idle() const noexcept {
    // acquire: pairs with finish_one's decrement, so children's effects are visible.
    return pending_.load(std::memory_order_acquire) == 0;
  }

 private:
  template <class F>
  struct child {
    task_group* g;
    F fn;
    detail::task_result operator()() {
      if (g->ctx_.cancelled_in_chain()) {
        g->finish_one();
        return detail::task_result::cancelled;
      }
      detail::task_result r = detail::task_result::ok;
      try {
        if constexpr (std::is_invocable_v<F&, std::stop_token>) {
          std::invoke(fn, g->ctx_.token());
        } else {
          std::invoke(fn);
        }
      } catch (...) {
        g->record(std::current_exception());
        r = detail::task_result::failed;
      }
      g->finish_one();
      return r;
    }
    void cancel() noexcept { g->finish_one(); }  // dropped before it started: counts as finished
  };

  void record(std::exception_ptr e) noexcept;
  void finish_one() noexcept {
    // seq_cst: the notifier half of the wait protocol (weft/detail/wait.hpp); its release
    // part orders the child's effects before the waiter's return.
    if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1) detail::notify_address(&pending_);
    // Nothing of *this may be touched past this point: the waiter may have returned.
  }
  static bool done(const void* self) noexcept { return static_cast<const task_group*>(self)->idle(); }

  detail::group_context ctx_;
  std::atomic<std::int64_t> pending_{0};
  std::atomic<bool> has_error_{false};
  std::exception_ptr error_;
};

}  // namespace weft
