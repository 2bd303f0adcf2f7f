// weft/detail/wait.hpp: blocking on a condition, the way weft's futures and groups do.
//
// Waiters park on an *address* in a process-wide table (like C++20 atomic::wait and
// oneTBB's wait_context), not on the waited object itself. A notifier therefore touches
// nothing of the object after its final state change: the object may be destroyed by a
// waiter that saw the change before the notifier's call returns.
//
// Protocol: the notifier makes `pred` true with a seq_cst operation and then calls
// notify_address (which reads the table with seq_cst); the waiter enlists in the table
// (seq_cst) and then re-evaluates `pred`. One of the two sees the other.
//
// On a worker thread, waiting runs other tasks of that worker's pool while `pred` is false
// (help-while-waiting, bounded by stack use), and parks the worker, still available to be
// woken for new work, when there is nothing to run; inside weft::isolated it runs only the
// region's own tasks. On any other thread it blocks in the kernel (runtime/core/wait.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace weft::detail {

using wait_pred = bool (*)(const void* ctx) noexcept;

// Returns true once pred(ctx) holds, false if `deadline` passed first.
bool wait_until(const void* key, wait_pred pred, const void* ctx,
                std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());

// Number of waiters enlisted anywhere in the process (runtime/core/wait.cpp).
extern std::atomic<std::uint32_t> enlisted_waiters;
void notify_address_slow(const void* key) noexcept;

// Wakes every waiter enlisted on `key`. One load when nobody waits anywhere.
inline void notify_address(const void* key) noexcept {
  // seq_cst: N2 of the protocol in runtime/core/wait.cpp (pairs with the seq_cst increment at
  // enlisting, W1).
  if (enlisted_waiters.load(std::memory_order_seq_cst) != 0) notify_address_slow(key);
}

// True when the calling thread is a worker of any weft pool.
bool on_worker_thread() noexcept;

}  // namespace weft::detail
