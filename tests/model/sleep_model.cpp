// tests/model/sleep_model.cpp: Relacy model checks of the shipped parking protocol
// (runtime/core/sleep.hpp, sleep_protocol<Platform>) with the shipped deque, in a small pool.
//
// The pool: W worker threads and one external submitter. The protocol object and every
// worker's chase_lev_deque are the shipped templates, instantiated with the Relacy policies of
// relacy_sync.hpp. What is re-stated here (it is not a template in the runtime) is the glue
// around them, following the runtime line by line:
//   run, find_work, search, stop_searching, from_injector, steal_sweep, steal_more,
//     spawn, park (all of it but the deadline):                           worker.cpp
//   any_work (seq_cst fence, then relaxed size reads), inject, close
//     (begin_drain), stop_now (cancel_everything):                         pool.cpp
//   wait_on_worker, leave_search, enlist/delist, notify_address:         wait.cpp
//   a future's ready flag and publish:                                    future.hpp
// The injection queue (moodycamel::ConcurrentQueue in the runtime) is modelled by a small
// single-producer, multi-consumer array queue with the same publication (release on enqueue,
// acquire on dequeue) and a relaxed size_approx; the address-wait table by one bucket.
//
// Not modelled: the submission gate of S1 (the only submitter is also the closer), deadlines
// (park_until, close(deadline), the live_ count), isolated waits (they never park in the
// sleep protocol: isolation_model.cpp), external threads' waits, cancel mode of task bodies
// (S5), the injector-first poll every 61 tasks (never reached with four tasks), the search's
// time budget (a bound on rounds that are already bounded here), random victim order, and
// bad_alloc on deque growth.
//
// Checked, beyond Relacy's own data-race / leak / deadlock detection:
//   - every task runs exactly once (asserted at the second run, and at the end for all);
//   - a task sees what its creator wrote before submitting or spawning it (an rl::var), and
//     a waiter sees what the child wrote before completing;
//   - the run terminates: a lost wake-up leaves a task queued with every worker parked and
//     the submitter waiting for it, or a worker parked in a wait whose child completed,
//     which Relacy reports as a deadlock;
//   - shutdown: after close() or stop_now(), every worker leaves its loop and every task
//     ran (or was cancelled by the stopping thread) exactly once.
#include "model_main.hpp"  // first: includes relacy_sync.hpp

#include <algorithm>

#include "core/sleep.hpp"
#include "core/deque.hpp"

namespace weft::model {
namespace {

constexpr int max_tasks = 4;
constexpr int injector_capacity = 4;

// How the submitter ends, after injecting.
enum class ending {
  wait_then_close,  // waits until every task ran, then close()
  close_at_once,    // close() at once, with work still queued (S2, S3)
  stop_at_once,     // stop_now() at once: cancels what is queued, itself too (S5, S6)
};

struct pool_scenario {
  int injected;          // tasks the submitter injects, one notify_work each
  int spawners;          // tasks 1..spawners each spawn a child onto their worker's deque
                         // (spawn: push + notify_work)
  bool wait_child;       // ... and then wait for it, as future::get does inside a task (wait.cpp)
  ending end;
  unsigned spin_rounds;  // pool_options::spin_rounds
  int batch;             // worker::kInjectorBatch
  bool terminate_check = true;  // worker::park's terminating() check right after begin_park
  bool block_child = false;     // spawners block *outside weft* until their child ran (a latch)
  constexpr int total() const { return injected + spawners; }
};

// moodycamel::ConcurrentQueue stand-in: one producer (the submitter), many consumers.
class injector_model {
 public:
  void enqueue(int item) {
    // relaxed: only the submitter writes tail.
    const int t = tail_.load(rl::mo_relaxed, $);
    RL_ASSERT(t < injector_capacity);
    slots_[t]($) = item;
    // release: publishes the slot (and the task's payload) to the acquire load in dequeue.
    tail_.store(t + 1, rl::mo_release, $);
  }
  // Takes up to n items; fails only when other consumers took everything published.
  int try_dequeue_bulk(int* out, int n) {
    int got = 0;
    // relaxed: the CAS below re-validates it.
    int h = head_.load(rl::mo_relaxed, $);
    while (got < n) {
      // acquire: pairs with the release store in enqueue.
      if (h >= tail_.load(rl::mo_acquire, $)) break;
      // acquire: the slot read below follows the claim; relaxed on failure: retry with h.
      if (head_.compare_exchange_strong(h, h + 1, rl::mo_acquire, $, rl::mo_relaxed, $)) out[got++] = slots_[h++]($);
    }
    return got;
  }
  int size_approx() const {
    // relaxed both: a heuristic, as moodycamel's size_approx.
    const int t = tail_.load(rl::mo_relaxed, $);
    const int h = head_.load(rl::mo_relaxed, $);
    return t > h ? t - h : 0;
  }

 private:
  rl::atomic<int> tail_{0};
  rl::atomic<int> head_{0};
  rl::var<int> slots_[injector_capacity];
};

using deque = detail::chase_lev_deque<int, rl_sync>;

struct model_worker {
  explicit model_worker() : q(2), owner(q), stealer(q) {}  // capacity 2: growth happens
  deque q;
  detail::deque_owner<int, rl_sync> owner;
  detail::deque_stealer<int, rl_sync> stealer;
  bool searching = false;  // owner-thread state (worker::searching_)
};

enum class parked { woken, terminating };  // worker::park_result

template <class Platform, unsigned W, const pool_scenario& S>
struct pool_model : rl::test_suite<pool_model<Platform, W, S>, W + 1> {
  static constexpr int kStealBatch = 32;  // worker::kStealBatch

  detail::sleep_protocol<Platform>* sleep = nullptr;
  model_worker* workers[W] = {};
  injector_model injector;
  rl::atomic<bool> closing{false};  // pool_impl::closing_
  rl::atomic<int> done{0};          // tasks completed
  rl_parker done_parker;            // the submitter waits here (a future's wait, in the runtime)
  rl::var<int> payload[max_tasks + 1];
  int ran[max_tasks + 1] = {};  // test bookkeeping: Relacy runs every thread on one OS thread
  // The children's futures (future_state_base), and the one bucket of the address-wait
  // table (wait.cpp) they are waited on in: both keys hash to it, as they may in the runtime.
  rl::atomic<bool> child_ready[max_tasks];
  rl::var<int> child_result[max_tasks];
  rl_parker child_parker[max_tasks];  // block_child: the spawner blocks here (a std::latch)
  rl_mutex bucket_mu;
  rl::atomic<unsigned> bucket_waiters{0};
  rl::atomic<unsigned> enlisted_waiters{0};
  int node_key[W];  // guarded by bucket_mu: the child worker w waits for while enlisted, or -1

  void before() {
    static_assert(S.total() <= max_tasks && S.injected <= injector_capacity && S.spawners <= S.injected);
    for (auto& r : child_ready) r.store(false, rl::mo_relaxed, $);  // relaxed: before the threads start
    for (int& k : node_key) k = -1;
    sleep = new detail::sleep_protocol<Platform>(W);
    for (auto& w : workers) w = new model_worker();
  }

  void after() {
    for (int id = 1; id <= S.total(); ++id) RL_ASSERT(ran[id] == 1);  // nothing lost
    for (auto& w : workers) delete w;
    delete sleep;
  }

  void thread(unsigned index) {
    if (index < W) {
      run(index);
    } else {
      submitter();
    }
  }

  // ---- the external thread: pool_impl::inject, then wait / close / stop_now ----
  void submitter() {
    for (int id = 1; id <= S.injected; ++id) {
      payload[id]($) = 10 * id;
      injector.enqueue(id);
      sleep->notify_work();
    }
    if (S.end == ending::wait_then_close) {
      // relaxed: the parker's release/acquire orders the count (the last task unparks us).
      while (done.load(rl::mo_relaxed, $) != S.total()) done_parker.park();
    }
    if (S.end == ending::stop_at_once) {
      stop_now();
    } else {
      close();
    }
  }

  // pool_impl::close: close_gate (not modelled), begin_drain, join (Relacy joins every thread).
  void close() {
    // seq_cst: S2, read by the last parker (pool_impl::begin_drain).
    closing.store(true, rl::mo_seq_cst, $);
    sleep->wake_all(false);
  }

  // pool_impl::stop_now: close_gate (not modelled), closing_, cancel_everything, join.
  void stop_now() {
    closing.store(true, rl::mo_seq_cst, $);  // seq_cst: S2
    // (cancelling_ only turns task bodies into cancellations; these tasks have no body.)
    int t = 0;
    for (bool found = true; found;) {  // S6: this thread empties every queue too
      found = false;
      while (injector.try_dequeue_bulk(&t, 1) == 1) {
        found = true;
        execute(-1, t);
      }
      for (model_worker* w : workers) {
        for (detail::steal_result r; (r = w->stealer.steal(t)) != detail::steal_result::empty;) {
          if (r != detail::steal_result::success) continue;
          found = true;
          execute(-1, t);
        }
      }
    }
    sleep->wake_all(false);
  }

  bool any_work() {
    // seq_cst: the re-check half of T3, pairs with the fence in notify_work (pool_impl::any_work).
    // A direct fence, not Platform::fence: the negative checks weaken only the protocol's own.
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    if (injector.size_approx() != 0) return true;
    for (model_worker* w : workers) {
      if (w->stealer.size_approx() != 0) return true;
    }
    return false;
  }

  // ---- tasks ----
  // w: the worker running it, or -1 for the stopping thread (S6).
  void execute(int w, int id) {
    RL_ASSERT(id >= 1 && id <= S.total());
    RL_ASSERT(payload[id]($) == 10 * id);  // the creator's writes are visible
    RL_ASSERT(ran[id] == 0);               // runs once
    ++ran[id];
    if (id <= S.spawners) {
      RL_ASSERT(w >= 0);
      const int child = S.injected + id;
      payload[child]($) = 10 * child;
      spawn(w, child);
      if (S.block_child) {
        const int k = id - 1;
        // acquire: pairs with the release store in the child. Blocks the worker outside
        // weft: only another worker can run the child (the lost wake-up of issue 8, #2).
        while (!child_ready[k].load(rl::mo_acquire, $)) child_parker[k].park();
      }
      if (S.wait_child) {
        const int k = id - 1;
        wait_on_worker(static_cast<unsigned>(w), k);
        RL_ASSERT(child_result[k]($) == child);  // published by the child before child_ready
      }
    }
    if (S.wait_child && id > S.injected) {
      const int k = id - S.injected - 1;
      child_result[k]($) = id;
      publish_child(k);
    }
    if (S.block_child && id > S.injected) {
      const int k = id - S.injected - 1;
      child_ready[k].store(true, rl::mo_release, $);  // release: pairs with the spawner's acquire
      child_parker[k].unpark();
    }
    // relaxed: a count; the waiter is woken through done_parker.
    if (done.fetch_add(1, rl::mo_relaxed, $) + 1 == S.total()) done_parker.unpark();
  }

  void spawn(int w, int id) {  // worker::spawn
    workers[w]->owner.push(id);
    sleep->notify_work();
  }

  // ---- the children's futures and wait.cpp, for one bucket ----
  bool child_is_ready(int k) {
    // acquire: pairs with the seq_cst store in publish_child (future_state_base::ready).
    return child_ready[k].load(rl::mo_acquire, $);
  }

  void publish_child(int k) {  // future_state_base::publish, then notify_address / _slow
    // seq_cst: N1 of wait.cpp's protocol; also release for child_result.
    child_ready[k].store(true, rl::mo_seq_cst, $);
    // Not in the runtime: a stand-in for what C++ guarantees and Relacy does not model.
    // If N2 below reads a count without the waiter's W1, then N1 < N2 < W1 < W2 in the
    // single total order S, so the waiter's load of the predicate after its fence W2 must
    // see N1 ([atomics.order]: a load after a seq_cst fence X sees the last seq_cst store
    // before X in S). Relacy's seq_cst fences synchronise only with other seq_cst fences, so
    // without this fence it reports that lost wake-up although the standard forbids it
    // (docs/correctness.md has the two-thread litmus test). With it, the same argument runs
    // fence-to-fence, which Relacy does model.
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    // seq_cst both: N2, pairs with the seq_cst increments of W1 in enlist.
    if (enlisted_waiters.load(rl::mo_seq_cst, $) == 0) return;
    if (bucket_waiters.load(rl::mo_seq_cst, $) == 0) return;
    std::lock_guard lock(bucket_mu);
    for (unsigned v = 0; v < W; ++v) {
      if (node_key[v] == k) sleep->wake_worker(v);
    }
  }

  void wait_on_worker(unsigned w, int k) {  // wait.cpp, not isolated, no deadline
    for (;;) {
      if (child_is_ready(k)) break;
      if (int t = find_work(w)) {
        execute(static_cast<int>(w), t);
        continue;
      }
      if (child_is_ready(k)) break;
      {  // enlisted e(key, n): W1, W2
        std::lock_guard lock(bucket_mu);
        node_key[w] = k;
        // seq_cst: W1, pairs with N2's loads.
        bucket_waiters.fetch_add(1, rl::mo_seq_cst, $);
        enlisted_waiters.fetch_add(1, rl::mo_seq_cst, $);
      }
      // seq_cst: W2, between enlisting and evaluating the predicate (W3, inside park).
      rl::atomic_thread_fence(rl::mo_seq_cst, $);
      park(w, k);
      {  // ~enlisted: delist
        std::lock_guard lock(bucket_mu);
        node_key[w] = -1;
        // relaxed: a stale non-zero count only costs a notifier the lock.
        bucket_waiters.fetch_sub(1, rl::mo_relaxed, $);
        enlisted_waiters.fetch_sub(1, rl::mo_relaxed, $);
      }
    }
    leave_search(w);
  }

  void leave_search(unsigned w) {  // worker::leave_search
    if (workers[w]->searching) {
      workers[w]->searching = false;
      sleep->end_search([this] { return any_work(); });
    }
  }

  // ---- worker.cpp ----
  void run(unsigned w) {
    for (;;) {
      if (int t = find_work(w)) {
        execute(static_cast<int>(w), t);
        continue;
      }
      if (park(w, -1) == parked::terminating) break;
    }
  }

  int find_work(unsigned w) {
    int t = 0;
    // (The injector-first poll every kInjectorInterval = 61 tasks is never reached here.)
    if (!workers[w]->owner.pop(t)) t = from_injector(w);
    if (t == 0) t = search(w);
    return stop_searching(w, t);
  }

  int search(unsigned w) {
    model_worker& me = *workers[w];
    if (!me.searching) {
      if (!sleep->try_begin_search()) return 0;
      me.searching = true;
    }
    for (unsigned r = 0;; ++r) {
      if (int t = steal_sweep(w)) return t;
      if (int t = from_injector(w)) return t;
      if (r >= S.spin_rounds || sleep->terminating()) return 0;  // still searching: park() takes us out
    }
  }

  int stop_searching(unsigned w, int t) {
    if (t != 0 && workers[w]->searching) {
      workers[w]->searching = false;
      sleep->end_search([this] { return any_work(); });
    }
    return t;
  }

  int from_injector(unsigned w) {
    int batch[max_tasks];
    const int n = injector.try_dequeue_bulk(batch, S.batch);
    if (n == 0) return 0;
    for (int i = n - 1; i >= 1; --i) workers[w]->owner.push(batch[i]);
    if (n > 1) sleep->notify_work();
    return batch[0];
  }

  int steal_sweep(unsigned w) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      bool contended = false;
      for (unsigned i = 1; i < W; ++i) {
        const unsigned v = (w + i) % W;
        int t = 0;
        switch (workers[v]->stealer.steal(t)) {
          case detail::steal_result::success:
            steal_more(w, v);
            return t;
          case detail::steal_result::lost_race:
            contended = true;
            break;
          case detail::steal_result::empty:
            break;
        }
      }
      if (!contended) break;
    }
    return 0;
  }

  void steal_more(unsigned w, unsigned v) {
    const std::int64_t extra = std::min<std::int64_t>(workers[v]->stealer.size_approx() / 2, kStealBatch);
    for (std::int64_t i = 0; i < extra; ++i) {
      int t = 0;
      if (workers[v]->stealer.steal(t) != detail::steal_result::success) break;
      workers[w]->owner.push(t);
    }
  }

  // worker::park. k >= 0: called from a wait for child k, whose readiness is `ready`.
  parked park(unsigned w, int k) {
    model_worker& me = *workers[w];
    const bool in_wait = k >= 0;
    if (in_wait && me.stealer.size_approx() > 0) sleep->notify_work();
    const auto ticket = sleep->begin_park(w, me.searching, in_wait);
    me.searching = false;
    // Termination decided before we enlisted: the wake_all that set it could not see us.
    if (S.terminate_check && sleep->terminating()) return parked::terminating;
    if (ticket.last_searcher && any_work()) sleep->notify_work();
    // acquire: pairs with the seq_cst store in close (pool_impl::closing).
    if (ticket.last_awake && closing.load(rl::mo_acquire, $)) {
      if (!any_work()) {
        sleep->wake_all(true);  // S3: nothing can appear any more
        return parked::terminating;
      }
      sleep->notify_work();
    }
    if (in_wait && child_is_ready(k)) {
      if (!sleep->cancel_park(w)) sleep->park(w);
    } else {
      sleep->park(w);
    }
    if (sleep->terminating()) return parked::terminating;
    me.searching = sleep->woke_as_searcher(w);
    return parked::woken;
  }
};

// Two tasks injected one by one; the submitter waits for both, then closes. A lost wake-up
// is a deadlock here (close() would otherwise wake everyone and hide it).
constexpr pool_scenario inject_wait{2, 0, false, ending::wait_then_close, 0, 1};
// The same with the injector batch of 2 (the second task goes to the taker's deque and is
// announced with notify_work_relaxed) and one spin round.
constexpr pool_scenario inject_batch{2, 0, false, ending::wait_then_close, 1, 2};
// One injected task spawns a child onto its worker's deque; wait, then close.
constexpr pool_scenario spawn_child{1, 1, false, ending::wait_then_close, 0, 1};
// The spawned child is waited for inside its parent, as future::get does: the parent's
// worker helps (pops or steals the child), or enlists in the address-wait table and parks
// inside the wait (begin_park with in_wait, cancel_park, wake_worker).
constexpr pool_scenario wait_child{1, 1, true, ending::wait_then_close, 0, 1};
// Both injected tasks spawn a child and wait for it: both workers can end up parked inside
// waits with a child still queued; each must be woken to run it.
constexpr pool_scenario wait_children{2, 2, true, ending::wait_then_close, 0, 1};
// An injected task spawns a child and then blocks outside weft until the child ran: the
// other worker must be woken by the spawn (issue 8, defect 2).
constexpr pool_scenario spawn_then_block{1, 1, false, ending::wait_then_close, 0, 1, true, true};
// Three workers (two may search at once): two tasks, the batch of 2 and a spawn.
constexpr pool_scenario three_workers{2, 1, false, ending::wait_then_close, 0, 2};
// Shutdown while work is queued: inject two tasks (batch 2, so one may sit in a deque) and
// close at once. Every task must still run, and every worker must leave its loop (S3).
constexpr pool_scenario close_at_once{2, 0, false, ending::close_at_once, 0, 2};
// stop_now at once: the submitter races the workers for the queued tasks (S6).
constexpr pool_scenario stop_at_once{2, 0, false, ending::stop_at_once, 0, 2};
// inject_wait without worker::park's terminating() check after begin_park (see park above).
constexpr pool_scenario no_terminate_check{2, 0, false, ending::wait_then_close, 0, 1, false};

template <class Suite>
bool simulate(rl::test_params& p) {
  return rl::simulate<Suite>(p);
}

using ok = rl_platform;
using no_fence = basic_rl_platform<weakening::no_seq_cst_fence>;

const check checks[] = {
    {"inject_wait", simulate<pool_model<ok, 2, inject_wait>>, rl::sched_random, 400'000, 0, {}},
    {"inject_batch", simulate<pool_model<ok, 2, inject_batch>>, rl::sched_random, 400'000, 0, {}},
    {"spawn_child", simulate<pool_model<ok, 2, spawn_child>>, rl::sched_random, 400'000, 0, {}},
    {"wait_child", simulate<pool_model<ok, 2, wait_child>>, rl::sched_random, 300'000, 0, {}},
    {"wait_children", simulate<pool_model<ok, 2, wait_children>>, rl::sched_random, 300'000, 0, {}},
    {"three_workers", simulate<pool_model<ok, 3, three_workers>>, rl::sched_random, 300'000, 0, {}},
    {"close_at_once", simulate<pool_model<ok, 2, close_at_once>>, rl::sched_random, 400'000, 0, {}},
    {"stop_at_once", simulate<pool_model<ok, 2, stop_at_once>>, rl::sched_random, 400'000, 0, {}},
    {"spawn_then_block", simulate<pool_model<ok, 2, spawn_then_block>>, rl::sched_random, 400'000, 0, {}},
    // Negative: the spawn's notify without its seq_cst fence (the "relaxed" notify weft
    // used before issue 8) loses the wake-up of a spawner that then blocks outside weft.
    {"neg_spawn_notify_no_fence", simulate<pool_model<no_fence, 2, spawn_then_block>>, rl::sched_random,
     1'000'000, 0, {rl::test_result_deadlock}},
    // Negative: notify_work without its seq_cst fence (T1) loses wake-ups.
    {"neg_notify_no_fence", simulate<pool_model<no_fence, 2, inject_wait>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_deadlock}},
    // Negative (glue, not an ordering): without the terminating() check after begin_park, a
    // worker woken by close() can miss the terminate decision of the last parker, re-enlist
    // after that wake_all(true) and sleep forever: close() never returns.
    {"neg_park_without_terminate_check", simulate<pool_model<ok, 2, no_terminate_check>>, rl::sched_random,
     1'000'000, 0, {rl::test_result_deadlock}},
};

}  // namespace
}  // namespace weft::model

int main(int argc, char** argv) { return weft::model::run_checks(argc, argv, weft::model::checks); }
