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
  //
  // How exact each field is. The samples go into a log-linear histogram: values below 8 ns
  // have a bucket each; above, each power of two [2^e, 2^(e+1)) is split into 8 equal
  // buckets of width 2^(e-3), so bucket bounds are 2^e + k * 2^(e-3), k = 0..7 (for example
  // ... 2.62, 2.88, 3.15, 3.41 ... ms around 2^21 ns = 2.10 ms), and a bucket spans at most
  // 12.5% of its lower bound.
  //   p50, p99  the LOWER bound of the bucket that holds that quantile (capped at max), not a
  //             sample: it can be below every sample. Every task taking 3.07..3.14 ms gives
  //             p50 == p99 == 2'883'584 (2.88 ms). Read a quantile as "in [p, p * 1.125)".
  //   max       the largest sample, exact.
  //   mean      the sum of the samples divided by their count (integer division), exact over
  //             the `samples` counted, not a bucket estimate: min sample <= mean <= max.
  //             0 when samples == 0.
  //   samples   how many tasks were timed (not how many ran).
  // A snapshot taken while tasks run may see a sample in the counts and not yet in the sum
  // (see the top of the file); the mean is then clamped to max. After close() (or with no
  // task running) every field is exact over the same samples.
  struct distribution {
    std::uint64_t samples = 0;
    std::uint64_t p50 = 0, p99 = 0, max = 0;
    std::uint64_t mean = 0;
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
