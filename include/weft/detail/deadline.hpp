// weft/detail/deadline.hpp: turning any duration or time point into a steady_clock deadline
// without overflow.
//
// `now + d` overflows (undefined behaviour, in practice a deadline in the past) as soon as
// d is more than ~292 years of nanoseconds from now: duration::max(), years(1000),
// system_clock::time_point::max() all did, so "wait for ever" timed out at once. These
// helpers saturate instead:
//   - a limit beyond what steady_clock can represent means "no limit":
//     steady_clock::time_point::max(), which every weft wait treats as "never";
//   - a zero or negative duration, or a time point that has passed, is a deadline that
//     has already expired (now, or the time point itself);
//   - a NaN floating-point limit counts as "no limit" (it compares neither less nor more).
// The comparison is done in long double seconds, whose 64-bit mantissa holds every
// steady_clock count exactly; integer durations that fit are then converted exactly.
#pragma once

#include <chrono>
#include <type_traits>

namespace weft::detail {

// now + d, saturated (see above).
template <class Rep, class Period>
std::chrono::steady_clock::time_point saturating_deadline(std::chrono::steady_clock::time_point now,
                                                          std::chrono::duration<Rep, Period> d) noexcept {
  using steady = std::chrono::steady_clock;
  using seconds_ld = std::chrono::duration<long double>;
  const long double want = std::chrono::duration_cast<seconds_ld>(d).count();
  if (want <= 0) return now;  // false for NaN
  // A margin of one second keeps the exact conversion below clear of the edge, where the
  // long double comparison could round the wrong way; a limit that far out is "never" anyway.
  const long double room = std::chrono::duration_cast<seconds_ld>(steady::time_point::max() - now).count() - 1.0L;
  if (!(want < room)) return steady::time_point::max();  // also NaN
  if constexpr (std::is_floating_point_v<Rep>) {
    return now + std::chrono::duration_cast<steady::duration>(seconds_ld(want));
  } else {
    return now + std::chrono::duration_cast<steady::duration>(d);  // fits: checked above
  }
}

// The steady_clock deadline for a time point of any clock, saturated (see above).
template <class Clock, class Duration>
std::chrono::steady_clock::time_point steady_deadline(std::chrono::time_point<Clock, Duration> t) noexcept {
  using steady = std::chrono::steady_clock;
  using seconds_ld = std::chrono::duration<long double>;
  if constexpr (std::is_same_v<Clock, steady> && std::is_same_v<Duration, steady::duration>) {
    return t;  // already one: no arithmetic, exact
  } else if constexpr (std::is_same_v<Clock, steady>) {
    // Same clock, another unit: measured from the clock's epoch (a time point before the
    // epoch is long past).
    return saturating_deadline(steady::time_point{}, t.time_since_epoch());
  } else {
    // Another clock: the distance from that clock's now, in long double seconds (no
    // overflow for any count), then from steady_clock's now. The two readings of "now" are
    // a few nanoseconds apart, as with any conversion between clocks.
    const seconds_ld left = std::chrono::duration_cast<seconds_ld>(t.time_since_epoch()) -
                            std::chrono::duration_cast<seconds_ld>(Clock::now().time_since_epoch());
    return saturating_deadline(steady::now(), left);
  }
}

}  // namespace weft::detail
