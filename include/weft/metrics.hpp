// weft/metrics.hpp: a snapshot of a pool's counters.
//
// Counters are kept per worker by their owner thread (no shared cache line is written per
// task) and summed when a snapshot is taken, so a snapshot taken while tasks run is
// approximate: each field is exact for some instant, not all fields for the same one.
#pragma once

#include <cstdint>

namespace weft {

struct metrics {
  unsigned workers = 0;
  std::uint64_t queued = 0;     // waiting in the injection queue and the workers' deques
  std::uint64_t running = 0;    // tasks being executed right now (nested help counts once per level)
  std::uint64_t completed = 0;  // tasks that returned normally
  std::uint64_t failed = 0;     // tasks that ended with an exception (delivered to a future or the handler)
  std::uint64_t cancelled = 0;  // tasks that completed as cancelled without running (counted when
                                // the cancellation is delivered, also while the task's queue
                                // entry still waits to be popped: it is no longer `queued` then)
  std::uint64_t rejected = 0;   // submissions refused (closed pool, full queue, out of memory)
  std::uint64_t discarded = 0;  // queued tasks dropped for newer ones (full_policy::discard_oldest);
                                // also counted in `cancelled`
  std::uint64_t steals = 0;     // tasks taken from another worker's deque
  std::uint64_t parks = 0;      // times a worker went to sleep

  // Distributions over a sample of completed tasks (pool_options::latency_sample_every,
  // default one in 64 per submitting thread):
  // time from submission to start, and from start to end. Nanoseconds.
  struct distribution {
    std::uint64_t samples = 0;
    std::uint64_t p50 = 0, p99 = 0, max = 0;
  };
  distribution queue_wait;
  distribution run_time;

  // Threads (burst scaling, options.hpp; a fixed pool has threads == peak_threads == workers
  // and never grows or retires). `workers` above is the slot count (max_workers).
  unsigned threads = 0;        // worker threads attached now
  unsigned peak_threads = 0;   // the most attached at once
  std::uint64_t grown = 0;     // threads started beyond the initial min_workers
  std::uint64_t retired = 0;   // threads that retired after keep_alive idle
};

}  // namespace weft
