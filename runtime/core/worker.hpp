// runtime/core/worker.hpp: one worker thread: its deque, its search for work, its counters.
//
// Stealing protocol (see runtime/core/deque.hpp for the deque's own invariants):
//   - The owner pops its deque LIFO; thieves steal FIFO from the top.
//   - Every kInjectorInterval tasks the owner polls an ingress (a layer's task source or the
//     injection queue, in turn) before its own deque, so external submissions are never
//     starved by a spawn-heavy worker. With its deque empty it polls the sources in chain
//     order, then the injection queue, then steals (task_source.hpp).
//   - A searching worker tries victims bucket by bucket, nearest first (same core, L3,
//     NUMA node, package, rest), starting at a random victim in each bucket.
//   - Having stolen one task from a victim whose deque is long, it steals up to half of the
//     rest (at most kStealBatch) into its own deque, one CAS each, as long as they are
//     siblings of the first (same group, see steal_more); a spawner's deque is then
//     drained by few round-trips instead of one per task.
//   - A lost race (steal_result::lost_race) means work exists: the sweep is retried rather
//     than counted as empty.
//   - Searching is bounded in time as well as in sweeps (kSearchBudget): spin_rounds is an
//     upper bound, never a promise to burn CPU (spin_rounds = 1'000'000 used to make a get()
//     of a 10 ms task take 2 s).
//   - Batches adapt to the backlog: a worker takes kInjectorBatch tasks from the injection
//     queue, and after a batch that came back full it asks for twice as many next time (up
//     to kInjectorBatchMax), back to kInjectorBatch after one that did not: a deep queue is
//     drained with few dequeues, a shallow one is shared between workers. A batch comes
//     from one producer's sub-queue in its order (moodycamel's consumer token), so the
//     order below holds for any batch size.
//   - Trickle pacing: a worker whose last dequeue from the injection queue found fewer than
//     kTrickleBatch tasks does not dequeue again for kTrickleGapNs (it still steals and runs
//     its deque meanwhile). A worker that keeps up with one producer otherwise polls the
//     producer's sub-queue after every task, and each poll and each small dequeue moves the
//     producer's tail line (and the task blocks' lines) between cores: on the 2-CPU VM that
//     ping-pong, not either side's work, set the rate (3-4M posts/s into one worker). Pacing
//     lets a batch build up. It costs a spinning worker up to kTrickleGapNs of latency on a
//     task that arrives during the gap; a parked worker polls at once when woken (park()
//     clears the gap), so the latency into a parked pool is unchanged. Nothing is stranded
//     by it: the re-checks of the sleep protocol (T2, T3) look at the queue itself
//     (any_work), not through from_injector.
//   - Order: tasks from the injection queue come in batches; the owner
//     pushes a batch so that pop returns it oldest first, and skips the periodic injector
//     poll while tasks of the last batch are still in its deque, so one outside thread's
//     tasks start in submission order when one worker serves them (pool.hpp, "Order").
//   - Isolation (weft::isolated, runtime/core/isolation.cpp): a task spawned inside an isolated
//     region carries the region's tag, in the task and as the low bit of its deque slot
//     (task blocks are 16-byte aligned), so that a steal batch can stop *before* claiming a
//     region task (steal_unless) and never parks one behind unrelated work in a thief's
//     deque. A worker running a tagged task is inside that region for its duration.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "core/latency.hpp"
#include "core/runtime_sync.hpp"
#include "core/deque.hpp"
#include "weft/detail/task.hpp"

namespace weft::detail {

class pool_impl;
struct scheduler_hooks;

class worker {
 public:
  static constexpr unsigned kInjectorInterval = 61;
  static constexpr unsigned kInjectorBatch = 16;
  static constexpr unsigned kInjectorBatchMax = 128;
  // Trickle pacing (below): a dequeue that found fewer tasks than this ...
  static constexpr std::size_t kTrickleBatch = 4;
  // ... keeps this worker off the injection queue for this long (tuned on the 2-CPU VM,
  // BENCHMARKS.md "The submission path": 1.2 us of pacing gave 6.7-8.3M posts/s into one
  // worker, 4.8 us 9.1-9.9M, none 2.9-4.1M).
  static constexpr std::uint64_t kTrickleGapNs = 3000;
  static constexpr std::int64_t kStealBatch = 32;
  // At most this long searching (stealing, polling the injection queue) before parking.
  static constexpr std::chrono::microseconds kSearchBudget{50};

  worker(pool_impl& pool, unsigned index, std::optional<unsigned> pu, std::vector<std::vector<unsigned>> victims);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  void start();
  void join();
  // Before a new thread starts on this (vacant, joined) slot: owner-thread state as a fresh
  // thread needs it, and "searching", as T5 of sleep.hpp counted it (pool_impl::grow).
  void prepare_attach() noexcept;
  // In a child process after fork(): the thread does not exist here. Destroys what is
  // queued and keeps the thread handle alive forever instead of joining it.
  void abandon() noexcept;

  // ---- owner thread only ----
  // Pushes onto the own deque and wakes a sleeper if nobody searches. Throws bad_alloc if
  // the deque cannot grow (the task is not queued then).
  void spawn(task* t);
  // Finds a task: own deque, injection queue, then stealing (as a searcher, for up to
  // spin_rounds sweeps and kSearchBudget). nullptr: nothing found; the caller parks.
  // `ready`, when given, ends the search early once it holds (a wait whose object is done).
  task* find_work(bool (*ready)(const void*) noexcept = nullptr, const void* ctx = nullptr) noexcept;
  // A worker that searched in vain and will not park (its wait is over) must leave the
  // search (T2 of sleep.hpp): counted as a searcher while it runs user code, it would keep
  // notify_work from waking anybody.
  void leave_search() noexcept;
  // An isolated wait with nothing left above its floor: takes, from the top of another
  // worker's deque, a task of this worker's region (checked by the slot's tag bit before the
  // claim, by the task's region after it). A task of another region claimed on the way goes
  // to the injection queue (where no isolated wait looks, so it cannot bounce between
  // waiters). nullptr: none found.
  task* steal_region_task() noexcept;
  // Pops the own deque (the newest task).
  bool pop_own(task*& out) noexcept { return pop(out); }
  // Pops the own deque, only an element at index >= floor (isolated waits).
  bool pop_above(std::int64_t floor, task*& out) noexcept {
    if (!owner_.pop_above(floor, out)) return false;
    out = untag(out);
    return true;
  }
  // The own deque's next push index (see deque_owner::mark).
  std::int64_t mark() const noexcept { return owner_.mark(); }
  // The isolated region this thread is in: its tag (0: none) and this deque's floor for it
  // (-1: none) (runtime/core/isolation.cpp).
  struct isolation {
    std::uintptr_t tag = 0;
    std::int64_t floor = -1;
  };
  std::int64_t isolation_floor() const noexcept { return isolation_.floor; }
  isolation exchange_isolation(isolation next) noexcept { return std::exchange(isolation_, next); }
  // Puts back a task this worker took but cannot run now (no stack segment could be mapped
  // for it, see wait.cpp); runs it here if the deque cannot grow.
  void requeue(task* t) noexcept;
  // Runs (or, when the pool is stopping, cancels) and frees a task, and counts it.
  void execute(task* t) noexcept;

  // retired: an idle park outlived keep_alive and the thread left its slot (T6 of
  // sleep.hpp; elastic pools only): the caller's loop ends.
  enum class park_result { woken, terminating, retired };
  // Parks until woken. `ready`, when given, is re-checked after enlisting (a wait), and
  // `deadline` bounds the sleep.
  park_result park(bool (*ready)(const void*) noexcept, const void* ctx, std::chrono::steady_clock::time_point deadline);

  // ---- any thread ----
  pool_impl& owner_pool() const noexcept { return pool_; }
  unsigned index() const noexcept { return index_; }
  std::int64_t queued() const noexcept { return deque_.size_approx(); }
  steal_result steal(task*& out) noexcept {
    const steal_result r = stealer_.steal(out);
    if (r == steal_result::success) out = untag(out);
    return r;
  }

  struct counters {
    std::uint64_t completed, failed, cancelled, steals, parks, running;
  };
  counters read_counters() const noexcept;
  // wait_idle's double collect (pool_impl::idle_now): tasks this worker finished (ran,
  // failed or cancelled) and tasks it spawned. acquire: pairs with bump's release store.
  std::uint64_t finished() const noexcept {
    return completed_.load(std::memory_order_acquire) + failed_.load(std::memory_order_acquire) +
           cancelled_.load(std::memory_order_acquire);
  }
  std::uint64_t spawned() const noexcept { return spawned_.load(std::memory_order_acquire); }
  void add_latencies(latency_histogram::counts& wait, std::uint64_t& wait_max, std::uint64_t& wait_sum,
                     latency_histogram::counts& run, std::uint64_t& run_max, std::uint64_t& run_sum) const noexcept;

 private:
  void run() noexcept;
  // The stealing phase of find_work, as a searcher (see find_work for ready/ctx).
  task* search(bool (*ready)(const void*) noexcept, const void* ctx) noexcept;
  task* stop_searching(task* t) noexcept;
  // An elastic pool's idle park (runtime/layers/burst.cpp): park for keep_alive, then
  // retire (T6 + R). True: retired, the thread exits.
  bool park_or_retire() noexcept;
  bool injector_poll_due() noexcept;
  task* from_injector() noexcept;
  task* poll_ingress() noexcept;          // the sources in chain order, then the injection queue
  task* poll_ingress_in_turn() noexcept;  // one ingress after another, from a rotating cursor
  task* steal_sweep() noexcept;
  // One steal attempt from worker `victim`; on success counts it, takes a batch of siblings
  // (steal_more) and remembers the victim (last_victim_).
  steal_result steal_from(unsigned victim, task*& t) noexcept;
  // Every change of searching_ goes through here (the search hook, scheduler.hpp).
  void set_searching(bool on) noexcept;
  void steal_more(worker& victim, const task* first) noexcept;
  void push_or_run(task* t) noexcept;
  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    // Owner-only counters: a plain load+store (no locked RMW); readers tolerate staleness.
    // relaxed load: only the owner writes. release store: the finished and spawned counts
    // pair with the acquire loads of pool_impl::idle_now (wait_idle's double collect), so a
    // reader that sees a task finished also sees every spawn that preceded it.
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Deque slots hold the task pointer with bit 0 set for a task of an isolated region.
  static task* tagged(task* t) noexcept {
    return t->isolation == 0 ? t : reinterpret_cast<task*>(reinterpret_cast<std::uintptr_t>(t) | 1);
  }
  static task* untag(task* p) noexcept {
    return reinterpret_cast<task*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{1});
  }
  static bool is_tagged(task* p) noexcept { return (reinterpret_cast<std::uintptr_t>(p) & 1) != 0; }
  void push(task* t) { owner_.push(tagged(t)); }
  bool pop(task*& t) noexcept {
    if (!owner_.pop(t)) return false;
    t = untag(t);
    return true;
  }
  void execute_in_region(task* t) noexcept;
  // execute's path when the pool has hooks (scheduler.hpp): out of line, off the plain path.
  [[gnu::noinline]] task_result run_hooked(const scheduler_hooks& hooks, task* t) noexcept;

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
  unsigned injector_batch_ = kInjectorBatch;  // the next batch's size (adaptive, above)
  std::uint64_t trickle_until_ = 0;  // now_ns() before which from_injector does not dequeue (pacing, above)
  unsigned ingress_cursor_ = 0;  // poll_ingress_in_turn: a source's id, or the source count for the injector
  unsigned depth_ = 0;  // nesting of execute() (help-while-waiting)
  isolation isolation_;
  // Deque indices [batch_lo_, batch_hi_) received the last injector batch (order, above).
  std::int64_t batch_lo_ = 0;
  std::int64_t batch_hi_ = 0;
  std::uint64_t rng_;
  // steal_sweep tries the worker it last stole from first (kNoVictim: none). In fork-join the
  // deque that had work a moment ago usually still has more: the victim keeps splitting
  // while the thief runs what it took.
  static constexpr unsigned kNoVictim = ~0u;
  // How long the pool's last awake worker parks idle before it trims the heap (park()).
  static constexpr std::chrono::milliseconds kTrimDelay{100};
  unsigned last_victim_ = kNoVictim;

  // Written by the owner, read by stats() (relaxed).
  alignas(destructive_interference) std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> steals_{0};
  std::atomic<std::uint64_t> spawned_{0};  // counted before the push (idle_now)
  std::atomic<std::uint64_t> parks_{0};
  std::atomic<std::uint64_t> running_{0};
  latency_histogram queue_wait_;
  latency_histogram run_time_;

  std::thread thread_;
};

// The worker the calling thread is, or nullptr. The variable is visible here so that the
// submission path reads it without a call (it is per-task hot).
extern constinit thread_local worker* tls_worker;
worker* current_worker() noexcept;

// After a burst, returns the heap pages of freed task blocks to the kernel (task_alloc.cpp);
// called by the worker whose park leaves its pool idle. Cheap when there is nothing to do.
void trim_heap_if_worthwhile() noexcept;
// Whether trim_heap_if_worthwhile would trim now; how many trims ran (for tests).
bool heap_trim_due() noexcept;
std::uint64_t heap_trims() noexcept;

// Nanoseconds on the steady clock (latency stamps).
std::uint64_t now_ns() noexcept;

}  // namespace weft::detail
