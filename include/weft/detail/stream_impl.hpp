// weft/detail/stream_impl.hpp: the machinery behind weft::stream and weft::stream_to
// (weft/stream.hpp): the consumer side, the dispatcher that takes items from the input
// channel, and the forwarder into an output channel.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/batch.hpp"
#include "weft/channel.hpp"
#include "weft/detail/wait.hpp"
#include "weft/outcome.hpp"
#include "weft/pool.hpp"
#include "weft/stream_options.hpp"

namespace weft {

// Thrown by a fail_fast stream (and pipeline_error's cousin for batches of maps): which
// item failed, and how. what() names the index and the cause's what().
class item_error : public std::runtime_error {
 public:
  item_error(std::size_t index, std::exception_ptr cause)
      : std::runtime_error("weft::stream: item " + std::to_string(index) + " failed: " + describe(cause)),
        index_(index), cause_(std::move(cause)) {}
  std::size_t index() const noexcept { return index_; }  // its position in the input, from 0
  std::exception_ptr cause() const noexcept { return cause_; }
  [[noreturn]] void rethrow_cause() const { std::rethrow_exception(cause_); }

 private:
  static std::string describe(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      return x.what();
    } catch (...) {
      return "an exception not derived from std::exception";
    }
  }
  std::size_t index_;
  std::exception_ptr cause_;
};

namespace detail {
template <class T, class F>
auto stream_probe() {
  if constexpr (std::is_invocable_v<const F&, T&&, std::stop_token>) {
    return std::type_identity<std::invoke_result_t<const F&, T&&, std::stop_token>>{};
  } else if constexpr (std::is_invocable_v<const F&, T&&>) {
    return std::type_identity<std::invoke_result_t<const F&, T&&>>{};
  } else {
    return std::type_identity<not_a_batch_task>{};
  }
}
template <class T, class F>
using stream_result_t = typename decltype(stream_probe<T, F>())::type;

// The consumer's side of a stream, independent of the input type and of f.
//
// Protocol (invariant S): under mu_, in_flight_ = running_ + buffered results, and
// in_flight_ <= max_; the dispatcher takes an item from the channel only after reserving a
// slot (++in_flight_) under mu_, and releases it if the channel had nothing. Every change
// the consumer may wait for (a result, the input's end, a failure) is followed by a seq_cst
// increment of events_ (N1 of weft's wait protocol) and notify_address(&events_).
// The dispatcher runs as a task whenever pump_requests_ goes 0 -> 1 and loops until it has
// consumed every request (so a request made while it runs is never lost); it ends each pass
// with a listener registered on the channel, or a full window (the consumer re-requests
// when it frees a slot), or the input ended / stream stopped.
template <class R>
class stream_core : public std::enable_shared_from_this<stream_core<R>> {
 public:
  stream_core(std::size_t max, stream_order order, error_policy policy)
      : max_(max), order_(order), fail_fast_(policy == error_policy::fail_fast) {
    window_.resize(max_);
  }
  virtual ~stream_core() = default;
  stream_core(const stream_core&) = delete;
  stream_core& operator=(const stream_core&) = delete;

  // Consumer: the next item, waiting for one; nullopt once the stream has ended.
  std::optional<batch_item<R>> next() {
    for (;;) {
      // acquire: pairs with the seq_cst increments in bump(); read before looking, so a
      // change after the look makes the wait below return at once.
      const std::uint64_t seen = events_.load(std::memory_order_acquire);
      std::optional<batch_item<R>> item;
      bool failure = false;
      {
        std::lock_guard lock(mu_);
        if (ended_) return std::nullopt;
        item = take_locked();
        if (item) {
          --in_flight_;
          failure = fail_fast_ && !item->result.has_value() && !item->result.cancelled();
          if (failure) ended_ = true;
        } else if (in_flight_ == 0 && (input_done_ || stopped_)) {
          ended_ = true;
          return std::nullopt;
        }
      }
      if (failure) {
        wait_idle();  // every task of the stream has ended before the error leaves
        throw item_error(item->index, item->result.error());
      }
      if (item) {
        request_pump();  // a slot is free
        return item;
      }
      struct ctx_t {
        const stream_core* self;
        std::uint64_t seen;
      } ctx{this, seen};
      wait_until(&events_, [](const void* c) noexcept {
        auto* x = static_cast<const ctx_t*>(c);
        // acquire: pairs with the seq_cst increments in bump().
        return x->self->events_.load(std::memory_order_acquire) != x->seen;
      }, &ctx);
    }
  }

  // Any thread: cancels the stream (see the header). Idempotent.
  void cancel() noexcept {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    std::stop_source keep = stop_;  // keeps the stop state alive to the end of the call
    keep.request_stop();            // cancelled tasks deliver through deliver(), on this thread
    on_change();
    bump();
  }

  // Until the stream has ended (forwarding: the output channel is closed) and is idle.
  void wait_ended() {
    if (!ended_and_idle(this)) wait_until(&events_, &ended_and_idle, this);
  }

  // Before the owner lets go: cancel, wait for every task and dispatcher pass, unregister.
  void shut_down() {
    cancel();
    wait_idle();
    unwatch();
  }

 protected:
  // Dispatcher side.
  bool reserve_slot() noexcept {
    std::lock_guard lock(mu_);
    if (stopped_ || input_done_ || in_flight_ >= max_) return false;
    ++in_flight_;
    // relaxed: running_ is also read by wait_idle's predicate, which only needs the
    // decrements (seq_cst, in deliver) to see zero; this increment is ordered before the
    // task exists, hence before its decrement.
    running_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  void release_slot() noexcept {
    {
      std::lock_guard lock(mu_);
      --in_flight_;
    }
    running_.fetch_sub(1, std::memory_order_seq_cst);  // seq_cst: N1 for wait_idle
    bump();
  }
  std::size_t next_index() noexcept { return next_index_++; }  // dispatcher only (one pass at a time)
  void input_ended() noexcept {
    {
      std::lock_guard lock(mu_);
      input_done_ = true;
    }
    bump();
  }
  std::stop_token token() const noexcept { return stop_.get_token(); }

  // A task's outcome (any thread). Under fail_fast a failure cancels the stream.
  void deliver(std::size_t index, outcome<R>&& o) noexcept {
    const bool failure = fail_fast_ && !o.has_value() && !o.cancelled();
    {
      std::lock_guard lock(mu_);
      // The slot is free: invariant S bounds what is buffered by max_ (completion order:
      // the next free place of the ring; input order: the item's own place in the window).
      const std::size_t at = order_ == stream_order::completion ? next_out_ + buffered_++ : index;
      window_[at % max_].emplace(batch_item<R>{index, std::move(o)});
    }
    if (failure) cancel();
    on_change();
    // seq_cst: N1 for wait_idle; after the result is stored, so wait_idle's return means
    // every result is in.
    running_.fetch_sub(1, std::memory_order_seq_cst);
    bump();
  }

  // ---- forwarding (stream_to): the dispatcher is the consumer ----
  // The next ready result; its slot stays taken until forwarded() (invariant S).
  std::optional<batch_item<R>> take_ready() {
    std::lock_guard lock(mu_);
    return take_locked();
  }
  void forwarded() noexcept {
    std::lock_guard lock(mu_);
    --in_flight_;
  }
  // True once, when everything taken has been forwarded and nothing more will be taken.
  bool try_end() noexcept {
    std::lock_guard lock(mu_);
    if (ended_ || in_flight_ != 0 || !(input_done_ || stopped_)) return false;
    ended_ = true;
    return true;
  }
  // Forwarding mode: a change the dispatcher must act on (a result, a cancellation).
  virtual void on_change() noexcept {}

  void request_pump() noexcept {
    // acq_rel: the 0 -> 1 transition elects the thread that posts the dispatcher; pairs
    // with the dispatcher's fetch_sub, which sees every request counted before it.
    if (pump_requests_.fetch_add(1, std::memory_order_acq_rel) == 0) post_pump();
  }
  // One dispatcher pass per batch of requests, until none came in meanwhile.
  void run_pump() noexcept {
    // acquire: pairs with the acq_rel fetch_add in request_pump.
    std::uint32_t seen = pump_requests_.load(std::memory_order_acquire);
    for (;;) {
      pump_pass();
      // seq_cst: also N1 for wait_idle (the last pass ending); acq_rel part as above.
      const std::uint32_t before = pump_requests_.fetch_sub(seen, std::memory_order_seq_cst);
      if (before == seen) break;
      seen = before - seen;
    }
    notify_address(&events_);  // wait_idle waits on events_'s key
  }

  // post_pump could not post: the input is marked ended (nothing will take items), so the
  // requests counted so far need no pass; dropping them lets wait_idle return.
  void abandon_pump() noexcept {
    // seq_cst: N1 for wait_idle's predicate.
    pump_requests_.store(0, std::memory_order_seq_cst);
    notify_address(&events_);
  }

  virtual void post_pump() noexcept = 0;
  virtual void pump_pass() noexcept = 0;
  virtual void unwatch() noexcept = 0;

  void mark_ended() noexcept {
    // seq_cst: N1 of the wait protocol for wait_ended's predicate.
    ended_flag_.store(true, std::memory_order_seq_cst);
    bump();
  }

  void bump() noexcept {
    // seq_cst: N1 of the wait protocol for next()'s and wait_idle's predicates.
    events_.fetch_add(1, std::memory_order_seq_cst);
    notify_address(&events_);
  }

 private:
  std::optional<batch_item<R>> take_locked() {
    if (order_ == stream_order::completion) {
      if (buffered_ == 0) return std::nullopt;
      --buffered_;
    }
    std::optional<batch_item<R>>& slot = window_[next_out_ % max_];
    if (!slot) return std::nullopt;
    std::optional<batch_item<R>> item(std::move(slot));
    slot.reset();
    ++next_out_;
    return item;
  }

  static bool ended_and_idle(const void* self) noexcept {
    // acquire: pairs with the seq_cst store in mark_ended.
    return static_cast<const stream_core*>(self)->ended_flag_.load(std::memory_order_acquire) && idle(self);
  }
  static bool idle(const void* self) noexcept {
    auto* s = static_cast<const stream_core*>(self);
    // acquire (both): pair with the seq_cst decrements in deliver/release_slot and run_pump.
    return s->running_.load(std::memory_order_acquire) == 0 && s->pump_requests_.load(std::memory_order_acquire) == 0;
  }
  void wait_idle() {
    if (!idle(this)) wait_until(&events_, &idle, this);
  }

  const std::size_t max_;
  const stream_order order_;
  const bool fail_fast_;
  std::stop_source stop_;
  std::mutex mu_;
  // max_ slots, allocated up front. Completion order: a ring, results at next_out_ ..
  // next_out_ + buffered_ (mod max_); input order: item i at i % max_, next_out_ the next
  // index to yield. Guarded by mu_.
  std::vector<std::optional<batch_item<R>>> window_;
  std::size_t next_out_ = 0;                         // guarded by mu_
  std::size_t buffered_ = 0;                         // completion order; guarded by mu_
  std::size_t in_flight_ = 0;                        // invariant S; guarded by mu_
  bool input_done_ = false;                          // guarded by mu_
  bool stopped_ = false;                             // guarded by mu_
  bool ended_ = false;                               // guarded by mu_
  std::size_t next_index_ = 0;                       // dispatcher only
  std::atomic<std::size_t> running_{0};              // tasks posted and not yet delivered
  std::atomic<std::uint32_t> pump_requests_{0};
  std::atomic<std::uint64_t> events_{0};             // bumped per change the consumer waits for
  std::atomic<bool> ended_flag_{false};              // forwarding: the output channel was closed
};

// A stream over channel<T> calling F.
template <class T, class F, class R>
class channel_stream : public stream_core<R>, private channel_listener {
 public:
  channel_stream(pool& p, channel<T>& in, F f, const stream_options& o, std::size_t max)
      : stream_core<R>(max, o.order, o.policy), pool_(p), in_(in), f_(std::move(f)) {}

  // Links the caller's token (after construction: the relay needs the object complete).
  void link(const std::stop_token& caller) {
    if (caller.stop_possible()) caller_link_.emplace(caller, relay{this});
  }
  void start() { this->request_pump(); }

 private:
  struct relay {
    channel_stream* self;
    void operator()() noexcept { self->cancel(); }
  };
  struct call {
    std::shared_ptr<channel_stream> s;
    T item;
    R operator()(std::stop_token token) {
      if constexpr (std::is_invocable_v<const F&, T&&, std::stop_token>) {
        return std::invoke(std::as_const(s->f_), std::move(item), std::move(token));
      } else {
        return std::invoke(std::as_const(s->f_), std::move(item));
      }
    }
  };
  struct done {
    std::shared_ptr<channel_stream> s;
    std::size_t index;
    void operator()(outcome<R>&& o) noexcept { s->deliver(index, std::move(o)); }
  };

  void on_ready() noexcept override { this->request_pump(); }  // under the channel's lock (I5)

  void post_pump() noexcept override {
    std::shared_ptr<channel_stream> self = std::static_pointer_cast<channel_stream>(this->shared_from_this());
    try {
      pool_.post([self] { self->run_pump(); });
    } catch (...) {
      // The pool no longer accepts tasks (or no memory): nothing will take items any more.
      this->input_ended();
      this->abandon_pump();
    }
  }

  void pump_pass() noexcept override { dispatch(); }

 protected:
  // Takes items from the channel while slots are free; leaves a listener registered when
  // the channel is empty.
  void dispatch() noexcept {
    for (;;) {
      if (!this->reserve_slot()) return;  // full window (the consumer re-requests), ended or stopped
      receive_result<T> r = in_.try_receive();
      if (!r) {
        this->release_slot();
        if (r.status() == channel_status::closed) {
          this->input_ended();
          return;
        }
        in_.unwatch(*this);  // at most one registration
        if (in_.watch_receivable(*this)) return;  // on_ready() requests the next pass
        continue;                                 // an item (or close) came in meanwhile
      }
      const std::size_t index = this->next_index();
      try {
        pool_.post(call{std::static_pointer_cast<channel_stream>(this->shared_from_this()), std::move(*r)},
                   done{std::static_pointer_cast<channel_stream>(this->shared_from_this()), index},
                   task_options{.stop_token = this->token()});
      } catch (...) {
        this->deliver(index, outcome<R>::from_error(std::current_exception()));
        this->input_ended();
        return;
      }
    }
  }

  void unwatch() noexcept override { in_.unwatch(*this); }
  // For a derived class's destructor: no relay runs or starts afterwards.
  void unlink() noexcept { caller_link_.reset(); }

 private:
  pool& pool_;
  channel<T>& in_;
  const F f_;
  std::optional<std::stop_callback<relay>> caller_link_;  // last member: destroyed first
};

// stream_to: the dispatcher also forwards the results into an output channel.
template <class T, class F, class R>
class forwarding_stream final : public channel_stream<T, F, R> {
 public:
  forwarding_stream(pool& p, channel<T>& in, channel<batch_item<R>>& out, F f, const stream_options& o,
                    std::size_t max)
      : channel_stream<T, F, R>(p, in, std::move(f), o, max), out_(out) {}
  ~forwarding_stream() override { this->unlink(); }

 private:
  struct out_listener final : channel_listener {
    forwarding_stream* self = nullptr;
    void on_ready() noexcept override { self->request_pump(); }  // under out_'s lock (I5)
  };

  void on_change() noexcept override { this->request_pump(); }

  void pump_pass() noexcept override {
    forward();
    this->dispatch();
    if (!held_ && this->try_end()) {
      out_.close();
      this->mark_ended();
    }
  }

  // Moves ready results into out_ until it is full (then a listener is left on it) or none
  // is ready. A closed out_ means its reader left: the stream is cancelled and what it
  // still yields is dropped.
  void forward() noexcept {
    for (;;) {
      if (!held_ && !(held_ = this->take_ready())) return;
      const channel_status s = out_.try_send(std::move(*held_));  // moves only on success
      if (s == channel_status::success || s == channel_status::closed) {
        held_.reset();
        this->forwarded();
        if (s == channel_status::closed) this->cancel();
        continue;
      }
      listener_.self = this;
      out_.unwatch(listener_);  // at most one registration
      if (out_.watch_sendable(listener_)) return;
    }
  }

  void unwatch() noexcept override {
    channel_stream<T, F, R>::unwatch();
    out_.unwatch(listener_);
  }

  channel<batch_item<R>>& out_;
  out_listener listener_;
  std::optional<batch_item<R>> held_;  // dispatcher only: taken, not yet accepted by out_
};

}  // namespace detail
}  // namespace weft
