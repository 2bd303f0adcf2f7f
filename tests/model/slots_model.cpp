// tests/model/slots_model.cpp: Relacy model checks of worker slots separate from threads: the
// sleep protocol's attach and detach transitions (runtime/core/sleep.hpp T5, T6 and the re-check
// R) and the slot bookkeeping around them (runtime/core/pool_impl.hpp A1-A3, the policy of
// runtime/layers/burst.cpp), with the shipped sleep_protocol and deque templates.
//
// The pool: W slots, each a Relacy thread that runs the worker loop whenever a thread is
// attached to it (the same Relacy thread stands for every OS thread the slot ever gets), and
// one external submitter that injects, waits, and closes. Re-stated glue, following the
// runtime: worker::run / find_work / search / stop_searching / from_injector / steal_sweep /
// spawn / park (worker.cpp), worker::park_or_retire (burst.cpp) with a keep-alive that has
// always just run out (the idle park's park_until returns at once, so every idle park of a
// worker above min tries to retire: the most hostile keep_alive), pool_impl::grow /
// grow_once / slot_vacated (burst.cpp: the saturation hook of T1), worker_exited and the
// close path of shutdown.cpp (S2, wait for live_ == 0, the seal and join of A3). The
// injection queue is sleep_model.cpp's single-producer stand-in.
//
// Not modelled: the submission gate, deadlines, waits inside tasks (sleep_model.cpp), a
// failed thread start (abort_attach), the grower's join (a slot's Relacy thread is reused
// only after it marked the slot vacant, which is what the join waits for), metrics.
//
// Checked, beyond Relacy's data-race / deadlock detection: every task runs exactly once,
// with its creator's writes visible; every slot thread leaves (close() completes: a lost
// wake-up or a count that never reaches S3 is a deadlock).
#include "model_main.hpp"  // first: includes relacy_sync.hpp

#include <algorithm>

#include "core/sleep.hpp"
#include "core/deque.hpp"

namespace weft::model {
namespace {

constexpr int max_tasks = 4;
constexpr int injector_capacity = 4;

// A planted bug in the glue (the negative checks).
enum class mutant {
  none,
  retire_without_recheck,  // T6 without R: leaves even though work arrived meanwhile
  retire_ignores_wake,     // a timed-out park leaves although a waker already took it
  attach_not_searching,    // T5 counts a searcher, but the new thread's flag says it is not
  release_ignores_grow,    // A2 vacates the slot although a grow found only this retiring slot
};

struct slots_scenario {
  unsigned initial;   // slots attached at construction (min_workers)
  unsigned min;       // retire keeps this many
  bool retire;        // idle parks time out at once (keep_alive has passed)
  int injected;       // tasks injected one by one before the first wait
  int spawners;       // tasks 1..spawners spawn a child onto their worker's deque
  int blocker_waits;  // task 1 blocks outside weft until this task ran (0: none)
  int late;           // tasks injected after the first ones all ran
  bool close_at_once; // close() right after injecting (no wait)
  mutant bug = mutant::none;
  constexpr int first() const { return injected + spawners; }
  constexpr int total() const { return first() + late; }
};

class injector_model {  // as in sleep_model.cpp
 public:
  void enqueue(int item) {
    const int t = tail_.load(rl::mo_relaxed, $);  // relaxed: only the submitter writes tail
    RL_ASSERT(t < injector_capacity);
    slots_[t]($) = item;
    tail_.store(t + 1, rl::mo_release, $);  // release: publishes the slot to dequeue's acquire
  }
  int try_dequeue_bulk(int* out, int n) {
    int got = 0;
    int h = head_.load(rl::mo_relaxed, $);  // relaxed: the CAS re-validates it
    while (got < n) {
      if (h >= tail_.load(rl::mo_acquire, $)) break;  // acquire: pairs with enqueue's release
      if (head_.compare_exchange_strong(h, h + 1, rl::mo_acquire, $, rl::mo_relaxed, $)) out[got++] = slots_[h++]($);
    }
    return got;
  }
  int size_approx() const {
    const int t = tail_.load(rl::mo_relaxed, $);  // relaxed both: a heuristic
    const int h = head_.load(rl::mo_relaxed, $);
    return t > h ? t - h : 0;
  }

 private:
  rl::atomic<int> tail_{0};
  rl::atomic<int> head_{0};
  rl::var<int> slots_[injector_capacity];
};

using deque = detail::chase_lev_deque<int, rl_sync>;

struct model_slot {
  model_slot() : q(2), owner(q), stealer(q) {}
  deque q;
  detail::deque_owner<int, rl_sync> owner;
  detail::deque_stealer<int, rl_sync> stealer;
  bool searching = false;  // owner-thread state (worker::searching_)
};

enum class parked { woken, terminating, retired };  // worker::park_result
enum start_cmd : int { none = 0, start = 1, leave = 2 };

template <unsigned W, const slots_scenario& S>
struct slots_model : rl::test_suite<slots_model<W, S>, W + 1> {
  using protocol = detail::sleep_protocol<rl_platform>;

  protocol* sleep = nullptr;
  model_slot* slots[W] = {};
  injector_model injector;
  rl::atomic<bool> closing{false};
  rl::atomic<int> done{0};
  rl_parker done_parker;
  rl::var<int> payload[max_tasks + 1];
  int ran[max_tasks + 1] = {};
  rl::atomic<bool> task_ran[max_tasks + 1];
  rl_parker blocker_parker;
  // pool_impl: live_ and close's wait on it; the slot table (A1-A3) and the grow counter.
  rl::atomic<int> live{0};
  rl_mutex slots_mu;
  bool occupied[W] = {};  // guarded by slots_mu
  bool sealed = false;    // guarded by slots_mu
  bool grow_wanted = false;  // guarded by slots_mu
  rl::atomic<unsigned> grow_requests{0};
  rl::atomic<int> cmd[W];  // a slot thread waits here for its next thread (A1) or the seal (A3)
  rl_parker start_parker[W];

  void before() {
    static_assert(S.total() <= max_tasks && S.injected + S.late <= injector_capacity && S.initial >= 1);
    for (auto& r : task_ran) r.store(false, rl::mo_relaxed, $);  // relaxed: before the threads start
    for (auto& c : cmd) c.store(none, rl::mo_relaxed, $);
    const bool elastic = S.min < W;
    sleep = new protocol(W, S.initial, S.min, elastic);
    if (elastic) sleep->set_saturation_hook(&on_saturated, this);
    for (unsigned w = 0; w < W; ++w) {
      slots[w] = new model_slot();
      occupied[w] = w < S.initial;
      slots[w]->searching = elastic && w < S.initial;  // prepare_attach for the first threads
    }
    live.store(static_cast<int>(S.initial), rl::mo_relaxed, $);
  }

  void after() {
    for (int id = 1; id <= S.total(); ++id) RL_ASSERT(ran[id] == 1);  // nothing lost, nothing twice
    for (auto& s : slots) delete s;
    delete sleep;
  }

  void thread(unsigned index) {
    if (index < W) {
      slot_thread(index);
    } else {
      submitter();
    }
  }

  // ---- the external thread ----
  void inject(int id) {
    payload[id]($) = 10 * id;
    injector.enqueue(id);
    sleep->notify_work();  // T1 (and, saturated, the grow hook)
  }

  void wait_done(int n) {
    // relaxed: the parker's release/acquire orders the count (the n-th task unparks us).
    while (done.load(rl::mo_relaxed, $) < n) done_parker.park();
  }

  void submitter() {
    for (int id = 1; id <= S.injected; ++id) inject(id);
    if (!S.close_at_once) {
      wait_done(S.first());
      for (int k = 1; k <= S.late; ++k) inject(S.first() + k);
      wait_done(S.total());
    }
    close();
  }

  // shutdown.cpp: S2, wait for live_ == 0 (L2), then join_workers (A3): seal the slots and
  // let every slot thread without a thread leave.
  void close() {
    closing.store(true, rl::mo_seq_cst, $);  // seq_cst: S2, read by the last parker
    sleep->wake_all(false);
    // wait_for_workers: a futex wait on the count itself (a one-token parker would not do:
    // of two exiting threads' unparks the closer may synchronise with the first only).
    for (;;) {
      const int v = live.load(rl::mo_acquire, $);  // acquire: pairs with worker_exited's release
      if (v == 0) break;
      rl::rl_futex(&live, rl::RL_FUTEX_WAIT, v, nullptr, nullptr, 0, $);
    }
    std::lock_guard lock(slots_mu);
    sealed = true;
    for (unsigned w = 0; w < W; ++w) {
      if (!occupied[w]) {
        cmd[w].store(leave, rl::mo_release, $);  // release: pairs with the slot's acquire exchange
        start_parker[w].unpark();
      }
    }
  }

  // ---- burst.cpp: the saturation hook, grow, grow_once, slot_vacated ----
  static void on_saturated(void* self) noexcept { static_cast<slots_model*>(self)->grow(); }

  void grow() {
    // acq_rel: as in pool_impl::grow.
    if (grow_requests.fetch_add(1, rl::mo_acq_rel, $) != 0) return;
    for (unsigned seen = 1;;) {
      grow_once();
      if (grow_requests.compare_exchange_strong(seen, 0u, rl::mo_acq_rel, $)) return;
    }
  }

  void grow_once() {
    std::lock_guard lock(slots_mu);
    if (sealed || sleep->terminating()) return;
    const detail::idle_word s = sleep->load();
    if (s.searching() != 0 || s.unparked() < s.attached() || s.attached() >= W) return;
    unsigned v = 0;
    while (v < W && occupied[v]) ++v;
    if (v == W) {  // only a retiree's slot: it must stay (A2, release_slot)
      grow_wanted = true;
      return;
    }
    grow_wanted = false;
    slots[v]->searching = S.bug != mutant::attach_not_searching;  // worker::prepare_attach
    live.fetch_add(1, rl::mo_relaxed, $);  // relaxed: as in grow_once
    sleep->attach(v);                       // T5
    occupied[v] = true;
    cmd[v].store(start, rl::mo_release, $);  // "thread start": release, paired with the slot's acquire
    start_parker[v].unpark();
  }

  // ---- a slot: one OS thread after another ----
  void slot_thread(unsigned w) {
    bool attached = w < S.initial;
    for (;;) {
      if (!attached) {
        int c = none;
        // acquire: pairs with the release store of the grower (thread start) or the seal.
        while ((c = cmd[w].exchange(none, rl::mo_acquire, $)) == none) start_parker[w].park();
        if (c == leave) return;
      }
      const parked r = run(w);  // retired: the slot is released already (release_slot)
      bool leave_now = true;
      if (r == parked::retired) {
        std::lock_guard lock(slots_mu);
        leave_now = sealed;  // sealed: no grow will come back to this slot
      }
      worker_exited();
      if (leave_now) return;
      attached = false;
    }
  }

  bool release_slot(unsigned w) {  // burst.cpp
    std::lock_guard lock(slots_mu);
    if (grow_wanted && !sealed && S.bug != mutant::release_ignores_grow) {
      grow_wanted = false;
      return false;
    }
    occupied[w] = false;
    return true;
  }

  void worker_exited() {
    live.fetch_sub(1, rl::mo_release, $);  // release: pairs with close's acquire
    rl::rl_futex(&live, rl::RL_FUTEX_WAKE, 1 << 30, nullptr, nullptr, 0, $);
  }

  bool any_work() {
    rl::atomic_thread_fence(rl::mo_seq_cst, $);  // seq_cst: T3's and R's re-check (pool_impl::any_work)
    if (injector.size_approx() != 0) return true;
    for (model_slot* s : slots) {
      if (s->stealer.size_approx() != 0) return true;
    }
    return false;
  }

  // ---- tasks ----
  void execute(unsigned w, int id) {
    RL_ASSERT(id >= 1 && id <= S.total());
    RL_ASSERT(payload[id]($) == 10 * id);
    RL_ASSERT(ran[id] == 0);
    ++ran[id];
    if (id <= S.spawners) {
      const int child = S.injected + id;
      payload[child]($) = 10 * child;
      slots[w]->owner.push(child);  // worker::spawn
      sleep->notify_work();
    }
    if (id == 1 && S.blocker_waits != 0) {
      // Blocks outside weft (a latch) until another worker ran the task it waits for.
      // acquire: pairs with the release store below.
      while (!task_ran[S.blocker_waits].load(rl::mo_acquire, $)) blocker_parker.park();
    }
    task_ran[id].store(true, rl::mo_release, $);  // release: pairs with the blocker's acquire
    if (id == S.blocker_waits) blocker_parker.unpark();
    // relaxed: a count; the submitter is woken through done_parker.
    const int n = done.fetch_add(1, rl::mo_relaxed, $) + 1;
    if (n == S.first() || n == S.total()) done_parker.unpark();
  }

  // ---- worker.cpp ----
  parked run(unsigned w) {
    for (;;) {
      if (int t = find_work(w)) {
        execute(w, t);
        continue;
      }
      const parked r = park(w);
      if (r != parked::woken) return r;
    }
  }

  int find_work(unsigned w) {
    int t = 0;
    if (!slots[w]->owner.pop(t)) t = from_injector(w);
    if (t == 0) t = search(w);
    return stop_searching(w, t);
  }

  int search(unsigned w) {
    model_slot& me = *slots[w];
    if (!me.searching) {
      if (!sleep->try_begin_search()) return 0;
      me.searching = true;
    }
    // One round (spin_rounds 0); still a searcher when it finds nothing: park() ends it.
    if (int t = steal_sweep(w)) return t;
    return from_injector(w);
  }

  int stop_searching(unsigned w, int t) {
    if (t != 0 && slots[w]->searching) {
      slots[w]->searching = false;
      sleep->end_search([this] { return any_work(); });  // T2
    }
    return t;
  }

  int from_injector(unsigned) {  // kInjectorBatch 1 here (sleep_model.cpp covers batches)
    int t = 0;
    return injector.try_dequeue_bulk(&t, 1) == 1 ? t : 0;
  }

  int steal_sweep(unsigned w) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      bool contended = false;
      for (unsigned i = 1; i < W; ++i) {  // every slot, attached or not (a vacant one is empty)
        int t = 0;
        switch (slots[(w + i) % W]->stealer.steal(t)) {
          case detail::steal_result::success:
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

  // worker::park for the run loop (never inside a wait), with park_or_retire when elastic.
  parked park(unsigned w) {
    model_slot& me = *slots[w];
    const auto ticket = sleep->begin_park(w, me.searching, false);  // T3
    me.searching = false;
    if (sleep->terminating()) return parked::terminating;
    if (ticket.last_searcher && any_work()) sleep->notify_work();
    // acquire: pairs with the seq_cst store in close.
    if (ticket.last_awake && closing.load(rl::mo_acquire, $)) {  // S3
      if (!any_work()) {
        sleep->wake_all(true);
        return parked::terminating;
      }
      sleep->notify_work();
    }
    if (S.retire) {
      // park_until(now + keep_alive) has timed out: burst.cpp, park_or_retire.
      switch (sleep->retire(w)) {  // T6
        case protocol::retire_result::woken:
          if (S.bug == mutant::retire_ignores_wake) return parked::retired;
          sleep->park(w);  // consume the waker's token
          break;
        case protocol::retire_result::stay:
          sleep->park(w);
          break;
        case protocol::retire_result::retired:
          // R: re-check after T6's RMW; then A2 unless a grow wanted the slot.
          if ((S.bug != mutant::retire_without_recheck && !sleep->terminating() && any_work()) || !release_slot(w)) {
            sleep->reattach(w);
            break;
          }
          return parked::retired;
      }
    } else {
      sleep->park(w);
    }
    if (sleep->terminating()) return parked::terminating;
    me.searching = sleep->woke_as_searcher(w);
    return parked::woken;
  }
};

// T6 + R: an injected task spawns a child and blocks outside weft until the child ran, while
// the other worker's keep-alive runs out. The retiring worker must come back for the child
// (its re-check), or the spawn's T1 must find it still attached and wake it.
constexpr slots_scenario retire_while_work_arrives{2, 1, true, 1, 1, 2, 0, false};
// The same without R: the spawn's T1 reads the word after the retire (attached 1, busy, no
// free slot yet: the retiree is still on its way out) and wakes nobody; the retiree leaves.
constexpr slots_scenario retire_no_recheck{2, 1, true, 1, 1, 2, 0, false, mutant::retire_without_recheck};
// The same with a retiree that leaves although a grow asked for its slot meanwhile: R read
// the queues before the spawn, the spawn's T1 read the word after the retire and could only
// leave its request (no vacant slot yet).
constexpr slots_scenario release_ignores_grow{2, 1, true, 1, 1, 2, 0, false, mutant::release_ignores_grow};
// T5 while others park: one thread on two slots. Task 1 blocks until task 2 ran, so task 2
// needs a second thread: the pool must grow (T1's saturation hook, or T2's re-check after
// worker 0 ended its search), and the newcomer must take part in the protocol like any
// worker: a third task, injected once both parked, must be run.
constexpr slots_scenario attach_while_parking{1, 1, false, 2, 0, 2, 1, false};
// The same with the newcomer's flag left "not searching" although T5 counted it as a
// searcher: the searcher count never drops, so the late task's T1 wakes nobody.
constexpr slots_scenario attach_flag_lost{1, 1, false, 2, 0, 2, 1, false, mutant::attach_not_searching};
// close() racing with retirements and re-attachment (growth): two tasks, close at once. S3
// must still terminate (it counts attached workers only), every task must run, every slot
// thread must leave.
constexpr slots_scenario close_races_retire{2, 1, true, 2, 0, 0, 0, true};
// A worker whose keep-alive ran out just as a waker took it leaves anyway: the waker counted
// it unparked (and searching), so `unparked` never reaches zero and close() never ends (or
// its task is never run).
constexpr slots_scenario close_retire_ignores_wake{2, 1, true, 2, 0, 0, 0, true, mutant::retire_ignores_wake};
// Three slots, one thread to start with, keep-alive always passed: growth and retirement
// interleave with a spawn and a close.
constexpr slots_scenario three_slots_storm{1, 1, true, 2, 1, 0, 0, true};

template <class Suite>
bool simulate(rl::test_params& p) {
  return rl::simulate<Suite>(p);
}

const check checks[] = {
    {"retire_while_work_arrives", simulate<slots_model<2, retire_while_work_arrives>>, rl::sched_random, 400'000, 0, {}},
    {"attach_while_parking", simulate<slots_model<2, attach_while_parking>>, rl::sched_random, 400'000, 0, {}},
    {"close_races_retire", simulate<slots_model<2, close_races_retire>>, rl::sched_random, 400'000, 0, {}},
    {"three_slots_storm", simulate<slots_model<3, three_slots_storm>>, rl::sched_random, 300'000, 0, {}},
    {"neg_retire_without_recheck", simulate<slots_model<2, retire_no_recheck>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_deadlock}},
    {"neg_release_ignores_grow", simulate<slots_model<2, release_ignores_grow>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_deadlock}},
    {"neg_attach_not_searching", simulate<slots_model<2, attach_flag_lost>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_deadlock}},
    {"neg_retire_ignores_wake", simulate<slots_model<2, close_retire_ignores_wake>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_deadlock, rl::test_result_user_assert_failed}},
};

}  // namespace
}  // namespace weft::model

int main(int argc, char** argv) { return weft::model::run_checks(argc, argv, weft::model::checks); }
