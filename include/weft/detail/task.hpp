// weft/detail/task.hpp: the type-erased task block the deques and the injection queue carry.
//
// A task is a 128-byte block: a header (one function pointer, one link) and 112 bytes of
// inline storage. A callable that fits (and is nothrow-move-constructible) is built in
// place; a larger one is heap-allocated and the block holds a pointer to it. Blocks come
// from a per-thread cache (task_alloc.cpp), so in steady state spawning a small closure
// performs no heap allocation and takes no lock.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace weft::detail {

struct task;

// How a task block is consumed: run the callable and destroy it, or only destroy it
// (a task dropped at shutdown or cancelled before it started).
enum class task_mode : unsigned char { run, discard };

// Runs or discards the callable in the block; never frees the block itself. In run mode
// returns false when the task failed and its exception was delivered elsewhere (a future);
// an exception that escapes is the task's own, for the pool's exception handler.
using task_exec = bool (*)(task*, task_mode);

inline constexpr std::size_t task_block_size = 128;

struct alignas(64) task {
  task_exec exec = nullptr;
  task* next = nullptr;  // free lists, never while queued
  alignas(std::max_align_t) unsigned char storage[task_block_size - 2 * sizeof(void*)];
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

// Body is a callable `bool()` (true = success) or `void()` (always success).
template <class Body>
bool run_body(Body& body) {
  if constexpr (std::is_same_v<decltype(body()), bool>) {
    return body();
  } else {
    body();
    return true;
  }
}

template <class Body>
bool exec_inline(task* t, task_mode mode) {
  Body* body = std::launder(reinterpret_cast<Body*>(t->storage));
  struct destroy_on_exit {
    Body* b;
    ~destroy_on_exit() { b->~Body(); }
  } guard{body};
  return mode == task_mode::run ? run_body(*body) : true;
}

template <class Body>
bool exec_boxed(task* t, task_mode mode) {
  std::unique_ptr<Body> body(*std::launder(reinterpret_cast<Body**>(t->storage)));
  return mode == task_mode::run ? run_body(*body) : true;
}

// Builds a task block holding `body`. Throws std::bad_alloc (nothing leaks).
template <class Body>
task* make_task(Body&& body) {
  using B = std::decay_t<Body>;
  task* t = allocate_task();
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

// Destroys a task that will never run, and frees its block.
inline void discard_task(task* t) noexcept {
  t->exec(t, task_mode::discard);
  free_task(t);
}

}  // namespace weft::detail
