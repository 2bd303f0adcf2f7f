// weft/keyed_options.hpp: how a keyed serializer (weft/keyed.hpp) is configured, what it
// reports, and its statuses.
//
// | field      | valid values                  | meaning of the edge values                              |
// |------------|-------------------------------|---------------------------------------------------------|
// | batch      | 1 .. 2^20                     | jobs one drain turn runs before it re-queues itself     |
// | batch_time | >= 0                          | 0: no time bound; else a turn also ends once it has run |
// |            |                               | this long (checked after each job)                      |
// | capacity   | any                           | 0: unbounded; else queued jobs per key (not counting    |
// |            |                               | the one running)                                        |
// | when_full  | reject, block, discard_oldest | what post/submit do when the key's queue is at capacity |
// |            | (not caller_runs)             | (weft/keyed.hpp, "A full key"); default reject          |
// | errors     | on_error::*                   | what a job's exception does to its key's queue          |
// | shards     | power of two in [1, 2^16]     | independent locks of the key map                        |
// The serializer's constructor throws std::invalid_argument naming the offending field.
// when_full does not inherit the pool's pool_options::when_full: a pool may run callers'
// tasks (caller_runs), which a key may not (it would run the job ahead of the key's queue).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "weft/full_policy.hpp"

namespace weft {

// What a job that throws does to the jobs queued behind it on its key. The exception itself
// always goes to the job's future (submit) or to the pool's on_task_exception (post).
enum class on_error {
  continue_key,      // the key's later jobs run as usual
  cancel_key_queue,  // the jobs queued for the key when it threw complete as cancelled;
                     // jobs submitted afterwards run normally
};

struct keyed_options {
  std::size_t batch = 32;
  std::chrono::nanoseconds batch_time = std::chrono::nanoseconds::zero();
  std::size_t capacity = 0;
  full_policy when_full = full_policy::reject;
  on_error errors = on_error::continue_key;
  std::size_t shards = 64;
};

// Result of keyed::try_post.
enum class keyed_status {
  ok,      // accepted: it will run or complete as cancelled
  full,    // the key already holds `capacity` queued jobs; the callable was destroyed
  closed,  // the serializer is stopped or its pool closed; the callable was destroyed
};

const char* to_string(keyed_status s) noexcept;

// A key at capacity: keyed::post/submit apply keyed_options::when_full (reject: they throw
// weft::queue_full, errors.hpp, whose message names keyed_options::capacity), try_post
// returns keyed_status::full.

// Counters of a keyed serializer. Every job accepted (submitted) ends exactly once, as ran
// (including failed) or cancelled; refused ones are only counted as rejected. Once the
// serializer is idle, submitted == ran + cancelled. A snapshot taken while jobs are in flight
// reads each counter at a slightly different moment.
struct keyed_stats {
  std::uint64_t submitted = 0;    // accepted by post/submit/try_post
  std::uint64_t ran = 0;          // started and returned or threw
  std::uint64_t failed = 0;       // of those, threw
  std::uint64_t cancelled = 0;    // accepted but never started (stop, their token, on_error,
                                  // discarded)
  std::uint64_t discarded = 0;    // of those, dropped for a newer job (full_policy::discard_oldest)
  std::uint64_t rejected = 0;     // refused: full, closed, or out of memory
  std::size_t active_keys = 0;    // keys with queued or running jobs now
};

}  // namespace weft
