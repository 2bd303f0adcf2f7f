// weft/detail/coro_promise.hpp: the promise behind weft::task (weft/coro.hpp), its join
// protocol and the runtime hooks it uses (runtime/layers/coro.cpp).
//
// A promise *is* a task block. Its first member is a detail::task whose header the deques
// and the injection queue carry; the frame's bookkeeping (frame_state) lives in that block's
// 96 bytes of inline storage, which no runtime path reads for these blocks. Pushing a
// continuation therefore allocates nothing. The block's exec returns task_result::resumed,
// which tells the runtime that the block is not its to free (weft/detail/task.hpp).
//
// Continuation stealing, libfork's design (C. J. Williams and J. Elliott, "Libfork:
// portable continuation-stealing with stackless coroutines", arXiv:2402.18480, 2024),
// after Cilk's work-first principle. Departures from libfork: the deque is weft's (tagged
// slots, batch steals), so the pop in F2 checks that it got the parent's block and puts
// anything else back; and weft's spawn wake-up check (a seq_cst fence) runs on every push
// of a pool with more than one worker. `co_await fork(out, child)` in a frame P:
//   F1 P's block goes onto the current worker's deque (exec = resume_continuation), and the
//      worker switches to the child at once (symmetric transfer).
//   F2 When the child finishes, it pops the bottom of its worker's deque. If that is P's
//      block, nobody took P: the child resumes P directly (symmetric transfer). No atomic.
//   F3 Otherwise P's block was, or will be, run through exec (a thief stole it, a waiting
//      worker helped itself to it, or something pushed after it hid it; an unrelated task
//      popped instead is pushed back where it was). exec counts the resumption in P's
//      `steals` (a plain integer: only the thread running P touches it) before resuming P,
//      and the child, instead of resuming P, decrements P's atomic `joins`.
//   Invariant J: for every fork exactly one of "the child popped P's block (F2)" and "P's
//   block went through exec and the child decrements joins (F3)" happens, because the block
//   is taken out of a deque exactly once. Hence `steals` == the number of children of the
//   current join epoch that finish by decrementing `joins`.
//   J1 `co_await join()` with steals == 0: every child finished before P ran again (F2
//      resumed P after each one, on the thread the child finished on), so the join is
//      ready. No atomic read-modify-write.
//   J2 Otherwise P suspends and subtracts (kJoinBias - steals) from `joins` (which starts at
//      kJoinBias); each F3 child subtracts 1. The subtraction that reaches zero is the last
//      party: a child resumes P; P's own arrival that reaches zero continues at once.
//      kJoinBias > steals, so no child can reach zero before P arrives. acq_rel on every
//      subtraction, so the last party has acquired the effects of all the others.
//   J3 After the join P resets joins to kJoinBias and steals to 0 (no child is left).
//   J4 A frame that ends (co_return, or an exception escapes its body) with children not
//      joined joins them first, at its final suspend point, the same way; the last child
//      then completes the frame (complete()) instead of resuming it.
// Exceptions: a child's exception is recorded in its parent (the first one wins, by a CAS;
// later ones are dropped, as task_group does) and rethrown by the parent's next join. An
// exception escaping a frame's own body is kept apart (own_error) and, after J4, goes to
// whoever awaits the frame (the caller of co_await, the parent's join, sync_wait) in
// preference to a child's exception that no join rethrew.
//
// Thread-locals: a frame can suspend on one worker and resume on another, and clang 14 may
// cache a thread_local's address across a suspension point. Nothing here touches a
// thread_local in a coroutine body: the worker, the deque and the frame cache are reached
// only through the out-of-line functions below, which read them afresh on every call.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "weft/detail/task.hpp"
#include "weft/detail/wait.hpp"
#include "weft/errors.hpp"

namespace weft {
template <class T>
class task;
}

namespace weft::detail::coro {

// ---- runtime hooks (runtime/layers/coro.cpp) ----
// On a worker: pushes t onto its deque (tagged with the current isolated region, as
// worker::spawn does) and wakes a sleeper if nobody searches. False when the calling thread
// is not a worker, or the deque cannot grow (nothing was pushed then).
bool push_continuation(task* t) noexcept;
// On a worker: pops the bottom of its deque; true when that was `expected`. Anything else
// popped is pushed back where it was. False on any other thread.
bool pop_continuation(const task* expected) noexcept;
// Frame memory from a per-thread cache by size class (see the .cpp): no heap call in
// steady state. allocate_frame throws std::bad_alloc.
void* allocate_frame(std::size_t n);
void free_frame(void* p, std::size_t n) noexcept;

inline constexpr std::uint32_t kJoinBias = std::uint32_t{1} << 30;

class promise_base;

// What sync_wait waits on: set once, by the root frame's completion.
struct root_base {
  std::atomic<bool> done{false};
  std::exception_ptr error;

  void complete() noexcept {
    // seq_cst: the notifier half of the wait protocol (weft/detail/wait.hpp); release for
    // the result and error written before it. Nothing of *this is touched afterwards.
    done.store(true, std::memory_order_seq_cst);
    notify_address(this);
  }
  static bool is_done(const void* self) noexcept {
    // acquire: pairs with the seq_cst store in complete().
    return static_cast<const root_base*>(self)->done.load(std::memory_order_acquire);
  }
};

// How a frame hands over its outcome when it ends.
enum class kind : unsigned char {
  awaited,        // co_await t: resume `cont`, exception to *err_out
  forked,         // co_await fork(...): F2/F3 towards `parent`
  forked_inline,  // forked where no deque was at hand: resume `parent` directly
  root,           // sync_wait: complete `root`
};

struct frame_state {
  std::coroutine_handle<> self;
  std::coroutine_handle<> cont;          // awaited
  std::exception_ptr* err_out = nullptr;  // awaited
  promise_base* parent = nullptr;         // forked, forked_inline
  root_base* root = nullptr;              // root
  const std::stop_token* token = nullptr;  // the root's token (null: none); children inherit it
  std::exception_ptr error;               // the first child exception (has_error decides)
  std::exception_ptr own_error;           // the exception that escaped the frame's body
  std::atomic<std::uint32_t> joins{kJoinBias};
  std::uint32_t steals = 0;  // F3 resumptions since the last join; the thread running the frame only
  std::atomic<bool> has_error{false};
  kind how = kind::awaited;
  bool at_final = false;          // J4: the frame waits at its final suspend point
  bool schedule_cancelled = false;  // schedule(): the pool completed the hand-over as cancelled
};
static_assert(sizeof(frame_state) <= task_inline_capacity, "a frame's state fits in its task block");

class promise_base {
 public:
  promise_base() noexcept {
    ::new (static_cast<void*>(block_.storage)) frame_state();
    block_.isolation = 0;
  }
  ~promise_base() { st().~frame_state(); }
  promise_base(const promise_base&) = delete;
  promise_base& operator=(const promise_base&) = delete;

  static void* operator new(std::size_t n) { return allocate_frame(n); }
  static void operator delete(void* p, std::size_t n) noexcept { free_frame(p, n); }

  std::suspend_always initial_suspend() noexcept { return {}; }
  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      return h.promise().final_step();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }
  // The body's own exception; it wins over children's not yet joined (J4). Only the thread
  // running the frame writes it.
  void unhandled_exception() noexcept { st().own_error = std::current_exception(); }

  // co_await inside a weft::task: an operation that needs the awaiting frame (fork, join,
  // schedule, this_task::stop_token) has bind(promise_base*) and becomes its awaiter;
  // anything else is awaited as it is.
  template <class Op>
    requires requires(Op&& op, promise_base* p) { static_cast<Op&&>(op).bind(p); }
  auto await_transform(Op&& op) noexcept(noexcept(static_cast<Op&&>(op).bind(nullptr))) {
    return static_cast<Op&&>(op).bind(this);
  }
  template <class A>
  A&& await_transform(A&& a) noexcept {
    return static_cast<A&&>(a);
  }

  frame_state& st() noexcept { return *std::launder(reinterpret_cast<frame_state*>(block_.storage)); }
  task* block() noexcept { return &block_; }
  static promise_base* of(task* t) noexcept { return reinterpret_cast<promise_base*>(t); }

  void record(std::exception_ptr e) noexcept {
    // relaxed: the CAS only decides who owns `error`; the error reaches the joiner through
    // the recorder's completion (F2: the same thread; F3: its acq_rel decrement of joins).
    bool expected = false;
    if (st().has_error.compare_exchange_strong(expected, true, std::memory_order_relaxed)) st().error = std::move(e);
  }
  // After a completed join: J3, then the first child exception, if any.
  std::exception_ptr end_join() noexcept {
    frame_state& s = st();
    if (s.steals != 0) {
      s.steals = 0;
      // relaxed: no child of this epoch is left; the next fork's child reaches this store
      // through the push of this block (release) or through program order.
      s.joins.store(kJoinBias, std::memory_order_relaxed);
    }
    // relaxed: see record().
    if (!s.has_error.load(std::memory_order_relaxed)) [[likely]] return nullptr;
    s.has_error.store(false, std::memory_order_relaxed);
    return std::exchange(s.error, nullptr);
  }
  // J2 for the frame itself: true when it is the last party (continue now).
  bool arrive() noexcept {
    const std::uint32_t n = kJoinBias - st().steals;
    // acq_rel: release for the frame's own effects, to the child that will resume it;
    // acquire for the children's effects, when this arrival is the last.
    return st().joins.fetch_sub(n, std::memory_order_acq_rel) == n;
  }

  // Final suspend point: J4, then complete().
  std::coroutine_handle<> final_step() noexcept {
    if (st().steals != 0) {
      st().at_final = true;
      if (!arrive()) return std::noop_coroutine();  // the last child calls complete()
    }
    return complete();
  }

  // The frame is done (its children too): deliver its outcome, free it, and return what
  // runs next on this thread. Nothing of *this is touched after destroy().
  std::coroutine_handle<> complete() noexcept {
    frame_state& s = st();
    const std::coroutine_handle<> self = s.self;
    if (s.own_error) s.error = std::move(s.own_error);
    switch (s.how) {
      case kind::awaited: {
        const std::coroutine_handle<> next = s.cont;
        if (s.error) *s.err_out = std::move(s.error);
        self.destroy();
        return next;
      }
      case kind::forked_inline: {
        promise_base* parent = s.parent;
        if (s.error) parent->record(std::move(s.error));
        self.destroy();
        return parent->st().self;
      }
      case kind::forked: {
        promise_base* parent = s.parent;
        if (s.error) parent->record(std::move(s.error));
        self.destroy();
        if (pop_continuation(&parent->block_)) return parent->st().self;  // F2
        return parent->child_done();                                       // F3
      }
      case kind::root:
        break;
    }
    root_base* root = s.root;
    root->error = std::move(s.error);
    self.destroy();
    root->complete();
    return std::noop_coroutine();
  }

  // F3: a child of this frame finished after this frame's block went through exec.
  std::coroutine_handle<> child_done() noexcept {
    // acq_rel: see arrive().
    if (st().joins.fetch_sub(1, std::memory_order_acq_rel) != 1) return std::noop_coroutine();
    return st().at_final ? complete() : st().self;
  }

  // ---- exec protocols for the block (weft/detail/task.hpp) ----
  // A fork continuation (F3). Cancel mode (a stopping pool) resumes it too: the frame is
  // mid-flight and its children and parent depend on it. Destroy mode (a forked child
  // process abandoning its queues) leaves the frame as it is.
  static task_result resume_continuation(task* t, task_mode mode) noexcept {
    if (mode == task_mode::destroy) return task_result::resumed;
    promise_base* p = of(t);
    ++p->st().steals;
    p->st().self.resume();
    return task_result::resumed;
  }
  // schedule(pool): the hand-over. Destroy mode is the pool refusing it (try_enqueue tells
  // the awaiter); cancel mode resumes the frame, whose co_await then throws task_cancelled.
  static task_result resume_scheduled(task* t, task_mode mode) noexcept {
    if (mode == task_mode::destroy) return task_result::resumed;
    promise_base* p = of(t);
    t->stamp = 0;  // a latency sample of this hand-over must not follow the block's next pushes
    p->st().schedule_cancelled = mode == task_mode::cancel;
    p->st().self.resume();
    return task_result::resumed;
  }
  // sync_wait's start. Cancel mode completes the root as cancelled without running it.
  static task_result start_root(task* t, task_mode mode) noexcept {
    if (mode == task_mode::destroy) return task_result::resumed;
    promise_base* p = of(t);
    t->stamp = 0;  // as in resume_scheduled
    if (mode == task_mode::cancel) {
      root_base* root = p->st().root;
      p->st().self.destroy();
      try {
        root->error = std::make_exception_ptr(task_cancelled());
      } catch (...) {
        root->error = std::current_exception();
      }
      root->complete();
      return task_result::resumed;
    }
    p->st().self.resume();
    return task_result::resumed;
  }

  // Prepares the block for pool::try_enqueue (schedule, sync_wait).
  void arm(task_exec exec) noexcept {
    block_.exec = exec;
    block_.isolation = 0;  // an injected task belongs to no isolated region
  }
  // Prepares the block for push_continuation (which sets its region); scope and stamp stay
  // null and 0 (resume_scheduled and start_root clear a stamp try_enqueue may have set).
  void arm_continuation() noexcept { block_.exec = &resume_continuation; }

 private:
  task block_;  // first member: of() casts the block back to the promise
};
static_assert(std::is_standard_layout_v<promise_base>, "promise_base::of casts from its first member");

template <class T>
class promise final : public promise_base {
 public:
  weft::task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    if (assign_ != nullptr) {
      *assign_ = std::forward<U>(v);
    } else {
      slot_->emplace(std::forward<U>(v));
    }
  }
  T* assign_ = nullptr;               // fork(T&, ...)
  std::optional<T>* slot_ = nullptr;  // everything else
};

template <>
class promise<void> final : public promise_base {
 public:
  weft::task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

}  // namespace weft::detail::coro
