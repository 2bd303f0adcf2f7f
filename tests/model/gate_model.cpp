// tests/model/gate_model.cpp: Relacy model checks of the submission gate (G1-G3 at the top of
// runtime/core/submission_gate.hpp) over the producer slot list (P2 in runtime/core/producers.hpp),
// with the shipped submission_gate<Sync> template instantiated with the Relacy policy.
//
// The pool's outside: N producer threads (2 or 3) and one closer. Each producer owns a slot
// with an `in_flight` flag (the gate's flag type, Sync::atomic<bool>, as producer_slot has
// it); it submits R times: G1 enter, and when inside, an enqueue into its own sub-queue, then
// G2 leave. The closer runs G3 close over every slot of the list, then drains the queues.
//   Shipped code: submission_gate<Sync>::enter, leave, close, closed (G1-G3), unchanged.
//   Re-stated glue (none of it is a template in the runtime):
//     - the slot list: producer_registry::take_slot for a new slot (producers.cpp: under the
//       registry's mutex, initialise the slot, link it at the head with a seq_cst store, P2)
//       and for_each (producers.hpp: traverse from a seq_cst load of the head). Slots are a
//       fixed array and the head an index, not pointers. An "early" slot was made before the
//       threads start (its owner submitted before); a "late" one is made by its owner just
//       before its first G1, concurrently with close (a thread's first submission);
//     - pool_impl::close_gate (pool.cpp): close's `each` is producers_.for_each over the slots'
//       flags, its `relax` a yield (std::this_thread::yield there, rl::yield here);
//     - pool_impl::enter_gate / gate_pass (pool.cpp, pool_impl.hpp): enter, enqueue, leave;
//     - the enqueue: a producer's sub-queue (what its ProducerToken selects in moodycamel's
//       queue) is a count and an item array, plain rl::vars with NO synchronisation of their
//       own: the gate alone must make every enqueue visible to the closer once close
//       returned (G3's claim), and Relacy reports a data race where it does not. The real
//       queue adds its own release/acquire, which would hide an ordering bug of the gate as a
//       silently lost task instead; the count at the end (below) catches that too.
// Exploration aid (not in the runtime): the closer starts after 0 to 12 steps that Relacy's
// scheduler picks; otherwise a late producer, which has more steps to take before its first
// G1, is almost always refused and the paths where close waits for it go nearly unvisited.
// Not modelled: slot reuse across threads (P1's `owned` hand-over), retirement and the
// thread-local cache (P3, P4), the accepted counts and wait_idle, capacity credits and
// sources (close_gate's C3/TS5 notifications), fork, anything after S1 (the workers' drain is
// the closer's own here: sleep_model.cpp and slots_model.cpp check S2-S4).
//
// Checked, beyond Relacy's data-race / deadlock detection:
//   - nothing accepted is lost: every item a producer enqueued after enter() returned true is
//     in the queues the closer drains right after close returns (count in after(), values and
//     visibility by the closer's plain reads);
//   - no submission slips past a completed close: a producer inside the gate reads the
//     closer's "close returned" flag as false (seq_cst store and load: a check, not part of
//     the protocol);
//   - closing is permanent: once enter() refused, it refuses again; enter() after close
//     returned (enter_after_close) refuses, and closed() is true for the closer and for it.
// Positive checks:
//   two_producers      two early slots, two submissions each;
//   three_producers    three producers, one of them late, one submission each;
//   late_slot          two late slots (made under the registry mutex), two submissions each;
//   enter_after_close  two producers (one late); the last one, after its submission, waits
//                      until close returned and submits again: refused.
// Negatives (WILL_FAIL), each one rule broken:
//   neg_g1_store_release   G1's flag store is release instead of seq_cst (through g1_weak_sync,
//                          below: the flags' seq_cst stores become release, closed_ is left
//                          alone). Store-load reordering: G1 reads closed_ false, close's load
//                          of the flag still reads the old false, close returns with the
//                          producer inside (data race on its queue, or the slip-through assert);
//   neg_close_skips_flags  close's `each` walks the list but hands it no flag: close waits for
//                          nobody;
//   neg_publish_relaxed    take_slot links the slot with a relaxed store: close's traversal may
//                          miss a slot whose owner is inside the gate, and reads the slot's
//                          initialisation unordered;
//   neg_publish_release    the same with a release store: the initialisation is ordered, only
//                          P2's place in S is lost. Isolates the reason P2 must be seq_cst:
//                          close's seq_cst load of the head may still read the older head
//                          though the owner's G1 read closed_ false.
// Not checked (a limit of the checker): Relacy continues a release sequence through later
// plain stores of the same thread (C++11 rules); C++20 (P0982) ends it at the first store that
// is not a read-modify-write. G1's refusal path therefore lowers the flag with a release store
// of its own (it used to be relaxed), so close's load of it synchronises with it directly and
// the producer's earlier enqueues are ordered before close's return under either rule; the
// model cannot tell the two versions apart.
#include "model_main.hpp"  // first: includes relacy_sync.hpp

#include <mutex>
#include <type_traits>

#include "core/submission_gate.hpp"

namespace weft::model {
namespace {

constexpr int max_producers = 3;
constexpr int max_rounds = 2;
constexpr int max_closer_delay = 12;  // steps; a late producer takes about 12 to its first G2

enum class mutant {
  none,
  g1_store_release,   // G1's flag store is release (the policy below)
  close_skips_flags,  // close's `each` gives it no flag to wait for
  publish_relaxed,    // P2's head store is relaxed
  publish_release,    // P2's head store is release
};

struct gate_scenario {
  int producers;     // submitting threads; the closer is one more
  int late;          // the last `late` producers make their slot themselves (take_slot)
  int rounds;        // submissions per producer
  bool after_close;  // the last producer submits once more after close returned
  mutant bug = mutant::none;
  constexpr int early() const { return producers - late; }
};

// An rl_atomic whose seq_cst stores become release stores on an object marked with
// weaken_seq_cst_stores(). The model marks the slots' flags and nothing else, so in the
// gate only G1's store of the flag changes (G2 and the back-out store are not seq_cst; the
// gate's own closed_ is never marked).
template <class T>
class weakenable_atomic {
 public:
  weakenable_atomic(call_site loc = {}) : a_(loc) {}
  weakenable_atomic(T v, call_site loc = {}) : a_(v, loc) {}
  weakenable_atomic(const weakenable_atomic&) = delete;
  weakenable_atomic& operator=(const weakenable_atomic&) = delete;

  void weaken_seq_cst_stores() noexcept { weak_ = true; }
  T load(rl::memory_order mo, call_site loc = {}) const { return a_.load(mo, loc); }
  void store(T v, rl::memory_order mo, call_site loc = {}) {
    a_.store(v, weak_ && mo == rl::mo_seq_cst ? rl::mo_release : mo, loc);
  }

 private:
  rl_atomic<T> a_;
  bool weak_ = false;  // set before the threads start
};

// rl_sync with weakenable atomics: the policy of neg_g1_store_release.
struct g1_weak_sync : rl_sync {
  template <class T>
  using atomic = weakenable_atomic<T>;
};

template <class Sync>
struct model_slot {
  typename detail::submission_gate<Sync>::flag in_flight;  // producer_slot::in_flight
  rl::var<int> next;    // producer_slot::next as an index (-1: none); immutable once linked (P2)
  rl::var<int> count;   // the sub-queue: items enqueued so far; written by the owner only
  rl::var<int> items[max_rounds];
};

constexpr int item_value(int p, int i) { return 100 * (p + 1) + i; }

template <const gate_scenario& S>
using sync_for = std::conditional_t<S.bug == mutant::g1_store_release, g1_weak_sync, rl_sync>;

template <const gate_scenario& S>
struct gate_model : rl::test_suite<gate_model<S>, S.producers + 1> {
  using sync = sync_for<S>;
  using slot = model_slot<sync>;

  detail::submission_gate<sync> gate;
  slot slots[S.producers];
  rl::atomic<int> head{-1};  // producer_registry::head_
  rl_mutex registry_mu;      // producer_registry::mu_
  // Set by the closer once close returned: the checks' clock, not part of the protocol.
  rl::atomic<bool> close_returned{false};
  rl::atomic<int> pace{0};  // the closer's exploration aid
  int accepted[S.producers] = {};  // by producer p only; read in after()
  int drained = 0;                 // by the closer only; read in after()

  void before() {
    static_assert(S.producers <= max_producers && S.rounds <= max_rounds && S.late <= S.producers);
    if constexpr (S.bug == mutant::g1_store_release) {
      for (slot& s : slots) s.in_flight.weaken_seq_cst_stores();
    }
    // The early slots: made and linked before the threads start (happens-before all of them).
    for (int p = 0; p < S.early(); ++p) {
      slots[p].count($) = 0;
      slots[p].next($) = head.load(rl::mo_relaxed, $);  // relaxed: no thread runs yet
      head.store(p, rl::mo_relaxed, $);                 // relaxed: as above
    }
  }

  void after() {
    int total = 0;
    for (int a : accepted) total += a;
    RL_ASSERT(drained == total);  // nothing accepted was lost
  }

  void thread(unsigned index) {
    if (index < static_cast<unsigned>(S.producers)) {
      producer(static_cast<int>(index));
    } else {
      closer();
    }
  }

  // ---- glue: producers.cpp take_slot (a new slot; no free one to reuse) and for_each ----
  void take_slot(int p) {
    std::lock_guard lock(registry_mu);
    slot& s = slots[p];
    s.count($) = 0;  // the slot's construction: its token's sub-queue starts empty
    s.next($) = head.load(rl::mo_relaxed, $);  // relaxed: head is written only under registry_mu
    constexpr rl::memory_order publish = S.bug == mutant::publish_relaxed   ? rl::mo_relaxed
                                         : S.bug == mutant::publish_release ? rl::mo_release
                                                                            : rl::mo_seq_cst;
    // seq_cst: P2, in S before our G1 store (pairs with for_each's seq_cst load: a close whose
    // store follows our G1 store in S sees the slot); release half: publishes the
    // initialisation above to for_each's load.
    head.store(p, publish, $);
  }

  template <class Fn>
  void for_each(Fn&& fn) {
    // seq_cst: P2 (pairs with take_slot's seq_cst store; G3 loads the head after closed_'s
    // store in S); also acquire for the slots' initialisation.
    for (int i = head.load(rl::mo_seq_cst, $); i != -1; i = slots[i].next($)) fn(i, slots[i]);
  }

  // ---- a producer: pool_impl::enter_gate, the enqueue, gate_pass's leave ----
  void producer(int p) {
    slot& s = slots[p];
    if (p >= S.early()) take_slot(p);  // its first submission makes its slot (P4's miss)
    bool refused = false;
    for (int r = 0; r < S.rounds; ++r) {
      if (!gate.enter(s.in_flight)) {  // G1
        refused = true;
        continue;
      }
      RL_ASSERT(!refused);  // closed_ never opens again
      const int n = s.count($);
      s.items[n]($) = item_value(p, n);
      s.count($) = n + 1;
      ++accepted[p];
      // seq_cst: a check (pairs with the closer's seq_cst store after close): a producer
      // inside the gate must not find close returned. A weaker load could read an older value
      // in Relacy and hide a slip-through.
      RL_ASSERT(!close_returned.load(rl::mo_seq_cst, $));
      detail::submission_gate<sync>::leave(s.in_flight);  // G2
    }
    if (S.after_close && p == S.producers - 1) {
      // acquire: pairs with the closer's store after close returned.
      while (!close_returned.load(rl::mo_acquire, $)) rl::yield(1, $);
      RL_ASSERT(gate.closed());
      RL_ASSERT(!gate.enter(s.in_flight));  // G1 after G3: refused
    }
  }

  // ---- the closer: pool_impl::close_gate, then the drain ----
  void closer() {
    // Exploration aid, not in the runtime: the closer starts after a number of steps that
    // Relacy's scheduler picks (see the header comment).
    for (int i = static_cast<int>(rl::rand(max_closer_delay + 1)); i > 0; --i) {
      pace.load(rl::mo_relaxed, $);  // relaxed: a scheduling point, nothing is read through it
    }
    gate.close(
        [&](auto&& wait_out) {
          for_each([&](int, slot& s) {
            if constexpr (S.bug != mutant::close_skips_flags) wait_out(s.in_flight);
          });
        },
        [] { rl::yield(1, $); });
    RL_ASSERT(gate.closed());
    close_returned.store(true, rl::mo_seq_cst, $);  // seq_cst: the check's store (see producer)
    // The drain: every enqueue made inside the gate must be visible now (plain reads).
    for_each([&](int p, slot& s) {
      const int n = s.count($);
      for (int i = 0; i < n; ++i) RL_ASSERT(s.items[i]($) == item_value(p, i));
      drained += n;
    });
  }
};

constexpr gate_scenario two_producers{2, 0, 2, false};
constexpr gate_scenario three_producers{3, 1, 1, false};
constexpr gate_scenario late_slot{2, 2, 2, false};
constexpr gate_scenario enter_after_close{2, 1, 1, true};
constexpr gate_scenario g1_store_release{2, 0, 1, false, mutant::g1_store_release};
constexpr gate_scenario close_skips_flags{2, 0, 1, false, mutant::close_skips_flags};
constexpr gate_scenario publish_relaxed{2, 2, 1, false, mutant::publish_relaxed};
constexpr gate_scenario publish_release{2, 2, 1, false, mutant::publish_release};

template <class Suite>
bool simulate(rl::test_params& p) {
  return rl::simulate<Suite>(p);
}

const check checks[] = {
    {"two_producers", simulate<gate_model<two_producers>>, rl::sched_random, 1'000'000, 0, {}},
    {"three_producers", simulate<gate_model<three_producers>>, rl::sched_random, 1'000'000, 0, {}},
    {"late_slot", simulate<gate_model<late_slot>>, rl::sched_random, 1'000'000, 0, {}},
    {"enter_after_close", simulate<gate_model<enter_after_close>>, rl::sched_random, 1'000'000, 0, {}},
    {"neg_g1_store_release", simulate<gate_model<g1_store_release>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_data_race, rl::test_result_user_assert_failed}},
    {"neg_close_skips_flags", simulate<gate_model<close_skips_flags>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_data_race, rl::test_result_user_assert_failed}},
    {"neg_publish_relaxed", simulate<gate_model<publish_relaxed>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_data_race, rl::test_result_user_assert_failed}},
    {"neg_publish_release", simulate<gate_model<publish_release>>, rl::sched_random, 1'000'000, 0,
     {rl::test_result_data_race, rl::test_result_user_assert_failed}},
};

}  // namespace
}  // namespace weft::model

int main(int argc, char** argv) { return weft::model::run_checks(argc, argv, weft::model::checks); }
