// runtime/task_group.cpp: the out-of-line half of task_group (waiting, errors).
#include "weft/task_group.hpp"

#include "weft/detail/wait.hpp"

namespace weft {

task_group::~task_group() {
  // Children reference *this: wait for them whatever happens.
  if (!idle()) detail::wait_until(&pending_, &done, this);
  // relaxed: every child has finished; idle() acquired their effects.
  if (has_error_.load(std::memory_order_relaxed)) pool_->report_unobserved(std::move(error_));
}

void task_group::wait() {
  if (!idle()) detail::wait_until(&pending_, &done, this);
  // relaxed: idle() (acquire on pending_) already ordered every child's writes, error_ and
  // this flag included, before us.
  if (has_error_.load(std::memory_order_relaxed)) {
    std::exception_ptr e = std::move(error_);
    error_ = nullptr;
    has_error_.store(false, std::memory_order_relaxed);  // relaxed: no child is running
    std::rethrow_exception(e);
  }
}

void task_group::record(std::exception_ptr e) noexcept {
  // relaxed: the RMW alone decides which child owns error_; error_ reaches the waiter
  // through that child's seq_cst decrement of pending_ in finish_one.
  bool expected = false;
  if (has_error_.compare_exchange_strong(expected, true, std::memory_order_relaxed)) error_ = std::move(e);
}

}  // namespace weft
