// weft/coro.hpp: coroutine tasks with continuation stealing.
//
//   weft::task<long> fib(int n) {
//     if (n < 2) co_return n;
//     long a = 0;
//     co_await weft::fork(a, fib(n - 1));  // runs fib(n-1) now; the rest of fib(n) may be stolen
//     long b = co_await fib(n - 2);        // a plain call
//     co_await weft::join();               // a and b are ready (or a child's exception is thrown)
//     co_return a + b;
//   }
//   long r = weft::sync_wait(pool, fib(30));
//
// weft::task<T> (T may be void; not a reference) is lazy: nothing runs until it is awaited,
// forked or handed to sync_wait. A task object owns its frame until then; destroying an
// unstarted task destroys the frame.
//
// Inside a weft::task:
//   co_await t                 runs t on this thread now (a call) and yields its value or
//                              rethrows its exception. Symmetric transfer both ways. t is
//                              an rvalue (co_await f(x), co_await std::move(named)).
//   co_await fork(out, t)      forks t: the worker runs t at once and offers the rest of
//   co_await fork(opt, t)      this task (its continuation) to thieves on its deque. t's
//   co_await fork(t) (void)    value is assigned to `out` (T&) or emplaced into `opt`
//                              (std::optional<T>&) when t returns; read it after join().
//   co_await join()            waits for every child forked since the previous join. If one
//                              threw, rethrows the first exception (the others are dropped,
//                              as task_group does) once all of them have finished. A join
//                              that is not ready *suspends* the task: the worker goes on
//                              with other work and the last child to finish resumes it.
//   co_await when_all(t1, t2, ...)  forks all and joins: a tuple of their values (void
//                              becomes std::monostate), or the first exception.
//   co_await schedule(p)       moves the rest of the task onto pool p (a task of p's queue;
//                              from one of p's workers, a yield). Throws pool_closed if p is
//                              closed (the task stays where it was), task_cancelled if p
//                              is stopped before the task runs there.
//   co_await this_task::stop_token()  the token sync_wait was given (an empty token if none).
// A task that ends (co_return, or an exception escapes it) with children not joined joins
// them first; their exceptions are then dropped in favour of the task's own, if any.
//
// Cost (continuation stealing, weft/detail/coro_promise.hpp has the protocol): a fork is a
// push onto the worker's own deque plus the wake-up check every weft spawn makes; a child
// that finishes pops its parent back (no atomic read-modify-write) unless the parent was
// stolen, and a join with nothing stolen is one plain compare. Only a stolen parent costs an
// atomic join counter. Frames come from a per-thread cache by size class (no heap call in
// steady state); the continuation is a task block embedded in the frame's promise (no
// allocation per fork).
//
// sync_wait(p, t[, token]) starts t on pool p and blocks until it ends: its value, or its
// exception rethrown. Outside p it sleeps; on one of p's workers (or any pool's) it helps as
// every weft wait does (runs other tasks, even on a one-worker pool), so it never deadlocks.
// Throws pool_closed if p is closed; task_cancelled if the token had fired, or if p is
// stopped before t starts.
//
// Cancellation is cooperative, by the std::stop_token given to sync_wait (inherited by every
// task t awaits or forks): once it fires, a fork, a call (co_await t) or a schedule() does
// not start its task but makes the join (or the co_await) throw weft::task_cancelled; a
// running task reads the token with this_task::stop_token(). A task's exception always
// reaches whoever awaits it; nothing is lost.
//
// Compiler notes. Symmetric transfer (await_suspend returning a handle) must compile to a
// tail call or every fork and every return grows the stack: g++ 12 does not guarantee it
// below -O2 or under sanitizers (GCC PR 100897), so deep chains (100,000 nested calls) are
// safe at -O2 only. Without the tail call the stack grows with every transfer of one
// uninterrupted chain, which is not only the depth: a fork-join tree that a single worker
// runs without a steal is one chain of about three transfers per task. Sanitizer and -O0
// builds must keep such runs small (a few thousand tasks; weft's own tests do). clang 14 may keep a thread_local's address across a suspension point, which is wrong
// once a task resumes on another worker: nothing in these headers touches a thread_local in
// a coroutine body (the runtime hooks are out of line and re-read the current worker); user
// code should not hold a thread_local's reference across a co_await either.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <string>
#include <stdexcept>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "weft/detail/coro_promise.hpp"
#include "weft/detail/pool_access.hpp"
#include "weft/detail/wait.hpp"
#include "weft/errors.hpp"
#include "weft/pool.hpp"

namespace weft {

template <class T = void>
class task;

namespace detail::coro {

inline std::exception_ptr cancelled_error() noexcept {
  try {
    return std::make_exception_ptr(task_cancelled("weft: the task was not started: its stop token had fired"));
  } catch (...) {
    return std::current_exception();
  }
}

struct access {
  template <class T>
  static std::coroutine_handle<promise<T>> release(weft::task<T>& t) noexcept {
    return std::exchange(t.h_, {});
  }
};

// co_await t: a call.
template <class T>
class call_awaiter {
 public:
  explicit call_awaiter(std::coroutine_handle<promise<T>> child) noexcept : child_(child) {
    if (!child_) error_ = std::make_exception_ptr(std::logic_error("weft: co_await on an empty weft::task"));
  }
  call_awaiter(const call_awaiter&) = delete;
  call_awaiter& operator=(const call_awaiter&) = delete;
  ~call_awaiter() {
    if (child_) child_.destroy();
  }

  bool await_ready() const noexcept { return !child_; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) noexcept {
    const auto c = std::exchange(child_, {});
    frame_state& cs = c.promise().st();
    cs.how = kind::awaited;
    cs.cont = parent;
    cs.err_out = &error_;
    if constexpr (!std::is_void_v<T>) c.promise().slot_ = &value_;
    if constexpr (std::is_base_of_v<promise_base, P>) {
      cs.token = parent.promise().st().token;
      if (cs.token != nullptr && cs.token->stop_requested()) [[unlikely]] {
        c.destroy();
        error_ = cancelled_error();
        return parent;
      }
    }
    return c;
  }
  T await_resume() {
    if (error_) std::rethrow_exception(std::move(error_));
    if constexpr (!std::is_void_v<T>) return std::move(*value_);
  }

 private:
  struct none {};
  std::coroutine_handle<promise<T>> child_;
  std::exception_ptr error_;
  [[no_unique_address]] std::conditional_t<std::is_void_v<T>, none, std::optional<T>> value_;
};

template <class T>
class fork_awaiter {
 public:
  fork_awaiter(std::coroutine_handle<promise<T>> child, T* assign, std::optional<T>* slot, promise_base* parent) noexcept
      : child_(child), assign_(assign), slot_(slot), parent_(parent) {}
  fork_awaiter(const fork_awaiter&) = delete;
  fork_awaiter& operator=(const fork_awaiter&) = delete;
  ~fork_awaiter() {
    if (child_) child_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<>) noexcept {
    // Everything is read into locals first: once the block is pushed, a thief may resume the
    // parent, which destroys this awaiter.
    const auto c = std::exchange(child_, {});
    promise_base* const p = parent_;
    promise<T>& cp = c.promise();
    frame_state& cs = cp.st();
    cs.how = kind::forked;
    cs.parent = p;
    cs.token = p->st().token;
    if constexpr (!std::is_void_v<T>) {
      cp.assign_ = assign_;
      cp.slot_ = slot_;
    }
    if (cs.token != nullptr && cs.token->stop_requested()) [[unlikely]] {
      c.destroy();
      p->record(cancelled_error());
      return p->st().self;
    }
    p->arm_continuation();
    if (!push_continuation(p->block())) [[unlikely]] cs.how = kind::forked_inline;  // F1 (no deque: a call)
    return c;
  }
  void await_resume() const noexcept {}

 private:
  std::coroutine_handle<promise<T>> child_;
  T* assign_;
  std::optional<T>* slot_;
  promise_base* parent_;
};

template <>
class fork_awaiter<void> {
 public:
  fork_awaiter(std::coroutine_handle<promise<void>> child, promise_base* parent) noexcept
      : child_(child), parent_(parent) {}
  fork_awaiter(const fork_awaiter&) = delete;
  fork_awaiter& operator=(const fork_awaiter&) = delete;
  ~fork_awaiter() {
    if (child_) child_.destroy();
  }
  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<>) noexcept {
    const auto c = std::exchange(child_, {});  // see fork_awaiter<T>
    promise_base* const p = parent_;
    frame_state& cs = c.promise().st();
    cs.how = kind::forked;
    cs.parent = p;
    cs.token = p->st().token;
    if (cs.token != nullptr && cs.token->stop_requested()) [[unlikely]] {
      c.destroy();
      p->record(cancelled_error());
      return p->st().self;
    }
    p->arm_continuation();
    if (!push_continuation(p->block())) [[unlikely]] cs.how = kind::forked_inline;
    return c;
  }
  void await_resume() const noexcept {}

 private:
  std::coroutine_handle<promise<void>> child_;
  promise_base* parent_;
};

// The unbound operation fork() returns; only a weft::task can await it (await_transform).
template <class T>
class [[nodiscard]] fork_op {
 public:
  fork_op(std::coroutine_handle<promise<T>> child, T* assign, std::optional<T>* slot) noexcept
      : child_(child), assign_(assign), slot_(slot) {}
  fork_op(fork_op&& o) noexcept : child_(std::exchange(o.child_, {})), assign_(o.assign_), slot_(o.slot_) {}
  fork_op& operator=(fork_op&&) = delete;
  ~fork_op() {
    if (child_) child_.destroy();
  }
  fork_awaiter<T> bind(promise_base* p) && noexcept { return {std::exchange(child_, {}), assign_, slot_, p}; }

 private:
  std::coroutine_handle<promise<T>> child_;
  T* assign_;
  std::optional<T>* slot_;
};

template <>
class [[nodiscard]] fork_op<void> {
 public:
  explicit fork_op(std::coroutine_handle<promise<void>> child) noexcept : child_(child) {}
  fork_op(fork_op&& o) noexcept : child_(std::exchange(o.child_, {})) {}
  fork_op& operator=(fork_op&&) = delete;
  ~fork_op() {
    if (child_) child_.destroy();
  }
  fork_awaiter<void> bind(promise_base* p) && noexcept { return {std::exchange(child_, {}), p}; }

 private:
  std::coroutine_handle<promise<void>> child_;
};

class join_awaiter {
 public:
  explicit join_awaiter(promise_base* p) noexcept : p_(p) {}
  bool await_ready() const noexcept { return p_->st().steals == 0; }  // J1
  bool await_suspend(std::coroutine_handle<>) noexcept { return !p_->arrive(); }  // J2
  void await_resume() const {
    if (std::exception_ptr e = p_->end_join()) std::rethrow_exception(std::move(e));  // J3
  }

 private:
  promise_base* p_;
};

struct [[nodiscard]] join_op {
  join_awaiter bind(promise_base* p) const noexcept { return join_awaiter(p); }
};

struct token_awaiter {
  promise_base* p;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  std::stop_token await_resume() const noexcept {
    const std::stop_token* t = p->st().token;
    return t != nullptr ? *t : std::stop_token();
  }
};

struct [[nodiscard]] token_op {
  token_awaiter bind(promise_base* p) const noexcept { return {p}; }
};

class schedule_awaiter {
 public:
  schedule_awaiter(pool& target, promise_base* p) noexcept : pool_(target), p_(p) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<>) noexcept {
    const std::stop_token* t = p_->st().token;
    if (t != nullptr && t->stop_requested()) {
      error_ = cancelled_error();
      return false;
    }
    p_->arm(&promise_base::resume_scheduled);
    try {
      // Accepted: the task may already run on the pool; nothing of *this is touched.
      if (pool_access::try_enqueue(pool_, p_->block()) == submit_status::accepted) return true;
      error_ = std::make_exception_ptr(pool_closed());
    } catch (...) {  // bad_alloc: the block was not queued
      error_ = std::current_exception();
    }
    return false;
  }
  void await_resume() {
    if (error_) std::rethrow_exception(std::move(error_));
    if (p_->st().schedule_cancelled) {
      p_->st().schedule_cancelled = false;
      throw task_cancelled("weft: the pool was stopped before the task could move onto it");
    }
  }

 private:
  pool& pool_;
  promise_base* p_;
  std::exception_ptr error_;
};

struct [[nodiscard]] schedule_op {
  pool* target;
  schedule_awaiter bind(promise_base* p) const noexcept { return {*target, p}; }
};

template <class T>
struct root_state final : root_base {
  std::optional<T> value;
};
template <>
struct root_state<void> final : root_base {};

template <class T>
using when_all_value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

}  // namespace detail::coro

template <class T>
class [[nodiscard]] task {
  static_assert(!std::is_reference_v<T>, "weft::task<T>: T must not be a reference");

 public:
  using promise_type = detail::coro::promise<T>;

  task() noexcept = default;
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~task() { reset(); }

  // False for a moved-from or default-constructed task.
  bool valid() const noexcept { return static_cast<bool>(h_); }

  // A call: runs the task on this thread now; its value, or its exception rethrown.
  detail::coro::call_awaiter<T> operator co_await() && noexcept {
    return detail::coro::call_awaiter<T>(std::exchange(h_, {}));
  }

 private:
  friend promise_type;
  friend struct detail::coro::access;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }

  std::coroutine_handle<promise_type> h_;
};

namespace detail::coro {
template <class T>
weft::task<T> promise<T>::get_return_object() noexcept {
  const auto h = std::coroutine_handle<promise<T>>::from_promise(*this);
  st().self = h;
  return weft::task<T>(h);
}
inline weft::task<void> promise<void>::get_return_object() noexcept {
  const auto h = std::coroutine_handle<promise<void>>::from_promise(*this);
  st().self = h;
  return weft::task<void>(h);
}

template <class T>
std::coroutine_handle<promise<T>> checked_release(weft::task<T>& t, const char* what) {
  auto h = access::release(t);
  if (!h) throw std::invalid_argument(std::string("weft::") + what + ": the task is empty (moved-from)");
  return h;
}
}  // namespace detail::coro

// Fork `child`; its value is assigned to `out` when it returns (read it after join()).
template <class T>
  requires(!std::is_void_v<T>)
detail::coro::fork_op<T> fork(T& out, task<T>&& child) {
  return {detail::coro::checked_release(child, "fork"), &out, nullptr};
}
// Fork `child`; its value is emplaced into `out` when it returns.
template <class T>
detail::coro::fork_op<T> fork(std::optional<T>& out, task<T>&& child) {
  return {detail::coro::checked_release(child, "fork"), nullptr, &out};
}
inline detail::coro::fork_op<void> fork(task<void>&& child) {
  return detail::coro::fork_op<void>(detail::coro::checked_release(child, "fork"));
}

// Wait for the children forked since the previous join (see the top of the file).
inline detail::coro::join_op join() noexcept { return {}; }

// Move the rest of the awaiting task onto pool `p`.
inline detail::coro::schedule_op schedule(pool& p) noexcept { return {&p}; }

namespace this_task {
// co_await weft::this_task::stop_token(): the token sync_wait was given, or an empty one.
inline detail::coro::token_op stop_token() noexcept { return {}; }
}  // namespace this_task

namespace detail::coro {
template <class T>
auto fork_into(std::optional<when_all_value<T>>& slot, weft::task<T>&& t) {
  if constexpr (std::is_void_v<T>) {
    slot.emplace();  // read only after a join that did not throw
    return weft::fork(std::move(t));
  } else {
    return weft::fork(slot, std::move(t));
  }
}

template <class... T, std::size_t... I>
weft::task<std::tuple<when_all_value<T>...>> when_all_impl(std::index_sequence<I...>, weft::task<T>... tasks) {
  std::tuple<std::optional<when_all_value<T>>...> slots;
  (co_await fork_into(std::get<I>(slots), std::move(tasks)), ...);
  co_await weft::join();
  co_return std::tuple<when_all_value<T>...>(std::move(*std::get<I>(slots))...);
}
}  // namespace detail::coro

// Forks every task and joins them: a tuple of their values (void: std::monostate).
template <class... T>
task<std::tuple<detail::coro::when_all_value<T>...>> when_all(task<T>... tasks) {
  static_assert(sizeof...(T) > 0, "weft::when_all needs at least one task");
  return detail::coro::when_all_impl(std::index_sequence_for<T...>{}, std::move(tasks)...);
}

// Runs `t` on pool `p` and blocks until it ends (see the top of the file).
template <class T>
T sync_wait(pool& p, task<T> t, std::stop_token token = {}) {
  using namespace detail::coro;
  auto h = checked_release(t, "sync_wait");
  if (token.stop_requested()) {
    h.destroy();
    throw task_cancelled("weft: the task was not started: its stop token had fired");
  }
  root_state<T> state;
  frame_state& s = h.promise().st();
  s.how = kind::root;
  s.root = &state;
  s.token = token.stop_possible() ? &token : nullptr;
  if constexpr (!std::is_void_v<T>) h.promise().slot_ = &state.value;
  h.promise().arm(&promise_base::start_root);
  submit_status status;
  try {
    status = detail::pool_access::try_enqueue(p, h.promise().block());
  } catch (...) {  // bad_alloc: the block was not queued
    h.destroy();
    throw;
  }
  if (status != submit_status::accepted) {
    h.destroy();
    throw pool_closed();
  }
  root_base* const root = &state;
  detail::wait_until(root, &root_base::is_done, root);
  if (state.error) std::rethrow_exception(state.error);
  if constexpr (!std::is_void_v<T>) return std::move(*state.value);
}

}  // namespace weft
