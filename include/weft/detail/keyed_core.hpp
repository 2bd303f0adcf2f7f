// weft/detail/keyed_core.hpp: the key-independent half of weft::keyed (weft/keyed.hpp):
// per-key job queues, the drain task, stopping, waiting and counting. The protocol is
// written down at the top of runtime/layers/keyed.cpp. The key map (one hash map per shard,
// templated on the key) lives in keyed.hpp and reaches this part through three virtual
// calls, all made with the shard's mutex held.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "weft/detail/submission.hpp"
#include "weft/detail/sync.hpp"
#include "weft/detail/task.hpp"
#include "weft/detail/wait.hpp"
#include "weft/errors.hpp"
#include "weft/future.hpp"
#include "weft/keyed_options.hpp"
#include "weft/outcome.hpp"

namespace weft {
class pool;
}

namespace weft::detail {

// A FIFO of task blocks linked through task::next. The blocks are weft's ordinary task
// blocks (per-thread cache, 96 bytes inline), but they are never handed to the pool: only
// the drain runs them, so `next` (the free-list link, which the pool's queues do not use
// either) and `stamp` (which only the pool's queues set) are ours while a block is queued here.
struct job_list {
  task* head = nullptr;
  task* tail = nullptr;

  bool empty() const noexcept { return head == nullptr; }
  void push(task* t) noexcept {
    t->next = nullptr;
    if (tail != nullptr) {
      tail->next = t;
    } else {
      head = t;
    }
    tail = t;
  }
  task* pop() noexcept {
    task* t = head;
    head = t->next;
    if (head == nullptr) tail = nullptr;
    return t;
  }
  job_list take() noexcept { return std::exchange(*this, job_list{}); }
};

// Appends `more` to `to`.
inline void splice(job_list& to, job_list& more) noexcept {
  if (more.empty()) return;
  if (to.empty()) {
    to = more.take();
    return;
  }
  to.tail->next = more.head;
  to.tail = more.tail;
  more = job_list{};
}

// task::stamp of a flush marker: an internal job, not counted in keyed_stats, never
// refused for capacity.
inline constexpr std::uint64_t keyed_marker_stamp = 1;

// The queue of one active key (one that has queued or running jobs). It exists exactly
// while the key is scheduled or draining (runtime/layers/keyed.cpp, K1).
struct keyed_entry {
  // Written by producers and taken by the drain, under the shard's mutex.
  job_list shared;
  // The drain's own backlog: only the holder of the drain role touches it (the producer that
  // created the entry puts its job here before it publishes the first drain task).
  job_list local;
  // Jobs accepted and not yet started, kept only when keyed_options::capacity is set.
  // Incremented by producers under the shard's mutex, decremented by the drain (or a stop).
  // Under full_policy::discard_oldest: exactly the counted jobs in `shared` (keyed.cpp, K7).
  std::atomic<std::size_t> waiting{0};
  std::size_t shard = 0;      // set once, at creation, under the shard's mutex
  const void* key = nullptr;  // the map node's key (for erasing the entry), set once likewise
};

class keyed_core {
 public:
  keyed_core(pool& p, const keyed_options& options);
  virtual ~keyed_core();
  keyed_core(const keyed_core&) = delete;
  keyed_core& operator=(const keyed_core&) = delete;

  pool& owner() const noexcept { return pool_; }
  const keyed_options& options() const noexcept { return options_; }
  std::size_t shard_of(std::size_t hash) const noexcept;

  // ---- producer side, with the shard's mutex held ----
  bool stopped_locked() const noexcept;
  // Capacity check and reservation for one ordinary job on `e`. With `may_discard` and
  // full_policy::discard_oldest, a full key unlinks its oldest counted job into `victim`
  // (for discarded(), outside the lock) and admits this one.
  bool admit_locked(keyed_entry& e, bool may_discard, task*& victim) noexcept;
  // The list a job goes to: a new entry's first job to the drain's local list (K1), except
  // under discard_oldest, where every queued job stays in `shared` (K7).
  job_list& queue_of(keyed_entry& e, bool new_entry) noexcept {
    return new_entry && !discarding_ ? e.local : e.shared;
  }
  // True when the key has room for one more job (a producer's wait, K7).
  bool room_locked(const keyed_entry& e) const noexcept;
  // The job was queued (counted: not a flush marker); new_entry: it created the entry.
  void accepted_locked(bool new_entry, bool counted) noexcept;
  // ---- producer side, without the lock ----
  // Queues the first drain of a new entry. Returns ok, or closed when the pool refused it:
  // then the entry has been dismantled, `ours` rejected (or, if a stop had already taken
  // it, left cancelled: then ok). Rethrows std::bad_alloc after the same clean-up.
  keyed_status schedule(keyed_entry& e, task* ours);
  // Refuses a job that was never queued (full, closed, out of memory).
  keyed_status reject(task* t, keyed_status why) noexcept;
  // Completes a job that admit_locked unlinked as its victim: cancelled, counted discarded.
  void discarded(task* victim) noexcept;
  // K7: waits until pred(ctx) holds (room for a key, or the serializer stopped, or `stop`),
  // woken whenever a key's queue shrinks while someone waits. False: deadline or `stop`.
  bool wait_for_room(wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline,
                     const std::stop_token& stop);
  // stopped() for a waiter's predicate (seq_cst: K7's store-buffering pair with stop()).
  bool stopped_for_wait() const noexcept { return stopped_.load(std::memory_order_seq_cst); }

  // ---- stop and wait ----
  void stop() noexcept;
  bool stopped() const noexcept;
  std::stop_token token() const noexcept { return source_.get_token(); }
  std::size_t active() const noexcept;
  bool wait_all_until(std::chrono::steady_clock::time_point deadline) const;
  // Waits until pred(ctx) holds (the map-based per-key checks); woken at every entry's end.
  bool wait_until(wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline) const;
  // True on a thread running a job of this serializer (of entry `e`, if not null).
  bool in_job_of(const keyed_entry* e) const noexcept;
  keyed_stats stats() const noexcept;

  // A job's exception with nowhere else to go (post): the pool's on_task_exception.
  void report(std::exception_ptr e) noexcept;

  // The drain task's body (runs on the pool).
  void drain(keyed_entry& e) noexcept;
  void drain_cancelled(keyed_entry& e) noexcept;

 protected:
  // Called by the most-derived constructor/destructor (they make the virtual calls below
  // valid): links the pool's stop token, and at the end stops and waits for every drain.
  void arm();
  void shutdown() noexcept;

  virtual std::mutex& shard_mutex(std::size_t shard) noexcept = 0;
  virtual void erase_locked(keyed_entry& e) noexcept = 0;
  // Moves the shared lists of every entry of `shard` to the end of `out` (stop()).
  virtual void take_all_locked(std::size_t shard, job_list& out) noexcept = 0;
  // For take_all_locked: moves e's shared list to `out`, releasing its capacity.
  void take_shared_locked(keyed_entry& e, job_list& out) noexcept;

 private:
  struct turn_counts {
    std::uint64_t ran = 0, failed = 0, cancelled = 0;
    void flush(keyed_core& c) noexcept;
  };
  struct stopper {
    keyed_core* self;
    void operator()() noexcept { self->stop(); }
  };

  void end_turn(keyed_entry& e) noexcept;
  bool limit_reached(std::size_t ran, std::chrono::steady_clock::time_point until) const noexcept;
  bool yield_turn(keyed_entry& e) noexcept;
  void room_made() noexcept;  // K7: the notifier's side
  bool repost(keyed_entry& e) noexcept;
  bool go_idle_or_refill(keyed_entry& e) noexcept;
  void cancel_all(job_list& l, keyed_entry* e) noexcept;
  void cancel_one(task* t, keyed_entry* e) noexcept;
  void left_queue(keyed_entry& e, const task* t) noexcept;
  void entry_gone() noexcept;
  void cancel_key_queue(keyed_entry& e) noexcept;

  pool& pool_;
  const keyed_options options_;
  const bool discarding_;  // capacity set and when_full == discard_oldest (K7)
  std::stop_source source_;
  std::atomic<bool> stopped_{false};

  // Written by producers (relaxed counters).
  alignas(destructive_interference) std::atomic<std::uint64_t> submitted_{0};
  std::atomic<std::uint64_t> rejected_{0};
  // Written by drains (relaxed counters).
  alignas(destructive_interference) std::atomic<std::uint64_t> ran_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> cancelled_{0};
  std::atomic<std::uint64_t> discarded_{0};  // written by producers (relaxed counter)
  // Producers waiting for room (K7); also the address they wait on.
  alignas(destructive_interference) std::atomic<std::uint32_t> blocked_{0};
  // Entries in the map; also the address the waits park on.
  alignas(destructive_interference) std::atomic<std::size_t> active_{0};

  std::optional<std::stop_callback<stopper>> pool_link_;  // last: unlinked first
};

// ---- job bodies (task block bodies: see task.hpp's run_body/consume) ----

// The token a job receives: the serializer's (stop(), its destructor, the pool's token).
template <class F>
std::stop_token keyed_token(const keyed_core* c) noexcept {
  if constexpr (std::is_invocable_v<F&, std::stop_token>) {
    return c->token();
  } else {
    (void)c;
    return {};
  }
}

template <class F>
struct keyed_post_job {
  keyed_core* core;
  F fn;
  task_result operator()() noexcept {
    try {
      invoke_with_token(fn, keyed_token<F>(core));
      return task_result::ok;
    } catch (...) {
      core->report(std::current_exception());
      return task_result::failed;
    }
  }
};

template <class R, class F>
struct keyed_future_job {
  keyed_core* core;
  std::shared_ptr<future_state<R>> state;
  F fn;
  task_result operator()() noexcept {
    to_future<R>{state}(capture<R>(fn, keyed_token<F>(core)));
    return state->failed() ? task_result::failed : task_result::ok;
  }
  void cancel() noexcept { state->set_exception(std::make_exception_ptr(task_cancelled())); }
};

// A job with task_options: checked when its turn comes (a fired token or a passed deadline
// cancels it then), and while it runs its token also reports the submission's own token.
// Done receives the outcome (to_future for submit; the pool's handler for post).
template <class R, class F, class Done>
struct keyed_guarded_job {
  keyed_core* core;
  F fn;
  Done done;
  std::stop_token user;
  std::chrono::steady_clock::time_point deadline;

  task_result operator()() noexcept {
    if (user.stop_requested() ||
        (deadline != std::chrono::steady_clock::time_point::max() && std::chrono::steady_clock::now() >= deadline)) {
      cancel();
      return task_result::cancelled;
    }
    outcome<R> o = run();
    const bool ok = o.has_value();
    done(std::move(o));
    return ok ? task_result::ok : task_result::failed;
  }
  void cancel() noexcept { done(outcome<R>::from_cancelled()); }

 private:
  struct relay {
    std::stop_source* to;
    void operator()() noexcept { to->request_stop(); }
  };
  outcome<R> run() noexcept {
    if constexpr (std::is_invocable_v<F&, std::stop_token>) {
      if (user.stop_possible()) {
        try {
          std::stop_source both;  // fires for the serializer's token or the submission's
          std::stop_callback<relay> a(core->token(), relay{&both});
          std::stop_callback<relay> b(user, relay{&both});
          return capture<R>(fn, both.get_token());
        } catch (...) {  // std::stop_source's allocation
          return outcome<R>::from_error(std::current_exception());
        }
      }
    }
    return capture<R>(fn, keyed_token<F>(core));
  }
};

template <class R>
struct keyed_to_handler {
  keyed_core* core;
  void operator()(outcome<R>&& o) noexcept {
    if (!o.has_value() && !o.cancelled()) core->report(o.error());
  }
};

// The drain task the pool runs: one turn of one key.
struct keyed_drain_task {
  keyed_core* core;
  keyed_entry* entry;
  void operator()() noexcept { core->drain(*entry); }
  void cancel() noexcept { core->drain_cancelled(*entry); }
};

}  // namespace weft::detail
