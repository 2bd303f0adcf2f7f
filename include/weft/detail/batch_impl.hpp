// weft/detail/batch_impl.hpp: the machinery behind weft/batch.hpp.
//
// A batch of n elements posts one submission per element (pool::post with an on-done
// callback and the batch's stop token, so each element is one pool::post: one make_shared of
// the submission plus a task block). Each element reaches the batch's *sink* exactly once
// ("is delivered"), with its outcome:
//   - by its on-done callback (value, exception, or a cancellation by the batch's token,
//     by the pool's stop, or by a queue entry the pool dropped); pool::post guarantees one
//     call per submission it accepted;
//   - by the submitter itself, as cancelled, for an element it never posted (the batch was
//     stopped before its turn, or posting an earlier element threw).
// The sink counts deliveries with one atomic; whoever needs the batch finished (run_batch,
// the stream's destructor, a fail_fast throw) waits with detail::wait_until until the count
// says all n are in. That is the whole protocol; the rest is who may touch what, when.
//
// Lifetime invariant. A thread delivering an element touches nothing of the sink after its
// final counter update (a seq_cst RMW); notify_address only hashes the address. So a waiter
// that sees the count complete may free the sink at once. Consequences:
//   - fail_fast: the failing element's own delivery cancels the batch *before* its counter
//     update, so the count cannot complete (and the sink cannot go) while cancel() runs;
//   - the caller's token: its relay runs inside a std::stop_callback owned by the sink's
//     batch_control. batch_control is the sink's first member, so it is destroyed last, and
//     std::stop_callback's destructor waits for a relay running on another thread. After its
//     last delivery the relay only walks the batch's stop state, which it keeps alive with
//     its own std::stop_source copy.
//   - a rejected post (pool_closed, bad_alloc) never calls on_done (pool.hpp), so the
//     submitter delivers that element itself, as cancelled, with the ones it never posted.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/submission.hpp"
#include "weft/detail/wait.hpp"
#include "weft/outcome.hpp"
#include "weft/pool.hpp"
#include "weft/task_options.hpp"

namespace weft {
template <class R>
struct batch_item;  // weft/batch.hpp
}

namespace weft::detail {

// ---- element types ----

struct not_a_batch_task {};  // stands in for R until the static_assert below reports

// The result of calling an element `e` (of type E, maybe const) as an lvalue: e(token) when
// that is valid (as pool::post does), else e().
template <class E>
auto batch_probe() {
  if constexpr (std::is_invocable_v<E&, std::stop_token>) {
    return std::type_identity<std::invoke_result_t<E&, std::stop_token>>{};
  } else if constexpr (std::is_invocable_v<E&>) {
    return std::type_identity<std::invoke_result_t<E&>>{};
  } else {
    return std::type_identity<not_a_batch_task>{};
  }
}
template <class E>
using batch_result_t = typename decltype(batch_probe<E>())::type;

// The element type an iterator yields, as the task sees it (an lvalue, const kept).
template <class I>
using batch_element_t = std::remove_reference_t<std::iter_reference_t<I>>;

template <class R>
constexpr bool check_batch_result() {
  static_assert(!std::is_same_v<R, not_a_batch_task>,
                "weft batch: every element must be callable as f() or f(std::stop_token), as an lvalue "
                "(a mutable lambda needs a non-const range; wrap heterogeneous callables in std::function)");
  static_assert(std::is_void_v<R> || (std::is_object_v<R> && std::is_move_constructible_v<R>),
                "weft batch: every task must return void or a movable object type, not a reference "
                "(return a pointer or a std::reference_wrapper)");
  return true;
}

template <class E>
constexpr bool check_batch_element() {
  if constexpr (std::is_invocable_v<E&, std::stop_token> && std::is_invocable_v<E&>) {
    static_assert(std::is_same_v<std::invoke_result_t<E&>, std::invoke_result_t<E&, std::stop_token>>,
                  "weft batch: all tasks of a batch return the same type R, so an element callable both as "
                  "f() and as f(std::stop_token) must return the same type from both (weft calls "
                  "f(std::stop_token))");
  }
  return check_batch_result<batch_result_t<E>>();
}

// The task body for element *it: the element is called where it lies (run_batch: in the
// caller's range; stream: in the stream's own copy), so nothing is copied per element.
// A forward iterator's copies stay valid and dereferenceable, so reading *it on the worker
// is fine; for a range yielding prvalues (a transform view) the callable is made there.
template <class I, class R>
struct element_call {
  I it;
  R operator()(std::stop_token token) {
    auto&& f = *it;
    return invoke_with_token(f, token);
  }
};

// The task body for parallel_map: fn(*it) or fn(*it, token), fn through a const reference.
template <class I, class Fn, class R>
struct map_call {
  const Fn* fn;
  I it;
  R operator()(std::stop_token token) {
    if constexpr (std::is_invocable_v<const Fn&, std::iter_reference_t<I>, std::stop_token>) {
      return std::invoke(*fn, *it, std::move(token));
    } else {
      return std::invoke(*fn, *it);
    }
  }
};

template <class I, class Fn>
auto map_probe() {
  if constexpr (std::is_invocable_v<const Fn&, std::iter_reference_t<I>, std::stop_token>) {
    return std::type_identity<std::invoke_result_t<const Fn&, std::iter_reference_t<I>, std::stop_token>>{};
  } else if constexpr (std::is_invocable_v<const Fn&, std::iter_reference_t<I>>) {
    return std::type_identity<std::invoke_result_t<const Fn&, std::iter_reference_t<I>>>{};
  } else {
    return std::type_identity<not_a_batch_task>{};
  }
}
template <class I, class Fn>
using map_result_t = typename decltype(map_probe<I, Fn>())::type;

// ---- cancellation and the first failure, shared by both sinks ----

class batch_control {
 public:
  batch_control(bool fail_fast, const std::stop_token& caller) : fail_fast_(fail_fast) {
    // A caller token that has already fired runs the relay here, stopping the batch at once.
    if (caller.stop_possible()) caller_link_.emplace(caller, relay{this});
  }
  batch_control(const batch_control&) = delete;
  batch_control& operator=(const batch_control&) = delete;

  // The token every element is posted with (task_options::stop_token).
  std::stop_token token() const noexcept { return source_.get_token(); }
  bool stopped() const noexcept { return source_.stop_requested(); }

  // Elements not started complete as cancelled (on this thread, through their relays);
  // running ones see their stop token fire. Idempotent.
  void cancel() noexcept {
    std::stop_source keep = source_;  // keeps the stop state alive to the end of the call
    keep.request_stop();
  }

  // Under fail_fast, the exception of a task that threw (not a cancellation); else null.
  template <class R>
  std::exception_ptr failure_of(const outcome<R>& o) const noexcept {
    return (fail_fast_ && !o.has_value() && !o.cancelled()) ? o.error() : nullptr;
  }
  // Records the first failure and cancels the batch. Call before the delivery's counter update.
  void fail(std::exception_ptr e) noexcept {
    bool expected = false;
    // relaxed: the CAS only elects the single writer of first_error_; readers reach it
    // through the sink's counter (the winner updates it after this, with release).
    if (failed_.compare_exchange_strong(expected, true, std::memory_order_relaxed)) first_error_ = std::move(e);
    cancel();
  }
  // Only once every element has been delivered.
  const std::exception_ptr& first_error() const noexcept { return first_error_; }
  bool fail_fast() const noexcept { return fail_fast_; }

 private:
  struct relay {
    batch_control* self;
    void operator()() noexcept { self->cancel(); }
  };

  std::stop_source source_;
  const bool fail_fast_;
  std::atomic<bool> failed_{false};
  std::exception_ptr first_error_;  // written once by fail()'s CAS winner
  std::optional<std::stop_callback<relay>> caller_link_;  // last member: destroyed first
};

// ---- posting ----

// Posts one task per element of [first, last) to p, element i's outcome going to
// sink.deliver(i, ...). Elements the batch reaches after it was stopped are not posted but
// delivered as cancelled. If posting throws, the batch is cancelled, every posted element is
// waited for, and the exception propagates: nothing of the batch runs afterwards.
template <class Sink, class I, class S, class Make>
void submit_elements(pool& p, Sink& sink, I first, S last, Make make) {
  batch_control& control = sink.control();
  const task_options options{.stop_token = control.token()};
  std::size_t posted = 0;  // elements 0 .. posted-1 have been accepted by the pool
  try {
    for (; first != last && !control.stopped(); ++first) {
      p.post(make(first), typename Sink::done{&sink, posted}, options);
      ++posted;
    }
  } catch (...) {
    control.cancel();
    sink.cancel_from(posted);
    sink.wait_all();
    throw;
  }
  sink.cancel_from(posted);
}

// ---- run_batch's sink: outcomes by index ----

template <class R>
class result_sink {
 public:
  result_sink(std::size_t n, bool fail_fast, const std::stop_token& caller)
      : control_(fail_fast, caller), slots_(n), remaining_(n) {}

  struct done {
    result_sink* sink;
    std::size_t index;
    void operator()(outcome<R>&& o) noexcept { sink->deliver(index, std::move(o)); }
  };

  void deliver(std::size_t i, outcome<R>&& o) noexcept {
    std::exception_ptr failure = control_.failure_of(o);
    slots_[i].emplace(std::move(o));  // slot i has this single writer
    if (failure) control_.fail(std::move(failure));
    // seq_cst: the notifier half of the wait protocol (detail/wait.hpp); its release part
    // publishes the slot (and first_error_) to the waiter's acquire in wait_all.
    if (remaining_.fetch_sub(1, std::memory_order_seq_cst) == 1) notify_address(&remaining_);
    // Nothing of *this past this point: the waiter may have returned.
  }
  void cancel_from(std::size_t first) noexcept {
    for (std::size_t i = first; i < slots_.size(); ++i) deliver(i, outcome<R>::from_cancelled());
  }
  void wait_all() {
    if (!complete(this)) wait_until(&remaining_, &complete, this);
  }

  batch_control& control() noexcept { return control_; }
  std::size_t size() const noexcept { return slots_.size(); }
  // After wait_all: every slot holds its outcome.
  outcome<R>& operator[](std::size_t i) noexcept { return *slots_[i]; }

 private:
  static bool complete(const void* self) noexcept {
    // acquire: pairs with the seq_cst decrements in deliver: every slot is written.
    return static_cast<const result_sink*>(self)->remaining_.load(std::memory_order_acquire) == 0;
  }

  batch_control control_;  // first member: destroyed last (lifetime invariant above)
  std::vector<std::optional<outcome<R>>> slots_;
  std::atomic<std::size_t> remaining_;
};

// ---- stream_batch's sink: outcomes in completion order ----
//
// Producers (on-done callbacks, on workers or on a cancelling thread) append to a buffer of
// exactly n slots under a mutex, then bump `delivered_`; the single consumer waits until
// delivered_ exceeds what it has taken. The mutex is held only to claim and fill one slot
// (no allocation, no call out), so a producer never waits on the consumer's work; a
// lock-free MPSC queue would save one uncontended lock per element, which a task's own
// cost dwarfs.
template <class R>
class stream_state {
 public:
  stream_state(std::size_t n, bool fail_fast, const std::stop_token& caller)
      : control_(fail_fast, caller), buffer_(std::make_unique<std::optional<batch_item<R>>[]>(n)), size_(n) {}
  virtual ~stream_state() = default;  // the owning_stream below adds the callables
  stream_state(const stream_state&) = delete;
  stream_state& operator=(const stream_state&) = delete;

  struct done {
    stream_state* sink;
    std::size_t index;
    void operator()(outcome<R>&& o) noexcept { sink->deliver(index, std::move(o)); }
  };

  void deliver(std::size_t i, outcome<R>&& o) noexcept {
    std::exception_ptr failure = control_.failure_of(o);
    {
      std::lock_guard lock(mu_);
      buffer_[tail_++].emplace(batch_item<R>{i, std::move(o)});
    }
    // The failure is queued before the cancellations it causes, so the consumer meets it first.
    if (failure) control_.fail(std::move(failure));
    // seq_cst: the notifier half of the wait protocol (detail/wait.hpp); its release part
    // publishes the slot filled above to the consumer's acquire in ready().
    delivered_.fetch_add(1, std::memory_order_seq_cst);
    notify_address(&delivered_);
    // Nothing of *this past this point: the consumer may have destroyed it.
  }
  void cancel_from(std::size_t first) noexcept {
    for (std::size_t i = first; i < size_; ++i) deliver(i, outcome<R>::from_cancelled());
  }
  void wait_all() {
    if (!all_in(this)) wait_until(&delivered_, &all_in, this);
  }
  // Before destruction: cancel what is left and wait for every element to be delivered.
  void shut_down() {
    if (all_in(this)) return;
    control_.cancel();
    wait_until(&delivered_, &all_in, this);
  }

  // Consumer side (one thread at a time): the next outcome in completion order, or nullopt
  // once all n have been taken. Under fail_fast the first task exception is rethrown
  // instead of being returned, after every element has been delivered; then the stream ends.
  std::optional<batch_item<R>> next() {
    if (ended_ || head_ == size_) return std::nullopt;
    if (!ready(this)) wait_until(&delivered_, &ready, this);
    std::optional<batch_item<R>> item;
    {
      std::lock_guard lock(mu_);
      item = std::move(buffer_[head_]);
      buffer_[head_].reset();
    }
    ++head_;
    if (control_.failure_of(item->result)) {
      ended_ = true;
      wait_all();  // every task of the batch has ended before the exception leaves
      std::rethrow_exception(item->result.error());
    }
    return item;
  }

  // The range interface (batch_stream::iterator): the current item, and moving to the next.
  batch_item<R>* current() noexcept { return current_ ? &*current_ : nullptr; }
  void advance() {
    current_.reset();
    current_ = next();
  }

  batch_control& control() noexcept { return control_; }
  std::size_t size() const noexcept { return size_; }

 private:
  static bool ready(const void* self) noexcept {
    auto* s = static_cast<const stream_state*>(self);
    // acquire: pairs with the seq_cst increments in deliver: slot head_ is filled.
    return s->delivered_.load(std::memory_order_acquire) > s->head_;
  }
  static bool all_in(const void* self) noexcept {
    auto* s = static_cast<const stream_state*>(self);
    // acquire: pairs with the seq_cst increments in deliver.
    return s->delivered_.load(std::memory_order_acquire) == s->size_;
  }

  batch_control control_;  // first member: destroyed last (lifetime invariant above)
  std::mutex mu_;
  std::unique_ptr<std::optional<batch_item<R>>[]> buffer_;  // slots [0, tail_) filled, in completion order
  std::size_t tail_ = 0;                                     // guarded by mu_
  const std::size_t size_;
  std::atomic<std::size_t> delivered_{0};
  std::size_t head_ = 0;  // consumer only (ready() runs on the consumer's thread)
  bool ended_ = false;    // consumer only
  std::optional<batch_item<R>> current_;  // consumer only
};

// A stream that owns its callables (the stream outlives the call that made it).
template <class R, class Fn>
class owning_stream final : public stream_state<R> {
 public:
  owning_stream(std::vector<Fn> fns, bool fail_fast, const std::stop_token& caller)
      : stream_state<R>(fns.size(), fail_fast, caller), fns_(std::move(fns)) {}
  std::vector<Fn>& callables() noexcept { return fns_; }

 private:
  std::vector<Fn> fns_;  // never resized while tasks run: element_call holds iterators into it
};

// The callables of `r`, copied; moved instead when `r` is a container passed as an rvalue
// (never out of a view or a borrowed range, whose elements belong to someone else).
template <class Rng>
inline constexpr bool steals_elements = !std::is_lvalue_reference_v<Rng> &&
                                        !std::ranges::view<std::remove_cvref_t<Rng>> && !std::ranges::borrowed_range<Rng>;
// What copy_callables constructs each callable from.
template <class Rng>
using callable_source_t = std::conditional_t<steals_elements<Rng>, std::ranges::range_rvalue_reference_t<Rng>,
                                             std::ranges::range_reference_t<Rng>>;

template <class Fn, class Rng>
std::vector<Fn> copy_callables(Rng&& r) {
  constexpr bool steal = steals_elements<Rng>;
  std::vector<Fn> fns;
  if constexpr (std::ranges::sized_range<Rng>) fns.reserve(static_cast<std::size_t>(std::ranges::size(r)));
  for (auto&& e : r) {
    if constexpr (steal) {
      fns.emplace_back(std::move(e));
    } else {
      fns.emplace_back(std::forward<decltype(e)>(e));
    }
  }
  return fns;
}

}  // namespace weft::detail
