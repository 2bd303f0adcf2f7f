// weft/channel.hpp: a bounded multi-producer multi-consumer channel.
//
//   weft::channel<job> jobs(64);                      // at most 64 queued items
//   producer:  if (jobs.send(job{...}) == weft::channel_status::closed) stop_producing();
//   consumer:  for (job& j : jobs) handle(j);         // until closed and drained
//   jobs.close();                                     // no more sends; receivers drain, then end
//
// | call                        | room / an item      | full / empty           | closed                      |
// |-----------------------------|---------------------|------------------------|-----------------------------|
// | try_send(v)                 | success (v moved)   | full (v untouched)     | closed (v untouched)        |
// | send(v, [token])            | success             | waits                  | closed (v untouched)        |
// | send_until / send_for       | success             | waits, then timeout    | closed                      |
// | try_receive()               | success + the item  | empty                  | items left: success, else closed |
// | receive([token])            | success + the item  | waits                  | items left: success, else closed |
// | receive_until / receive_for | success + the item  | waits, then timeout    | as receive                  |
// A token that fires while waiting (or had fired before) ends the wait with `stopped`, and
// a send then leaves v untouched. A deadline already past only tries once (timeout when
// it cannot proceed); duration::max() means no limit (weft/detail/deadline.hpp).
// The calls throw nothing of their own but std::bad_alloc (the queue's storage grows) and
// what T's move or copy constructor throws;
// the statuses are values, not exceptions. send/receive are [[nodiscard]]: a status ignored
// would lose an item silently on a closed channel.
//
// close(): afterwards every send fails with `closed`; items already queued are still
// received, in order; once drained every receive returns `closed`. Idempotent (true for the
// call that closed it). Wakes every waiter.
// Iteration: `for (auto& v : ch)` receives until the channel is closed and drained (each
// item once, across all consumers). begin() and ++ wait like receive().
// Order: FIFO. Items sent by one thread are received in the order it sent them.
// Capacity: at least 1 (std::invalid_argument naming `capacity` otherwise). Storage grows
// with the items actually queued, never past the capacity.
//
// Waiting on a worker. A send or receive that waits on one of weft's worker threads does not
// idle the worker: it runs other tasks of its pool meanwhile, like future::get (the wait
// protocol of weft/detail/wait.hpp); on any other thread it sleeps in the kernel. A deadline
// is then checked between the tasks it runs, so it can be overshot by the length of one.
// The one thing helping cannot do: resume a wait that sits *below* the waiter on its own
// stack. A task that receives, runs (helping) a producer task that then blocks on a full
// channel waiting for that same receiver, deadlocks, as with any stackful helping scheme
// (oneTBB's included). On a pool, producers that may outrun their consumer either run on
// their own thread, or use try_send and re-post themselves when it says `full` (see
// tests/unit/channel_test.cpp), or go through weft::stream (weft/stream.hpp), which never
// blocks a worker.
//
// Protocol (the invariant; every transition keeps it):
//   I1 The queue, `closed_`'s transitions and the listener list are only changed under mu_.
//   I2 size_ == queue_.size() and closed_ mirror the locked state; they are written under
//      mu_ with seq_cst stores (N1 of weft's wait protocol) and read without the lock only
//      by wait predicates, which decide whether to *retry*, never whether an item exists:
//      a predicate that was true is always followed by a locked retry.
//   I3 Every transition that can turn a predicate true notifies its key after the store:
//      empty -> non-empty and close notify receivers (key &size_); full -> not full and
//      close notify senders (key &capacity_). A waiter enlists before it evaluates its
//      predicate (W1-W3 of the wait protocol), so a waiter that saw "empty" (or "full") is
//      enlisted before the transition that ends it, and that transition's notify wakes it.
//      No other transition can end a wait: items only leave a non-empty queue and arrive in
//      a non-full one, so between "empty" and "non-empty" there is always an empty -> non-
//      empty step.
//   I4 A waiter's token ends its wait through a stop_callback that sets the waiter's own
//      flag (seq_cst, N1) and notifies the key; the flag is part of the predicate.
//   I5 Listeners (weft's internal non-blocking consumers, e.g. weft::stream) are one-shot:
//      registered under mu_ only while their condition is false, fired under mu_ by the
//      transition that makes it true (I3's transitions) and removed at that moment. Firing
//      under the lock is what lets a listener's owner unregister it safely (after
//      unregistering, no call to it is in progress). A listener must not call into the
//      channel; weft's only listener posts a task.
// The notifier touches nothing of the channel after unlocking but the key's address (the
// wait table never dereferences it), so a receiver may destroy the channel as soon as its
// last receive returned.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <iterator>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "weft/detail/deadline.hpp"
#include "weft/detail/wait.hpp"

namespace weft {

enum class channel_status {
  success,  // sent / received
  empty,    // try_receive: nothing queued (the channel is open)
  full,     // try_send: no room (the channel is open); the value was not moved from
  closed,   // send: the channel is closed; receive: closed and drained
  timeout,  // the deadline passed first
  stopped,  // the stop token fired first
};

inline const char* to_string(channel_status s) noexcept {
  switch (s) {
    case channel_status::success: return "success";
    case channel_status::empty: return "empty";
    case channel_status::full: return "full";
    case channel_status::closed: return "closed";
    case channel_status::timeout: return "timeout";
    case channel_status::stopped: return "stopped";
  }
  return "unknown";
}

// What a receive got: a status, and the item when the status is success.
//   if (auto r = ch.try_receive()) use(*r); else if (r.status() == channel_status::closed) done();
template <class T>
class receive_result {
 public:
  explicit receive_result(channel_status s) noexcept : status_(s) {}
  explicit receive_result(T&& v) : status_(channel_status::success), value_(std::move(v)) {}

  channel_status status() const noexcept { return status_; }
  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return value_.has_value(); }
  T& operator*() & noexcept { return *value_; }
  T&& operator*() && noexcept { return std::move(*value_); }
  T* operator->() noexcept { return &*value_; }
  // The item; std::bad_optional_access when there is none.
  T& value() & { return value_.value(); }
  T&& value() && { return std::move(value_.value()); }

 private:
  channel_status status_;
  std::optional<T> value_;
};

namespace detail {

// A one-shot internal observer of a channel (I5): on_ready() is called, under the channel's
// lock, when the condition it was registered for became true. Must not throw or call into
// the channel.
struct channel_listener {
  virtual void on_ready() noexcept = 0;
  channel_listener* next_listener = nullptr;  // guarded by the channel's mutex

 protected:
  ~channel_listener() = default;
};

// Waiting for a predicate on the channel's atomics, with a deadline and a stop token (I4).
struct channel_wait {
  const std::atomic<std::size_t>* size;
  const std::atomic<bool>* closed;
  std::size_t bound;  // receivers: wait for size > 0 (bound 0); senders: size < capacity
  bool for_send;
  std::atomic<bool> stopped{false};

  static bool ready(const void* self) noexcept {
    auto* w = static_cast<const channel_wait*>(self);
    // acquire, all three: pair with the seq_cst stores under the channel's lock (I2) and in
    // the stop relay (I4); a true result only sends the waiter back to a locked retry.
    if (w->stopped.load(std::memory_order_acquire) || w->closed->load(std::memory_order_acquire)) return true;
    const std::size_t n = w->size->load(std::memory_order_acquire);
    return w->for_send ? n < w->bound : n > w->bound;
  }
};

// Waits (weft's wait protocol) until the predicate holds or the deadline passes; the token
// ends the wait too. Returns false on timeout. `key` is the channel's key for this side.
inline bool channel_block(channel_wait& w, const void* key, const std::stop_token& token,
                          std::chrono::steady_clock::time_point deadline) {
  struct relay {
    channel_wait* w;
    const void* key;
    void operator()() noexcept {
      // seq_cst: N1 of the wait protocol for the flag read by channel_wait::ready.
      w->stopped.store(true, std::memory_order_seq_cst);
      notify_address(key);
    }
  };
  std::optional<std::stop_callback<relay>> link;
  if (token.stop_possible()) link.emplace(token, relay{&w, key});
  if (channel_wait::ready(&w)) return true;
  return wait_until(key, &channel_wait::ready, &w, deadline);
}

}  // namespace detail

template <class T>
class channel {
  static_assert(std::is_object_v<T> && !std::is_const_v<T> && std::is_move_constructible_v<T>,
                "weft::channel<T>: T must be a movable, non-const object type");

 public:
  using value_type = T;
  using time_point = std::chrono::steady_clock::time_point;

  // Throws std::invalid_argument naming `capacity` when it is 0.
  explicit channel(std::size_t capacity) : capacity_(check(capacity)) {}
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;
  // No call may be in progress (nobody waits on a channel being destroyed).
  ~channel() = default;

  std::size_t capacity() const noexcept { return capacity_; }
  // A snapshot: items queued right now (may be stale by the time it is used).
  std::size_t size() const noexcept {
    return size_.load(std::memory_order_relaxed);  // relaxed: a statistic, orders nothing
  }
  bool closed() const noexcept {
    return closed_.load(std::memory_order_acquire);  // acquire: pairs with the seq_cst store in close()
  }

  // ---- sending ----
  // Moves (or copies) v into the channel only on success; otherwise v is left as it was.
  channel_status try_send(T&& v) { return push(std::move(v)); }
  channel_status try_send(const T& v) { return push(v); }

  [[nodiscard]] channel_status send(T&& v, const std::stop_token& token = {}) {
    return send_impl(std::move(v), token, time_point::max());
  }
  [[nodiscard]] channel_status send(const T& v, const std::stop_token& token = {}) {
    return send_impl(v, token, time_point::max());
  }
  template <class U = T, class Clock, class Duration>
  [[nodiscard]] channel_status send_until(U&& v, std::chrono::time_point<Clock, Duration> deadline,
                                          const std::stop_token& token = {}) {
    return send_impl(std::forward<U>(v), token, detail::steady_deadline(deadline));
  }
  template <class U = T, class Rep, class Period>
  [[nodiscard]] channel_status send_for(U&& v, std::chrono::duration<Rep, Period> timeout,
                                        const std::stop_token& token = {}) {
    return send_impl(std::forward<U>(v), token, detail::saturating_deadline(std::chrono::steady_clock::now(), timeout));
  }

  // ---- receiving ----
  receive_result<T> try_receive() { return pop(); }
  [[nodiscard]] receive_result<T> receive(const std::stop_token& token = {}) {
    return receive_impl(token, time_point::max());
  }
  template <class Clock, class Duration>
  [[nodiscard]] receive_result<T> receive_until(std::chrono::time_point<Clock, Duration> deadline,
                                                const std::stop_token& token = {}) {
    return receive_impl(token, detail::steady_deadline(deadline));
  }
  template <class Rep, class Period>
  [[nodiscard]] receive_result<T> receive_for(std::chrono::duration<Rep, Period> timeout,
                                              const std::stop_token& token = {}) {
    return receive_impl(token, detail::saturating_deadline(std::chrono::steady_clock::now(), timeout));
  }

  // Closes the channel (see the top). True for the call that closed it.
  bool close() noexcept {
    {
      std::lock_guard lock(mu_);
      // relaxed: only read here under mu_ (I1); the store below publishes.
      if (closed_.load(std::memory_order_relaxed)) return false;
      // seq_cst: N1 of the wait protocol for both sides' predicates (I2, I3).
      closed_.store(true, std::memory_order_seq_cst);
      fire(receive_listeners_);
      fire(send_listeners_);
    }
    detail::notify_address(&size_);
    detail::notify_address(&capacity_);
    return true;
  }

  // ---- iteration: until closed and drained ----
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    iterator(iterator&&) noexcept = default;
    iterator& operator=(iterator&&) noexcept = default;
    T& operator*() const noexcept { return *current_; }
    T* operator->() const noexcept { return &*current_; }
    iterator& operator++() {
      current_.reset();
      if (auto r = ch_->receive()) current_.emplace(std::move(*r));
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return !it.current_; }

   private:
    friend class channel;
    explicit iterator(channel* ch) : ch_(ch) { ++*this; }
    channel* ch_ = nullptr;
    mutable std::optional<T> current_;  // the item received last; *it hands it out by reference
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return std::default_sentinel; }

  // ---- internal: weft's non-blocking consumers and producers (I5) ----
  // Registers l to be fired once an item can be received (or the channel closed); false,
  // registering nothing, when that is already the case.
  bool watch_receivable(detail::channel_listener& l) noexcept {
    std::lock_guard lock(mu_);
    // relaxed (both): read under mu_, which orders them with every writer (I1).
    if (size_.load(std::memory_order_relaxed) > 0 || closed_.load(std::memory_order_relaxed)) return false;
    link(receive_listeners_, l);
    return true;
  }
  // Registers l to be fired once an item can be sent (or the channel closed); as above.
  bool watch_sendable(detail::channel_listener& l) noexcept {
    std::lock_guard lock(mu_);
    // relaxed (both): read under mu_ (I1).
    if (size_.load(std::memory_order_relaxed) < capacity_ || closed_.load(std::memory_order_relaxed)) return false;
    link(send_listeners_, l);
    return true;
  }
  // Removes l if it is still registered. Afterwards no call to l is in progress.
  void unwatch(detail::channel_listener& l) noexcept {
    std::lock_guard lock(mu_);
    unlink(receive_listeners_, l);
    unlink(send_listeners_, l);
  }

 private:
  static std::size_t check(std::size_t capacity) {
    if (capacity == 0) throw std::invalid_argument("weft::channel: capacity must be at least 1 (got 0)");
    return capacity;
  }

  template <class U>
  channel_status push(U&& v) {
    bool was_empty = false;
    {
      std::lock_guard lock(mu_);
      // relaxed: read under mu_ (I1).
      if (closed_.load(std::memory_order_relaxed)) return channel_status::closed;
      if (queue_.size() == capacity_) return channel_status::full;
      queue_.emplace_back(std::forward<U>(v));
      was_empty = queue_.size() == 1;
      // seq_cst: N1 of the wait protocol for receivers' predicates (I2).
      size_.store(queue_.size(), std::memory_order_seq_cst);
      if (was_empty) fire(receive_listeners_);
    }
    if (was_empty) detail::notify_address(&size_);  // I3: empty -> non-empty
    return channel_status::success;
  }

  receive_result<T> pop() {
    std::optional<T> item;
    bool was_full = false;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) {
        // relaxed: read under mu_ (I1).
        return receive_result<T>(closed_.load(std::memory_order_relaxed) ? channel_status::closed
                                                                            : channel_status::empty);
      }
      was_full = queue_.size() == capacity_;
      item.emplace(std::move(queue_.front()));
      queue_.pop_front();
      // seq_cst: N1 of the wait protocol for senders' predicates (I2).
      size_.store(queue_.size(), std::memory_order_seq_cst);
      if (was_full) fire(send_listeners_);
    }
    if (was_full) detail::notify_address(&capacity_);  // I3: full -> not full
    return receive_result<T>(std::move(*item));
  }

  template <class U>
  channel_status send_impl(U&& v, const std::stop_token& token, time_point deadline) {
    detail::channel_wait w{&size_, &closed_, capacity_, true};
    for (;;) {
      if (token.stop_requested()) return channel_status::stopped;
      const channel_status s = push(std::forward<U>(v));  // moves from v only on success
      if (s != channel_status::full) return s;
      if (!detail::channel_block(w, &capacity_, token, deadline)) return channel_status::timeout;
    }
  }

  receive_result<T> receive_impl(const std::stop_token& token, time_point deadline) {
    detail::channel_wait w{&size_, &closed_, 0, false};
    for (;;) {
      if (token.stop_requested()) return receive_result<T>(channel_status::stopped);
      receive_result<T> r = pop();
      if (r.status() != channel_status::empty) return r;
      if (!detail::channel_block(w, &size_, token, deadline)) return receive_result<T>(channel_status::timeout);
    }
  }

  // Under mu_.
  static void link(detail::channel_listener*& head, detail::channel_listener& l) noexcept {
    l.next_listener = head;
    head = &l;
  }
  static void unlink(detail::channel_listener*& head, detail::channel_listener& l) noexcept {
    for (detail::channel_listener** p = &head; *p != nullptr; p = &(*p)->next_listener) {
      if (*p == &l) {
        *p = l.next_listener;
        l.next_listener = nullptr;
        return;
      }
    }
  }
  static void fire(detail::channel_listener*& head) noexcept {
    detail::channel_listener* l = head;
    head = nullptr;
    while (l != nullptr) {
      detail::channel_listener* next = l->next_listener;
      l->next_listener = nullptr;
      l->on_ready();
      l = next;
    }
  }

  const std::size_t capacity_;               // also the senders' wait key (its address)
  std::mutex mu_;
  std::deque<T> queue_;                      // guarded by mu_
  detail::channel_listener* receive_listeners_ = nullptr;  // guarded by mu_
  detail::channel_listener* send_listeners_ = nullptr;     // guarded by mu_
  std::atomic<std::size_t> size_{0};         // mirror of queue_.size() (I2); receivers' wait key
  std::atomic<bool> closed_{false};          // written under mu_ (I1, I2)
};

}  // namespace weft
