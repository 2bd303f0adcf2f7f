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
//   A group created on one of the pool's workers is waited on (and destroyed) by the task
//   that created it, on that worker, as fork-join code does: wait() from any other thread
//   throws std::logic_error, and destroying it elsewhere with children pending terminates
//   (its count of locally run children belongs to the creating worker). A group created
//   outside the pool may be waited on by any one thread.
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
// little stack left runs on a fresh stack segment (runtime/core/stack.hpp), so deep nesting of
// groups, futures and loops never overflows the stack. A thread outside the pool that waits
// runs nothing: it sleeps until the last child finishes.
// Code that holds a lock and waits, and must not run unrelated tasks meanwhile (which
// might take the same lock), opts into isolation with weft::isolated (weft/isolated.hpp).
//
// Cost: run() on the creating worker is an allocation-free push and a plain increment; a
// child that worker runs itself finishes with a plain decrement, and wait() with nothing
// stolen does no read-modify-write at all (runtime/core/task_group.cpp); a child start checks
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

#include "weft/detail/pool_access.hpp"
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

// The group of the task the calling thread is running, or null (runtime/core/worker.cpp).
const group_context* current_scope() noexcept;
// Fills parent from the calling thread (runtime/core/worker.cpp).
void enter_scope(group_context& g) noexcept;

class worker;
// The worker the calling thread is, or null (runtime/core/worker.cpp).
extern constinit thread_local worker* tls_worker;
// On a worker: runs one task from its own deque (the newest; inside weft::isolated only one
// of the region's) and returns true; false when there is none or on any other thread.
bool help_own() noexcept;

}  // namespace detail

class task_group {
 public:
  explicit task_group(pool& p) noexcept : home_(detail::tls_worker) {
    ctx_.owner = &p;
    detail::enter_scope(ctx_);
  }
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  template <class F>
  void run(F&& f) {
    const bool local = counts_locally();
    count_one(local);
    detail::task* t = nullptr;
    try {
      t = detail::make_task(child<std::decay_t<F>>{this, local, std::forward<F>(f)});
    } catch (...) {
      finish_one(local);
      throw;
    }
    t->scope = &ctx_;
    // enqueue consumes t: queued, or destroyed (without finishing) before it throws.
    try {
      detail::pool_access::enqueue(*ctx_.owner, t);
    } catch (...) {
      finish_one(local);
      throw;
    }
  }

  group_status wait();
  void cancel() noexcept { ctx_.cancel(); }
  bool is_cancelled() const noexcept { return ctx_.cancelled_in_chain(); }
  // The token children receive: fires on cancel(), on cancellation of an enclosing group,
  // and when the pool is stopped.
  std::stop_token get_stop_token() const { return ctx_.token(); }

  // True when no child is pending (a snapshot). Exact on the thread that created the group;
  // on another thread it does not see children whose count the creating worker keeps.
  bool idle() const noexcept { return (on_home() ? local_ : 0) + remote_count() == 0; }

 private:
  // The join (see the protocol at the top of runtime/core/task_group.cpp). A child run() by the
  // group's home worker before the home worker's wait has begun is counted in local_, a plain
  // integer only the home worker touches; so is its completion when the home worker runs it
  // itself. Every other run() and completion goes to remote_, which holds the count times 2
  // and, in bit 0, "a waiter has arrived". Fork-join where nothing is stolen thus performs
  // no read-modify-write on the group at all.
  static constexpr std::int64_t kOne = 2;
  static constexpr std::int64_t kWaiter = 1;

  template <class F>
  struct child {
    task_group* g;
    bool local;
    F fn;
    detail::task_result operator()() {
      if (g->ctx_.cancelled_in_chain()) {
        g->finish_one(local);
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
      g->finish_one(local);
      return r;
    }
    // Dropped before it started: counts as finished.
    void cancel() noexcept { g->finish_one(local); }
  };

  bool on_home() const noexcept { return home_ != nullptr && detail::tls_worker == home_; }
  bool counts_locally() const noexcept { return on_home() && !arrived_; }  // arrived_: home only
  std::int64_t remote_count() const noexcept {
    // acquire: pairs with the release half of finish_one's decrement, so the effects of
    // children finished elsewhere are visible once the count reads zero.
    return remote_.load(std::memory_order_acquire) >> 1;  // arithmetic: may be negative
  }
  void count_one(bool local) noexcept {
    if (local) {
      ++local_;
    } else {
      // relaxed: the increment reaches the child's decrement through the enqueue below (a
      // release the executing thread acquires), so it precedes it in remote_'s order.
      remote_.fetch_add(kOne, std::memory_order_relaxed);
    }
  }
  void record(std::exception_ptr e) noexcept;
  void finish_one(bool local) noexcept {
    // A child counted locally that the home worker finishes before its wait began: no
    // atomic. (arrived_ is read only on the home worker, by the short-circuit.)
    if (local && on_home() && !arrived_) {
      --local_;
      return;
    }
    // seq_cst: the notifier half of the wait protocol (weft/detail/wait.hpp); its release
    // part orders the child's effects before the waiter's return. Only the decrement that
    // leaves zero with the waiter bit set notifies; notify_address uses the address alone.
    if (remote_.fetch_sub(kOne, std::memory_order_seq_cst) == kOne + kWaiter) detail::notify_address(&remote_);
    // Nothing of *this may be touched past this point: the waiter may have returned.
  }
  void join();
  static bool done(const void* self) noexcept { return static_cast<const task_group*>(self)->remote_count() == 0; }

  detail::group_context ctx_;
  detail::worker* const home_;  // the worker that created the group, or null
  std::int64_t local_ = 0;      // home worker only
  bool arrived_ = false;        // home worker only: inside join() past the arrival
  std::atomic<std::int64_t> remote_{0};
  std::atomic<bool> has_error_{false};
  std::exception_ptr error_;
};

}  // namespace weft
