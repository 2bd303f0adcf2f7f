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
// run(f): from one of the pool's workers, f goes on that worker's own deque (no lock, no
// allocation in steady state); from any other thread, on the pool's injection queue.
// Children may call run() on the same group. Throws pool_closed when called from outside
// a closed pool (f is destroyed, the group is unchanged).
// wait(): returns when every task run() so far has finished; on a worker it runs other
// tasks meanwhile. If any child threw, wait() rethrows the first exception (the others
// are dropped), after all children have finished, and clears it so the group can be reused.
// The destructor waits for children still running (it must: they reference the group); an
// exception nobody waited for goes to the pool's on_task_exception handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <utility>

#include "weft/detail/task.hpp"
#include "weft/detail/wait.hpp"
#include "weft/pool.hpp"

namespace weft {

class task_group {
 public:
  explicit task_group(pool& p) noexcept : pool_(&p) {}
  ~task_group();
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;

  template <class F>
  void run(F&& f) {
    // relaxed: the increment reaches the child (and any waiter) through the enqueue below,
    // whose deque push / queue insertion is a release the executing thread acquires.
    pending_.fetch_add(1, std::memory_order_relaxed);
    try {
      pool_->enqueue(detail::make_task([this, fn = std::forward<F>(f)]() mutable -> bool {
        bool ok = true;
        try {
          std::invoke(fn);
        } catch (...) {
          record(std::current_exception());
          ok = false;
        }
        finish_one();
        return ok;
      }));
    } catch (...) {
      finish_one();
      throw;
    }
  }

  void wait();

  // True when no child is pending (a snapshot).
  bool idle() const noexcept {
    // acquire: pairs with finish_one's decrement, so children's effects are visible.
    return pending_.load(std::memory_order_acquire) == 0;
  }

 private:
  void record(std::exception_ptr e) noexcept;
  void finish_one() noexcept {
    // seq_cst: the notifier half of the wait protocol (weft/detail/wait.hpp); acq_rel part
    // orders the child's effects before the waiter's return.
    if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1) detail::notify_address(&pending_);
    // Nothing of *this may be touched past this point: the waiter may have returned.
  }
  static bool done(const void* self) noexcept { return static_cast<const task_group*>(self)->idle(); }

  pool* pool_;
  std::atomic<std::int64_t> pending_{0};
  std::atomic<bool> has_error_{false};
  std::exception_ptr error_;
};

}  // namespace weft
