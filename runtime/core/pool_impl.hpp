// runtime/core/pool_impl.hpp: the state a pool's workers share.
//
// Shutdown protocol:
//   S1 close() closes `gate_` (submission_gate.hpp, G3): external submitters raise their
//      producer slot's flag around their enqueue (G1/G2, producers.hpp), and close waits
//      until every raised flag is lowered, so once it returns no external task can be added
//      any more.
//   S2 close() then sets `closing_` and wakes every worker (sleep.wake_all(false)).
//   S3 Workers keep running and stealing as usual: tasks spawned by running tasks are part
//      of the drain. The worker whose park makes every worker idle, with no worker blocked
//      inside a wait, re-checks every queue; if all are empty while closing_, nothing can
//      ever add work again (S1, and no task runs), so it terminates the pool
//      (sleep.wake_all(true)) and every worker exits its loop, counting itself out of
//      `live_` (close(deadline) waits on that count).
//   S4 close() joins the workers. Nothing can be left in any queue (S3); the destructor
//      still discards anything it finds, which would be a bug, and says so.
// Stopping (stop_now, a close deadline, the base token):
//   S5 `cancelling_` is set (seq_cst) and the pool's stop source fires. From then on every
//      task a worker dequeues completes as cancelled instead of running (task_mode::cancel);
//      tasks spawned later are accepted and cancelled the same way.
//   S6 (stop_now, close deadline) The stopping thread itself also empties every queue (it
//      steals from every deque and drains the injection queue, cancelling each task), so
//      every future is ready when it returns even if all workers are stuck in tasks that
//      ignore their stop token. It drains between setting `cancelling_` and firing the stop
//      source: workers busy in running tasks stay busy until the tokens fire, so they cannot
//      take a queued task into their hands while the drain runs (a task a worker holds is in
//      no queue: the drain would miss it, and the stopping call would return before that
//      worker completes it). Only a worker that was idle can still take one concurrently; it
//      completes it as cancelled a moment later. After the tokens fire it drains once more.
// Capacity credits (pool_options::capacity; all of this only when it is non-zero):
//   C1 `queued_ext_` counts the tasks in the injection queue, every one of them (external
//      submissions, hand-backs, a worker's submit_global): incremented before the enqueue,
//      decremented by whoever takes tasks out (a worker's batch, the stopping drain, a
//      discard), so it never underflows.
//   C2 An external submitter keeps its increment only when the old value was below the
//      capacity, else takes it back and the pool is full: at most `capacity` external
//      submissions are ever queued at once. Hand-backs and workers' submissions add without
//      the check: they are never refused (internal work must not deadlock its own pool).
//   C3 Whoever takes tasks out decrements with seq_cst and then calls
//      notify_address(&queued_ext_) (weft/detail/wait.hpp: one load when nobody waits), so
//      a submitter blocked for room (full_policy::block) re-checks; close() notifies too,
//      and a blocked submitter's condition includes the closed bit.
// Several lifecycle calls at once (close, close(deadline), stop_now, ~pool, from any
// threads). close_mu_ guards only the decisions, never a wait, so a later call can always
// escalate one in progress (a stop_now during a close() that drains a long task):
//   L1 Under close_mu_ a call does what nobody has done yet of what it needs: S1+S2 once
//      (`draining_`); the stopping drain S5+S6 once (`cancel_claimed_`), which it then runs
//      itself, outside the lock (it delivers cancellations: user callbacks).
//   L2 Outside the lock it waits for `live_` to reach zero (futex; close(deadline) until
//      its deadline, then it escalates as in L1 and returns false).
//   L3 A call that is to return with the workers joined first waits (cv_ on close_mu_) for
//      a stopping drain another thread claimed to finish, so every future is ready when any
//      of them returns; then whoever gets there first joins the workers under the lock
//      (`joined_`). Every worker has left its loop by then (live_ == 0), so the join only
//      waits for thread exit and does not block an escalation for long.
// Slots and threads (burst scaling; the sleep protocol's T5/T6 are in sleep.hpp, the policy
// in runtime/layers/burst.cpp). `workers_` holds max_workers slots, allocated here and never
// freed while the pool lives: victim arrays, any_work, the stopping drain and the metrics
// cover every slot (a vacant slot's deque is empty). A slot is *occupied* from the moment a
// thread is attached to it until that thread, having retired, marks it vacant on its way out
// (slots_mu_ guards `occupied_` and every slot's std::thread handle):
//   A1 Growth (grow: one grower at a time, requests counted so none is lost) takes
//      slots_mu_, joins the handle of the
//      slot's previous thread (which marked the slot vacant as its last act under the lock,
//      so the join only waits for the thread function to return, and is never the caller
//      itself: the caller is a submitter or an attached worker), counts the new thread in
//      `live_`, attaches (T5), then starts it. No growth once termination is decided or
//      the slots are sealed.
//   A2 A retiring thread (T6 + R) marks its slot vacant under slots_mu_, then counts itself
//      out of `live_` like any exiting worker. A grow that finds attached < slots but no
//      vacant slot (a retiree between T6 and A2) leaves `grow_wanted_` under the lock, and
//      the retiree, finding it there, re-attaches instead of leaving: the re-check R alone
//      does not cover a T1 that read the word after the retire while R read the queues
//      before the work was published (Relacy found it: retire_while_work_arrives).
//   A3 Shutdown: S3 counts attached workers only (sleep.hpp). join_workers seals the slots
//      under slots_mu_ (no growth after it) and joins every joinable handle, retired threads
//      included: no thread is leaked, none joins itself. A grow that slipped in just before
//      the seal started a thread that sees terminating() and exits; the seal's join waits.
// A call on the thread that is running this pool's stopping drain (a cancellation callback
// calling close or stop_now) would wait for itself in L3: it throws std::logic_error, as a
// call from one of the pool's workers does.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "platform/platform.hpp"
#include "core/injector.hpp"
#include "core/producers.hpp"
#include "core/scheduler.hpp"
#include "core/submission_gate.hpp"
#include "core/sleep.hpp"
#include "core/task_source.hpp"
#include "platform/topology.hpp"
#include "weft/detail/submission.hpp"
#include "weft/detail/task.hpp"
#include "weft/metrics.hpp"
#include "weft/options.hpp"
#include "core/worker.hpp"

namespace weft::detail {

class timer_service;

class lanes_source;  // runtime/layers/lanes.hpp
class metrics_sink;  // runtime/layers/metrics_sink.hpp

class pool_impl {
 public:
  // `hooks`, when given, are in place before the first worker starts (scheduler.hpp).
  explicit pool_impl(pool_options options, std::shared_ptr<const scheduler_hooks> hooks = nullptr);
  ~pool_impl();

  // External submission (S1). False when closed; the task is then not queued.
  bool inject(task* t);
  // inject for n tasks at once (unbounded pools only): all queued, or none (false: closed;
  // std::bad_alloc: the queue could not grow).
  bool inject_bulk(task* const* tasks, std::size_t n);
  // As inject, from a thread outside the pool, with the capacity check (C2): closed or
  // full leave the task untouched.
  submit_status inject_external(task* t);
  // Blocks until the injection queue has room (C3) or the pool is closed, or `deadline`
  // passes or `stop` fires (false then).
  bool wait_for_room(std::chrono::steady_clock::time_point deadline, const std::stop_token& stop);
  // Completes the oldest queued external task as cancelled (full_policy::discard_oldest);
  // false when the queue was empty.
  bool discard_oldest() noexcept;
  // C1/C3: `n` tasks left the injection queue.
  void release_credits(std::size_t n) noexcept {
    if (capacity_ == 0) return;
    queued_ext_.fetch_sub(n, std::memory_order_seq_cst);  // seq_cst: C3, the wait protocol's notifier half
    notify_address(&queued_ext_);
  }
  bool bounded() const noexcept { return capacity_ != 0; }
  void count_discarded() noexcept { discarded_.fetch_add(1, std::memory_order_relaxed); }  // relaxed: a counter
  // Into a registered source (task_source.hpp, TS3): gated like inject when the caller is
  // not one of this pool's workers. closed: refused by the gate; full: by the source. The
  // task is untouched unless accepted.
  submit_status inject_to(unsigned source, task* t, bool from_worker);
  source_registry& sources() noexcept { return sources_; }
  // The priority-lanes layer (runtime/layers/lanes.hpp), or null when none is configured.
  // Set once by weft::pool's constructor, before the pool is shared with any other thread.
  lanes_source* lanes() const noexcept { return lanes_.get(); }
  void set_lanes(std::shared_ptr<lanes_source> l) noexcept { lanes_ = std::move(l); }
  // The periodic metrics sink (pool_options::metrics_sink, runtime/layers/metrics_sink.hpp).
  // Set once by weft::pool's constructor, before the pool is shared with any other thread.
  void set_metrics_sink(std::unique_ptr<metrics_sink> s) noexcept;
  // The hooks in force (scheduler.hpp), or null.
  const scheduler_hooks* hooks() const noexcept {
    // acquire: pairs with the release store in set_hooks, so the struct's fields are visible.
    return hooks_.load(std::memory_order_acquire);
  }
  void set_hooks(std::shared_ptr<const scheduler_hooks> h);
  // A task an isolated wait claimed but may not run (another region's, worker.cpp
  // steal_region_task) goes to the injection queue, bypassing the gate (it was accepted
  // long ago); run here if the queue cannot allocate, rather than lose it.
  void hand_back(task* t) noexcept;

  void close();
  bool close_until(std::chrono::steady_clock::time_point deadline);
  void stop_now();
  // True on the thread running this pool's stopping drain (inside a cancellation callback).
  bool stopping_on_this_thread() const noexcept;
  // S5 without closing (the base token fired).
  void start_cancelling() noexcept;

  bool closed() const noexcept { return gate_.closed(); }
  bool closing() const noexcept {
    // acquire: pairs with the seq_cst store in close (S2).
    return closing_.load(std::memory_order_acquire);
  }
  bool cancelling() const noexcept {
#ifdef WEFT_ABLATE_CANCELLATION  // perf/cost.cpp only: measures what this check costs
    return false;
#endif
    // relaxed: S5 is a hint checked per task; a task that starts just after stop was
    // requested may still run, which is the same as starting just before.
    return cancelling_.load(std::memory_order_relaxed);
  }
  // True in a child process for a pool created before fork() (see fork.hpp).
  bool forked() const noexcept;
  // Any task visible in any queue. Starts with a seq_cst fence: it is the re-check half of
  // the sleep protocol's T3 (see sleep.hpp).
  bool any_work() const noexcept;

  std::stop_token stop_token() const noexcept { return stop_.get_token(); }
  timer_service& timer();
  const std::shared_ptr<cancel_ledger>& ledger() const noexcept { return ledger_; }

  void report_exception(std::exception_ptr e) noexcept;
  void log(std::string_view line) const noexcept;

  // A task accepted from outside the pool's workers (queued, run by its caller, or
  // cancelled at submission): counted before it becomes visible (idle_now).
  void count_accepted() noexcept { accepted_ext_.fetch_add(1, std::memory_order_relaxed); }  // relaxed: see idle_now
  // Takes a count_accepted back: the task was not queued after all (never visible).
  void count_rejected_accepted() noexcept { accepted_ext_.fetch_sub(1, std::memory_order_relaxed); }  // relaxed: as above
  // True when every task accepted so far has finished, at some instant during the call
  // (a double collect over monotone counters, see pool.cpp).
  bool idle_now() const noexcept;
  // wait_idle: until idle_now() or `deadline`. Throws std::logic_error on this pool's workers.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);
  void count_rejected() noexcept { rejected_.fetch_add(1, std::memory_order_relaxed); }  // relaxed: a counter
  // Counts a task completed by a thread that is not a worker (the stopping thread's drain).
  void count_external(task_result r) noexcept;
  void worker_exited() noexcept;
  // A worker thread is named, pinned and has run the thread_start hook (the constructor
  // waits for its first threads: they are all named and hooked when it returns).
  void worker_ready() noexcept {
    ready_.fetch_add(1, std::memory_order_release);  // release: pairs with the constructor's acquire wait
    ready_.notify_all();
  }
  metrics snapshot() const noexcept;

  // ---- slots and threads (A1-A3 above; policy in runtime/layers/burst.cpp) ----
  // min_workers < max_workers.
  bool elastic() const noexcept { return elastic_; }
  // A1, from sleep.hpp's saturation hook (T1 found every attached worker busy).
  void grow() noexcept;
  // A2: the thread on `slot` retired (T6 done, R found nothing) and leaves: true. False when
  // a grow found no vacant slot since (this one was still occupied): the thread re-attaches.
  bool release_slot(unsigned slot) noexcept;

  // Producer slots made so far (producers.hpp, P4; tests).
  std::size_t producer_slots() const { return producers_.slots(); }
  const pool_options& options() const noexcept { return options_; }
  worker& worker_at(unsigned i) noexcept { return *workers_[i]; }
  unsigned size() const noexcept { return static_cast<unsigned>(workers_.size()); }
  sleep_protocol<std_platform>& sleep() noexcept { return sleep_; }
  injection_queue& injector() noexcept { return injector_; }
  const std::string& placement() const noexcept { return placement_; }

 private:
  void close_gate() noexcept;                        // S1
  // S1, the submitter's side: the calling thread's producer slot, inside the gate (G1), or
  // null (holding nothing) when the pool is closed or a forked child's copy (checked first:
  // a thread's first submission to a closed pool makes no slot). Throws std::bad_alloc (the
  // thread's first submission could not make its slot). gate_pass holds the gate for one
  // scope.
  producer_slot* enter_gate();
  class gate_pass {
   public:
    explicit gate_pass(pool_impl& p) : slot_(p.enter_gate()) {}
    ~gate_pass() {
      if (slot_ == nullptr) return;
      submission_gate<std_sync>::leave(slot_->in_flight);  // G2
      if (slot_->transient) [[unlikely]] producer_registry::release_transient(*slot_);  // P4
    }
    gate_pass(const gate_pass&) = delete;
    gate_pass& operator=(const gate_pass&) = delete;
    explicit operator bool() const noexcept { return slot_ != nullptr; }
    producer_slot& slot() const noexcept { return *slot_; }

   private:
    producer_slot* slot_;
  };
  // inject with or without the capacity check (C2).
  submit_status inject_checked(task* t, bool check_capacity);
  void begin_drain() noexcept;                       // S2
  void cancel_everything() noexcept;                 // S5 + S6
  void drain_cancelled() noexcept;                   // S6
  bool wait_for_workers(std::chrono::steady_clock::time_point deadline) noexcept;
  // The lifecycle calls (L1-L3). `call` names the public call for error messages.
  bool shut_down(const char* call, bool cancel, std::chrono::steady_clock::time_point deadline);
  void check_caller(const char* call) const;
  bool escalate(bool cancel);  // L1, under close_mu_; true: this call claimed the stopping drain
  void run_stopping_drain() noexcept;
  void join_workers();         // A3
  void join_when_stopped();    // L3
  static void on_saturated(void* self) noexcept;  // sleep.hpp's saturation hook -> grow
  void grow_once() noexcept;
  // After a lifecycle call joined the workers: the sink's final call (metrics_sink.hpp, M2).
  void finish_metrics_sink() noexcept;

  topology topo_;  // first: options_ is resolved against it
  pool_options options_;
  std::string placement_;
  injection_queue injector_{kInjectorInitialCapacity};
  producer_registry producers_{injector_};  // after injector_: its tokens die first (producers.hpp, P3)
  source_registry sources_;
  std::shared_ptr<lanes_source> lanes_;  // see lanes()
  std::atomic<const scheduler_hooks*> hooks_{nullptr};
  std::mutex hooks_mu_;
  std::vector<std::shared_ptr<const scheduler_hooks>> hooks_owned_;  // guarded by hooks_mu_; alive until ~pool_impl
  sleep_protocol<std_platform> sleep_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::stop_source stop_;
  std::optional<std::stop_callback<std::function<void()>>> base_link_;
  // The gate's closed flag, read by every external post, written once; on a line of its own
  // (nothing a worker writes per task may share it). Posts write nothing shared: their
  // flags and counts are in their producer slots.
  alignas(destructive_interference) submission_gate<std_sync> gate_;
  // Tasks accepted outside the producer slots (run by their caller, cancelled at submission,
  // into a layer's source): counted before they become visible (idle_now).
  alignas(destructive_interference) std::atomic<std::uint64_t> accepted_ext_{0};
  alignas(destructive_interference) std::atomic<bool> closing_{false};
  std::atomic<bool> cancelling_{false};
  std::atomic<std::uint32_t> live_{0};  // workers that have not exited; futex word for close_until
  // Tasks completed by non-worker threads (the stopping thread's drain), and rejections.
  std::atomic<std::uint64_t> ext_completed_{0}, ext_failed_{0}, ext_cancelled_{0}, rejected_{0}, discarded_{0};
  std::atomic<unsigned> ready_{0};               // worker_ready
  std::size_t capacity_ = 0;                   // options_.capacity; 0: unbounded
  alignas(destructive_interference) std::atomic<std::size_t> queued_ext_{0};  // C1
  std::mutex timer_mu_;
  std::unique_ptr<timer_service> timer_;  // guarded by timer_mu_ until created
  std::shared_ptr<cancel_ledger> ledger_ = std::make_shared<cancel_ledger>();
  std::mutex close_mu_;
  std::condition_variable close_cv_;  // with close_mu_: the stopping drain finished (L3)
  bool draining_ = false;             // guarded by close_mu_: S1+S2 done
  bool cancel_claimed_ = false;       // guarded by close_mu_: some call runs or ran S5+S6
  bool cancel_done_ = false;          // guarded by close_mu_: ... and it has finished
  bool joined_ = false;               // guarded by close_mu_
  std::atomic<bool> abandoned_{false};  // in a forked child: the workers' handles were abandoned
  // Slots and threads (A1-A3).
  bool elastic_ = false;
  std::mutex slots_mu_;
  std::vector<char> occupied_;  // guarded by slots_mu_
  bool sealed_ = false;         // guarded by slots_mu_: join_workers ran, no more growth
  bool grow_wanted_ = false;    // guarded by slots_mu_: a grow found only retiring slots (A2)
  std::chrono::steady_clock::time_point grow_retry_{};  // guarded by slots_mu_: after a failed thread start
  // Written under slots_mu_, read by snapshot() (relaxed: metrics).
  std::atomic<unsigned> threads_{0}, peak_threads_{0};
  std::atomic<std::uint32_t> grow_requests_{0};  // grow: requests not yet seen by the running grower
  std::atomic<std::uint64_t> grown_{0}, retired_{0};
  unsigned fork_generation_ = 0;
  // Last: destroyed first, while everything its thread reads is still alive. Its thread was
  // joined by the close() in ~pool_impl (or is a forked child's abandoned handle).
  std::unique_ptr<metrics_sink> metrics_sink_;
};

// The hooks that pool_options' observation fields ask for (runtime/layers/observe.cpp),
// or null when none is set.
std::shared_ptr<const scheduler_hooks> make_observation_hooks(const pool_options& options);

// Throws pool_closed, saying so when the pool is a forked child's copy.
[[noreturn]] void throw_pool_closed(const pool_impl& impl);

// Runs (or cancels, when the pool is stopping) one task on the calling thread, with its
// group as the thread's current scope, routing an escaped exception to the pool; frees the
// block. Used by workers and by the stopping thread's drain (S6).
task_result run_task(pool_impl& pool, task* t) noexcept;

// Validates options (after applying the environment when asked) and resolves the worker
// count; throws std::invalid_argument naming the option. Defined in options.cpp.
pool_options resolve_options(pool_options options, const topology& topo);

}  // namespace weft::detail
