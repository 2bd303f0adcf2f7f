// weft/options.hpp: how a pool is configured.
//
// Every field has a usable default; `pool_options{}` gives a pool with one worker per
// usable core, pinned compactly. The pool validates the options in its constructor and
// throws std::invalid_argument whose message names the offending field:
//
// | field           | valid values                                  | meaning of the edge values                 |
// |-----------------|-----------------------------------------------|--------------------------------------------|
// | workers         | >= 0                                          | 0: one per usable core (see below)         |
// | pinning         | any pin_policy                                | explicit_list needs pus                    |
// | pus             | distinct PUs inside the allowed cpuset        | used only with pin_policy::explicit_list;  |
// |                 | (OS indices, as `taskset`/hwloc print them)   | worker i is pinned to pus[i % pus.size()]  |
// | name            | any; at most 10 characters are kept           | thread names are "<name>:<index>"          |
// | spin_rounds     | 0 .. 1'000'000                                | 0: park as soon as no work is found        |
// | deque_capacity  | power of two in [2, 2^20]                     | initial slots of each worker's deque       |
// |                 | (2^20: 8 MiB per worker, allocated up front)  | (it grows on demand beyond it)             |
// | latency_sample_every | any                                      | 0: no latency sampling                     |
// | capacity        | any                                           | 0: unbounded                               |
// | when_full       | any full_policy                               | also the default of every bounded lane     |
// | drain_timeout   | any; saturating                               | <= 0: the destructor drains nothing        |
// | lanes           | see weft/lanes.hpp (lane_config)              | empty: no lanes                            |
// | max_workers     | 0 .. 4096                                     | 0: `workers` (the slot count)              |
// | min_workers     | 0, or 1 .. max_workers                        | 0: = max (a fixed pool)                    |
// | keep_alive      | > 0, at most 24 h                             | idle time after which a thread above min   |
// |                 |                                               | retires (elastic pools only)               |
// | metrics_sink    | any                                           | empty: no sink, no thread                  |
// | metrics_interval| > 0 when metrics_sink is set; saturating      | duration::max(): only the final call       |
//
// Burst scaling. With 1 <= min_workers < max_workers the pool is elastic: it has
// max_workers worker *slots* (deques, pinning: slot i gets the plan's PU i) but starts only
// min_workers threads; it attaches a new thread to a free slot when work is published while
// every thread is busy (nobody searching, nobody parked), one at a time, and a thread that
// stayed parked for keep_alive retires while more than min_workers remain. `workers` alone
// (min and max 0) keeps the fixed pool: min = max = workers. Setting both `workers` and
// `max_workers` to different non-zero values is an error (naming `max_workers`).
//
// "Usable cores" is the number of cores in the process's allowed cpuset (taskset, cgroup
// cpuset, an MPI launcher's binding), further capped by a cgroup v2 CPU quota (cpu.max),
// rounded up, and never less than 1. Where hwloc cannot describe the machine it falls
// back to std::thread::hardware_concurrency().
//
// The environment variables WEFT_WORKERS and WEFT_PIN (none|compact|scatter) override
// `workers` and `pinning` when `read_environment` is true (see pool.hpp); WEFT_TRACE=path
// then sets `trace_path`.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "weft/full_policy.hpp"
#include "weft/observer.hpp"
#include "weft/lanes.hpp"
#include "weft/metrics.hpp"

namespace weft {

enum class pin_policy {
  none,           // workers float; the OS places them
  compact,        // one worker per core, filling cores in topology order before SMT siblings
  scatter,        // spread round-robin across packages, then L3 groups, then cores
  explicit_list,  // worker i on pus[i % pus.size()]
};

// full_policy (reject, block, caller_runs, discard_oldest): weft/full_policy.hpp.

// Name of a policy as used by WEFT_PIN and weft-topo ("none", "compact", ...).
std::string_view to_string(pin_policy p) noexcept;
// Parses a policy name; throws std::invalid_argument naming `option` on anything else.
pin_policy parse_pin_policy(std::string_view text, std::string_view option = "pinning");

struct pool_options {
  int workers = 0;
  pin_policy pinning = pin_policy::compact;
  std::vector<unsigned> pus{};
  std::string name = "weft";
  unsigned spin_rounds = 64;
  std::size_t deque_capacity = 256;
  // Where the pool reports things once (pinning unavailable, a task's exception that had
  // nowhere else to go). Default: a line on stderr. Called from any thread; must not throw.
  std::function<void(std::string_view)> logger{};
  // Receives the exception of a fire-and-forget task (post). Default: the logger.
  std::function<void(std::exception_ptr)> on_task_exception{};
  // One in this many submissions (per submitting thread) is timed for the queue-wait and
  // run-time distributions of metrics; 0 turns the sampling off. The cost at 64 is below
  // measurement noise on fib(30) (BENCHMARKS.md).
  unsigned latency_sample_every = 64;
  // Read WEFT_WORKERS / WEFT_PIN from the environment (they override the fields above).
  bool read_environment = false;
  // The pool's base token: when it fires, every running task's stop token fires and every
  // task that has not started completes as cancelled (like stop_now, but the pool stays
  // open: later submissions are cancelled as they come).
  std::stop_token stop_token{};

  // ---- bounded submission (see pool.hpp, "Capacity") ----
  // At most this many tasks submitted from outside the pool wait in its injection queue at
  // once; 0: unbounded. Tasks spawned by running tasks (post from a worker, task_group
  // children) are never counted and never refused, so a task cannot deadlock its own pool
  // by submitting.
  std::size_t capacity = 0;
  // What post/submit do when the queue is at capacity (try_post/try_submit always report
  // submit_status::full instead).
  full_policy when_full = full_policy::reject;

  // ---- observation (observer.hpp): all free when unset ----
  std::function<void(unsigned worker, int pu)> on_thread_start{};  // pu: -1 when unpinned
  std::function<void(unsigned worker)> on_thread_stop{};
  task_wrapper wrap_tasks{};                       // called around every task a worker runs
  std::shared_ptr<observer> task_observer{};       // on_submit / on_start / on_finish
  std::string trace_path{};                        // write a Chrome/Perfetto trace here at close

  // ---- the destructor ----
  // How long ~pool drains before it stops: after this, still-queued tasks complete as
  // cancelled and running tasks' tokens fire, then the workers are joined (close(deadline)
  // followed by close()). duration::max() (the default): drain everything.
  std::chrono::steady_clock::duration drain_timeout = std::chrono::steady_clock::duration::max();

  // Priority lanes (weft/lanes.hpp). Empty (the default): none, and no cost.
  std::vector<lane_config> lanes{};

  // Burst scaling (see above): threads between min_workers and max_workers; 0: fixed.
  int min_workers = 0;
  int max_workers = 0;
  std::chrono::nanoseconds keep_alive = std::chrono::seconds(10);

  // ---- periodic metrics (runtime/layers/metrics_sink.hpp) ----
  // When set, the pool calls metrics_sink(stats()) every metrics_interval (the first call one
  // interval after construction), and once more with the final snapshot when it closes:
  // after the drain, so completed/failed/cancelled are final, before close(), stop_now(), a
  // close(deadline) that returns true, or the destructor returns. Never after ~pool returns.
  // All calls come from one thread of the pool's own ("<name>:sink"): never two at once,
  // never on a worker, so a slow sink delays only itself; ticks it overruns are skipped,
  // not queued. close() and ~pool do not wait for the next tick. An exception thrown by the
  // sink goes to on_task_exception (or the logger when that is unset) and later ticks still
  // happen. The sink may call this pool's stats() or close(); destroying the pool from inside
  // it terminates. In a child process, a pool created before fork() never calls its sink.
  std::function<void(const metrics&)> metrics_sink{};
  std::chrono::steady_clock::duration metrics_interval = std::chrono::seconds(1);
};

}  // namespace weft
