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

// 128 bytes: x86-64's adjacent-line prefetcher pulls 64-byte lines in pairs, so fields
// written by different threads are kept this far apart.
inline constexpr std::size_t destructive_interference = 128;

}  // namespace weft::detail
