// runtime/wait.cpp: waiting on an address (weft/detail/wait.hpp).
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
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "fork.hpp"
#include "futex.hpp"
#include "pool_impl.hpp"
#include "weft/detail/wait.hpp"
#include "weft/task_group.hpp"
#include "worker.hpp"

namespace weft::detail {

std::atomic<std::uint32_t> enlisted_waiters{0};

namespace {

struct wait_node {
  const void* key = nullptr;
  wait_node* prev = nullptr;
  wait_node* next = nullptr;
  sleep_protocol<std_platform>* sleep = nullptr;  // set for a worker waiter
  unsigned worker = 0;
  std::atomic<std::uint32_t> epoch{0};  // bumped per wake, for an external waiter's futex
};

struct alignas(destructive_interference) bucket {
  std::atomic<std::uint32_t> waiters{0};
  std::mutex mu;
  wait_node* head = nullptr;  // guarded by mu
};

std::array<bucket, 256> table;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

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

class helping_scope {
 public:
  explicit helping_scope(pool_impl* pool) noexcept : pool_(pool) {
    if (pool_ != nullptr) pool_->external_helpers_enter();
  }
  ~helping_scope() {
    if (pool_ != nullptr) pool_->external_helpers_leave();
  }
  helping_scope(const helping_scope&) = delete;
  helping_scope& operator=(const helping_scope&) = delete;

 private:
  pool_impl* pool_;
};

// A non-worker thread waiting on a group helps: it runs tasks of the group's subtree it
// finds in the injection queue or in the workers' deques (others go back to the queue).
task* find_for_external(pool_impl& pool, const group_context& group) noexcept {
  task* t = nullptr;
  for (std::size_t n = pool.injector().size_approx(); n > 0 && pool.injector().try_dequeue(t); --n) {
    if (group.contains(t->scope)) return t;
    pool.reinject(t);
  }
  for (unsigned i = 0; i < pool.size(); ++i) {
    steal_result r;
    while ((r = pool.worker_at(i).steal(t)) != steal_result::empty) {
      if (r != steal_result::success) continue;
      if (group.contains(t->scope)) return t;
      pool.reinject(t);
    }
  }
  return nullptr;
}

bool wait_external(const void* key, wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline,
                   const group_context* isolate) {
  pool_impl* pool = isolate != nullptr ? &impl_of(*isolate->owner) : nullptr;
  {
    // While this thread helps, the pool's workers may all be parked inside waits that the
    // tasks it runs will complete: the escape hatch must not mistake that for a stall.
    helping_scope helping(pool);
    for (int i = 0; i < 64; ++i) {  // a short spin before the kernel, helping if we can
      if (pred(ctx)) return true;
      if (pool != nullptr) {
        if (task* t = find_for_external(*pool, *isolate)) {
          pool->count_external(run_task(*pool, t));
          i = 0;
        }
      }
    }
  }
  wait_node n;
  enlisted e(key, n);
  // Waiting on a group, sleep in short naps and look for the group's tasks after each: a
  // task of the subtree handed back to the injection queue by an isolated worker (which
  // may not run it) has nobody else to run it while every worker is inside such a wait, and
  // a hand-back wakes workers, never this thread. The naps grow to 1 ms: a blocked external
  // waiter costs about a thousand short wake-ups a second, and never waits for the escape
  // hatch (which needs a stall of several ms).
  auto nap = std::chrono::microseconds(50);
  for (;;) {
    // acquire: pairs with the release fetch_add in notify_address.
    const std::uint32_t seen = n.epoch.load(std::memory_order_acquire);
    if (pred(ctx)) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    if (pool == nullptr) {
      futex_wait(n.epoch, seen, deadline);
      continue;
    }
    {
      helping_scope helping(pool);
      if (task* t = find_for_external(*pool, *isolate)) {
        pool->count_external(run_task(*pool, t));
        nap = std::chrono::microseconds(50);
        continue;
      }
    }
    futex_wait(n.epoch, seen, std::min(deadline, now + nap));
    nap = std::min<std::chrono::microseconds>(nap * 2, std::chrono::milliseconds(1));
  }
}

// The slow half of a worker's wait: nothing to run right now. Spins a little (the awaited
// children usually finish soon), then parks, still available to be woken for new work.
// Returns false if the deadline passed, true to go on looking for work.
[[gnu::noinline]] bool wait_on_worker_idle(worker& w, const void* key, wait_pred pred, const void* ctx,
                                           std::chrono::steady_clock::time_point deadline,
                                           const group_context* isolate, std::int64_t floor) {
  const unsigned spin_rounds = w.owner_pool().options().spin_rounds;
  for (unsigned r = 0; r < spin_rounds; ++r) {
    for (unsigned i = 0, n = 1u << std::min(r, 6u); i < n; ++i) cpu_relax();
    if (pred(ctx)) return true;
    if (task* t = isolate != nullptr ? w.find_isolated(*isolate, floor) : w.find_work()) {
      w.execute(t);
      return true;
    }
  }
  if (std::chrono::steady_clock::now() >= deadline) return false;
  wait_node n;
  n.sleep = &w.owner_pool().sleep();
  n.worker = w.index();
  worker::park_result r;
  {
    enlisted e(key, n);
    r = w.park(pred, ctx, deadline);
  }
  if (r == worker::park_result::relax) {
    // Escape hatch (task_group.hpp): every worker has been parked inside a wait for a while
    // and queued work is left. Work of our own subtree first (it may have arrived since);
    // only then, and logged, unrelated work.
    if (pred(ctx)) return true;
    task* t = isolate != nullptr ? w.find_isolated(*isolate, floor) : nullptr;
    if (t == nullptr && (t = w.find_work()) != nullptr) w.owner_pool().log_once_relaxed_isolation();
    if (t != nullptr) w.execute(t);
  }
  return true;
}

// Sets the thread's isolation for the length of one wait and restores the enclosing one.
class isolation_scope {
 public:
  isolation_scope(worker& w, worker::isolation next) noexcept : w_(w), prev_(w.exchange_isolation(next)) {}
  ~isolation_scope() { w_.exchange_isolation(prev_); }
  isolation_scope(const isolation_scope&) = delete;
  isolation_scope& operator=(const isolation_scope&) = delete;

 private:
  worker& w_;
  worker::isolation prev_;
};

bool wait_on_worker(worker& w, const void* key, wait_pred pred, const void* ctx,
                    std::chrono::steady_clock::time_point deadline, const group_context* isolate) {
  // Own-deque floor: where the group was created if it was created here, else the wait
  // point. A wait without a group (a future's) is not isolated, even inside a group wait:
  // it runs any task of the pool (see task_group.hpp).
  const std::int64_t floor = isolate == nullptr ? 0 : isolate->creator == &w ? isolate->mark : w.mark();
  isolation_scope scope(w, {isolate, floor});
  for (;;) {
    if (pred(ctx)) return true;
    if (task* t = isolate != nullptr ? w.find_isolated(*isolate, floor) : w.find_work()) {
      w.execute(t);
    } else if (!wait_on_worker_idle(w, key, pred, ctx, deadline, isolate, floor)) {
      return pred(ctx);
    }
  }
}

}  // namespace

bool wait_until(const void* key, wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline,
                const group_context* isolate) {
  // A worker waiting on a group of another pool stays isolated too: none of its own pool's
  // tasks belongs to that group, so it runs none of them and sleeps until the group is done.
  if (worker* w = tls_worker) return wait_on_worker(*w, key, pred, ctx, deadline, isolate);
  return wait_external(key, pred, ctx, deadline, isolate);
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
      // release: pairs with the acquire load of epoch in wait_external.
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

}  // namespace weft::detail
