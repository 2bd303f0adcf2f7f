// runtime/core/wait.cpp: waiting on an address (weft/detail/wait.hpp).
//
// Table: 256 buckets, each a mutex-protected list of wait nodes plus an atomic count of
// enlisted nodes that notifiers read without the lock.
//
// Protocol (no lost wake-up):
//   notifier: N1 makes pred true with a seq_cst RMW or store; N2 loads the process-wide
//             count of enlisted waiters, then the bucket's (seq_cst both); if both are
//             non-zero, wakes every node of its key under the bucket lock.
//   waiter:   W1 enlists (fetch_add on the bucket count, then the global count, seq_cst);
//             W2 seq_cst fence; W3 evaluates pred.
//   If N2 read a count without our W1, then N2 precedes W1 in the single total order, so
//   N1 precedes the fence W2 and W3 observes N1. Otherwise N2 sees us and wakes us.
// Node lifetime: a node is delisted by its own waiter under the bucket lock, and notifiers
// touch nodes only under that lock, so a waiter that returns never leaves a node behind
// that a notifier is still using.
//
// Who waits how (the helping rule, issue 8):
//   - A worker runs other tasks while it waits: any task of its pool (own deque, injection
//     queue, stealing), as oneTBB's waits do. When it finds none it parks in the pool's sleep
//     protocol *as a worker inside a wait*: still available to be woken for new work, and
//     woken by the awaited object's completion (its node names the worker).
//   - Helping is bounded by stack use, not by a count: a task started with less than the
//     reserve of stack left runs on a fresh stack segment (runtime/core/stack.hpp), so no nesting
//     a program can build overflows the stack.
//   - Inside weft::isolated (runtime/core/isolation.cpp) a worker's waits run only tasks of its
//     region: its own deque above the region's floor, or a region task at the top of another
//     deque; when there are none it naps on the awaited object (growing to 1 ms) and scans
//     again, counted as busy by the sleep protocol (it cannot take new work, so waking it
//     for work would be a lost wake).
//   - A thread outside the pool never runs tasks: it sleeps on the awaited object and is
//     woken by its completion (no naps, no rescans, nothing moved between queues).
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "core/cpu_relax.hpp"
#include "platform/fork.hpp"
#include "platform/futex.hpp"
#include "core/pool_impl.hpp"
#include "core/stack.hpp"
#include "weft/detail/wait.hpp"
#include "core/worker.hpp"

namespace weft::detail {

std::atomic<std::uint32_t> enlisted_waiters{0};

namespace {

using time_point = std::chrono::steady_clock::time_point;

struct wait_node {
  const void* key = nullptr;
  wait_node* prev = nullptr;
  wait_node* next = nullptr;
  sleep_protocol<std_platform>* sleep = nullptr;  // set for a worker parked in its pool's protocol
  unsigned worker = 0;
  std::atomic<std::uint32_t> epoch{0};  // bumped per wake, for a thread blocked on its futex
};

struct alignas(destructive_interference) bucket {
  std::atomic<std::uint32_t> waiters{0};
  std::mutex mu;
  wait_node* head = nullptr;  // guarded by mu
};

std::array<bucket, 256> table;

bucket& bucket_for(const void* key) noexcept {
  auto h = reinterpret_cast<std::uintptr_t>(key);
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ULL;
  return table[(h >> 56) & 0xFF];
}

void enlist(bucket& b, wait_node& n) {
  std::lock_guard lock(b.mu);
  n.next = b.head;
  if (b.head != nullptr) b.head->prev = &n;
  b.head = &n;
  // seq_cst: W1 of the protocol above.
  b.waiters.fetch_add(1, std::memory_order_seq_cst);
  enlisted_waiters.fetch_add(1, std::memory_order_seq_cst);
}

void delist(bucket& b, wait_node& n) noexcept {
  std::lock_guard lock(b.mu);
  if (n.prev != nullptr) n.prev->next = n.next;
  else b.head = n.next;
  if (n.next != nullptr) n.next->prev = n.prev;
  // relaxed: a stale non-zero count only sends a notifier to take the lock for nothing.
  b.waiters.fetch_sub(1, std::memory_order_relaxed);
  enlisted_waiters.fetch_sub(1, std::memory_order_relaxed);
}

class enlisted {
 public:
  enlisted(const void* key, wait_node& n) : b_(bucket_for(key)), n_(n) {
    n_.key = key;
    enlist(b_, n_);
    // seq_cst: W2 of the protocol above.
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  ~enlisted() { delist(b_, n_); }
  enlisted(const enlisted&) = delete;
  enlisted& operator=(const enlisted&) = delete;

 private:
  bucket& b_;
  wait_node& n_;
};

// Sleeps on the node's futex until pred holds or the deadline passes. Any thread.
bool block_until(const void* key, wait_pred pred, const void* ctx, time_point deadline) {
  for (int i = 0; i < 64; ++i) {  // a few µs: the awaited task is often about to finish
    if (pred(ctx)) return true;
    cpu_relax();
  }
  wait_node n;
  enlisted e(key, n);
  for (;;) {
    // acquire: pairs with the release fetch_add in notify_address_slow.
    const std::uint32_t seen = n.epoch.load(std::memory_order_acquire);
    if (pred(ctx)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    futex_wait(n.epoch, seen, deadline);
  }
}

// Runs a task this waiting worker took, on a fresh stack segment when its stack is low.
// False: no segment could be mapped; the task went back to the deque, unrun.
bool run_nested(worker& w, task* t) noexcept {
  if (!stack_low()) {
    w.execute(t);
    return true;
  }
  struct frame {
    worker* w;
    task* t;
  } f{&w, t};
  if (run_on_fresh_stack([](void* p) { static_cast<frame*>(p)->w->execute(static_cast<frame*>(p)->t); }, &f)) {
    return true;
  }
  w.requeue(t);
  return false;
}

// No room to run anything (the OS refused a stack segment): let other workers take the
// work and check again in a while.
bool back_off(const void* key, wait_pred pred, const void* ctx, time_point deadline) {
  const auto retry = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
  return block_until(key, pred, ctx, std::min(deadline, retry)) || std::chrono::steady_clock::now() >= deadline;
}

// Inside weft::isolated: only the region's own tasks: above the floor of this deque, or a
// region task at the top of another worker's deque (its owner may be blocked outside weft
// with it queued, and no other worker may be free to take it). Between scans it sleeps on
// the awaited object in naps that grow to 1 ms: a region task appearing in another deque
// wakes nobody here (an isolated waiter is not in the sleep protocol).
bool wait_isolated(worker& w, std::int64_t floor, const void* key, wait_pred pred, const void* ctx,
                   time_point deadline) {
  auto nap = std::chrono::microseconds(50);
  for (;;) {
    if (pred(ctx)) return true;
    task* t = nullptr;
    if (w.pop_above(floor, t) || (t = w.steal_region_task()) != nullptr) {
      if (!run_nested(w, t) && back_off(key, pred, ctx, deadline)) return pred(ctx);
      nap = std::chrono::microseconds(50);
      continue;
    }
    // What lies below the floor belongs to the code around the region: make sure somebody
    // is awake to take it.
    if (w.queued() > 0) w.owner_pool().sleep().notify_work();
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return pred(ctx);
    if (block_until(key, pred, ctx, std::min(deadline, now + nap))) return true;
    nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::milliseconds(1));
  }
}

bool wait_on_worker(worker& w, const void* key, wait_pred pred, const void* ctx, time_point deadline) {
  if (const std::int64_t floor = w.isolation_floor(); floor >= 0) {
    return wait_isolated(w, floor, key, pred, ctx, deadline);
  }
  for (;;) {
    if (pred(ctx)) break;
    if (task* t = w.find_work(pred, ctx)) {
      if (!run_nested(w, t) && back_off(key, pred, ctx, deadline)) break;
      continue;
    }
    if (pred(ctx) || std::chrono::steady_clock::now() >= deadline) break;
    wait_node n;
    n.sleep = &w.owner_pool().sleep();
    n.worker = w.index();
    enlisted e(key, n);
    if (w.park(pred, ctx, deadline) == worker::park_result::terminating) break;  // cannot happen inside a task
  }
  w.leave_search();
  return pred(ctx);
}

}  // namespace

bool wait_until(const void* key, wait_pred pred, const void* ctx, time_point deadline) {
  if (worker* w = tls_worker) return wait_on_worker(*w, key, pred, ctx, deadline);
  return block_until(key, pred, ctx, deadline);
}

void notify_address_slow(const void* key) noexcept {
  bucket& b = bucket_for(key);
  // seq_cst: N2 of the protocol above.
  if (b.waiters.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard lock(b.mu);
  for (wait_node* n = b.head; n != nullptr; n = n->next) {
    if (n->key != key) continue;
    if (n->sleep != nullptr) {
      n->sleep->wake_worker(n->worker);
    } else {
      // release: pairs with the acquire load of epoch in block_until.
      n->epoch.fetch_add(1, std::memory_order_release);
      futex_wake(n->epoch, 1);
    }
  }
}

void wait_table_prepare_fork() noexcept {
  for (bucket& b : table) b.mu.lock();
}
void wait_table_after_fork() noexcept {
  for (bucket& b : table) b.mu.unlock();
}
void wait_table_after_fork_in_child() noexcept {
  // The child has only the thread that called fork(), which is not waiting: every node
  // still enlisted belongs to a thread that does not exist here, on a stack the child's
  // next thread may reuse. Drop them all, or the first notify on their bucket walks a list
  // through someone else's stack.
  for (bucket& b : table) {
    b.head = nullptr;
    b.waiters.store(0, std::memory_order_relaxed);  // relaxed: the child is single-threaded here
    b.mu.unlock();
  }
}

bool on_worker_thread() noexcept { return current_worker() != nullptr; }

bool help_own() noexcept {
  worker* w = tls_worker;
  if (w == nullptr) return false;
  task* t = nullptr;
  const std::int64_t floor = w->isolation_floor();
  if (!(floor >= 0 ? w->pop_above(floor, t) : w->pop_own(t))) return false;
  return run_nested(*w, t);
}

}  // namespace weft::detail
