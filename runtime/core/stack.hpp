// runtime/core/stack.hpp: bounded stack use for helping waits.
//
// A worker that waits (future::get, task_group::wait, a batch or loop) runs other tasks on
// its own stack while it waits, and those tasks may wait too: a chain of submit+get or of
// nested groups 100,000 deep nests 100,000 waits on one stack. Rather than refuse to help
// past a depth (which can hang: on a one-worker pool the awaited task may be the very one
// queued behind the waiter), weft measures how much of the current stack is left and, when
// less than a reserve remains, runs the next task on a fresh stack *segment*: a separate
// mapping of the thread's own stack size, entered by a context switch on the same thread
// (same thread-locals, same worker, same deque) and left when the task returns. Segments
// chain, so nesting is bounded by memory, never by the stack (libfork's "stacklets" and
// Go's growable stacks make the same trade).
//
// Cost: nothing on a task that runs with room to spare (one comparison of the frame
// address with a thread-local bound, on the nested path only); a switch (two system calls:
// swapcontext saves and restores the signal mask) per task started near the bound.
// Segments are cached per thread and returned at thread exit. Sanitizers are told about
// every switch (ASan's and TSan's fiber interfaces), so they follow the segments.
#pragma once

#include <cstdint>

namespace weft::detail {

// The lowest frame address with the reserve still left on the calling thread's current
// stack or segment; 0 until first computed (stack.cpp).
extern constinit thread_local std::uintptr_t stack_limit;
bool stack_low_slow() noexcept;

// True when the calling thread's current stack (or segment) has less than the reserve
// left: max(256 KiB, a quarter of the stack's size).
inline bool stack_low() noexcept {
  const std::uintptr_t limit = stack_limit;
  if (limit == 0) [[unlikely]] return stack_low_slow();
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) < limit;
}

// Runs fn(arg) on a fresh stack segment of the calling thread and returns when it returns.
// fn must not throw. False (fn not called) when no segment could be mapped: the caller
// must not run the task on this stack then (it waits instead).
bool run_on_fresh_stack(void (*fn)(void*), void* arg) noexcept;

}  // namespace weft::detail
