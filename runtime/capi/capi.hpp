// runtime/capi/capi.hpp: what the C API's translation units share (private).
//
// The boundary rule: every extern "C" function body runs inside guarded(), which catches
// everything and turns it into a weft_status plus a thread-local message (c_errors.cpp).
// User callbacks run inside invoke_user(), which turns their failure (weft_task_fail, or a
// C++ exception from a callback compiled as C++) into one exception type, c_failure, that
// weft's C++ layers carry like any task exception and guarded() maps to WEFT_TASK_FAILED.
//
// Context destructors: a c_callback owns (fn, ctx, dtor). Exactly one live copy exists at
// any time (moving disarms the source), and whichever is destroyed last-armed calls dtor.
// Every path weft's C++ core takes with a task (ran, cancelled, rejected by a closed pool,
// dropped because make_task ran out of memory) destroys the callable exactly once, so the
// context destructor runs exactly once.
#pragma once

#include <cstddef>
#include <exception>
#include <utility>

#include "weft/pool.hpp"
#include "weft/weft.h"

// The handle behind weft_pool*.
struct weft_pool {
  explicit weft_pool(weft::pool_options o) : pool(std::move(o)) {}
  weft::pool pool;
};

namespace weft::capi {

// The one exception a failing user callback turns into. Holds its message inline: building
// it never allocates, so reporting a failure cannot itself fail.
class c_failure : public std::exception {
 public:
  c_failure(const char* prefix, const char* text) noexcept;
  const char* what() const noexcept override { return message_; }

 private:
  char message_[320];
};

// Stores `message` (prefixed by "<fn>: ") for weft_last_error and returns `status`.
weft_status fail(weft_status status, const char* fn, const char* message) noexcept;
// Maps the exception being handled (call only inside a catch block) to a status + message.
weft_status map_current_exception(const char* fn) noexcept;

template <class F>
weft_status guarded(const char* fn, F&& body) noexcept {
  try {
    return std::forward<F>(body)();
  } catch (...) {
    return map_current_exception(fn);
  }
}

// The callback frame weft_task_fail marks: one per user callback running on this thread
// (nested when a callback waits and its thread runs other callbacks meanwhile).
struct task_frame {
  task_frame* prev;
  bool failed = false;
  char message[256] = {};
};
extern constinit thread_local task_frame* tls_frame;

// Runs f (a call into user code); throws c_failure if it called weft_task_fail or threw.
template <class F>
void invoke_user(F&& f) {
  task_frame frame{tls_frame};
  tls_frame = &frame;
  try {
    std::forward<F>(f)();
  } catch (const std::exception& e) {
    tls_frame = frame.prev;
    throw c_failure("a callback threw: ", e.what());
  } catch (...) {
    tls_frame = frame.prev;
    throw c_failure("a callback threw an exception not derived from std::exception", "");
  }
  tls_frame = frame.prev;
  if (frame.failed) throw c_failure(frame.message, "");
}

// (fn, ctx, dtor) with exactly-once destruction of ctx (see the top).
class c_callback {
 public:
  c_callback(weft_task_fn fn, void* ctx, weft_ctx_dtor dtor) noexcept : fn_(fn), ctx_(ctx), dtor_(dtor) {}
  c_callback(c_callback&& o) noexcept : fn_(o.fn_), ctx_(o.ctx_), dtor_(std::exchange(o.dtor_, nullptr)) {}
  c_callback& operator=(c_callback&&) = delete;
  ~c_callback() { release(); }

  void operator()() const {
    invoke_user([this] { fn_(ctx_); });
  }
  // Calls the context destructor now (once); later calls and the destructor do nothing.
  void release() noexcept {
    if (dtor_ != nullptr) std::exchange(dtor_, nullptr)(ctx_);
  }

 private:
  weft_task_fn fn_;
  void* ctx_;
  weft_ctx_dtor dtor_;
};

}  // namespace weft::capi
