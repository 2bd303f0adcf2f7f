// runtime/core/deque.hpp: the per-worker Chase-Lev work-stealing deque.
//
// Algorithm: D. Chase and Y. Lev, "Dynamic Circular Work-Stealing Deque" (SPAA 2005),
// with the C11 memory orderings of N. M. Lê, A. Pop, A. Cohen and F. Zappa Nardelli,
// "Correct and Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013), Fig. 1.
//
// Roles are types. The owner (one worker thread) holds the only `deque_owner` and may
// push and pop at the bottom; any thread may hold a `deque_stealer` and steal at the top.
//
// Invariants
//   I1  top only increases, and only by a successful CAS (thieves, or the owner racing
//       a thief for the last element). bottom and the ring pointer are written only by
//       the owner.
//   I2  An element at index i (top <= i < bottom) is taken exactly once: by a thief whose
//       CAS moves top from i to i+1, or by the owner's pop, which either sees top < i
//       after its seq_cst fence (no thief can reach i any more) or wins the same CAS
//       when i is the last element.
//   I3  Every value of bottom that a thief can read was written by a release store that
//       follows (in the owner's program order) the slot writes of every element below it.
//       So a thief that reads bottom with acquire and then finds t < b sees the element
//       at t and everything the owner wrote before pushing it (the task's closure).
//
// Departures from the paper, each argued:
//   D1  push publishes with `bottom.store(b + 1, release)` instead of the paper's
//       `fence(release); bottom.store(b + 1, relaxed)`, and the owner's other bottom
//       stores are release too. With the paper's fence, a thief reading *any* later bottom
//       store synchronises with it; with release stores that property needs every bottom
//       store to be release, hence I3. On x86-64 both compile to plain moves. The benefit:
//       ThreadSanitizer does not model standalone fences, and sees these edges.
//   D2  push reloads nothing after growth: `grow` returns the new ring and push writes into
//       that. This is the fix for the known bug in the paper's pseudo-code, where push
//       used the ring loaded before the resize.
//   D3  Retired rings are not freed while the deque lives (a thief may still be reading
//       one); they are chained and freed by the destructor. Rings double, so the retired
//       ones together are smaller than the live one: memory stays under 2x the peak.
//   D4  steal's load of the ring is acquire rather than consume (consume is never used).
#pragma once

#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "weft/detail/sync.hpp"

namespace weft::detail {

// Three outcomes, so that a lost race is never mistaken for an empty deque.
enum class steal_result : unsigned char { empty, lost_race, success };

template <class T, class Sync>
class deque_owner;
template <class T, class Sync>
class deque_stealer;

template <class T, class Sync = std_sync>
class chase_lev_deque {
  static_assert(std::is_trivially_copyable_v<T>, "deque elements are copied by value across threads");

  template <class U>
  using atomic = typename Sync::template atomic<U>;

 public:
  // capacity: initial number of slots, a power of two >= 2 (checked by the pool's options).
  explicit chase_lev_deque(std::int64_t capacity = 1024) {
    ring_.store(new ring(capacity), Sync::relaxed);  // relaxed: not yet shared with any thread.
  }
  chase_lev_deque(const chase_lev_deque&) = delete;
  chase_lev_deque& operator=(const chase_lev_deque&) = delete;

  ~chase_lev_deque() {
    // relaxed: destruction happens after every owner and thief has stopped (the pool joins
    // its workers first), so no other thread can touch the deque.
    delete ring_.load(Sync::relaxed);
    while (retired_ != nullptr) {
      ring* prev = retired_->retired_prev;
      delete retired_;
      retired_ = prev;
    }
  }

  // Approximate number of elements; exact when no operation is in flight. Any thread.
  std::int64_t size_approx() const noexcept {
    // relaxed both: a heuristic (metrics, steal-batch sizing); no data is read through it.
    const std::int64_t b = bottom_.load(Sync::relaxed);
    const std::int64_t t = top_.load(Sync::relaxed);
    return b > t ? b - t : 0;
  }

  // Owner only: the current bottom.
  std::int64_t bottom_index() const noexcept {
    // relaxed: bottom is written only by the owner, which is the caller.
    return bottom_.load(Sync::relaxed);
  }

  // Any thread: the current top (the index the next steal takes), possibly stale.
  std::int64_t top_index() const noexcept {
    // relaxed: a heuristic (the owner's injector-poll ordering); no data is read through it.
    return top_.load(Sync::relaxed);
  }

  std::int64_t capacity() const noexcept {
    // relaxed: owner-only use (tests); the owner wrote the ring pointer itself.
    return ring_.load(Sync::relaxed)->capacity;
  }

 private:
  friend class deque_owner<T, Sync>;
  friend class deque_stealer<T, Sync>;

  struct ring {
    explicit ring(std::int64_t cap) : capacity(cap), mask(cap - 1), slots(Sync::template alloc_array<atomic<T>>(cap)) {}
    ~ring() { Sync::template free_array<atomic<T>>(slots, static_cast<std::size_t>(capacity)); }
    ring(const ring&) = delete;
    ring& operator=(const ring&) = delete;

    // Slots are atomics accessed relaxed: ordering comes from bottom (I3) and top (CAS).
    // relaxed: see I3; the slot is only read after an acquire of a bottom value covering it.
    T get(std::int64_t i) const noexcept { return slots[i & mask].load(Sync::relaxed); }
    // relaxed: published by the release store of bottom that follows (I3).
    void put(std::int64_t i, T x) noexcept { slots[i & mask].store(x, Sync::relaxed); }

    const std::int64_t capacity;
    const std::int64_t mask;
    atomic<T>* const slots;
    ring* retired_prev = nullptr;  // owner only
  };

  // Owner: push at the bottom. Never fails (grows); may throw std::bad_alloc on growth,
  // leaving the deque unchanged.
  void push(T x) {
    // relaxed: bottom is written only by this thread (I1).
    const std::int64_t b = bottom_.load(Sync::relaxed);
    // acquire: pairs with the thieves' CAS on top, so slots they vacated are free to reuse.
    const std::int64_t t = top_.load(Sync::acquire);
    // relaxed: the ring pointer is written only by this thread.
    ring* r = ring_.load(Sync::relaxed);
    if (b - t > r->capacity - 1) r = grow(r, b, t);  // D2: write into the ring grow returned
    r->put(b, x);
    // release: pairs with the acquire load of bottom in steal (I3, D1).
    bottom_.store(b + 1, Sync::release);
  }

  // Owner: pop at the bottom (LIFO). Returns false when empty.
  bool pop(T& out) noexcept {
    // relaxed: bottom and ring are written only by this thread.
    const std::int64_t b = bottom_.load(Sync::relaxed) - 1;
    ring* r = ring_.load(Sync::relaxed);
    // release (D1/I3): a thief that reads this value still sees the elements below it.
    bottom_.store(b, Sync::release);
    // seq_cst: orders the bottom store above before the top load below (store->load); pairs
    // with the seq_cst fence in steal between its top and bottom loads, so the owner and a
    // thief cannot both miss each other's claim on the last element (I2).
    Sync::fence(Sync::seq_cst);
    // Test hook (no code unless the policy has one): widens the window between the fence
    // and the load of top, where a thief's CAS can slip in.
    sync_hook<Sync>(sync_point::pop_after_fence);
    // relaxed: ordered by the fence above.
    std::int64_t t = top_.load(Sync::relaxed);
    if (t > b) {  // empty: restore
      bottom_.store(b + 1, Sync::release);  // release: I3
      return false;
    }
    out = r->get(b);
    if (t < b) return true;  // more than one element: no thief can reach index b (I2)
    // Last element: race the thieves for it.
    // seq_cst on success: pairs with the thieves' seq_cst CAS on top (total order on top);
    // relaxed on failure: we take nothing and only restore bottom.
    const bool won = top_.compare_exchange_strong(t, t + 1, Sync::seq_cst, Sync::relaxed);
    bottom_.store(b + 1, Sync::release);  // release: I3
    return won;
  }

  // Any thread: steal at the top (FIFO).
  steal_result steal(T& out) noexcept {
    return steal_unless(out, [](const T&) noexcept { return false; });
  }

  // Any thread: steal at the top unless reject(element) holds for the element there, in
  // which case nothing is taken and the result is `empty`. reject sees the element's value
  // only (it must not dereference it: until the CAS succeeds the element may be taken and
  // consumed by another thread).
  template <class Reject>
  steal_result steal_unless(T& out, Reject reject) noexcept {
    // acquire: pairs with the CAS on top by other thieves/the owner, so the slot we read
    // below is not one they have already consumed and the owner refilled.
    std::int64_t t = top_.load(Sync::acquire);
    // seq_cst: pairs with the seq_cst fence in pop (I2): we either see the owner's
    // decremented bottom or the owner sees our incremented top.
    Sync::fence(Sync::seq_cst);
    // acquire: pairs with the release stores of bottom in push/pop (I3).
    const std::int64_t b = bottom_.load(Sync::acquire);
    if (t >= b) return steal_result::empty;
    // acquire (D4): pairs with the release store of a grown ring in grow, so its copied
    // slots are visible.
    ring* r = ring_.load(Sync::acquire);
    const T x = r->get(t);
    if (reject(x)) return steal_result::empty;
    // Test hook (no code unless the policy has one): widens the window between reading the
    // slot and claiming it, where the owner's pop or another thief can take it first.
    sync_hook<Sync>(sync_point::before_steal_cas);
    // seq_cst: the single total order on top that I1/I2 rely on, shared with pop's CAS.
    // relaxed on failure: we return without using anything we read.
    if (!top_.compare_exchange_strong(t, t + 1, Sync::seq_cst, Sync::relaxed)) return steal_result::lost_race;
    out = x;
    return steal_result::success;
  }

  ring* grow(ring* old, std::int64_t b, std::int64_t t) {
    // Test hook (no code unless the policy has one): may throw std::bad_alloc, like the
    // allocation below, before anything is changed.
    sync_hook<Sync>(sync_point::deque_grow);
    ring* bigger = new ring(old->capacity * 2);
    for (std::int64_t i = t; i < b; ++i) bigger->put(i, old->get(i));
    old->retired_prev = retired_;  // D3: thieves may still read `old`
    retired_ = old;
    // release: pairs with the acquire load of the ring in steal, publishing the copies.
    ring_.store(bigger, Sync::release);
    return bigger;
  }

  // top: CAS'd by thieves and by the owner on the last element (I1).
  alignas(destructive_interference) atomic<std::int64_t> top_{0};
  // bottom and ring: written by the owner only, read by thieves.
  alignas(destructive_interference) atomic<std::int64_t> bottom_{0};
  atomic<ring*> ring_{nullptr};
  ring* retired_ = nullptr;  // owner only (D3)
  char pad_[destructive_interference - sizeof(std::int64_t) - 2 * sizeof(void*)];
};

// The owner's end: push and pop. Exactly one per deque, used by one thread at a time.
template <class T, class Sync = std_sync>
class deque_owner {
 public:
  deque_owner() = default;
  explicit deque_owner(chase_lev_deque<T, Sync>& q) noexcept : q_(&q) {}
  deque_owner(const deque_owner&) = delete;
  deque_owner& operator=(const deque_owner&) = delete;
  deque_owner(deque_owner&& o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
  deque_owner& operator=(deque_owner&& o) noexcept {
    q_ = std::exchange(o.q_, nullptr);
    return *this;
  }

  void push(T x) { q_->push(x); }
  bool pop(T& out) noexcept { return q_->pop(out); }
  // The index the next push will use. Elements at or above an index taken earlier were
  // pushed after that point (an isolated wait pops only those, runtime/core/isolation.cpp).
  std::int64_t mark() const noexcept { return q_->bottom_index(); }
  // pop, but only an element at index >= floor; false (and no change) otherwise.
  bool pop_above(std::int64_t floor, T& out) noexcept { return q_->bottom_index() > floor && q_->pop(out); }
  // The index of the oldest element not yet stolen (possibly stale; see top_index).
  std::int64_t top_index() const noexcept { return q_->top_index(); }
  std::int64_t size_approx() const noexcept { return q_->size_approx(); }

 private:
  chase_lev_deque<T, Sync>* q_ = nullptr;
};

// A thief's end: steal only. Copyable; any number of threads.
template <class T, class Sync = std_sync>
class deque_stealer {
 public:
  deque_stealer() = default;
  explicit deque_stealer(chase_lev_deque<T, Sync>& q) noexcept : q_(&q) {}

  steal_result steal(T& out) noexcept { return q_->steal(out); }
  template <class Reject>
  steal_result steal_unless(T& out, Reject reject) noexcept {
    return q_->steal_unless(out, reject);
  }
  std::int64_t size_approx() const noexcept { return q_->size_approx(); }

 private:
  chase_lev_deque<T, Sync>* q_ = nullptr;
};

}  // namespace weft::detail
