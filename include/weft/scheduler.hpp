// weft/scheduler.hpp: a std::execution (P2300) shaped scheduler for a weft::pool.
//
//   weft::exec::pool_scheduler sch = weft::scheduler_of(pool);
//   auto op = weft::exec::connect(weft::exec::schedule(sch), my_receiver{...});
//   weft::exec::start(op);            // my_receiver::set_value() runs on one of pool's workers
//   auto b = weft::exec::bulk(weft::exec::schedule(sch), n, [](std::size_t i) { ... });
//
// Shape. The concepts and customisation points follow C++26 std::execution as adopted
// (P2300R10): senders, receivers, schedulers and operation states are customised by member
// functions (sndr.connect(rcvr), sch.schedule(), op.start(), rcvr.set_value(...),
// x.get_env(), env.query(tag)), and the CPO objects in weft::exec (set_value, set_error,
// set_stopped, start, connect, schedule, get_env, get_stop_token,
// get_completion_scheduler<Tag>, get_forward_progress_guarantee) call those members. The
// tags are weft's own: stdexec is not a Debian package and libstdc++ 12 has no
// <execution> senders. Where <stdexec/execution.hpp> is available, or the standard library
// defines __cpp_lib_senders, WEFT_EXEC_INTEROP is 1 and weft::exec's CPOs and concept tags
// *are* the real ones (aliases), so a pool_scheduler is a std/stdexec scheduler; that path
// is compiled only where such a library exists (not on this project's CI).
//
// pool_scheduler (from scheduler_of(pool)): a reference to the pool, cheap to copy; two are
// equal when they name the same pool. Queries: get_forward_progress_guarantee ->
// forward_progress_guarantee::parallel (every task, once started, runs on its own thread to
// completion, but a task may wait to start behind others); available_parallelism() -> the
// number of workers.
//
// schedule(sch) -> a sender of set_value_t(), set_error_t(std::exception_ptr),
// set_stopped_t(). connect(sender, r) returns an operation state that embeds the task block
// the pool queues (no allocation in schedule, connect or start). start(op):
// | situation                                   | completion                       | on               |
// |---------------------------------------------|----------------------------------|------------------|
// | r's stop token already fired                | set_stopped(r)                   | start()'s caller |
// | the pool is closed (close(), destructor)    | set_stopped(r)                   | start()'s caller |
// | the deque/queue cannot grow (bad_alloc)     | set_error(r, exception_ptr)      | start()'s caller |
// | queued; the token fires before a worker     | set_stopped(r)                   | a worker         |
// |   takes it                                  |                                  |                  |
// | queued; the pool is stopped first (stop_now,| set_stopped(r)                   | a worker, or the |
// |   a close deadline)                         |                                  | stopping thread  |
// | otherwise                                   | set_value(r)                     | a worker         |
// A stop request does not complete the operation early from the requesting thread: the
// task block lives in the operation state, and a queue entry cannot be withdrawn, so the
// stop is observed when a worker takes the entry (weft's own cancelled tasks work the same
// way). start() from one of the pool's own workers queues on that worker's deque; from any
// other thread on the injection queue. The operation state must outlive the completion and
// must not be moved (it is neither copyable nor movable).
//
// bulk(sender, n, f): when `sender` (whose completion scheduler is a pool_scheduler:
// schedule(sch) or another bulk of it) completes with values vs..., calls f(i, vs...) for
// every i in [0, n) with weft::parallel_for on that pool, then completes with vs...; an
// exception from f (the first, after the running pieces end, as parallel_for) completes
// with set_error. Errors and stops of `sender` pass through.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <exception>
#include <stdexcept>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weft/detail/pool_access.hpp"
#include "weft/detail/task.hpp"
#include "weft/errors.hpp"
#include "weft/parallel.hpp"
#include "weft/pool.hpp"

#if defined(__cpp_lib_senders)
#include <execution>
#define WEFT_EXEC_INTEROP 1
#define WEFT_EXEC_NS std::execution
#elif __has_include(<stdexec/execution.hpp>)
#include <stdexec/execution.hpp>
#define WEFT_EXEC_INTEROP 1
#define WEFT_EXEC_NS stdexec
#else
#define WEFT_EXEC_INTEROP 0
#endif

namespace weft::exec {

#if WEFT_EXEC_INTEROP
// The real tags (see the top of the file).
using WEFT_EXEC_NS::completion_signatures;
using WEFT_EXEC_NS::connect;
using WEFT_EXEC_NS::connect_t;
using WEFT_EXEC_NS::forward_progress_guarantee;
using WEFT_EXEC_NS::get_completion_scheduler;
using WEFT_EXEC_NS::get_completion_scheduler_t;
using WEFT_EXEC_NS::get_env;
using WEFT_EXEC_NS::get_forward_progress_guarantee;
using WEFT_EXEC_NS::get_forward_progress_guarantee_t;
using WEFT_EXEC_NS::get_stop_token;
using WEFT_EXEC_NS::get_stop_token_t;
using WEFT_EXEC_NS::operation_state_t;
using WEFT_EXEC_NS::receiver_t;
using WEFT_EXEC_NS::schedule;
using WEFT_EXEC_NS::schedule_t;
using WEFT_EXEC_NS::scheduler_t;
using WEFT_EXEC_NS::sender_t;
using WEFT_EXEC_NS::set_error;
using WEFT_EXEC_NS::set_error_t;
using WEFT_EXEC_NS::set_stopped;
using WEFT_EXEC_NS::set_stopped_t;
using WEFT_EXEC_NS::set_value;
using WEFT_EXEC_NS::set_value_t;
using WEFT_EXEC_NS::start;
using WEFT_EXEC_NS::start_t;
#else
// ---- concept tags ----
struct sender_t {};
struct receiver_t {};
struct scheduler_t {};
struct operation_state_t {};

enum class forward_progress_guarantee { concurrent, parallel, weakly_parallel };

template <class... Sigs>
struct completion_signatures {};

// ---- completion functions: rcvr.set_value(vs...), rcvr.set_error(e), rcvr.set_stopped() ----
struct set_value_t {
  template <class R, class... V>
  void operator()(R&& r, V&&... vs) const noexcept
    requires requires { static_cast<R&&>(r).set_value(static_cast<V&&>(vs)...); }
  {
    static_assert(noexcept(static_cast<R&&>(r).set_value(static_cast<V&&>(vs)...)), "set_value must be noexcept");
    static_cast<R&&>(r).set_value(static_cast<V&&>(vs)...);
  }
};
struct set_error_t {
  template <class R, class E>
  void operator()(R&& r, E&& e) const noexcept
    requires requires { static_cast<R&&>(r).set_error(static_cast<E&&>(e)); }
  {
    static_assert(noexcept(static_cast<R&&>(r).set_error(static_cast<E&&>(e))), "set_error must be noexcept");
    static_cast<R&&>(r).set_error(static_cast<E&&>(e));
  }
};
struct set_stopped_t {
  template <class R>
  void operator()(R&& r) const noexcept
    requires requires { static_cast<R&&>(r).set_stopped(); }
  {
    static_assert(noexcept(static_cast<R&&>(r).set_stopped()), "set_stopped must be noexcept");
    static_cast<R&&>(r).set_stopped();
  }
};
inline constexpr set_value_t set_value{};
inline constexpr set_error_t set_error{};
inline constexpr set_stopped_t set_stopped{};

// ---- environments and queries ----
struct empty_env {};

struct get_env_t {
  template <class T>
  decltype(auto) operator()(const T& t) const noexcept {
    if constexpr (requires { t.get_env(); }) {
      return t.get_env();
    } else {
      return empty_env{};
    }
  }
};
inline constexpr get_env_t get_env{};

// A token that never fires (the default of get_stop_token).
struct never_stop_token {
  static constexpr bool stop_requested() noexcept { return false; }
  static constexpr bool stop_possible() noexcept { return false; }
  bool operator==(const never_stop_token&) const = default;
};

struct get_stop_token_t {
  template <class Env>
  auto operator()(const Env& env) const noexcept {
    if constexpr (requires { env.query(get_stop_token_t{}); }) {
      return env.query(get_stop_token_t{});
    } else {
      return never_stop_token{};
    }
  }
};
inline constexpr get_stop_token_t get_stop_token{};

struct get_forward_progress_guarantee_t {
  template <class S>
  forward_progress_guarantee operator()(const S& s) const noexcept {
    if constexpr (requires { s.query(get_forward_progress_guarantee_t{}); }) {
      return s.query(get_forward_progress_guarantee_t{});
    } else {
      return forward_progress_guarantee::weakly_parallel;
    }
  }
};
inline constexpr get_forward_progress_guarantee_t get_forward_progress_guarantee{};

template <class CPO>
struct get_completion_scheduler_t {
  // A trailing return type rather than a requires-clause: clang 14 checks the clause while
  // the class is still incomplete.
  template <class Env, class Self = get_completion_scheduler_t>
  auto operator()(const Env& env) const noexcept -> decltype(env.query(Self{})) {
    return env.query(Self{});
  }
};
template <class CPO>
inline constexpr get_completion_scheduler_t<CPO> get_completion_scheduler{};

// ---- sndr.connect(rcvr), op.start(), sch.schedule() ----
struct connect_t {
  template <class S, class R>
  auto operator()(S&& s, R&& r) const
      noexcept(noexcept(static_cast<S&&>(s).connect(static_cast<R&&>(r))))
    requires requires { static_cast<S&&>(s).connect(static_cast<R&&>(r)); }
  {
    return static_cast<S&&>(s).connect(static_cast<R&&>(r));
  }
};
struct start_t {
  template <class O>
  void operator()(O& op) const noexcept
    requires requires { op.start(); }
  {
    static_assert(noexcept(op.start()), "start must be noexcept");
    op.start();
  }
};
struct schedule_t {
  template <class Sch>
  auto operator()(const Sch& sch) const noexcept(noexcept(sch.schedule()))
    requires requires { sch.schedule(); }
  {
    return sch.schedule();
  }
};
inline constexpr connect_t connect{};
inline constexpr start_t start{};
inline constexpr schedule_t schedule{};
#endif

class pool_scheduler;

namespace detail {

// The operation state of schedule(sch): the task block first, so that its exec can cast the
// block back. The exec returns task_result::resumed: the block is not the runtime's to free
// (weft/detail/task.hpp); after the completion call nothing of *this is touched (the
// receiver may destroy the operation state in it).
template <class R>
class schedule_op {
 public:
  using operation_state_concept = operation_state_t;

  schedule_op(pool& p, R r) noexcept(std::is_nothrow_move_constructible_v<R>) : pool_(p), rcvr_(std::move(r)) {}
  schedule_op(const schedule_op&) = delete;
  schedule_op& operator=(const schedule_op&) = delete;

  void start() & noexcept {
    if (exec::get_stop_token(exec::get_env(rcvr_)).stop_requested()) {
      exec::set_stopped(std::move(rcvr_));
      return;
    }
    block_.exec = &run;
    block_.isolation = 0;
    block_.scope = nullptr;
    block_.stamp = 0;
    submit_status s;
    try {
      s = weft::detail::pool_access::try_enqueue(pool_, &block_);  // accepted: a worker may complete us already
    } catch (...) {  // bad_alloc: the block was not queued
      exec::set_error(std::move(rcvr_), std::current_exception());
      return;
    }
    if (s != submit_status::accepted) exec::set_stopped(std::move(rcvr_));
  }

 private:
  static weft::detail::task_result run(weft::detail::task* t, weft::detail::task_mode mode) noexcept {
    using weft::detail::task_mode;
    // destroy: the pool refused the block (start() reports it) or a forked child abandons
    // its queues; nothing may be completed from here.
    if (mode == task_mode::destroy) return weft::detail::task_result::resumed;
    auto* self = reinterpret_cast<schedule_op*>(t);
    if (mode == task_mode::cancel || exec::get_stop_token(exec::get_env(self->rcvr_)).stop_requested()) {
      exec::set_stopped(std::move(self->rcvr_));
    } else {
      exec::set_value(std::move(self->rcvr_));
    }
    return weft::detail::task_result::resumed;
  }

  weft::detail::task block_;  // first member (see run)
  pool& pool_;
  R rcvr_;
};

}  // namespace detail

class schedule_sender;

class pool_scheduler {
 public:
  using scheduler_concept = scheduler_t;

  explicit pool_scheduler(pool& p) noexcept : pool_(&p) {}
  schedule_sender schedule() const noexcept;

  forward_progress_guarantee query(get_forward_progress_guarantee_t) const noexcept {
    return forward_progress_guarantee::parallel;
  }
  std::size_t available_parallelism() const noexcept { return pool_->size(); }
  pool& underlying_pool() const noexcept { return *pool_; }

  bool operator==(const pool_scheduler&) const noexcept = default;

 private:
  pool* pool_;
};

class schedule_sender {
 public:
  using sender_concept = sender_t;
  using completion_signatures =
      exec::completion_signatures<set_value_t(), set_error_t(std::exception_ptr), set_stopped_t()>;

  struct env {
    pool_scheduler sch;
    pool_scheduler query(get_completion_scheduler_t<set_value_t>) const noexcept { return sch; }
    pool_scheduler query(get_completion_scheduler_t<set_stopped_t>) const noexcept { return sch; }
  };

  explicit schedule_sender(pool_scheduler s) noexcept : sch_(s) {}
  template <class R>
  detail::schedule_op<std::decay_t<R>> connect(R&& r) const
      noexcept(std::is_nothrow_constructible_v<std::decay_t<R>, R>) {
    return detail::schedule_op<std::decay_t<R>>(sch_.underlying_pool(), std::forward<R>(r));
  }
  env get_env() const noexcept { return {sch_}; }

 private:
  pool_scheduler sch_;
};

inline schedule_sender pool_scheduler::schedule() const noexcept { return schedule_sender(*this); }

// ---- bulk ----
namespace detail {

template <class S>
pool_scheduler completion_scheduler_of(const S& s) noexcept {
  return exec::get_completion_scheduler<set_value_t>(exec::get_env(s));
}

template <class Inner, class Shape, class F, class R>
class bulk_op {
  struct inner_receiver {
    using receiver_concept = receiver_t;
    bulk_op* op;
    template <class... V>
    void set_value(V&&... vs) noexcept {
      op->run(static_cast<V&&>(vs)...);
    }
    template <class E>
    void set_error(E&& e) noexcept {
      exec::set_error(std::move(op->rcvr_), static_cast<E&&>(e));
    }
    void set_stopped() noexcept { exec::set_stopped(std::move(op->rcvr_)); }
    decltype(auto) get_env() const noexcept { return exec::get_env(op->rcvr_); }
  };

 public:
  using operation_state_concept = operation_state_t;

  bulk_op(Inner&& s, Shape n, F f, R r, pool_scheduler sch)
      : n_(n), f_(std::move(f)), rcvr_(std::move(r)), sch_(sch),
        inner_(exec::connect(std::move(s), inner_receiver{this})) {}
  bulk_op(const bulk_op&) = delete;
  bulk_op& operator=(const bulk_op&) = delete;

  void start() & noexcept { exec::start(inner_); }

 private:
  template <class... V>
  void run(V&&... vs) noexcept {
    try {
      weft::parallel_for(sch_.underlying_pool(), Shape{0}, n_, [&](Shape i) { f_(i, vs...); });
    } catch (...) {
      exec::set_error(std::move(rcvr_), std::current_exception());
      return;
    }
    exec::set_value(std::move(rcvr_), static_cast<V&&>(vs)...);
  }

  Shape n_;
  F f_;
  R rcvr_;
  pool_scheduler sch_;
  decltype(exec::connect(std::declval<Inner>(), std::declval<inner_receiver>())) inner_;
};

template <class Inner, class Shape, class F>
class bulk_sender {
 public:
  using sender_concept = sender_t;
  using completion_signatures = typename Inner::completion_signatures;  // the values pass through

  struct env {
    pool_scheduler sch;
    pool_scheduler query(get_completion_scheduler_t<set_value_t>) const noexcept { return sch; }
  };

  bulk_sender(Inner s, Shape n, F f) : inner_(std::move(s)), n_(n), f_(std::move(f)) {}
  template <class R>
  bulk_op<Inner, Shape, F, std::decay_t<R>> connect(R&& r) && {
    const pool_scheduler sch = completion_scheduler_of(inner_);
    return {std::move(inner_), n_, std::move(f_), std::forward<R>(r), sch};
  }
  env get_env() const noexcept { return {completion_scheduler_of(inner_)}; }

 private:
  Inner inner_;
  Shape n_;
  F f_;
};

}  // namespace detail

// bulk(sender, n, f): see the top of the file. Throws std::invalid_argument for n < 0.
template <class S, std::integral Shape, class F>
  requires requires(const S& s) {
    { detail::completion_scheduler_of(s) } -> std::same_as<pool_scheduler>;
  }
detail::bulk_sender<std::decay_t<S>, Shape, std::decay_t<F>> bulk(S&& sndr, Shape n, F&& f) {
  if constexpr (std::is_signed_v<Shape>) {
    if (n < 0) throw std::invalid_argument("weft::exec::bulk: the shape (n) must not be negative");
  }
  return {std::forward<S>(sndr), n, std::forward<F>(f)};
}

}  // namespace weft::exec

namespace weft {
// The P2300-shaped scheduler of pool `p` (weft/scheduler.hpp).
inline exec::pool_scheduler scheduler_of(pool& p) noexcept { return exec::pool_scheduler(p); }
}  // namespace weft
