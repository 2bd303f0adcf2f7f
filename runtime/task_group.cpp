// runtime/task_group.cpp: the out-of-line half of task_group: waiting, errors, cancellation
// and the lazily created stop token.
#include "weft/task_group.hpp"

#include <optional>

#include "weft/detail/wait.hpp"

namespace weft {
namespace detail {

std::atomic<std::uint64_t> cancelled_groups{0};

// A group's stop source, linked to its parent group's token and to the pool's token.
struct stop_link {
  struct relay {
    std::stop_source* target;
    void operator()() noexcept { target->request_stop(); }
  };
  std::stop_source source;
  std::optional<std::stop_callback<relay>> from_parent;
  std::optional<std::stop_callback<relay>> from_pool;
};

std::stop_token group_context::token() const {
  // acquire: pairs with the release CAS below, so the link is fully built.
  stop_link* l = link.load(std::memory_order_acquire);
  if (l == nullptr) {
    auto fresh = std::make_unique<stop_link>();
    if (parent != nullptr) fresh->from_parent.emplace(parent->token(), stop_link::relay{&fresh->source});
    fresh->from_pool.emplace(owner->get_stop_token(), stop_link::relay{&fresh->source});
    // seq_cst: publishes the built link (release) and is the first half of a Dekker pair
    // with cancel(): we install the link then read `cancelled`, cancel() sets `cancelled`
    // then reads the link. With all four seq_cst at least one side sees the other, so the
    // source always fires; with release/acquire both could miss (store buffering).
    if (link.compare_exchange_strong(l, fresh.get(), std::memory_order_seq_cst, std::memory_order_seq_cst)) {
      l = fresh.release();
    }
    // A cancel() that ran before the link existed could not fire it: do it now.
    // seq_cst: the second half of the Dekker pair above.
    if (cancelled.load(std::memory_order_seq_cst)) l->source.request_stop();
  }
  return l->source.get_token();
}

void group_context::cancel() noexcept {
  // seq_cst: release for the acquire loads in cancelled_in_chain; and the first half of
  // the Dekker pair with token() (see there). The exchange decides who counts the group.
  if (!cancelled.exchange(true, std::memory_order_seq_cst)) {
    // relaxed: see cancelled_in_chain for why a relaxed count suffices.
    cancelled_groups.fetch_add(1, std::memory_order_relaxed);
  }
  // seq_cst: the second half of the Dekker pair with token(); acquires the built link.
  if (stop_link* l = link.load(std::memory_order_seq_cst)) l->source.request_stop();
}

void group_context::reset_cancelled() noexcept {
  // relaxed both: no child runs and no other thread uses the group (the caller's wait
  // acquired every child's completion).
  if (cancelled.exchange(false, std::memory_order_relaxed)) cancelled_groups.fetch_sub(1, std::memory_order_relaxed);
}

void group_context::destroy_link_slow() noexcept {
  // relaxed: called only when no child runs and no other thread uses the group.
  delete link.exchange(nullptr, std::memory_order_relaxed);
}

}  // namespace detail

task_group::~task_group() {
  // Children reference *this: wait for them whatever happens.
  if (!idle()) detail::wait_until(&pending_, &done, this);
  // relaxed: every child has finished; idle() acquired their effects.
  if (has_error_.load(std::memory_order_relaxed)) ctx_.owner->report_unobserved(std::move(error_));
  ctx_.reset_cancelled();
  ctx_.destroy_link();
}

group_status task_group::wait() {
  if (!idle()) detail::wait_until(&pending_, &done, this);
  // relaxed: idle() (acquire on pending_) already ordered every child's writes, error_ and
  // this flag included, before us.
  const bool cancelled = ctx_.cancelled_in_chain();
  if (ctx_.cancelled.load(std::memory_order_relaxed)) {  // relaxed: no child runs now
    // Reset for reuse: the flag, and the stop source (a fired source cannot be re-armed).
    ctx_.reset_cancelled();
    ctx_.destroy_link();
  }
  if (has_error_.load(std::memory_order_relaxed)) {
    std::exception_ptr e = std::move(error_);
    error_ = nullptr;
    has_error_.store(false, std::memory_order_relaxed);  // relaxed: no child is running
    std::rethrow_exception(e);
  }
  return cancelled ? group_status::cancelled : group_status::complete;
}

void task_group::record(std::exception_ptr e) noexcept {
  // relaxed: the RMW alone decides which child owns error_; error_ reaches the waiter
  // through that child's seq_cst decrement of pending_ in finish_one.
  bool expected = false;
  if (has_error_.compare_exchange_strong(expected, true, std::memory_order_relaxed)) {
    error_ = std::move(e);
    ctx_.cancel();  // the first failure cancels the rest of the group
  }
}

}  // namespace weft
