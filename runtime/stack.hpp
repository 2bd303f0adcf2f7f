// runtime/stack.hpp: bounded stack use for helping waits.
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

namespace weft::detail {

// True when the calling thread's current stack (or segment) has less than the reserve
// left: max(256 KiB, a quarter of the stack's size).
bool stack_low() noexcept;

// Runs fn(arg) on a fresh stack segment of the calling thread and returns when it returns.
// fn must not throw. False (fn not called) when no segment could be mapped: the caller
// must not run the task on this stack then (it waits instead).
bool run_on_fresh_stack(void (*fn)(void*), void* arg) noexcept;

}  // namespace weft::detail
