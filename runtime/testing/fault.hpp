// runtime/testing/fault.hpp: fault-injection points for tests, compiled out unless the library is
// built with WEFT_FAULT_INJECTION. Only the `weft_fault` test library (runtime/CMakeLists.txt,
// built with the tests) defines it; in `weft` every hook is a constant the optimiser removes.
//
// Where the points are:
//   task_alloc        runtime/core/task_alloc.cpp, allocate_task
//   deque_grow        runtime/core/deque.hpp, grow        (via runtime_sync.hpp's hook)
//   before_steal_cas  runtime/core/deque.hpp, steal       (via runtime_sync.hpp's hook)
//   pop_after_fence   runtime/core/deque.hpp, pop         (via runtime_sync.hpp's hook)
//   before_park       runtime/platform/platform.hpp, futex_parker::park
//
// Control (fault-injection builds only; fault.cpp). Every point starts disabled. configure()
// may be called at any time from any thread; a thread that is inside a hook at that moment
// may still act on the previous settings. Each thread draws from its own xorshift generator,
// seeded from (seed, the order in which threads first reach a hook after seed()/reset()), so
// one thread's sequence of decisions is reproducible; the interleaving of threads is not.
#pragma once

#ifdef WEFT_FAULT_INJECTION
#include <chrono>
#include <cstdint>
#endif

namespace weft::detail::fault {

enum class point : unsigned {
  task_alloc,        // allocate_task throws std::bad_alloc
  deque_grow,        // growing a worker's deque throws std::bad_alloc
  before_steal_cas,  // a thief pauses between reading the slot and its CAS on top
  pop_after_fence,   // the owner pauses between pop's fence and its load of top
  before_park,       // a worker pauses just before it blocks
  count_
};

#ifdef WEFT_FAULT_INJECTION
// The hooks. should_fail: true with the point's fail_probability (and counts it).
// maybe_delay: with the point's delay_probability, pauses for a uniformly drawn time in
// [0, max_delay] (a yield when max_delay is 0; sleeping above ~50us, spinning with yields
// below) and counts it. Both are a single relaxed load when the point is disabled.
bool should_fail(point p) noexcept;
void maybe_delay(point p) noexcept;

// Sets a point's behaviour. Probabilities are clamped to [0, 1].
void configure(point p, double fail_probability, std::chrono::microseconds max_delay = std::chrono::microseconds{0},
               double delay_probability = 0.0) noexcept;
// Restarts every thread's generator from `s` (the default seed is 1).
void seed(std::uint64_t s) noexcept;
// Disables every point, zeroes the counters and restarts the generators from the seed.
void reset() noexcept;
// Injections made since the last reset().
std::uint64_t injected_failures(point p) noexcept;
std::uint64_t injected_delays(point p) noexcept;
#else
constexpr bool should_fail(point) noexcept { return false; }
inline void maybe_delay(point) noexcept {}
#endif

}  // namespace weft::detail::fault
