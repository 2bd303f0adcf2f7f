// runtime/wait.cpp: waiting on an address (weft/detail/wait.hpp).
//
// Table: 256 buckets, each a mutex-protected list of wait nodes plus an atomic count of
// enlisted nodes that notifiers read without the lock.
//
// Protocol (no lost wake-up):
//   notifier: N1 makes pred true with a seq_cst RMW or store; N2 loads the bucket count
//             (seq_cst); if non-zero, wakes every node of its key under the bucket lock.
//   waiter:   W1 enlists (count fetch_add, seq_cst); W2 seq_cst fence; W3 evaluates pred.
//   If N2 read a count without our W1, then N2 precedes W1 in the single total order, so
//   N1 precedes the fence W2 and W3 observes N1. Otherwise N2 sees us and wakes us.
// Node lifetime: a node is delisted by its own waiter under the bucket lock, and notifiers
// touch nodes only under that lock, so a waiter that returns never leaves a node behind
// that a notifier is still using.
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "futex.hpp"
#include "pool_impl.hpp"
#include "weft/detail/wait.hpp"
#include "worker.hpp"

namespace weft::detail {
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
}

void delist(bucket& b, wait_node& n) noexcept {
  std::lock_guard lock(b.mu);
  if (n.prev != nullptr) n.prev->next = n.next;
  else b.head = n.next;
  if (n.next != nullptr) n.next->prev = n.prev;
  // relaxed: a stale non-zero count only sends a notifier to take the lock for nothing.
  b.waiters.fetch_sub(1, std::memory_order_relaxed);
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

bool wait_external(const void* key, wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline) {
  for (int i = 0; i < 64; ++i) {  // a short spin before the kernel
    if (pred(ctx)) return true;
  }
  wait_node n;
  enlisted e(key, n);
  for (;;) {
    // acquire: pairs with the release fetch_add in notify_address.
    const std::uint32_t seen = n.epoch.load(std::memory_order_acquire);
    if (pred(ctx)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    futex_wait(n.epoch, seen, deadline);
  }
}

bool wait_on_worker(worker& w, const void* key, wait_pred pred, const void* ctx,
                    std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (pred(ctx)) return true;
    if (task* t = w.find_work()) {
      w.execute(t);
      continue;
    }
    if (std::chrono::steady_clock::now() >= deadline) return pred(ctx);
    wait_node n;
    n.sleep = &w.owner_pool().sleep();
    n.worker = w.index();
    enlisted e(key, n);
    w.park(pred, ctx, deadline);
  }
}

}  // namespace

bool wait_until(const void* key, wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline) {
  if (worker* w = current_worker()) return wait_on_worker(*w, key, pred, ctx, deadline);
  return wait_external(key, pred, ctx, deadline);
}

void notify_address(const void* key) noexcept {
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

bool on_worker_thread() noexcept { return current_worker() != nullptr; }

}  // namespace weft::detail
