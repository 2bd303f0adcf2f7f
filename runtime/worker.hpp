// runtime/worker.hpp: one worker thread: its deque, its search for work, its counters.
//
// Stealing protocol (see weft/detail/deque.hpp for the deque's own invariants):
//   - The owner pops its deque LIFO; thieves steal FIFO from the top.
//   - Every kInjectorInterval tasks the owner polls the injection queue before its own
//     deque, so external submissions are never starved by a spawn-heavy worker.
//   - A searching worker tries victims bucket by bucket, nearest first (same core, L3,
//     NUMA node, package, rest), starting at a random victim in each bucket.
//   - Having stolen one task from a victim whose deque is long, it steals up to half of the
//     rest (at most kStealBatch) into its own deque, one CAS each, as long as they are
//     siblings of the first (same group, see steal_more); a spawner's deque is then
//     drained by few round-trips instead of one per task.
//   - A lost race (steal_result::lost_race) means work exists: the sweep is retried rather
//     than counted as empty.
//   - Isolated search (a worker waiting on a group): only tasks of the group's subtree are
//     run; any other task it pops or steals is handed to the injection queue, so it stays
//     runnable by every other worker and nothing is lost.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "latency.hpp"
#include "runtime_sync.hpp"
#include "weft/detail/deque.hpp"
#include "weft/detail/task.hpp"

namespace weft::detail {

class pool_impl;
struct group_context;

class worker {
 public:
  static constexpr unsigned kInjectorInterval = 61;
  static constexpr unsigned kInjectorBatch = 16;
  static constexpr std::int64_t kStealBatch = 32;

  worker(pool_impl& pool, unsigned index, std::optional<unsigned> pu, std::vector<std::vector<unsigned>> victims);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  void start();
  void join();
  // In a child process after fork(): the thread does not exist here. Destroys what is
  // queued and keeps the thread handle alive forever instead of joining it.
  void abandon() noexcept;

  // ---- owner thread only ----
  // Pushes onto the own deque and wakes a sleeper if nobody searches. Throws bad_alloc if
  // the deque cannot grow (the task is not queued then).
  void spawn(task* t);
  // Finds a task: own deque, injection queue, then stealing (as a searcher, for up to
  // spin_rounds sweeps). nullptr: nothing found; the caller parks.
  task* find_work() noexcept;
  // Finds a task of `group`'s subtree (isolated waiting); see the protocol above. Own-deque
  // tasks are taken only at or above index `floor` (where the group was created).
  task* find_isolated(const group_context& group, std::int64_t floor) noexcept;
  // The own deque's next push index (see deque_owner::mark).
  std::int64_t mark() const noexcept { return owner_.mark(); }
  // The isolation of the innermost wait this thread is inside: the group and own-deque
  // floor of a task_group wait, or none (no wait, or a future's wait, which runs anything).
  struct isolation {
    const group_context* group = nullptr;
    std::int64_t floor = 0;
  };
  isolation current_isolation() const noexcept { return isolation_; }
  isolation exchange_isolation(isolation next) noexcept {
    // relaxed: read by other threads only to aim a wake-up (pool_impl::reinject); a stale
    // value costs a wasted or a missed wake, which the escape hatch's recheck round covers.
    published_isolation_.store(next.group, std::memory_order_relaxed);
    return std::exchange(isolation_, next);
  }
  // Any thread: the group this worker's innermost isolated wait is on, or nullptr. Only to
  // be compared against, never dereferenced: the wait may end and the group die any time.
  const group_context* published_isolation() const noexcept {
    return published_isolation_.load(std::memory_order_relaxed);  // relaxed: see above
  }
  // Runs (or, when the pool is stopping, cancels) and frees a task, and counts it.
  void execute(task* t) noexcept;

  enum class park_result { woken, terminating, relax };
  // Parks until woken. `ready`, when given, is re-checked after enlisting (a wait), and
  // `deadline` bounds the sleep. `relax`: every worker is blocked in a wait while work is
  // queued; the caller should run queued work regardless of isolation.
  park_result park(bool (*ready)(const void*) noexcept, const void* ctx, std::chrono::steady_clock::time_point deadline);

  // ---- any thread ----
  pool_impl& owner_pool() const noexcept { return pool_; }
  unsigned index() const noexcept { return index_; }
  std::int64_t queued() const noexcept { return deque_.size_approx(); }
  steal_result steal(task*& out) noexcept { return stealer_.steal(out); }

  struct counters {
    std::uint64_t completed, failed, cancelled, steals, parks, running;
  };
  counters read_counters() const noexcept;
  void add_latencies(latency_histogram::counts& wait, std::uint64_t& wait_max, latency_histogram::counts& run,
                     std::uint64_t& run_max) const noexcept;

 private:
  void run() noexcept;
  task* search() noexcept;  // the stealing phase of find_work, as a searcher
  task* isolated_search(const group_context& group, std::int64_t floor) noexcept;
  task* stop_searching(task* t) noexcept;
  park_result confirm_stall(bool (*ready)(const void*) noexcept, const void* ctx,
                            std::chrono::steady_clock::time_point deadline);
  task* from_injector() noexcept;
  task* steal_sweep() noexcept;
  void steal_more(worker& victim, const task* first) noexcept;
  void push_or_run(task* t) noexcept;
  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    // Owner-only counters: a plain load+store (no locked RMW); readers tolerate staleness.
    // relaxed both: nothing is published through a counter.
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  pool_impl& pool_;
  const unsigned index_;
  const std::optional<unsigned> pu_;
  const std::vector<std::vector<unsigned>> victims_;  // buckets, nearest first

  // runtime_sync: std_sync plus the fault-injection hooks (empty outside the test build).
  chase_lev_deque<task*, runtime_sync> deque_;
  deque_owner<task*, runtime_sync> owner_;
  deque_stealer<task*, runtime_sync> stealer_;
  moodycamel::ConsumerToken consumer_;

  // Owner-thread state.
  bool searching_ = false;
  unsigned tick_ = 0;
  unsigned depth_ = 0;  // nesting of execute() (help-while-waiting)
  isolation isolation_;
  std::uint64_t rng_;

  // Written by the owner, read by stats() (relaxed).
  alignas(destructive_interference) std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> steals_{0};
  std::atomic<std::uint64_t> parks_{0};
  std::atomic<std::uint64_t> running_{0};
  std::atomic<const group_context*> published_isolation_{nullptr};
  latency_histogram queue_wait_;
  latency_histogram run_time_;

  std::thread thread_;
};

// The worker the calling thread is, or nullptr. The variable is visible here so that the
// submission path reads it without a call (it is per-task hot).
extern constinit thread_local worker* tls_worker;
worker* current_worker() noexcept;

// Nanoseconds on the steady clock (latency stamps).
std::uint64_t now_ns() noexcept;

}  // namespace weft::detail
