// weft/stream.hpp: process the items of a channel on a pool as they arrive.
//
//   weft::channel<request> in(64);
//   auto results = weft::stream(pool, in, [](request r) { return handle(r); },
//                               {.max_in_flight = 16, .order = weft::stream_order::input});
//   for (auto&& [index, outcome] : results) reply(index, outcome.value());   // until `in` closes
//
// Or into an output channel, which is closed when the stream ends (see stream_to below):
//   weft::channel<weft::batch_item<reply>> out(16);
//   auto link = weft::stream_to(pool, in, out, handle);
//   for (auto& [index, outcome] : out) send_back(outcome.value());
//
// Each item received from the channel becomes one pool task calling f(item) or
// f(item, std::stop_token) (the item moved in, f through a const reference, concurrently).
// Nothing is read ahead: an item is taken from the channel only when a slot is free.
//
// Backpressure. At most max_in_flight items are "in flight": taken from the channel and not
// yet handed to the consumer (running, or finished and buffered). A consumer that falls
// behind therefore stops the stream taking items, the input channel fills up, and its
// producers' send() waits (or try_send says full). Memory is bounded by max_in_flight
// results plus the channel's capacity.
// Order. stream_order::completion yields each result as soon as it is there;
// stream_order::input yields them in the order the items were received (index 0, 1, ...),
// holding finished results back in a reorder window of at most max_in_flight.
// Errors. collect_all: a failed item is yielded with its exception in the outcome.
// fail_fast: the first failure (completion order) cancels the stream (see below); the
// consumer gets every item ahead of it in its order and then, from next()/the iterator, a
// weft::item_error holding the failed item's index and its exception, once every task has
// ended; the stream then ends.
// Cancelling (cancel(), the options' stop_token, fail_fast's failure, the destructor): no
// further item is taken from the channel (those still there stay there); queued tasks
// complete as cancelled and running ones see their stop token fire; the items in flight
// are still yielded (cancelled ones as outcome::cancelled()), then the stream ends.
// Closing the input ends the stream once the items already taken have been yielded.
//
// Threads. The stream never blocks a worker: items are taken by a short dispatch task that
// the channel wakes through an internal listener (weft/channel.hpp, I5) when it has nothing
// to take, and that the consumer wakes when it frees a slot. The consumer (next(), the
// iterator, the destructor) waits like future::get: helping on a worker, sleeping elsewhere.
// One consumer thread at a time; cancel() from any thread.
// Lifetime. The channel must outlive the stream object. The destructor cancels and waits
// until every task of the stream has ended (no call to f outlives it), like
// std::jthread's. f is moved into the stream.
// Costs. Per item: one pool::post with an on-done callback (as a batch element), one lock of
// the stream's mutex to deliver, one to take; per wake of the dispatcher, one pool::post.
// Throws (from stream()): pool_closed from outside a closed pool, std::bad_alloc. A pool
// that closes later makes the next post fail: that item is yielded with the pool_closed
// exception and the stream stops taking items.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/channel.hpp"
#include "weft/detail/task.hpp"
#include "weft/detail/wait.hpp"
#include "weft/outcome.hpp"
#include "weft/pool.hpp"
#include "weft/batch.hpp"
#include "weft/detail/stream_impl.hpp"
#include "weft/stream_options.hpp"

namespace weft {



// The results of weft::stream, as an input range of batch_item<R> (index, outcome) or
// through next(). See the top of the file for order, errors and cancellation.
template <class R>
class result_stream {
 public:
  using value_type = batch_item<R>;

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = batch_item<R>;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    batch_item<R>& operator*() const noexcept { return *s_->current_; }
    batch_item<R>* operator->() const noexcept { return &*s_->current_; }
    iterator& operator++() {
      s_->current_ = s_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.done();
    }

   private:
    friend class result_stream;
    explicit iterator(result_stream* s) noexcept : s_(s) {}
    bool done() const noexcept { return s_ == nullptr || !s_->current_; }
    result_stream* s_ = nullptr;
  };

  result_stream() noexcept = default;
  explicit result_stream(std::shared_ptr<detail::stream_core<R>> core) noexcept : core_(std::move(core)) {}
  result_stream(result_stream&&) noexcept = default;
  result_stream& operator=(result_stream&& o) noexcept {
    if (this != &o) {
      finish();
      core_ = std::move(o.core_);
      current_ = std::move(o.current_);
    }
    return *this;
  }
  ~result_stream() { finish(); }

  // The next result (waiting for one); nullopt once the stream has ended. fail_fast: throws
  // item_error (see the top).
  std::optional<batch_item<R>> next() { return core_ ? core_->next() : std::nullopt; }
  // begin() takes the first result (it may wait, and may throw like next()); call it once.
  iterator begin() {
    current_ = next();
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return std::default_sentinel; }

  void cancel() noexcept {
    if (core_) core_->cancel();
  }

 private:
  void finish() noexcept {
    if (!core_) return;
    try {
      core_->shut_down();
    } catch (...) {
      std::terminate();  // only std::system_error from the wait table's mutex could get here
    }
    core_.reset();
  }

  std::shared_ptr<detail::stream_core<R>> core_;
  std::optional<batch_item<R>> current_;  // the range interface's current item
};


// Starts processing the items of `in` on `p` (see the top of the file) and returns their
// results. f: f(T&&) or f(T&&, std::stop_token), through a const reference.
template <class T, class F>
auto stream(pool& p, channel<T>& in, F f, const stream_options& options = {})
    -> result_stream<detail::stream_result_t<T, F>> {
  using R = detail::stream_result_t<T, F>;
  static_assert(!std::is_same_v<R, detail::not_a_batch_task>,
                "weft::stream: f must be callable as f(T&&) or f(T&&, std::stop_token) through a const reference");
  static_assert(detail::check_batch_result<R>());
  const std::size_t max = options.max_in_flight != 0 ? options.max_in_flight : 2 * std::size_t{p.size()};
  if (max == 0) throw std::invalid_argument("weft::stream: max_in_flight must be at least 1");
  if (p.closed() && !detail::on_worker_thread()) throw pool_closed();
  auto state = std::make_shared<detail::channel_stream<T, F, R>>(p, in, std::move(f), options, max);
  state->link(options.stop_token);
  state->start();
  return result_stream<R>(std::move(state));
}

// ---------------------------------------------------------------------------------------
// stream_to(p, in, out, f, options): as stream, but the results go into the channel `out`
// (each as a batch_item: index and outcome) as they are yielded, and `out` is closed once
// the stream has ended, so its readers simply iterate it:
//   weft::channel<weft::batch_item<thumb>> done(16);
//   auto link = weft::stream_to(pool, uploads, done, make_thumb);
//   for (auto& [index, outcome] : done) store(outcome.value());
// Backpressure runs through: a full `out` stops the forwarding, which keeps the slots
// taken, which stops the stream taking items from `in`. Nothing blocks a thread; the
// forwarding is done by the stream's dispatcher task. fail_fast: the failed item is
// forwarded like the others (its outcome holds the exception) and the stream is cancelled.
// If `out` is closed by someone else, the stream is cancelled and its remaining results
// are dropped (its readers are gone).
// The returned stream_link owns the stream: wait() returns once `out` has been closed and
// every task has ended; cancel() cancels; the destructor cancels and waits (like
// std::jthread), so keep the link alive while reading. Both channels must outlive it.
class stream_link {
 public:
  stream_link() noexcept = default;
  template <class R>
  explicit stream_link(std::shared_ptr<detail::stream_core<R>> core)
      : cancel_([core] { core->cancel(); }), wait_([core] { core->wait_ended(); }),
        shut_down_([core] { core->shut_down(); }) {}
  stream_link(stream_link&&) noexcept = default;
  stream_link& operator=(stream_link&& o) noexcept {
    if (this != &o) {
      finish();
      cancel_ = std::move(o.cancel_);
      wait_ = std::move(o.wait_);
      shut_down_ = std::move(o.shut_down_);
    }
    return *this;
  }
  ~stream_link() { finish(); }

  void cancel() noexcept {
    if (cancel_) cancel_();
  }
  void wait() {
    if (wait_) wait_();
  }

 private:
  void finish() noexcept {
    if (!shut_down_) return;
    try {
      shut_down_();
    } catch (...) {
      std::terminate();  // only std::system_error from the wait table's mutex could get here
    }
    cancel_ = nullptr;
    wait_ = nullptr;
    shut_down_ = nullptr;
  }
  std::function<void()> cancel_, wait_, shut_down_;
};

template <class T, class F>
stream_link stream_to(pool& p, channel<T>& in, channel<batch_item<detail::stream_result_t<T, F>>>& out, F f,
                      const stream_options& options = {}) {
  using R = detail::stream_result_t<T, F>;
  static_assert(!std::is_same_v<R, detail::not_a_batch_task>,
                "weft::stream_to: f must be callable as f(T&&) or f(T&&, std::stop_token) through a const reference");
  static_assert(detail::check_batch_result<R>());
  const std::size_t max = options.max_in_flight != 0 ? options.max_in_flight : 2 * std::size_t{p.size()};
  if (p.closed() && !detail::on_worker_thread()) throw pool_closed();
  auto state = std::make_shared<detail::forwarding_stream<T, F, R>>(p, in, out, std::move(f), options, max);
  state->link(options.stop_token);
  state->start();
  return stream_link(std::shared_ptr<detail::stream_core<R>>(std::move(state)));
}

}  // namespace weft
