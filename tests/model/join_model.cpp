// tests/model/join_model.cpp: Relacy model checks of task_group's join (J1-J5 at the top of
// runtime/core/task_group.cpp) over the shipped Chase-Lev deque.
//
// The pool: thread 0 creates the group, run()s its children and waits for them; one or two
// other workers ("thieves") steal children and run them. Thread 0 is the group's home worker
// (its deque is the shipped chase_lev_deque<int, rl_sync>, capacity 2 so it grows), or, for
// a group created outside the pool, an external thread whose run() goes to the injection
// queue and whose wait blocks. Restated here line by line (none of it is a template in the
// runtime), with the group's fields as the runtime declares them: local_ and arrived_ as
// rl::var (home only, so Relacy reports any unsynchronised access from another thread as a
// data race), remote_ as an rl::atomic holding 2 * count with bit 0 = "a waiter arrived":
//   task_group::run, count_one, finish_one, on_home, counts_locally, remote_count, done,
//     child::operator() (no cancellation, no exception):                 task_group.hpp
//   task_group::join (J1-J5):                                             task_group.cpp
//   help_own, wait_until, wait_on_worker, block_until, enlist/delist
//     (W1, W2, W3), notify_address / notify_address_slow (N1, N2):        wait.cpp, wait.hpp
//   pool::try_enqueue (spawn on a worker, inject otherwise), find_work (own deque, injector,
//     steal_sweep):                                                        pool.cpp, worker.cpp
// The address-wait table is one bucket; a worker's node is woken through its own rl_parker
// (a stand-in for wake_worker into the sleep protocol, which sleep_model.cpp checks), an
// external thread's node through its epoch and Relacy's futex, as block_until does. The
// injection queue is sleep_model.cpp's single-producer array queue (release enqueue, acquire
// dequeue).
//
// Not modelled: the sleep protocol itself (idle workers wait on a futex word `news` that every
// spawn and completion bumps, and leave once every task ran: a stand-in for close()), the
// 64-step spin of block_until (one check of the predicate), cancellation and exceptions
// (record, has_error_), stack segments (run_nested runs the task here), steal_more's batch,
// deadlines, the group's destruction (the notifier uses only the key after its decrement, as
// the runtime does, but nothing here frees the group), isolated waits (isolation_model.cpp).
//
// Scenarios (each child writes result[id], an rl::var, before finishing):
//   two_children        (a) home run()s two children, one thief;
//   grandchild[_2thieves] (b) three children, the first run()s a grandchild into the same
//                       group: counted locally when home runs it before arriving, remotely
//                       when a thief runs it (it goes to that thief's deque) or home runs it
//                       inside its wait;
//   reuse               (c) two rounds of two children and a wait: J5, and the reset of
//                       remote_ after a join that returns without arriving while a local child
//                       was stolen (its remote decrement left remote_ negative);
//   reuse_grandchild    (b) and (c) together: two rounds of two children and a grandchild;
//   outside[_reuse]     (d) the group is created outside the pool (home_ = null): every count
//                       is remote, an external thread waits (and waits again).
// A thief starts only once thread 0 has made a number of run() calls that Relacy's scheduler
// picks (an exploration aid, as in isolation_model.cpp: a worker may wake late), so that
// states where home runs everything itself, or arrives before any steal, are visited too
// (outside the pool, at the latest at the first round's last run(): nothing else could run
// the children). And a child's body takes 0 to 16 steps, also picked by the scheduler:
// otherwise a stolen child almost always finishes before home, which has more steps to take,
// arrives, and the waiting and wake-up paths go nearly unvisited (a notifier that wakes
// nobody then passes 1,500,000 executions of two_children).
//
// Checked, beyond Relacy's own data-race / leak / deadlock detection:
//   - each child runs exactly once (asserted at a second run; at the end for all);
//   - after join returns, every child of the round has run and its result[] write is visible
//     to the waiter (a read without happens-before is a data race);
//   - the group is exactly idle after each join: local_ == 0 and remote_ == 0 (asserted by
//     the waiter, and again at the end with every thread joined);
//   - no lost wake-up and no count that never returns to zero: either leaves the waiter
//     blocked with every worker idle, which Relacy reports as a deadlock.
// Negatives (WILL_FAIL), each one rule broken:
//   neg_no_reset_after_fast_join  join's fast path keeps remote_ (J5 reset only after a wait):
//                                 remote_ is -2 after a join whose stolen local child finished
//                                 on the thief (the idle assertion); without that assertion,
//                                 the second round's count never reaches zero (deadlock);
//   neg_arrival_relaxed           the arrival fetch_add relaxed: when it reads the last
//                                 decrement and returns without waiting, nothing acquired the
//                                 thief's completion (data race on result[]);
//   neg_decrement_relaxed         finish_one's fetch_sub relaxed: the waiter's acquire loads
//                                 read a decrement that released nothing (data race);
//   neg_arrival_skips_local       the arrival folds 0 instead of local_: a stolen local child
//                                 still running is not counted (the join returns early), or
//                                 one finished just before the arrival leaves the count at -1
//                                 (the wait never ends);
//   neg_arrived_read_off_home     counts_locally reads arrived_ before on_home() (as before
//                                 commit 7257e2e): a child run()ning a grandchild on a thief
//                                 reads the home-only arrived_ while home writes it (data race).
// What the relaxed-order negatives break is the release/acquire half of the two RMWs. Their
// seq_cst half cannot be shown here: it serves the wait table's N1/W2 pair, for which this
// model (like sleep_model.cpp) needs the stand-in fence in notify_address, which orders the
// notifier whatever the decrement's order; and the arrival needs no more than acq_rel (the
// notifier learns of the waiter bit through remote_'s modification order, not through S;
// with acq_rel every positive check passes).
#include "model_main.hpp"  // first: includes relacy_sync.hpp

#include <climits>
#include <cstdint>
#include <mutex>

#include "core/deque.hpp"

namespace weft::model {
namespace {

using detail::steal_result;

constexpr int max_tasks = 6;
constexpr int injector_capacity = 4;

struct join_scenario {
  bool outside;     // the group is created outside the pool: thread 0 is an external thread
  int rounds;       // waits on the group in a row, each after run()ning new children
  int children;     // children thread 0 run()s per round
  bool grandchild;  // the first child of each round run()s one more child into the group
  constexpr int per_round() const { return children + int{grandchild}; }
  constexpr int total() const { return rounds * per_round(); }
};

enum class mutant {
  none,
  no_reset_after_fast_join,
  arrival_relaxed,
  decrement_relaxed,
  arrival_skips_local,
  arrived_read_off_home,
};

// moodycamel::ConcurrentQueue stand-in (sleep_model.cpp's): one producer (the external
// thread), many consumers.
class injector_model {
 public:
  void enqueue(int item) {
    // relaxed: only the producer writes tail.
    const int t = tail_.load(rl::mo_relaxed, $);
    RL_ASSERT(t < injector_capacity);
    slots_[t]($) = item;
    // release: publishes the slot (and the child's closure) to the acquire load in dequeue.
    tail_.store(t + 1, rl::mo_release, $);
  }
  bool try_dequeue(int& out) {
    // relaxed: the CAS below re-validates it.
    int h = head_.load(rl::mo_relaxed, $);
    for (;;) {
      // acquire: pairs with the release store in enqueue.
      if (h >= tail_.load(rl::mo_acquire, $)) return false;
      // acquire: the slot read below follows the claim; relaxed on failure: retry with h.
      if (head_.compare_exchange_strong(h, h + 1, rl::mo_acquire, $, rl::mo_relaxed, $)) {
        out = slots_[h]($);
        return true;
      }
    }
  }

 private:
  rl::atomic<int> tail_{0};
  rl::atomic<int> head_{0};
  rl::var<int> slots_[injector_capacity];
};

struct model_worker {
  model_worker() : q(2), owner(q), stealer(q) {}  // capacity 2: growth happens
  detail::chase_lev_deque<int, rl_sync> q;
  detail::deque_owner<int, rl_sync> owner;
  detail::deque_stealer<int, rl_sync> stealer;
};

template <unsigned Thieves, const join_scenario& S, mutant M>
struct join_model : rl::test_suite<join_model<Thieves, S, M>, 1 + Thieves> {
  static constexpr unsigned N = 1 + Thieves;  // threads; thread i is worker i, but 0 when outside
  static constexpr int home = S.outside ? -1 : 0;  // home_: the creating worker, or none
  static constexpr std::int64_t kOne = 2;          // task_group::kOne
  static constexpr std::int64_t kWaiter = 1;       // task_group::kWaiter
  static constexpr int kKey = 0;                   // &remote_, the wait's key
  static constexpr int kMaxWork = 16;              // steps of a child's body, at most

  model_worker* workers[N] = {};
  injector_model injector;
  // task_group (task_group.hpp). home_ is const: `home` above.
  rl::var<std::int64_t> local_;     // home only
  rl::var<bool> arrived_;           // home only: inside join() past the arrival
  rl::atomic<std::int64_t> remote_;  // 2 * count, bit 0 = a waiter has arrived
  // task_group::child<F>: its `local` member, the closure's input and the body's output.
  rl::var<bool> child_local[max_tasks + 1];
  rl::var<int> payload[max_tasks + 1];  // written by whoever run()s the child
  rl::var<int> result[max_tasks + 1];   // written by the child, read by the waiter
  int ran[max_tasks + 1] = {};  // test bookkeeping: Relacy runs every thread on one OS thread
  // The address-wait table (wait.cpp), one bucket.
  rl_mutex bucket_mu;
  rl::atomic<unsigned> bucket_waiters{0};
  rl::atomic<unsigned> enlisted_waiters{0};
  int node_key[N];              // guarded by bucket_mu: the key thread i waits on, or -1
  rl_parker node_parker[N];     // a worker's node: wake_worker into its park (stand-in)
  rl::atomic<int> node_epoch[N];  // an external thread's node: wait_node::epoch
  // Stand-ins for the sleep protocol and close(), and the exploration aid (header comment).
  rl::atomic<int> news{0};
  rl::atomic<int> done{0};
  rl::atomic<int> stage{0};
  rl::atomic<int> work{0};

  void before() {
    static_assert(S.total() <= max_tasks && S.rounds * S.children <= injector_capacity);
    local_($) = 0;
    arrived_($) = false;
    remote_.store(0, rl::mo_relaxed, $);  // relaxed: before the threads start
    for (auto& e : node_epoch) e.store(0, rl::mo_relaxed, $);  // relaxed: before the threads start
    for (int& k : node_key) k = -1;
    for (auto& w : workers) w = new model_worker();
  }

  void after() {
    for (int id = 1; id <= S.total(); ++id) RL_ASSERT(ran[id] == 1);  // nothing lost
    RL_ASSERT(local_($) == 0);
    RL_ASSERT(remote_.load(rl::mo_relaxed, $) == 0);  // relaxed: every thread has been joined
    for (auto& w : workers) delete w;
  }

  static bool is_worker(unsigned w) { return !(S.outside && w == 0); }  // tls_worker != null
  static int base_of(int round) { return 1 + round * S.per_round(); }
  static bool spawns_grandchild(int id) { return S.grandchild && (id - 1) % S.per_round() == 0; }

  void thread(unsigned index) {
    if (index == 0) {
      creator();
      return;
    }
    // Outside the pool, thread 0 cannot run a child itself: every worker must start before
    // its first wait could block.
    const int latest = S.outside ? S.children : S.rounds * S.children;
    const int wake_at = static_cast<int>(rl::rand(latest + 1));
    for (;;) {
      // acquire: pairs with the release increment in advance (no data is read through it).
      const int s = stage.load(rl::mo_acquire, $);
      if (s >= wake_at) break;
      rl::rl_futex(&stage, rl::RL_FUTEX_WAIT, s, nullptr, nullptr, 0, $);
    }
    run(index);
  }

  // ---- thread 0: creates the group, run()s children, waits; rounds in a row ----
  void creator() {
    for (int round = 0; round < S.rounds; ++round) {
      const int base = base_of(round);
      for (int id = base; id < base + S.children; ++id) {
        group_run(0, id);
        advance();
      }
      join(0);  // task_group::wait
      // Every child of the round ran, and what it wrote is visible here.
      for (int id = base; id < base + S.per_round(); ++id) {
        RL_ASSERT(ran[id] == 1);
        RL_ASSERT(result[id]($) == id);
      }
      // Exactly idle (J5, and the fast path's reset); after() checks it again at the end.
      RL_ASSERT(local_($) == 0);
      // relaxed: our own store in join, or a later one (which would be a bug).
      RL_ASSERT(remote_.load(rl::mo_relaxed, $) == 0);
    }
  }

  // ---- task_group.hpp ----
  bool on_home(unsigned w) const { return home >= 0 && static_cast<int>(w) == home; }
  // arrived_ is home only: read it only where on_home() holds (the short-circuit).
  // (neg_arrived_read_off_home: the order before 7257e2e, arrived_ first.)
  bool counts_locally(unsigned w) {
    if (M == mutant::arrived_read_off_home) return !arrived_($) && on_home(w);
    return on_home(w) && !arrived_($);
  }
  std::int64_t remote_count() {
    // acquire: pairs with the release half of finish_one's decrement, so the effects of
    // children finished elsewhere are visible once the count reads zero.
    return remote_.load(rl::mo_acquire, $) >> 1;  // arithmetic: may be negative
  }
  bool done_pred() { return remote_count() == 0; }  // task_group::done, the wait's predicate

  void group_run(unsigned w, int id) {  // task_group::run
    payload[id]($) = 10 * id;  // the closure
    const bool local = counts_locally(w);
    count_one(local);
    child_local[id]($) = local;  // make_task(child{this, local, f})
    enqueue(w, id);
  }

  void count_one(bool local) {
    if (local) {
      local_($) += 1;
    } else {
      // relaxed: the increment reaches the child's decrement through the enqueue below (a
      // release the executing thread acquires), so it precedes it in remote_'s order.
      remote_.fetch_add(kOne, rl::mo_relaxed, $);
    }
  }

  void finish_one(unsigned w, bool local) {
    // A child counted locally that home finishes before its wait began: no atomic.
    if (local && on_home(w) && !arrived_($)) {
      local_($) -= 1;
      return;
    }
    // seq_cst: N1 of wait.cpp's protocol; its release part publishes result[] to
    // remote_count's acquire. Only the decrement that leaves zero with the waiter bit set
    // notifies. (neg_decrement_relaxed: relaxed.)
    constexpr rl::memory_order mo = M == mutant::decrement_relaxed ? rl::mo_relaxed : rl::mo_seq_cst;
    if (remote_.fetch_sub(kOne, mo, $) == kOne + kWaiter) notify_address(kKey);
    // Nothing of the group may be touched past this point: the waiter may have returned.
  }

  // ---- task_group.cpp ----
  void join(unsigned w) {
    RL_ASSERT(home < 0 || on_home(w));  // elsewhere wait() throws logic_error; never done here
    // J2: help with our own deque first; children popped here finish locally.
    while (local_($) + remote_count() != 0 && help_own(w)) {
    }
    if (local_($) + remote_count() == 0) {
      // Done without arriving: reset both for reuse.
      local_($) = 0;
      if (M != mutant::no_reset_after_fast_join) {
        // relaxed both: no child is left to touch remote_; remote_count() acquired their decrements.
        if (remote_.load(rl::mo_relaxed, $) != 0) remote_.store(0, rl::mo_relaxed, $);
      }
      return;
    }
    // seq_cst: J2/J4, the arrival; acquires the completions that happened before it.
    // (neg_arrival_relaxed: relaxed; neg_arrival_skips_local: folds 0.)
    const std::int64_t folded = M == mutant::arrival_skips_local ? 0 : local_($);
    constexpr rl::memory_order mo = M == mutant::arrival_relaxed ? rl::mo_relaxed : rl::mo_seq_cst;
    const std::int64_t prev = remote_.fetch_add(folded * kOne + kWaiter, mo, $);
    local_($) = 0;
    if ((prev >> 1) + folded != 0) {
      arrived_($) = true;
      wait_until(w);  // detail::wait_until(&remote_, &done, this)
      arrived_($) = false;
    }
    // relaxed: J5, no child is left that could touch remote_; done() acquired their effects.
    remote_.store(0, rl::mo_relaxed, $);
  }

  // ---- wait.cpp / wait.hpp, one bucket ----
  bool help_own(unsigned w) {
    if (!is_worker(w)) return false;
    int t = 0;
    if (!workers[w]->owner.pop(t)) return false;  // not isolated: pop_own
    execute(w, t);                                  // run_nested: enough stack here
    return true;
  }

  void wait_until(unsigned w) {
    if (is_worker(w)) {
      wait_on_worker(w);
    } else {
      block_until(w);
    }
  }

  void wait_on_worker(unsigned w) {  // not isolated, no deadline
    for (;;) {
      if (done_pred()) break;
      if (int t = find_work(w)) {
        execute(w, t);  // run_nested
        continue;
      }
      if (done_pred()) break;
      enlist(w);
      // worker::park(ready, ctx): W3, the ready() check after begin_park; sleep unless it
      // holds (a cancel_park that lost to a wake leaves a token: a later spurious return).
      if (!done_pred()) node_parker[w].park();
      delist(w);
    }
  }

  void block_until(unsigned w) {
    if (done_pred()) return;  // the spin before enlisting, once
    enlist(w);
    for (;;) {
      // acquire: pairs with the release fetch_add in notify_address.
      const int seen = node_epoch[w].load(rl::mo_acquire, $);
      if (done_pred()) break;  // W3
      rl::rl_futex(&node_epoch[w], rl::RL_FUTEX_WAIT, seen, nullptr, nullptr, 0, $);
    }
    delist(w);
  }

  void enlist(unsigned w) {  // enlisted e(key, n): W1, then W2
    {
      std::lock_guard guard(bucket_mu);
      node_key[w] = kKey;
      // seq_cst both: W1, pairs with N2's loads in notify_address.
      bucket_waiters.fetch_add(1, rl::mo_seq_cst, $);
      enlisted_waiters.fetch_add(1, rl::mo_seq_cst, $);
    }
    // seq_cst: W2, between enlisting and evaluating the predicate (W3).
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
  }

  void delist(unsigned w) {  // ~enlisted
    std::lock_guard guard(bucket_mu);
    node_key[w] = -1;
    // relaxed both: a stale non-zero count only sends a notifier to take the lock.
    bucket_waiters.fetch_sub(1, rl::mo_relaxed, $);
    enlisted_waiters.fetch_sub(1, rl::mo_relaxed, $);
  }

  void notify_address(int key) {
    // Not in the runtime: the stand-in fence of sleep_model.cpp's publish_child (Relacy's
    // seq_cst fences do not order against seq_cst RMWs/loads; docs/correctness.md).
    rl::atomic_thread_fence(rl::mo_seq_cst, $);
    // seq_cst: N2, pairs with the seq_cst increment W1 in enlist (wait.hpp's notify_address).
    if (enlisted_waiters.load(rl::mo_seq_cst, $) == 0) return;
    // seq_cst: N2 (notify_address_slow), pairs with W1.
    if (bucket_waiters.load(rl::mo_seq_cst, $) == 0) return;
    std::lock_guard guard(bucket_mu);
    for (unsigned v = 0; v < N; ++v) {
      if (node_key[v] != key) continue;
      if (is_worker(v)) {
        node_parker[v].unpark();  // n->sleep->wake_worker(n->worker)
      } else {
        // release: pairs with the acquire load of the epoch in block_until.
        node_epoch[v].fetch_add(1, rl::mo_release, $);
        rl::rl_futex(&node_epoch[v], rl::RL_FUTEX_WAKE, 1, nullptr, nullptr, 0, $);
      }
    }
  }

  // ---- pool.cpp / worker.cpp ----
  void enqueue(unsigned w, int id) {  // pool::try_enqueue
    if (is_worker(w)) {
      workers[w]->owner.push(id);  // worker::spawn
    } else {
      injector.enqueue(id);  // pool_impl::inject
    }
    notify_work();
  }

  int find_work(unsigned w) {
    int t = 0;
    if (workers[w]->owner.pop(t)) return t;
    if (S.outside && injector.try_dequeue(t)) return t;  // from_injector, batch 1
    return steal_sweep(w);
  }

  int steal_sweep(unsigned w) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      bool contended = false;
      for (unsigned i = 1; i < N; ++i) {
        const unsigned v = (w + i) % N;
        if (!is_worker(v)) continue;
        int t = 0;
        switch (workers[v]->stealer.steal(t)) {
          case steal_result::success:
            return t;  // (steal_more: not modelled)
          case steal_result::lost_race:
            contended = true;
            break;
          case steal_result::empty:
            break;
        }
      }
      if (!contended) break;
    }
    return 0;
  }

  void run(unsigned w) {  // worker::run, idle on `news` instead of the sleep protocol
    for (;;) {
      // acquire: pairs with the release bump in notify_work (a push, or a completion).
      const int seen = news.load(rl::mo_acquire, $);
      // acquire: pairs with the release increment in execute (test bookkeeping).
      if (done.load(rl::mo_acquire, $) == S.total()) return;
      if (int t = find_work(w)) {
        execute(w, t);
        continue;
      }
      rl::rl_futex(&news, rl::RL_FUTEX_WAIT, seen, nullptr, nullptr, 0, $);
    }
  }

  // task_group::child<F>::operator(), with the body.
  void execute(unsigned w, int id) {
    RL_ASSERT(id >= 1 && id <= S.total());
    RL_ASSERT(payload[id]($) == 10 * id);  // the run()ning thread's writes are visible
    RL_ASSERT(ran[id] == 0);               // runs once
    ++ran[id];
    const bool local = child_local[id]($);
    if (spawns_grandchild(id)) group_run(w, id + S.children);  // g.run() from inside a child
    // Exploration aid, not in the runtime: the body takes a number of steps that Relacy's
    // scheduler picks (see the header comment).
    for (int i = static_cast<int>(rl::rand(kMaxWork + 1)); i > 0; --i) {
      work.load(rl::mo_relaxed, $);  // relaxed: a scheduling point, nothing is read through it
    }
    result[id]($) = id;
    finish_one(w, local);
    // release: pairs with the acquire load of done in run (test bookkeeping; never read by
    // thread 0, so it adds no edge towards the waiter).
    done.fetch_add(1, rl::mo_release, $);
    notify_work();
  }

  // ---- stand-ins ----
  void notify_work() {
    // release: pairs with the acquire load of news in run, publishing the push before it.
    news.fetch_add(1, rl::mo_release, $);
    rl::rl_futex(&news, rl::RL_FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0, $);
  }
  void advance() {  // thread 0 made one more run() (the exploration aid)
    // release: pairs with the acquire load of stage in thread().
    stage.fetch_add(1, rl::mo_release, $);
    rl::rl_futex(&stage, rl::RL_FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0, $);
  }
};

// (a) Two children on home's deque, one thief.
constexpr join_scenario two_children{false, 1, 2, false};
// (b) Three children; the first run()s a grandchild into the same group.
constexpr join_scenario grandchild{false, 1, 3, true};
// (c) Two rounds of two children, each followed by a wait.
constexpr join_scenario reuse{false, 2, 2, false};
// (b) and (c): two rounds, the first child of each run()s a grandchild.
constexpr join_scenario reuse_grandchild{false, 2, 2, true};
// (d) A group created outside the pool: the external thread injects two children (the first
//     run()s a grandchild on the worker that runs it) and blocks in its wait.
constexpr join_scenario outside{true, 1, 2, true};
// (d) with reuse: two rounds of two children from outside.
constexpr join_scenario outside_reuse{true, 2, 2, false};

template <class Suite>
bool simulate(rl::test_params& p) {
  return rl::simulate<Suite>(p);
}

constexpr mutant ok = mutant::none;

// Random executions, sized for about 10-20 s each at -O2.
const check checks[] = {
    {"two_children", simulate<join_model<1, two_children, ok>>, rl::sched_random, 1'500'000, 0, {}},
    {"grandchild", simulate<join_model<1, grandchild, ok>>, rl::sched_random, 1'000'000, 0, {}},
    {"grandchild_2thieves", simulate<join_model<2, grandchild, ok>>, rl::sched_random, 800'000, 0, {}},
    {"reuse", simulate<join_model<1, reuse, ok>>, rl::sched_random, 1'000'000, 0, {}},
    {"reuse_grandchild", simulate<join_model<1, reuse_grandchild, ok>>, rl::sched_random, 800'000, 0, {}},
    {"outside", simulate<join_model<2, outside, ok>>, rl::sched_random, 800'000, 0, {}},
    {"outside_reuse", simulate<join_model<2, outside_reuse, ok>>, rl::sched_random, 500'000, 0, {}},
    // Negative: without the fast path's reset, the first round leaves remote_ at -2 (a local
    // child finished by the thief); the second round's count never reaches zero.
    {"neg_no_reset_after_fast_join", simulate<join_model<1, reuse, mutant::no_reset_after_fast_join>>,
     rl::sched_random, 400'000, 0, {rl::test_result_deadlock, rl::test_result_user_assert_failed}},
    // Negative: the arrival RMW relaxed reads the thief's last decrement without acquiring it.
    {"neg_arrival_relaxed", simulate<join_model<1, two_children, mutant::arrival_relaxed>>, rl::sched_random,
     500'000, 0, {rl::test_result_data_race}},
    // Negative: the decrement relaxed releases nothing to the waiter's acquire.
    {"neg_decrement_relaxed", simulate<join_model<1, two_children, mutant::decrement_relaxed>>, rl::sched_random,
     500'000, 0, {rl::test_result_data_race}},
    // Negative: the arrival without local_: a stolen local child still running is not
    // counted (the join returns early), or one that finished between the last check and the
    // arrival leaves the count at -1 (the wait never ends).
    {"neg_arrival_skips_local", simulate<join_model<1, two_children, mutant::arrival_skips_local>>,
     rl::sched_random, 500'000, 0,
     {rl::test_result_user_assert_failed, rl::test_result_data_race, rl::test_result_deadlock}},
    // Negative: counts_locally reads arrived_ before on_home(): a grandchild run() on a thief
    // reads it while home writes it at its arrival (the race TSan found, fixed in 7257e2e).
    {"neg_arrived_read_off_home", simulate<join_model<1, grandchild, mutant::arrived_read_off_home>>,
     rl::sched_random, 1'000'000, 0, {rl::test_result_data_race}},
};

}  // namespace
}  // namespace weft::model

int main(int argc, char** argv) { return weft::model::run_checks(argc, argv, weft::model::checks); }
