// runtime/platform/fork.hpp: what weft does about fork().
//
// A child process has only the thread that called fork(): a pool created before the fork
// has no workers there. Such a pool is *unusable* in the child, and says so: submission
// throws pool_closed (try_ variants return closed), close() and the destructor return at
// once without running queued tasks (they are destroyed), and the worker threads' handles
// are abandoned rather than joined. Waiting in the child on a future whose task had not
// finished before the fork never returns: don't. A pool created in the child works.
//
// Around fork() weft holds its process-wide locks (the task-block depot, the wait table,
// every pool's deadline timer: runtime/core/timer.hpp) so that the child never inherits one of
// them locked by a thread that no longer exists. A pool created before the fork abandons
// its timer in the child (its thread is the parent's) instead of joining it. Nothing weft
// runs on a worker at start-up initialises a function-local static (whose guard a fork
// could leave held by a thread the child does not have): see bind_this_thread.
// The child also empties the wait table: its nodes live on the stacks of the parent's
// other threads, which the child does not have (and whose stacks its new threads reuse).
#pragma once

namespace weft::detail {

// Incremented in every child process; a pool compares it with its own at creation.
unsigned fork_generation() noexcept;
// Registers the pthread_atfork handlers once per process.
void install_fork_handlers();

// Hooks run by the handlers (defined next to the locks they protect).
void task_alloc_prepare_fork() noexcept;
void task_alloc_after_fork() noexcept;
void wait_table_prepare_fork() noexcept;
void wait_table_after_fork() noexcept;
void wait_table_after_fork_in_child() noexcept;  // also forgets the parent's waiters

}  // namespace weft::detail
