// tests/model/relacy_sync.hpp: a Sync policy and a sleep-protocol Platform over Relacy.
//
// The shipped lock-free code (runtime/core/deque.hpp, runtime/core/sleep.hpp) is written against a
// policy (weft/detail/sync.hpp). Production instantiates it with std_sync / std_platform; the
// model checks instantiate the very same templates with the policies below, so Relacy
// explores the code that ships, not a copy of it.
//
//   rl_sync      atomics: a thin wrapper over rl::atomic<T> that forwards each call with its
//                memory order and the *caller's* file and line (a defaulted argument), so
//                Relacy's traces point into deque.hpp / sleep.hpp. Fences: rl::atomic_thread_fence.
//                Arrays: plain new[]/delete[]; Relacy replaces the global operator new/delete
//                while a simulation runs, so these allocations are still tracked (leaks,
//                double frees, use after free of the slot atomics).
//   rl_platform  rl_sync plus `mutex` (over rl::mutex) and `parker`, a one-token binary
//                semaphore built exactly like runtime/platform/platform.hpp's futex_parker: an atomic
//                token exchanged with acquire, stored with release, and Relacy's futex model
//                for the blocking (FUTEX_WAIT / FUTEX_WAKE, spurious wake-ups allowed).
//
// Deliberately broken variants (for the WILL_FAIL tests, which prove the checks can fail):
//   weakening::no_seq_cst_fence   fence(seq_cst) does nothing;
//   weakening::release_as_relaxed the `release` order constant is relaxed.
//
// Include this header before any other header of the test: relacy.hpp defines macros for
// `new`, `delete`, `malloc`, `memory_order_*` and the pthread API, which would break standard
// headers included after it. The keyword and std-name macros are removed again below so that
// the shipped headers compile unchanged.
#pragma once

// Standard headers first: relacy.hpp's macros would break them (the include guards then keep
// later includes of the same headers from being re-read).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/sync.hpp"

// Relacy replaces the global operator new/delete with *inline* functions and has no sized
// operator delete. With sized deallocation on, an optimised build sends `delete` to
// libstdc++'s sized operator, which frees Relacy's blocks with ::free and aborts. For the
// same reason a test must not let libstdc++'s compiled code free what inlined code allocated
// during a simulation (no std::ostringstream and the like inside the tests).
#if defined(__cpp_sized_deallocation)
#error "compile the model checks with -fno-sized-deallocation (see tests/model/CMakeLists.txt)"
#endif
#include <relacy/relacy.hpp>  // a system header (-isystem): its own warnings stay out of ours

#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef assert
#undef memory_order_relaxed
#undef memory_order_consume
#undef memory_order_acquire
#undef memory_order_release
#undef memory_order_acq_rel
#undef memory_order_seq_cst

namespace weft::model {

enum class weakening { none, no_seq_cst_fence, release_as_relaxed };

// The file and line of a call: as a defaulted parameter, it is built at the call site.
// (std::source_location would do, but clang 14 with libstdc++ 12 lacks it; GCC and clang
// both evaluate __builtin_FILE/__builtin_LINE in a default argument where it is used.)
struct call_site {
  constexpr call_site(const char* f = __builtin_FILE(), unsigned l = __builtin_LINE()) noexcept : file(f), line(l) {}
  const char* file;
  unsigned line;
};

// Relacy's debug info for the code that called the wrapper (deque.hpp, sleep.hpp).
inline rl::debug_info caller(call_site at) noexcept { return rl::debug_info("", at.file, at.line); }

// std::atomic's interface as the shipped code uses it, over rl::atomic.
template <class T>
class rl_atomic {
  using here = call_site;
  using add_type = typename rl::atomic_add_type<T>::type;

 public:
  // Like std::atomic<T> in C++20: the default constructor value-initialises.
  rl_atomic(here loc = {}) { a_.store(T{}, rl::mo_relaxed, caller(loc)); }
  rl_atomic(T v, here loc = {}) { a_.store(v, rl::mo_relaxed, caller(loc)); }
  rl_atomic(const rl_atomic&) = delete;
  rl_atomic& operator=(const rl_atomic&) = delete;

  T load(rl::memory_order mo, here loc = {}) const { return a_.load(mo, caller(loc)); }
  void store(T v, rl::memory_order mo, here loc = {}) { a_.store(v, mo, caller(loc)); }
  T exchange(T v, rl::memory_order mo, here loc = {}) { return a_.exchange(v, mo, caller(loc)); }
  bool compare_exchange_strong(T& expected, T desired, rl::memory_order success, rl::memory_order failure,
                               here loc = {}) {
    const rl::debug_info info = caller(loc);
    return a_.compare_exchange_strong(expected, desired, success, info, failure, info);
  }
  bool compare_exchange_strong(T& expected, T desired, rl::memory_order mo, here loc = {}) {
    return a_.compare_exchange_strong(expected, desired, mo, caller(loc));
  }
  T fetch_add(add_type v, rl::memory_order mo, here loc = {}) { return a_.fetch_add(v, mo, caller(loc)); }
  T fetch_sub(add_type v, rl::memory_order mo, here loc = {}) { return a_.fetch_sub(v, mo, caller(loc)); }

 private:
  rl::atomic<T> a_;
};

template <weakening W = weakening::none>
struct basic_rl_sync {
  template <class T>
  using atomic = rl_atomic<T>;
  using order = rl::memory_order;

  static constexpr order relaxed = rl::mo_relaxed;
  static constexpr order acquire = rl::mo_acquire;
  static constexpr order release = W == weakening::release_as_relaxed ? rl::mo_relaxed : rl::mo_release;
  static constexpr order acq_rel = rl::mo_acq_rel;
  static constexpr order seq_cst = rl::mo_seq_cst;

  static void fence(order mo, call_site loc = {}) {
    if (mo == rl::mo_relaxed) return;  // std::atomic_thread_fence(relaxed) has no effect
    if (W == weakening::no_seq_cst_fence && mo == rl::mo_seq_cst) return;
    rl::atomic_thread_fence(mo, caller(loc));
  }

  template <class T>
  static T* alloc_array(std::size_t n) {
    return new T[n]();  // tracked: Relacy's global operator new[] while simulating
  }
  template <class T>
  static void free_array(T* p, std::size_t) noexcept {
    delete[] p;
  }
};

using rl_sync = basic_rl_sync<>;

// std::mutex's interface (for std::lock_guard) over rl::mutex.
class rl_mutex {
 public:
  void lock() { m_.lock($); }
  void unlock() { m_.unlock($); }

 private:
  rl::mutex m_;
};

// runtime/platform/platform.hpp's futex_parker, with Relacy's futex model underneath.
class rl_parker {
 public:
  void park() {
    // acquire: pairs with the release store in unpark (as in futex_parker).
    while (token_.exchange(0, rl::mo_acquire, $) == 0) {
      rl::rl_futex(&token_, rl::RL_FUTEX_WAIT, 0, nullptr, nullptr, 0, $);
    }
  }
  void unpark() {
    // release: pairs with the acquire exchange in park.
    token_.store(1, rl::mo_release, $);
    rl::rl_futex(&token_, rl::RL_FUTEX_WAKE, 1, nullptr, nullptr, 0, $);
  }

 private:
  rl::atomic<int> token_{0};
};

template <weakening W = weakening::none>
struct basic_rl_platform : basic_rl_sync<W> {
  using mutex = rl_mutex;
  using parker = rl_parker;
};

using rl_platform = basic_rl_platform<>;

}  // namespace weft::model
