// runtime/core/task_group.cpp: the out-of-line half of task_group: waiting, errors, cancellation
// and the lazily created stop token.
//
// The join protocol (counts; task_group.hpp has the fields):
//   home     the worker that created the group (null for a group created outside the pool).
//   local_   plain, touched only on home: children run() on home before its wait arrived,
//            minus those of them home finished itself before arriving.
//   remote_  atomic: 2 * (every other run() minus every other completion), bit 0 = arrived.
//            Before arrival the count part may go negative (a local child finished
//            elsewhere) or pass through zero (remote children come and go): nobody reads it
//            as "done" then, and no notification is sent (the waiter bit is clear).
//   J1 Pending children = local_ + (remote_ >> 1) at every moment home observes, because
//      each child is counted once where run() put it and uncounted once where it finishes
//      (a local child finished off home, or after arrival, uncounts in remote_, which the
//      arrival credited with every local_ still pending).
//   J2 Arrival (join, on home): while local_ + count != 0, home runs tasks of its own deque
//      (help_own); a child it runs there finishes locally. If that leaves zero, return with
//      no read-modify-write. Otherwise one seq_cst fetch_add moves local_ into remote_ and
//      sets the waiter bit; from then on every completion is remote, so remote_ alone says
//      when the group is done, and the decrement that leaves "zero, waiter set" notifies.
//   J3 A waiter off home (a group created outside the pool) has local_ == 0 forever and
//      arrives the same way.
//   J4 Wake-up: the waiter sets the bit (seq_cst RMW) and then waits on the address of
//      remote_ with the table's protocol (weft/detail/wait.hpp): the notifier's decrement is
//      the N1 RMW on the awaited word, and it touches nothing of the group afterwards.
//   J5 After the join, remote_ holds exactly the waiter bit; join clears it (no child is
//      left to race) so the group can be reused.
#include "weft/task_group.hpp"

#include <optional>
#include <stdexcept>

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
  // relaxed all: no child runs and no other thread uses the group (the caller's wait
  // acquired every child's completion). A load first: no RMW on the common path.
  if (cancelled.load(std::memory_order_relaxed)) {
    cancelled.store(false, std::memory_order_relaxed);
    cancelled_groups.fetch_sub(1, std::memory_order_relaxed);
  }
}

void group_context::destroy_link_slow() noexcept {
  // relaxed: called only when no child runs and no other thread uses the group.
  delete link.exchange(nullptr, std::memory_order_relaxed);
}

}  // namespace detail

void task_group::join() {
  if (home_ != nullptr && !on_home()) {
    throw std::logic_error(
        "weft::task_group::wait() called on a thread other than the worker that created the group (see "
        "weft/task_group.hpp)");
  }
  // J2: help with our own deque first; children popped here finish locally.
  while (local_ + remote_count() != 0 && detail::help_own()) {
  }
  if (local_ + remote_count() == 0) {
    // Done without arriving. Local children that finished elsewhere left remote_'s count
    // negative by as much as local_ is positive: reset both for reuse. relaxed both: no
    // child is left to touch remote_, and remote_count() acquired their decrements.
    local_ = 0;
    if (remote_.load(std::memory_order_relaxed) != 0) remote_.store(0, std::memory_order_relaxed);
    return;
  }
  // seq_cst: J2/J4, the arrival; acquires the completions that happened before it.
  const std::int64_t folded = local_;
  const std::int64_t prev = remote_.fetch_add(folded * kOne + kWaiter, std::memory_order_seq_cst);
  local_ = 0;
  if ((prev >> 1) + folded != 0) {
    arrived_ = true;
    detail::wait_until(&remote_, &done, this);
    arrived_ = false;
  }
  // relaxed: J5, no child is left that could touch remote_; done() acquired their effects.
  remote_.store(0, std::memory_order_relaxed);
}

task_group::~task_group() {
  // Children reference *this: wait for them whatever happens.
  if (!idle()) {
    if (home_ != nullptr && !on_home()) {
      detail::pool_access::report_unobserved(*ctx_.owner, std::make_exception_ptr(std::logic_error(
          "weft::task_group destroyed with children pending on a thread other than the worker that created it")));
      std::terminate();
    }
    join();
  }
  // relaxed: every child has finished; idle() acquired their effects.
  if (has_error_.load(std::memory_order_relaxed)) {
    detail::pool_access::report_unobserved(*ctx_.owner, std::move(error_));
  }
  ctx_.reset_cancelled();
  ctx_.destroy_link();
}

group_status task_group::wait() {
  join();
  // relaxed: join() ordered every child's writes (program order for those finished here,
  // the acquire of remote_ for the others), error_ and this flag included, before us.
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
  // through that child's completion (program order on home, else its seq_cst decrement
  // of remote_ in finish_one).
  bool expected = false;
  if (has_error_.compare_exchange_strong(expected, true, std::memory_order_relaxed)) {
    error_ = std::move(e);
    ctx_.cancel();  // the first failure cancels the rest of the group
  }
}

}  // namespace weft
