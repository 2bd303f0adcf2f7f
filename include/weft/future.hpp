// weft/future.hpp: the result of pool::submit.
//
// A weft::future<T> is a move-only handle to a value or an exception that a task produces.
//
// | call          | not ready yet                                   | ready                      | no state (moved-from)    |
// |---------------|-------------------------------------------------|----------------------------|--------------------------|
// | ready()       | false                                           | true                       | false                    |
// | wait()        | blocks (see below)                              | returns                    | throws std::future_error |
// | wait_for/until| blocks up to the limit, returns timeout         | returns ready              | throws std::future_error |
// | get()         | wait(), then as ready                           | returns the value or rethrows the task's exception; the future becomes invalid | throws std::future_error |
//
// Blocking on one of weft's worker threads never idles the worker: it runs other tasks of
// its pool until the result is there (so a pool of one worker does not deadlock on a
// nested submit+get). On any other thread it sleeps in the kernel.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "weft/detail/deadline.hpp"
#include "weft/detail/wait.hpp"

namespace weft {

namespace detail {

class future_state_base {
 public:
  bool ready() const noexcept {
    // acquire: pairs with the seq_cst store in publish, so the value/exception is visible.
    return ready_.load(std::memory_order_acquire);
  }
  bool wait_until(std::chrono::steady_clock::time_point deadline) const {
    if (ready()) return true;
    return detail::wait_until(this, &is_ready, this, deadline);
  }
  bool failed() const noexcept { return error_ != nullptr; }

  void set_exception(std::exception_ptr e) noexcept {
    error_ = std::move(e);
    publish();
  }

 protected:
  void publish() noexcept {
    // seq_cst: the notifier half of the wait protocol (weft/detail/wait.hpp); also release
    // for the value written before it.
    ready_.store(true, std::memory_order_seq_cst);
    notify_address(this);
  }
  void rethrow_if_failed() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static bool is_ready(const void* self) noexcept { return static_cast<const future_state_base*>(self)->ready(); }

  std::exception_ptr error_;
  std::atomic<bool> ready_{false};
};

template <class T>
class future_state : public future_state_base {
 public:
  template <class... A>
  void set_value(A&&... a) noexcept(std::is_nothrow_constructible_v<T, A...>) {
    value_.emplace(std::forward<A>(a)...);
    publish();
  }
  T take() {
    rethrow_if_failed();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class future_state<void> : public future_state_base {
 public:
  void set_value() noexcept { publish(); }
  void take() { rethrow_if_failed(); }
};

// Runs f and stores its outcome in the state; returns false when f threw.
template <class T, class F>
bool fulfil(future_state<T>& s, F& f) noexcept {
  try {
    if constexpr (std::is_void_v<T>) {
      f();
      s.set_value();
    } else {
      s.set_value(f());
    }
    return true;
  } catch (...) {
    s.set_exception(std::current_exception());
    return false;
  }
}

}  // namespace detail

template <class T>
class future {
 public:
  future() noexcept = default;
  future(future&&) noexcept = default;
  future& operator=(future&&) noexcept = default;
  future(const future&) = delete;
  future& operator=(const future&) = delete;

  bool valid() const noexcept { return state_ != nullptr; }
  bool ready() const noexcept { return state_ && state_->ready(); }

  void wait() const { check()->wait_until(std::chrono::steady_clock::time_point::max()); }

  // Limits saturate (weft/detail/deadline.hpp): a duration or time point too far away for
  // steady_clock (duration::max(), time_point::max() of any clock) waits like wait(); a
  // zero or negative duration, or a time point in the past, only checks readiness.
  template <class Rep, class Period>
  std::future_status wait_for(std::chrono::duration<Rep, Period> d) const {
    return wait_steady(detail::saturating_deadline(std::chrono::steady_clock::now(), d));
  }

  template <class Clock, class Duration>
  std::future_status wait_until(std::chrono::time_point<Clock, Duration> t) const {
    return wait_steady(detail::steady_deadline(t));
  }

  // The value, or the task's exception rethrown. Leaves the future invalid.
  T get() {
    wait();
    auto s = std::move(state_);
    return s->take();
  }

 private:
  template <class>
  friend class promise_access;
  friend class pool;
  explicit future(std::shared_ptr<detail::future_state<T>> s) noexcept : state_(std::move(s)) {}

  std::future_status wait_steady(std::chrono::steady_clock::time_point deadline) const {
    return check()->wait_until(deadline) ? std::future_status::ready : std::future_status::timeout;
  }

  detail::future_state<T>* check() const {
    if (!state_) throw std::future_error(std::future_errc::no_state);
    return state_.get();
  }

  std::shared_ptr<detail::future_state<T>> state_;
};

// How weft's layers (weft/keyed.hpp) make a future for a state they fulfil themselves.
template <class T>
class promise_access {
 public:
  static future<T> make(std::shared_ptr<detail::future_state<T>> s) noexcept { return future<T>(std::move(s)); }
};

}  // namespace weft
