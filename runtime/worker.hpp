// runtime/worker.hpp: one worker thread: its deque, its search for work, its counters.
//
// Stealing protocol (see weft/detail/deque.hpp for the deque's own invariants):
//   - The owner pops its deque LIFO; thieves steal FIFO from the top.
//   - Every kInjectorInterval tasks the owner polls the injection queue before its own
//     deque, so external submissions are never starved by a spawn-heavy worker.
//   - A searching worker tries victims bucket by bucket, nearest first (same core, L3,
//     NUMA node, package, rest), starting at a random victim in each bucket.
//   - Having stolen one task from a victim whose deque is long, it steals up to half of the
//     rest (at most kStealBatch) into its own deque, one CAS each; a spawner's deque is
//     then drained by few round-trips instead of one per task.
//   - A lost race (steal_result::lost_race) means work exists: the sweep is retried rather
//     than counted as empty.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "weft/detail/deque.hpp"
#include "weft/detail/task.hpp"

namespace weft::detail {

class pool_impl;

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

  // ---- owner thread only ----
  // Pushes onto the own deque and wakes a sleeper if nobody searches. Throws bad_alloc if
  // the deque cannot grow (the task is not queued then).
  void spawn(task* t);
  // Finds a task: own deque, injection queue, then stealing (as a searcher, for up to
  // spin_rounds sweeps). nullptr: nothing found; the caller parks.
  task* find_work();
  // Runs and frees a task; counts it; routes an escaped exception to the pool's handler.
  void execute(task* t) noexcept;
  // Parks until woken. `ready`, when given, is re-checked after enlisting (a wait), and
  // `deadline` bounds the sleep. Returns false when the pool is terminating.
  bool park(bool (*ready)(const void*) noexcept, const void* ctx, std::chrono::steady_clock::time_point deadline);

  // ---- any thread ----
  pool_impl& owner_pool() const noexcept { return pool_; }
  unsigned index() const noexcept { return index_; }
  std::int64_t queued() const noexcept { return deque_.size_approx(); }
  steal_result steal(task*& out) noexcept { return stealer_.steal(out); }

  struct counters {
    std::uint64_t completed, failed, steals, parks, running;
  };
  counters read_counters() const noexcept;

 private:
  void run() noexcept;
  task* from_injector() noexcept;
  task* steal_sweep() noexcept;
  void steal_more(worker& victim) noexcept;
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

  chase_lev_deque<task*> deque_;
  deque_owner<task*> owner_;
  deque_stealer<task*> stealer_;
  moodycamel::ConsumerToken consumer_;

  // Owner-thread state.
  bool searching_ = false;
  unsigned tick_ = 0;
  unsigned depth_ = 0;  // nesting of execute() (help-while-waiting)
  std::uint64_t rng_;

  // Written by the owner, read by stats() (relaxed).
  alignas(destructive_interference) std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> steals_{0};
  std::atomic<std::uint64_t> parks_{0};
  std::atomic<std::uint64_t> running_{0};

  std::thread thread_;
};

// The worker the calling thread is, or nullptr.
worker* current_worker() noexcept;

}  // namespace weft::detail
