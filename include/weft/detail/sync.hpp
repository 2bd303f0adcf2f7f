// weft/detail/sync.hpp: the atomics policy the lock-free structures are written against.
//
// The Chase-Lev deque and the sleep protocol are templates over a `Sync` policy so that
// the code that ships (std_sync, std::atomic) is the code the Relacy model checks
// (tests/model supplies a policy over rl::atomic). There is no second copy of either
// algorithm. A policy provides:
//   template <class T> using atomic = ...;   // load/store/exchange/compare_exchange_strong/fetch_add/fetch_sub
//   static void fence(order);                // std::atomic_thread_fence equivalent
//   static constexpr order relaxed, acquire, release, acq_rel, seq_cst;
//   template <class T> static T* alloc_array(std::size_t n);   // default-constructed atomics
//   template <class T> static void free_array(T*, std::size_t n);
// and optionally
//   static void hook(sync_point);            // test hook, see sync_hook below
#pragma once

#include <atomic>
#include <cstddef>

namespace weft::detail {

struct std_sync {
  template <class T>
  using atomic = std::atomic<T>;
  using order = std::memory_order;

  static constexpr order relaxed = std::memory_order_relaxed;
  static constexpr order acquire = std::memory_order_acquire;
  static constexpr order release = std::memory_order_release;
  static constexpr order acq_rel = std::memory_order_acq_rel;
  static constexpr order seq_cst = std::memory_order_seq_cst;

  static void fence(order o) noexcept { std::atomic_thread_fence(o); }

  template <class T>
  static T* alloc_array(std::size_t n) {
    return new T[n]();
  }
  template <class T>
  static void free_array(T* p, std::size_t) noexcept {
    delete[] p;
  }
};

// Named points inside the lock-free structures where a policy may inject behaviour: a
// delay (widening a race window) or a failure. Used by the fault-injection build of the
// runtime (runtime/core/runtime_sync.hpp); every policy without a `hook` ignores them.
enum class sync_point : unsigned char {
  deque_grow,        // owner, before a full deque allocates a bigger ring; may throw std::bad_alloc
  before_steal_cas,  // thief, between reading the slot and its CAS on top; must not throw
  pop_after_fence,   // owner, between pop's seq_cst fence and its load of top; must not throw
};

template <class Sync>
concept has_sync_hook = requires(sync_point p) { Sync::hook(p); };

// Calls Sync::hook(p) if the policy has one; otherwise nothing (no code is generated), so
// std_sync and the model-checking policies need no change.
template <class Sync>
inline void sync_hook([[maybe_unused]] sync_point p) {
  if constexpr (has_sync_hook<Sync>) Sync::hook(p);
}

// 128 bytes: x86-64's adjacent-line prefetcher pulls 64-byte lines in pairs, so fields
// written by different threads are kept this far apart.
inline constexpr std::size_t destructive_interference = 128;

}  // namespace weft::detail
