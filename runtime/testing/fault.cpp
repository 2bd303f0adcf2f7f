// runtime/testing/fault.cpp: the fault-injection points of fault.hpp (weft_fault test library only).
//
// Settings are per point, in atomics that configure() writes and the hooks read relaxed: a
// hook that races with configure() may act on the old or the new setting, which is all a
// test can ask of a setting changed under load; nothing else is published through them.
// Probabilities are stored as thresholds in [0, 2^32] against a 32-bit draw, so 1.0 always
// fires and 0.0 never does (and a disabled point costs one load).
#ifndef WEFT_FAULT_INJECTION
#error "fault.cpp belongs to the weft_fault library, built with WEFT_FAULT_INJECTION"
#endif

#include "testing/fault.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace weft::detail::fault {
namespace {

constexpr std::uint64_t kAlways = std::uint64_t{1} << 32;
// Below this a delay spins (yielding) instead of sleeping: a sleep is never much shorter
// than the timer slack (~50us), which would turn every short delay into a long one.
constexpr std::uint64_t kSleepAboveNs = 50'000;

struct point_state {
  std::atomic<std::uint64_t> fail_threshold{0};
  std::atomic<std::uint64_t> delay_threshold{0};
  std::atomic<std::uint64_t> max_delay_ns{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> delays{0};
};

std::array<point_state, static_cast<std::size_t>(point::count_)> points;

// Generator seeding. seed()/reset() store the seed, restart the thread ordinals and then
// bump `epoch`; a thread that sees a new epoch reseeds from (seed, next ordinal).
std::atomic<std::uint64_t> seed_value{1};
std::atomic<std::uint64_t> next_ordinal{0};
std::atomic<std::uint64_t> epoch{1};

struct thread_rng {
  std::uint64_t state = 0;
  std::uint64_t epoch = 0;  // 0: never seeded
};
thread_local thread_rng rng;

std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A 32-bit draw from this thread's xorshift64* generator.
std::uint64_t draw() noexcept {
  // acquire: pairs with the release bump in restart(), so the seed and ordinal counter
  // written before it are the ones we read.
  const std::uint64_t e = epoch.load(std::memory_order_acquire);
  if (rng.epoch != e) {
    // relaxed both: ordered by the acquire load of epoch above; the ordinal only needs to
    // be unique, which the RMW guarantees.
    const std::uint64_t ordinal = next_ordinal.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t s = splitmix64(seed_value.load(std::memory_order_relaxed) ^ splitmix64(ordinal));
    rng.state = s != 0 ? s : 1;
    rng.epoch = e;
  }
  std::uint64_t& s = rng.state;
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return (s * 0x2545F4914F6CDD1DULL) >> 32;
}

std::uint64_t threshold(double probability) noexcept {
  if (!(probability > 0.0)) return 0;  // also NaN
  if (probability >= 1.0) return kAlways;
  return static_cast<std::uint64_t>(probability * static_cast<double>(kAlways));
}

point_state& at(point p) noexcept { return points[static_cast<std::size_t>(p)]; }

void restart(std::uint64_t s) noexcept {
  // relaxed both: published by the release bump of epoch below.
  seed_value.store(s, std::memory_order_relaxed);
  next_ordinal.store(0, std::memory_order_relaxed);
  // release: pairs with the acquire load in draw().
  epoch.fetch_add(1, std::memory_order_release);
}

void pause_for(std::uint64_t ns) noexcept {
  if (ns == 0) {
    std::this_thread::yield();
    return;
  }
  if (ns >= kSleepAboveNs) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
    return;
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
}

}  // namespace

bool should_fail(point p) noexcept {
  point_state& ps = at(p);
  // relaxed: a setting (see the top of the file).
  const std::uint64_t t = ps.fail_threshold.load(std::memory_order_relaxed);
  if (t == 0 || draw() >= t) return false;
  ps.failures.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  return true;
}

void maybe_delay(point p) noexcept {
  point_state& ps = at(p);
  // relaxed: a setting (see the top of the file).
  const std::uint64_t t = ps.delay_threshold.load(std::memory_order_relaxed);
  if (t == 0 || draw() >= t) return;
  // relaxed: a setting.
  const std::uint64_t max_ns = ps.max_delay_ns.load(std::memory_order_relaxed);
  const std::uint64_t ns = max_ns == 0 ? 0 : ((draw() << 32) | draw()) % (max_ns + 1);
  ps.delays.fetch_add(1, std::memory_order_relaxed);  // relaxed: a statistic
  pause_for(ns);
}

void configure(point p, double fail_probability, std::chrono::microseconds max_delay,
               double delay_probability) noexcept {
  point_state& ps = at(p);
  const auto max_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::max(max_delay, std::chrono::microseconds{0})).count();
  // relaxed all: settings (see the top of the file).
  ps.max_delay_ns.store(static_cast<std::uint64_t>(max_ns), std::memory_order_relaxed);
  ps.delay_threshold.store(threshold(delay_probability), std::memory_order_relaxed);
  ps.fail_threshold.store(threshold(fail_probability), std::memory_order_relaxed);
}

void seed(std::uint64_t s) noexcept { restart(s); }

void reset() noexcept {
  for (point_state& ps : points) {
    // relaxed all: settings and statistics (see the top of the file).
    ps.fail_threshold.store(0, std::memory_order_relaxed);
    ps.delay_threshold.store(0, std::memory_order_relaxed);
    ps.max_delay_ns.store(0, std::memory_order_relaxed);
    ps.failures.store(0, std::memory_order_relaxed);
    ps.delays.store(0, std::memory_order_relaxed);
  }
  restart(seed_value.load(std::memory_order_relaxed));  // relaxed: a setting
}

std::uint64_t injected_failures(point p) noexcept {
  return at(p).failures.load(std::memory_order_relaxed);  // relaxed: a statistic
}
std::uint64_t injected_delays(point p) noexcept {
  return at(p).delays.load(std::memory_order_relaxed);  // relaxed: a statistic
}

}  // namespace weft::detail::fault
