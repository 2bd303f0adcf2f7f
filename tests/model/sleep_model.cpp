// tests/model/sleep_model.cpp: Relacy model checks of the shipped parking protocol
// (runtime/sleep.hpp, sleep_protocol<Platform>) with the shipped deque, in a small pool.
//
// The pool: W worker threads and one external submitter. The protocol object and every
// worker's chase_lev_deque are the shipped templates, instantiated with the Relacy policies of
// relacy_sync.hpp. What is re-stated here (it is not a template in the runtime) is the glue
// around them, following the runtime line by line:
//   worker loop, find_work, from_injector, steal_sweep, steal_more, spawn, park: worker.cpp
//   any_work (seq_cst fence, then relaxed size reads), inject, close:           pool.cpp
// The injection queue (moodycamel::ConcurrentQueue in the runtime) is modelled by a small
// single-producer, multi-consumer array queue with the same publication (release on enqueue,
// acquire on dequeue) and a relaxed size_approx.
//
// Not modelled: the submission gate of S1 (the only submitter is also the closer), waits
// inside tasks (begin_park with in_wait, park_until, cancel_park, wake_worker: wait.cpp),
// the injector-first poll every 61 tasks (never reached with three tasks), random victim
// order, and bad_alloc on deque growth.
//
// Checked, beyond Relacy's own data-race / leak / deadlock detection:
//   - every task runs exactly once (asserted at the second run, and at the end for all);
//   - a task sees what its creator wrote before submitting or spawning it (an rl::var);
//   - the run terminates: a lost wake-up leaves a task queued with every worker parked and
//     the submitter waiting for it, which Relacy reports as a deadlock;
//   - shutdown: after close(), every worker leaves its loop and nothing is left queued.
#include "model_main.hpp"  // first: includes relacy_sync.hpp

#include <algorithm>

#include "sleep.hpp"
#include "weft/detail/deque.hpp"

namespace weft::model {
namespace {

constexpr int max_tasks = 4;
constexpr int injector_capacity = 4;

struct pool_scenario {
  int injected;          // tasks the submitter injects, one notify_work each
  bool spawn;            // task 1 spawns a child onto its worker's deque (spawn + notify_work_relaxed)
  bool wait_then_close;  // the submitter waits for every task before close(); else closes at once
  unsigned spin_rounds;  // pool_options::spin_rounds
  int batch;             // worker::kInjectorBatch
  constexpr int total() const { return injected + (spawn ? 1 : 0); }
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

  void before() {
    static_assert(S.total() <= max_tasks && S.injected <= injector_capacity);
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

  // ---- the external thread: pool_impl::inject, then (optionally) wait, then close ----
  void submitter() {
    for (int id = 1; id <= S.injected; ++id) {
      payload[id]($) = 10 * id;
      injector.enqueue(id);
      sleep->notify_work();
    }
    if (S.wait_then_close) {
      // relaxed: the parker's release/acquire orders the count (the last task unparks us).
      while (done.load(rl::mo_relaxed, $) != S.total()) done_parker.park();
    }
    close();
  }

  void close() {
    // seq_cst: S2, read by the last parker (pool_impl::close).
    closing.store(true, rl::mo_seq_cst, $);
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
  void execute(unsigned w, int id) {
    RL_ASSERT(id >= 1 && id <= S.total());
    RL_ASSERT(payload[id]($) == 10 * id);  // the creator's writes are visible
    RL_ASSERT(ran[id] == 0);               // runs once
    ++ran[id];
    if (S.spawn && id == 1) {
      const int child = S.injected + 1;
      payload[child]($) = 10 * child;
      spawn(w, child);
    }
    // relaxed: a count; the waiter is woken through done_parker.
    if (done.fetch_add(1, rl::mo_relaxed, $) + 1 == S.total()) done_parker.unpark();
  }

  void spawn(unsigned w, int id) {  // worker::spawn
    workers[w]->owner.push(id);
    sleep->notify_work_relaxed();
  }

  // ---- worker.cpp ----
  void run(unsigned w) {
    for (;;) {
      if (int t = find_work(w)) {
        execute(w, t);
        continue;
      }
      if (!park(w)) break;
    }
  }

  int find_work(unsigned w) {
    model_worker& me = *workers[w];
    int t = 0;
    if (me.owner.pop(t)) return t;
    if ((t = from_injector(w))) return t;
    if (!me.searching) {
      if (!sleep->try_begin_search()) return 0;
      me.searching = true;
    }
    for (unsigned r = 0;; ++r) {
      if ((t = steal_sweep(w)) || (t = from_injector(w))) {
        me.searching = false;
        sleep->end_search();
        return t;
      }
      if (r >= S.spin_rounds || sleep->terminating()) return 0;
    }
  }

  int from_injector(unsigned w) {
    int batch[max_tasks];
    const int n = injector.try_dequeue_bulk(batch, S.batch);
    if (n == 0) return 0;
    for (int i = n - 1; i >= 1; --i) workers[w]->owner.push(batch[i]);
    if (n > 1) sleep->notify_work_relaxed();
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

  bool park(unsigned w) {
    model_worker& me = *workers[w];
    const auto ticket = sleep->begin_park(w, me.searching, false);
    me.searching = false;
    if (ticket.last_searcher && any_work()) sleep->notify_work();
    // acquire: pairs with the seq_cst store in close (pool_impl::closing).
    if (ticket.last_awake && closing.load(rl::mo_acquire, $)) {
      if (!any_work()) {
        sleep->wake_all(true);  // S3: nothing can appear any more
        return false;
      }
      sleep->notify_work();
    }
    sleep->park(w);
    if (sleep->terminating()) return false;
    me.searching = sleep->woke_as_searcher(w);
    return true;
  }
};

// Two tasks injected one by one; the submitter waits for both, then closes. A lost wake-up
// is a deadlock here (close() would otherwise wake everyone and hide it).
constexpr pool_scenario inject_wait{2, false, true, 0, 1};
// The same with the injector batch of 2 (the second task goes to the taker's deque and is
// announced with notify_work_relaxed) and one spin round.
constexpr pool_scenario inject_batch{2, false, true, 1, 2};
// One injected task spawns a child onto its worker's deque; wait, then close.
constexpr pool_scenario spawn_child{1, true, true, 0, 1};
// Shutdown while work is queued: inject two tasks and close at once. Every task must still
// run, and every worker must leave its loop (S3).
constexpr pool_scenario close_at_once{2, false, false, 0, 1};

template <class Suite>
bool simulate(rl::test_params& p) {
  return rl::simulate<Suite>(p);
}

using ok = rl_platform;
using no_fence = basic_rl_platform<weakening::no_seq_cst_fence>;

const check checks[] = {
    {"inject_wait", simulate<pool_model<ok, 2, inject_wait>>, rl::sched_random, 200'000, 0, {}},
    {"inject_batch", simulate<pool_model<ok, 2, inject_batch>>, rl::sched_random, 200'000, 0, {}},
    {"spawn_child", simulate<pool_model<ok, 2, spawn_child>>, rl::sched_random, 200'000, 0, {}},
    {"close_at_once", simulate<pool_model<ok, 2, close_at_once>>, rl::sched_random, 200'000, 0, {}},
    // Negative: notify_work without its seq_cst fence (T1) loses wake-ups.
    {"neg_notify_no_fence", simulate<pool_model<no_fence, 2, inject_wait>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_deadlock}},
};

}  // namespace
}  // namespace weft::model

int main(int argc, char** argv) { return weft::model::run_checks(argc, argv, weft::model::checks); }
