// runtime/layers/keyed.cpp: the keyed serializer's queues and drains (weft/keyed.hpp).
//
// A layer over the pool's submission API (pool_access::enqueue for a key's first drain) and the
// layers' scheduler interface (runtime/core/scheduler.hpp: submit_global to re-post a drain,
// has_queued_work to decide whether to): no scheduler code knows about keys.
//
// ---- Protocol ----
// A key is in one of three states:
//   idle       no entry in the map (nothing queued, nothing running; no memory held)
//   scheduled  an entry exists and exactly one drain task for it is queued on the pool
//   draining   an entry exists and exactly one drain task for it runs on a worker
// The state is not stored anywhere: an entry exists <=> scheduled or draining, and who holds
// the "drain role" (a queued drain task, a running one, or a producer between creating the
// entry and queueing its first drain) is implied by the code path.
//
// K1 (one drain). An entry is created only by a producer, under its shard's mutex, when the
//    key has none; that producer alone queues its first drain (schedule). Its job goes
//    straight to the entry's local list (the drain's own: no one else can touch it before
//    the drain task is published, and the pool's enqueue publishes it), sparing the first
//    turn a lock. A drain that ends
//    its turn either re-posts itself (one task replaces another) or removes the entry. So
//    each entry has exactly one drain role from creation to removal: jobs of one key never
//    run concurrently, and run in queue order (FIFO: producers append under the mutex, the
//    drain takes from the front only).
// K2 (removal). The entry is removed only by its drain role, under the shard's mutex, in the
//    same critical section that found its shared list empty, and only when its local
//    backlog is empty too.
// K3 (no lost wake-up). A producer appends to the shared list under the same mutex. Its
//    critical section comes either before the drain's final one (the drain sees the job and
//    keeps going, K2 does not remove) or after it (the producer finds no entry, creates one
//    and schedules a new drain, K1). There is no third order: the mutex totally orders
//    them. So a job enqueued while a drain is finishing is never stranded; keyed_test's
//    EnqueueDuringDrainExit hammers exactly this window.
// K4 (bounded turn). A turn runs at most options.batch jobs (and, with batch_time, stops
//    after the first job that ends past the time budget), then re-posts the drain with
//    scheduler::submit_global: to the back of the injection queue, behind every other key's
//    drain that waited meanwhile (if the pool refuses it, closing, the turn goes on here). A hot key therefore never holds a worker, and a stuck job
//    holds only its own key's drain: other keys have their own drains (keys are never
//    hashed onto shared queues), so there is no cross-key head-of-line blocking.
// K5 (stop). stop() sets stopped_ (producers then refuse, under the mutex), fires the jobs'
//    token, and takes and cancels every shared list under each shard's mutex. A drain
//    checks stopped_ before each job and cancels what is in its local backlog (which, for
//    an entry whose first drain has not started yet, holds the job that created it). A producer
//    that got in before the sweep of its shard had its job swept (or drained); one after
//    it sees stopped_ (the mutex orders the flag's store before it). Entries still go
//    through their drain (K2), so waiting for active_ == 0 waits for every drain to end.
// K6 (pool refuses). If the pool refuses the first drain (closed), the producer still holds
//    the drain role: it dismantles the entry as a drain would (K2), cancelling what others
//    appended meanwhile and rejecting its own job. If the pool cancels a queued drain
//    (stop_now, its base token), drain_cancelled does the same, cancelling everything.
// K7 (a full key, keyed_options::when_full). `waiting` counts a key's queued ordinary jobs
//    (admitted under the mutex; decremented with seq_cst as each leaves the queue). block
//    and post_until: the producer counts itself in blocked_ (seq_cst) and waits on
//    &blocked_ (wait.hpp) for its key to have room (its entry gone, or waiting < capacity,
//    re-read under the shard mutex), the serializer stopped, or its own stop token. Every
//    event that makes that true is followed by room_made(), which notifies when blocked_
//    is non-zero: a decrement of `waiting` (seq_cst: with the waiter's seq_cst increment of
//    blocked_ and load of `waiting`, the store-buffering pattern, so one of the two sees the
//    other), an entry's removal (under the mutex the waiter's re-check also takes), and
//    stop() (its seq_cst store of stopped_). discard_oldest needs the oldest queued job in
//    reach of a producer, so under it the drain never keeps a backlog of its own: a new
//    entry's first job goes to `shared` too, a refill moves ONE job to `local` (counting it
//    out of `waiting` there, under the mutex), and a turn yields before refilling, never
//    with a job in `local`. So under the mutex `waiting` is exactly the counted jobs in
//    `shared`: a full key always has a victim there, its oldest counted job, which the
//    producer unlinks, and cancels (counted discarded) once it has unlocked. This costs the
//    drain one lock per job instead of one per turn, only in that configuration. A job of a
//    key that would block on its own full key would wait for itself: it is refused instead
//    (queue_full; post_until: full at once).
//
// Why a mutex per shard, not a lock-free queue per key: the map must be consistent with the
// queues anyway (create on first job, free when empty, K2/K3), and a lock-free per-key queue
// (Vyukov MPSC plus a pending count, as folly's StrandExecutor) would need a second protocol
// to free the entry safely against concurrent lookups. Every critical section here is O(1)
// (a hash lookup and a list append; a list splice for the drain), sharded 64 ways by default,
// and the drain takes the lock once per turn, not per job. There is no global lock.
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "weft/detail/keyed_core.hpp"
#include "weft/detail/pool_access.hpp"
#include "weft/detail/wait.hpp"
#include "core/scheduler.hpp"
#include "weft/pool.hpp"

namespace weft {

const char* to_string(keyed_status s) noexcept {
  switch (s) {
    case keyed_status::ok:
      return "ok";
    case keyed_status::full:
      return "full";
    case keyed_status::closed:
      return "closed";
  }
  return "unknown";
}

namespace detail {

namespace {

// The drain running on this thread (nested when a job waits and the worker helps): for the
// checks that turn a self-deadlock into std::logic_error.
struct running_drain {
  const keyed_core* core = nullptr;
  const keyed_entry* entry = nullptr;
  const running_drain* outer = nullptr;
};
thread_local const running_drain* tls_drain = nullptr;

struct drain_scope {
  running_drain self;
  drain_scope(const keyed_core* c, const keyed_entry* e) noexcept : self{c, e, tls_drain} { tls_drain = &self; }
  ~drain_scope() { tls_drain = self.outer; }
  drain_scope(const drain_scope&) = delete;
  drain_scope& operator=(const drain_scope&) = delete;
};

bool is_pow2(std::size_t n) noexcept { return n != 0 && (n & (n - 1)) == 0; }

keyed_options validated(const keyed_options& o) {
  if (o.batch == 0 || o.batch > (std::size_t{1} << 20)) {
    throw std::invalid_argument("weft::keyed_options::batch must be in [1, 2^20], got " + std::to_string(o.batch));
  }
  if (o.batch_time < std::chrono::nanoseconds::zero()) {
    throw std::invalid_argument("weft::keyed_options::batch_time must not be negative");
  }
  if (!is_pow2(o.shards) || o.shards > (std::size_t{1} << 16)) {
    throw std::invalid_argument("weft::keyed_options::shards must be a power of two in [1, 2^16], got " +
                                std::to_string(o.shards));
  }
  if (o.errors != on_error::continue_key && o.errors != on_error::cancel_key_queue) {
    throw std::invalid_argument("weft::keyed_options::errors is not an on_error value");
  }
  if (o.when_full == full_policy::caller_runs) {
    throw std::invalid_argument("weft::keyed_options::when_full: caller_runs is not allowed for a key (running the "
                                "job on the caller would run it ahead of the jobs queued for its key); use reject, "
                                "block or discard_oldest");
  }
  if (o.when_full != full_policy::reject && o.when_full != full_policy::block &&
      o.when_full != full_policy::discard_oldest) {
    throw std::invalid_argument("weft::keyed_options::when_full is not a full_policy value");
  }
  return o;
}

}  // namespace

keyed_core::keyed_core(pool& p, const keyed_options& options)
    : pool_(p),
      options_(validated(options)),
      discarding_(options_.capacity != 0 && options_.when_full == full_policy::discard_oldest) {}

keyed_core::~keyed_core() = default;

void keyed_core::arm() {
  // A pool token that has already fired calls stop() right here.
  if (auto t = pool_.get_stop_token(); t.stop_possible()) pool_link_.emplace(t, stopper{this});
}

void keyed_core::shutdown() noexcept {
  if (in_job_of(nullptr)) {
    pool_access::report_unobserved(pool_, std::make_exception_ptr(std::logic_error(
        "weft::keyed destroyed from inside one of its own jobs: it would wait for itself")));
    std::terminate();
  }
  pool_link_.reset();  // waits for a stop() the pool's token is running on another thread
  stop();
  (void)wait_all_until(std::chrono::steady_clock::time_point::max());
}

std::size_t keyed_core::shard_of(std::size_t hash) const noexcept {
  // Fibonacci hashing: the top bits of hash * 2^64/phi, so that an identity std::hash (integers)
  // still spreads consecutive keys over the shards.
  const std::uint64_t mixed = static_cast<std::uint64_t>(hash) * 0x9E3779B97F4A7C15ull;
  return static_cast<std::size_t>(mixed >> 40) & (options_.shards - 1);
}

// ---- producer side ----

bool keyed_core::stopped_locked() const noexcept {
  // relaxed: the shard's mutex orders it (K5): stop() stores before it locks this shard.
  return stopped_.load(std::memory_order_relaxed);
}

bool keyed_core::admit_locked(keyed_entry& e, bool may_discard, task*& victim) noexcept {
  if (options_.capacity == 0) return true;
  // relaxed: producers' increments are serialized by the mutex, so the count never exceeds
  // capacity; the drain's concurrent decrements only make it smaller (a job that just
  // started may still be counted for a moment: the check errs towards "full").
  if (e.waiting.load(std::memory_order_relaxed) < options_.capacity) {
    e.waiting.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (!may_discard || !discarding_) return false;
  // K7: `waiting` is exactly the counted jobs in `shared`, so there is one: the oldest.
  task* prev = nullptr;
  task* t = e.shared.head;
  while (t != nullptr && t->stamp == keyed_marker_stamp) {
    prev = t;
    t = t->next;
  }
  if (t == nullptr) return false;  // cannot happen (K7); refuse rather than exceed the bound
  if (prev == nullptr) {
    e.shared.head = t->next;
  } else {
    prev->next = t->next;
  }
  if (e.shared.tail == t) e.shared.tail = prev;
  victim = t;  // its place in `waiting` goes to the new job
  return true;
}

bool keyed_core::room_locked(const keyed_entry& e) const noexcept {
  // seq_cst: K7, the waiter's load, paired with the seq_cst decrement in left_queue.
  return options_.capacity == 0 || e.waiting.load(std::memory_order_seq_cst) < options_.capacity;
}

void keyed_core::discarded(task* victim) noexcept {
  discarded_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter; before the delivery (as cancel_one)
  cancel_one(victim, nullptr);                          // its place in `waiting` was reused
}

bool keyed_core::wait_for_room(wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline,
                               const std::stop_token& stop) {
  // seq_cst: K7, the waiter's half (room_made loads blocked_ after its decrement).
  blocked_.fetch_add(1, std::memory_order_seq_cst);
  struct leave {
    std::atomic<std::uint32_t>& n;
    ~leave() { n.fetch_sub(1, std::memory_order_relaxed); }  // relaxed: only makes notifiers skip a wake
  } guard{blocked_};
  if (!stop.stop_possible()) return detail::wait_until(&blocked_, pred, ctx, deadline);
  // A stop request ends the wait too (the predicate reads the token).
  std::stop_callback wake(stop, [this] { notify_address(&blocked_); });
  return detail::wait_until(&blocked_, pred, ctx, deadline) && !stop.stop_requested();
}

void keyed_core::room_made() noexcept {
  // seq_cst: K7, pairs with the waiter's increment of blocked_ (store-buffering with the
  // seq_cst change that made room, which precedes this call).
  if (options_.capacity != 0 && blocked_.load(std::memory_order_seq_cst) != 0) notify_address(&blocked_);
}

void keyed_core::accepted_locked(bool new_entry, bool counted) noexcept {
  if (counted) submitted_.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter
  // relaxed: the waits read active_ only after their own seq_cst enlisting, and only its
  // decrements (seq_cst, in entry_gone) make their predicate true.
  if (new_entry) active_.fetch_add(1, std::memory_order_relaxed);
}

keyed_status keyed_core::reject(task* t, keyed_status why) noexcept {
  // relaxed: a counter
  if (t->stamp != keyed_marker_stamp) rejected_.fetch_add(1, std::memory_order_relaxed);
  discard_task(t);
  return why;
}

keyed_status keyed_core::schedule(keyed_entry& e, task* ours) {
  std::exception_ptr error;
  try {
    pool_access::enqueue(pool_, make_task(keyed_drain_task{this, &e}));
    return keyed_status::ok;
  } catch (const pool_closed&) {
  } catch (...) {
    error = std::current_exception();  // std::bad_alloc
  }
  // K6: we still hold the drain role (so the local list, where our job may be, is ours).
  job_list all;
  {
    std::lock_guard lock(shard_mutex(e.shard));
    all = e.local.take();
    job_list more = e.shared.take();
    splice(all, more);
    erase_locked(e);
  }
  bool found = false;
  bool counted = false;
  while (!all.empty()) {
    task* t = all.pop();
    if (t == ours) {
      found = true;
      counted = t->stamp != keyed_marker_stamp;
      discard_task(t);
    } else {
      cancel_one(t, nullptr);
    }
  }
  if (counted) {
    submitted_.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a counter; it is rejected instead
    rejected_.fetch_add(1, std::memory_order_relaxed);
  }
  entry_gone();
  if (found && error) std::rethrow_exception(error);
  return found ? keyed_status::closed : keyed_status::ok;
}

// ---- the drain ----

void keyed_core::drain(keyed_entry& e) noexcept {
  const drain_scope scope(this, &e);
  const bool timed = options_.batch_time != std::chrono::nanoseconds::zero();
  auto until = timed ? std::chrono::steady_clock::now() + options_.batch_time : std::chrono::steady_clock::time_point::max();
  turn_counts counts;
  for (std::size_t ran = 0;;) {
    if (e.local.empty()) {
      counts.flush(*this);  // before the entry may go: entry_gone is the last touch of *this
      // K7: under discard_oldest a turn ends before it takes its next job, never holding one.
      if (discarding_ && limit_reached(ran, until)) {
        if (yield_turn(e)) return;
        ran = 0;
        if (timed) until = std::chrono::steady_clock::now() + options_.batch_time;
      }
      if (!go_idle_or_refill(e)) return;  // idle: the entry is gone
      if (discarding_) room_made();       // K7: the refill counted a job out of `waiting`
    }
    if (!discarding_ && limit_reached(ran, until)) {
      counts.flush(*this);
      if (yield_turn(e)) return;
      ran = 0;  // nothing waits (or no memory for the re-post): another turn here
      if (timed) until = std::chrono::steady_clock::now() + options_.batch_time;
    }
    task* t = e.local.pop();
    if (!discarding_) {
      left_queue(e, t);
      room_made();
    }
    // relaxed: a late view only runs one more job before the stop is noticed; the job's
    // token (which stop() fires before sweeping) tells the job itself.
    if (stopped_.load(std::memory_order_relaxed)) {
      cancel_one(t, nullptr);  // its capacity was released just above
      continue;
    }
    const bool counted = t->stamp != keyed_marker_stamp;
    const task_result r = t->exec(t, task_mode::run);  // our bodies never throw
    free_task(t);
    ++ran;
    if (!counted) continue;
    if (r == task_result::cancelled) {
      ++counts.cancelled;
      continue;
    }
    ++counts.ran;
    if (r == task_result::failed) {
      ++counts.failed;
      if (options_.errors == on_error::cancel_key_queue) cancel_key_queue(e);
    }
  }
}

void keyed_core::turn_counts::flush(keyed_core& c) noexcept {
  // relaxed: counters. Added once per turn rather than per job (two workers incrementing one
  // line per job would contend on it); flushed before the entry goes idle, so once a wait
  // for idleness returns the counts are complete.
  if (ran != 0) c.ran_.fetch_add(ran, std::memory_order_relaxed);
  if (failed != 0) c.failed_.fetch_add(failed, std::memory_order_relaxed);
  if (cancelled != 0) c.cancelled_.fetch_add(cancelled, std::memory_order_relaxed);
  ran = failed = cancelled = 0;
}

bool keyed_core::limit_reached(std::size_t ran, std::chrono::steady_clock::time_point until) const noexcept {
  // K4: `batch` jobs, or (with batch_time) at least one job and the time budget spent.
  return ran == options_.batch || (until != std::chrono::steady_clock::time_point::max() && ran != 0 &&
                                   std::chrono::steady_clock::now() >= until);
}

bool keyed_core::yield_turn(keyed_entry& e) noexcept {
  // K4. Yield only to work that waits: with nothing else queued, a re-post would only hand
  // the key to another (woken) worker or back to this one.
  return scheduler(pool_access::impl(pool_)).has_queued_work() && repost(e);
}

// With the local backlog empty: takes the shared list (K7: its first job), or (K2) removes
// the entry. False: idle.
bool keyed_core::go_idle_or_refill(keyed_entry& e) noexcept {
  {
    std::lock_guard lock(shard_mutex(e.shard));
    if (!e.shared.empty()) {
      if (discarding_) {
        task* t = e.shared.pop();
        left_queue(e, t);  // K7: `waiting` counts exactly the jobs in `shared`
        e.local.push(t);
      } else {
        e.local = e.shared.take();
      }
      return true;
    }
    erase_locked(e);  // e is freed: not touched again
  }
  entry_gone();
  return false;
}

bool keyed_core::repost(keyed_entry& e) noexcept {
  try {
    // K4: the injection queue, FIFO for every worker (the worker's own deque would hand the
    // drain straight back to this worker, newest first).
    scheduler(pool_access::impl(pool_)).submit_global(make_task(keyed_drain_task{this, &e}));
    return true;
  } catch (...) {  // std::bad_alloc, or pool_closed while the pool drains: go on here instead
    return false;
  }
}

void keyed_core::drain_cancelled(keyed_entry& e) noexcept {
  // K6: the pool cancelled our queued drain (stop_now, a close deadline, its base token).
  job_list all = std::exchange(e.local, job_list{});
  {
    std::lock_guard lock(shard_mutex(e.shard));
    job_list more = e.shared.take();
    splice(all, more);
    erase_locked(e);
  }
  cancel_all(all, nullptr);
  entry_gone();
}

void keyed_core::cancel_key_queue(keyed_entry& e) noexcept {
  // The key's queue as it stands when the failure is seen: both lists are taken before any
  // cancellation is delivered. Taking the shared list after delivering the local one's
  // cancellations also cancelled a job submitted by someone who had already seen them
  // (Keyed.CancelKeyQueuePolicy, flaky in CI); jobs submitted from here on run.
  job_list l = e.local.take();
  job_list more;
  {
    std::lock_guard lock(shard_mutex(e.shard));
    more = e.shared.take();
  }
  cancel_all(l, &e);
  cancel_all(more, &e);
}

void keyed_core::left_queue(keyed_entry& e, const task* t) noexcept {
  if (options_.capacity != 0 && t->stamp != keyed_marker_stamp) {
    // seq_cst: K7, the notifier's change (room_made follows, outside any mutex).
    e.waiting.fetch_sub(1, std::memory_order_seq_cst);
  }
}

void keyed_core::cancel_one(task* t, keyed_entry* e) noexcept {
  if (e != nullptr) {
    left_queue(*e, t);
    room_made();
  }
  // relaxed: a counter. Counted before the delivery, so whoever sees the future ready and
  // then reads stats() sees it (the future's publish is a release).
  if (t->stamp != keyed_marker_stamp) cancelled_.fetch_add(1, std::memory_order_relaxed);
  cancel_task(t);
}

void keyed_core::cancel_all(job_list& l, keyed_entry* e) noexcept {
  while (!l.empty()) cancel_one(l.pop(), e);
}

void keyed_core::entry_gone() noexcept {
  // K7: the entry was removed under its mutex (a waiting producer's key has room now).
  // Before the decrement below, which is the last touch of *this.
  room_made();
  // seq_cst: the notifier half of the wait protocol (weft/detail/wait.hpp): pairs with the
  // waiter's seq_cst enlisting before it re-reads active_ (or the map). The last touch of
  // *this by a drain: a waiter may destroy the serializer as soon as it sees the decrement
  // (notify_address uses the address only as a key).
  active_.fetch_sub(1, std::memory_order_seq_cst);
  notify_address(&active_);
}

// ---- stop, wait, stats ----

void keyed_core::stop() noexcept {
  // seq_cst: published before the shard sweeps below (whose mutexes carry it to producers,
  // K5); also read relaxed by drains between jobs.
  stopped_.store(true, std::memory_order_seq_cst);
  source_.request_stop();  // running jobs' tokens
  for (std::size_t s = 0; s < options_.shards; ++s) {
    job_list swept;
    {
      std::lock_guard lock(shard_mutex(s));
      take_all_locked(s, swept);
    }
    cancel_all(swept, nullptr);  // capacity was released by take_shared_locked
  }
  room_made();  // K7: producers waiting for room see stopped_ (and the swept keys' room)
}

void keyed_core::take_shared_locked(keyed_entry& e, job_list& out) noexcept {
  job_list l = e.shared.take();
  for (task* t = l.head; t != nullptr; t = t->next) left_queue(e, t);
  splice(out, l);
}

bool keyed_core::stopped() const noexcept {
  return stopped_.load(std::memory_order_acquire);  // acquire: pairs with stop()'s seq_cst store
}

std::size_t keyed_core::active() const noexcept {
  return active_.load(std::memory_order_relaxed);  // relaxed: a snapshot for tests and stats
}

namespace {
bool none_active(const void* ctx) noexcept {
  // seq_cst: the waiter's re-check after enlisting (weft/detail/wait.hpp), pairs with entry_gone.
  return static_cast<const std::atomic<std::size_t>*>(ctx)->load(std::memory_order_seq_cst) == 0;
}
}  // namespace

bool keyed_core::wait_all_until(std::chrono::steady_clock::time_point deadline) const {
  if (none_active(&active_)) return true;
  return detail::wait_until(&active_, &none_active, &active_, deadline);
}

bool keyed_core::wait_until(wait_pred pred, const void* ctx, std::chrono::steady_clock::time_point deadline) const {
  if (pred(ctx)) return true;
  return detail::wait_until(&active_, pred, ctx, deadline);
}

bool keyed_core::in_job_of(const keyed_entry* e) const noexcept {
  for (const running_drain* d = tls_drain; d != nullptr; d = d->outer) {
    if (d->core == this && (e == nullptr || d->entry == e)) return true;
  }
  return false;
}

keyed_stats keyed_core::stats() const noexcept {
  keyed_stats s;
  // relaxed: counters; a snapshot in flight reads each at a slightly different moment.
  s.submitted = submitted_.load(std::memory_order_relaxed);
  s.ran = ran_.load(std::memory_order_relaxed);
  s.failed = failed_.load(std::memory_order_relaxed);
  s.cancelled = cancelled_.load(std::memory_order_relaxed);
  s.discarded = discarded_.load(std::memory_order_relaxed);
  s.rejected = rejected_.load(std::memory_order_relaxed);
  s.active_keys = active();
  return s;
}

void keyed_core::report(std::exception_ptr e) noexcept { pool_access::report_unobserved(pool_, std::move(e)); }

}  // namespace detail
}  // namespace weft
