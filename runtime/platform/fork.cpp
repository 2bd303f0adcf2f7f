// runtime/platform/fork.cpp: pthread_atfork handlers (see fork.hpp).
#include "platform/fork.hpp"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <system_error>

#include "core/timer.hpp"

namespace weft::detail {
namespace {

// relaxed everywhere: written only in the single-threaded child right after fork, read
// afterwards by threads that child creates (thread creation orders it).
std::atomic<unsigned> generation{0};

// Timers first and last: no code holding the depot or a wait-table bucket takes a timer's
// mutex, nor the reverse, so any order is free of cycles; outermost-first is the convention.
void prepare() noexcept {
  timer_service::prepare_fork();
  task_alloc_prepare_fork();
  wait_table_prepare_fork();
}
void in_parent() noexcept {
  wait_table_after_fork();
  task_alloc_after_fork();
  timer_service::after_fork_in_parent();
}
void in_child() noexcept {
  generation.fetch_add(1, std::memory_order_relaxed);
  wait_table_after_fork_in_child();
  task_alloc_after_fork();
  timer_service::after_fork_in_child();
}

}  // namespace

unsigned fork_generation() noexcept { return generation.load(std::memory_order_relaxed); }

void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const int rc = pthread_atfork(&prepare, &in_parent, &in_child); rc != 0) {
      throw std::system_error(rc, std::generic_category(), "weft: pthread_atfork");
    }
  });
}

}  // namespace weft::detail
