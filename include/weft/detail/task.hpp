// weft/detail/task.hpp: the type-erased task block the deques and the injection queue carry.
//
// A task is a 128-byte block: a 32-byte header (the type-erased entry point, a free-list
// link, the owning group, a latency stamp) and 96 bytes of inline storage. A callable that fits (and is nothrow-move-constructible) is built in
// place; a larger one is heap-allocated and the block holds a pointer to it. Blocks come
// from a per-thread cache (task_alloc.cpp), so in steady state spawning a small closure
// performs no heap allocation and takes no lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace weft::detail {

struct task;
struct group_context;

// How a task block is consumed:
//   run      run the callable, then destroy it
//   cancel   do not run it; complete it as cancelled (a future gets task_cancelled, a
//            group counts the child as finished), then destroy it
//   destroy  only destroy it: the submission was rejected and the submitter is told
enum class task_mode : unsigned char { run, cancel, destroy };

// What happened, for the pool's counters.
enum class task_result : unsigned char {
  ok,         // ran and returned normally
  failed,     // ran and threw; the exception was delivered (future, group, handler)
  cancelled,  // did not run (cancelled before it started)
  // The block is not the runtime's (weft/detail/coro_promise.hpp: a header embedded in a
  // coroutine frame, whose exec resumed or handed back the coroutine): after exec returns,
  // nothing may touch the block, which is never freed. Counted as ok.
  resumed,
};

// Consumes the callable in the block (never frees the block itself). An exception that
// escapes from run mode is the task's own, for the pool's exception handler. An exec that
// returns task_result::resumed owns the block itself (see there): the caller frees nothing.
using task_exec = task_result (*)(task*, task_mode);

inline constexpr std::size_t task_block_size = 128;

// Aligned like malloc's blocks (16), not to cache lines: a cache-line alignment sends every
// fresh block through the allocator's slow aligned path, which external-submission
// profiles showed; the header and small captures still share the block's first line.
struct alignas(std::max_align_t) task {
  task_exec exec = nullptr;
  union {
    task* next = nullptr;       // while free: the free list
    std::uintptr_t isolation;   // while queued or running: its isolated region, or 0 (runtime/core/isolation.cpp)
  };
  const group_context* scope = nullptr;   // the group this task belongs to (cancellation), or null
  std::uint64_t stamp = 0;                // enqueue time in ns when sampled for latency metrics, else 0
  alignas(std::max_align_t) unsigned char storage[task_block_size - 32];
};
static_assert(sizeof(task) == task_block_size, "task blocks are exactly one allocation class");

inline constexpr std::size_t task_inline_capacity = sizeof(task::storage);
static_assert(task_inline_capacity >= 48, "at least 48 bytes of captures travel inline");

// Block allocation (task_alloc.cpp). allocate_task throws std::bad_alloc.
task* allocate_task();
void free_task(task* t) noexcept;

template <class F>
inline constexpr bool fits_inline = sizeof(F) <= task_inline_capacity && alignof(F) <= alignof(std::max_align_t) &&
                                    std::is_nothrow_move_constructible_v<F>;

// A Body is callable as body() returning void (ok), bool (true = ok, false = failed) or
// task_result, and may have `void cancel() noexcept`, called instead of running it when
// the task is cancelled before it starts.
template <class Body>
task_result run_body(Body& body) {
  using R = decltype(body());
  if constexpr (std::is_same_v<R, task_result>) {
    return body();
  } else if constexpr (std::is_same_v<R, bool>) {
    return body() ? task_result::ok : task_result::failed;
  } else {
    body();
    return task_result::ok;
  }
}

template <class Body>
task_result consume(Body& body, task_mode mode) {
  switch (mode) {
    case task_mode::run:
      return run_body(body);
    case task_mode::cancel:
      if constexpr (requires { body.cancel(); }) body.cancel();
      return task_result::cancelled;
    case task_mode::destroy:
      break;
  }
  return task_result::cancelled;
}

template <class Body>
task_result exec_inline(task* t, task_mode mode) {
  Body* body = std::launder(reinterpret_cast<Body*>(t->storage));
  struct destroy_on_exit {
    Body* b;
    ~destroy_on_exit() { b->~Body(); }
  } guard{body};
  return consume(*body, mode);
}

template <class Body>
task_result exec_boxed(task* t, task_mode mode) {
  std::unique_ptr<Body> body(*std::launder(reinterpret_cast<Body**>(t->storage)));
  return consume(*body, mode);
}

// Builds a task block holding `body`. Throws std::bad_alloc (nothing leaks).
// The body (a task's callable and its captures) must not throw from its destructor: it is
// destroyed inside exec_inline/exec_boxed, on a worker, after the task ran or was
// cancelled, where an exception has nowhere to go (std::terminate). A destructor declared
// noexcept(false) is rejected here; one that is implicitly noexcept and throws anyway
// terminates.
template <class Body>
task* make_task(Body&& body) {
  using B = std::decay_t<Body>;
  static_assert(std::is_nothrow_destructible_v<B>,
                "weft: a task's callable (including everything it captures) must have a non-throwing destructor: "
                "it is destroyed on a worker after the task ran, where an exception could only terminate the "
                "program");
  task* t = allocate_task();
  t->isolation = 0;
  t->scope = nullptr;
  t->stamp = 0;
  if constexpr (fits_inline<B>) {
    ::new (static_cast<void*>(t->storage)) B(std::forward<Body>(body));
    t->exec = &exec_inline<B>;
  } else {
    try {
      ::new (static_cast<void*>(t->storage)) B*(new B(std::forward<Body>(body)));
    } catch (...) {
      free_task(t);
      throw;
    }
    t->exec = &exec_boxed<B>;
  }
  return t;
}

// Completes a task that never ran as cancelled (task_mode::cancel: a future gets
// task_cancelled, an on_done its cancellation), destroys it and frees its block.
inline void cancel_task(task* t) noexcept {
  if (t->exec(t, task_mode::cancel) != task_result::resumed) free_task(t);
}

// Destroys a task whose submission was rejected (it never ran), and frees its block.
inline void discard_task(task* t) noexcept {
  if (t->exec(t, task_mode::destroy) != task_result::resumed) free_task(t);
}

}  // namespace weft::detail
