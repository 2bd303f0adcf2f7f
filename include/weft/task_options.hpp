// weft/task_options.hpp: per-submission options: a stop token and a deadline.
//
//   pool.submit(f, {.stop_token = tok, .timeout = 50ms});
//
// | option      | before the task starts                        | while it runs                       |
// |-------------|-----------------------------------------------|-------------------------------------|
// | stop_token  | fires -> the task never runs; it completes as | the task's own std::stop_token (if  |
// |             | cancelled (future: task_cancelled) at once    | it takes one) reports stop          |
// | deadline /  | passes -> the same                            | the task's std::stop_token reports  |
// | timeout     |                                               | stop; the task decides what to do   |
// A task that takes a std::stop_token receives one that fires when any of these fire: this
// submission's stop_token, its deadline, the pool's base token (pool_options::stop_token),
// the pool's stop_now() or close() deadline.
//
// Edge values: a deadline already past, or a negative timeout, has expired: the task never
// runs, and its cancellation is delivered (future ready, on_done called) before submit/post
// returns, counted in metrics::cancelled. A timeout too long for steady_clock
// (duration::max()) means no limit. A deadline that passes while the task is queued cancels
// it at the latest when a worker would start it.
//
// Deadlines cost one registration in the pool's timer (a single thread per pool, started on
// first use, sleeping until the earliest deadline: no thread per deadline, no polling).
#pragma once

#include <chrono>
#include <stop_token>

#include "weft/lanes.hpp"

namespace weft {

struct task_options {
  std::stop_token stop_token{};
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Relative alternative to deadline (zero: none; negative: already expired; saturating, so
  // duration::max() is none too). When both are set the earlier one counts.
  std::chrono::steady_clock::duration timeout = std::chrono::steady_clock::duration::zero();
  // The priority lane (weft/lanes.hpp), by index or name; none: the default path.
  weft::lane lane{};
};

}  // namespace weft
