// weft/outcome.hpp: how one task ended, for batches and on-done callbacks.
//
// An outcome<T> holds exactly one of: a value (the task returned), an exception (the task
// threw), or a cancellation (the task never ran; error() then holds a task_cancelled).
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "weft/errors.hpp"

namespace weft {

template <class T>
class outcome {
 public:
  using value_type = T;

  static outcome from_value(T v) { return outcome(std::in_place, std::move(v)); }
  static outcome from_error(std::exception_ptr e) { return outcome(std::move(e), false); }
  static outcome from_cancelled() { return outcome(std::make_exception_ptr(task_cancelled()), true); }

  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  bool cancelled() const noexcept { return cancelled_; }
  std::exception_ptr error() const noexcept { return error_; }

  // The value; rethrows the task's exception (or task_cancelled) if there is none.
  T& value() & {
    if (!value_) std::rethrow_exception(error_);
    return *value_;
  }
  const T& value() const& {
    if (!value_) std::rethrow_exception(error_);
    return *value_;
  }
  T&& value() && {
    if (!value_) std::rethrow_exception(error_);
    return std::move(*value_);
  }

 private:
  outcome(std::in_place_t, T v) : value_(std::move(v)) {}
  outcome(std::exception_ptr e, bool cancelled) : error_(std::move(e)), cancelled_(cancelled) {}

  std::optional<T> value_;
  std::exception_ptr error_;
  bool cancelled_ = false;
};

template <>
class outcome<void> {
 public:
  using value_type = void;

  static outcome from_value() { return outcome(nullptr, false); }
  static outcome from_error(std::exception_ptr e) { return outcome(std::move(e), false); }
  static outcome from_cancelled() { return outcome(std::make_exception_ptr(task_cancelled()), true); }

  bool has_value() const noexcept { return error_ == nullptr; }
  explicit operator bool() const noexcept { return has_value(); }
  bool cancelled() const noexcept { return cancelled_; }
  std::exception_ptr error() const noexcept { return error_; }
  void value() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  outcome(std::exception_ptr e, bool cancelled) : error_(std::move(e)), cancelled_(cancelled) {}

  std::exception_ptr error_;
  bool cancelled_ = false;
};

}  // namespace weft
