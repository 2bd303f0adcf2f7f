// runtime/capi/c_group.cpp: weft_group_* of the C API, over weft::task_group.
//
// Why a second count. task_group::wait() has no time limit, and a child counts as finished
// in the task_group before its callable (and so the C context destructor) is destroyed.
// The C group therefore keeps its own count of children, `pending`:
//   P1 weft_group_run increments it before task_group::run; the child's callable
//      decrements it in its destructor, after the context destructor ran. Every path of a
//      task (ran, cancelled, rejected, dropped on bad_alloc) destroys the callable exactly
//      once (capi.hpp), so every increment is matched by one decrement.
//   P2 The callable's destructor runs after task_group's own finish_one for that child, on
//      the same thread: when pending reads zero, every child is finished for the
//      task_group too, so task_group::wait() returns at once and destroying it is safe.
//   P3 Waiting is weft::detail::wait_until on &pending (weft/detail/wait.hpp): it helps
//      on a worker and honours a deadline. The decrement that leaves zero notifies; the
//      notifier touches nothing of the group after that decrement (notify_address uses
//      the address alone), so a waiter that saw zero may free the group at once.
// After the wait, task_group::wait() supplies the result: the first failure (rethrown) or
// the cancelled state, and resets the group for reuse.
#include <atomic>
#include <chrono>
#include <cstdint>

#include "capi/capi.hpp"
#include "weft/detail/deadline.hpp"
#include "weft/detail/wait.hpp"
#include "weft/task_group.hpp"

struct weft_group {
  explicit weft_group(weft::pool& p) noexcept : home(weft::detail::tls_worker), tg(p) {}

  // The worker that created the group (null outside any pool): task_group's owner rule.
  weft::detail::worker* const home;
  std::atomic<std::int64_t> pending{0};
  weft::task_group tg;
};

namespace weft::capi {
namespace {

// The callable handed to task_group::run: the C callback plus the P1 decrement.
class group_child {
 public:
  group_child(weft_group* g, c_callback cb) noexcept : g_(g), cb_(std::move(cb)) {}
  group_child(group_child&& o) noexcept : g_(std::exchange(o.g_, nullptr)), cb_(std::move(o.cb_)) {}
  group_child& operator=(group_child&&) = delete;
  ~group_child() {
    if (g_ == nullptr) return;  // moved from
    cb_.release();               // P1: the context destructor first
    // seq_cst: the notifier half of wait.hpp's protocol (pairs with the enlisting and the
    // seq_cst load in done()); its release part publishes the child's effects, the context
    // destructor's included, to the waiter.
    if (g_->pending.fetch_sub(1, std::memory_order_seq_cst) == 1) detail::notify_address(&g_->pending);
    // P3: nothing of *g_ from here on.
  }
  void operator()() const { cb_(); }

 private:
  weft_group* g_;
  c_callback cb_;
};

bool done(const void* g) noexcept {
  // seq_cst: the waiter half of wait.hpp's protocol, pairs with the decrement in
  // ~group_child (acquire: the children's effects are visible once it reads zero).
  return static_cast<const weft_group*>(g)->pending.load(std::memory_order_seq_cst) == 0;
}

bool wrong_thread(const weft_group* g) noexcept { return g->home != nullptr && detail::tls_worker != g->home; }

weft_status wait_until(const char* fn, weft_group* g, std::chrono::steady_clock::time_point deadline) {
  if (g == nullptr) return fail(WEFT_INVALID_ARGUMENT, fn, "group is NULL");
  if (wrong_thread(g)) {
    return fail(WEFT_INVALID_ARGUMENT, fn, "a group created inside a task must be waited on by that task");
  }
  return guarded(fn, [&] {
    if (!detail::wait_until(&g->pending, &done, g, deadline)) {
      return fail(WEFT_TIMED_OUT, fn, "children are still pending after the limit");
    }
    // P2: returns at once; rethrows the first failure (c_failure -> WEFT_TASK_FAILED).
    if (g->tg.wait() == group_status::cancelled) return fail(WEFT_CANCELLED, fn, "the group was cancelled");
    return WEFT_OK;
  });
}

}  // namespace
}  // namespace weft::capi

extern "C" {

weft_status weft_group_create(weft_pool* pool, weft_group** out) {
  using namespace weft::capi;
  if (out == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_group_create", "out is NULL");
  *out = nullptr;
  if (pool == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_group_create", "pool is NULL");
  return guarded("weft_group_create", [&] {
    *out = new weft_group(pool->pool);
    return WEFT_OK;
  });
}

weft_status weft_group_run(weft_group* group, weft_task_fn fn, void* ctx, weft_ctx_dtor dtor) {
  using namespace weft::capi;
  c_callback cb(fn, ctx, dtor);  // owns ctx: every return below releases it once
  if (group == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_group_run", "group is NULL");
  if (fn == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_group_run", "fn is NULL");
  // relaxed: P1; the child's decrement is ordered after this through the enqueue (a release
  // the running thread acquires), and a rejected child decrements on this thread.
  group->pending.fetch_add(1, std::memory_order_relaxed);
  group_child child(group, std::move(cb));  // from here the child owns the count too
  return guarded("weft_group_run", [&] {
    group->tg.run(std::move(child));  // consumes child even when it throws
    return WEFT_OK;
  });
}

weft_status weft_group_wait(weft_group* group) {
  return weft::capi::wait_until("weft_group_wait", group, std::chrono::steady_clock::time_point::max());
}

weft_status weft_group_wait_timeout(weft_group* group, int64_t timeout_ns) {
  const auto deadline =
      weft::detail::saturating_deadline(std::chrono::steady_clock::now(), std::chrono::nanoseconds(timeout_ns));
  return weft::capi::wait_until("weft_group_wait_timeout", group, deadline);
}

weft_status weft_group_cancel(weft_group* group) {
  using namespace weft::capi;
  if (group == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_group_cancel", "group is NULL");
  group->tg.cancel();
  return WEFT_OK;
}

weft_status weft_group_destroy(weft_group* group) {
  using namespace weft::capi;
  constexpr const char* fn = "weft_group_destroy";
  if (group == nullptr) return fail(WEFT_INVALID_ARGUMENT, fn, "group is NULL");
  if (wrong_thread(group)) {
    return fail(WEFT_INVALID_ARGUMENT, fn, "a group created inside a task must be destroyed by that task");
  }
  return guarded(fn, [&] {
    weft::detail::wait_until(&group->pending, &done, group);
    delete group;  // P2: the task_group is idle; an unwaited failure goes to the logger
    return WEFT_OK;
  });
}

}  // extern "C"
