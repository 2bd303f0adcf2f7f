// tests/model/deque_model.cpp: Relacy model checks of the shipped Chase-Lev deque
// (runtime/core/deque.hpp), instantiated with the Relacy policy of relacy_sync.hpp.
//
// Every check runs one owner thread and one or two thieves over one deque. The owner follows a
// script of pushes and pops and then pops until the deque is empty; each thief makes a fixed
// number of steal attempts. Items are the ints 1..n; before pushing item i the owner writes
// payload[i], an rl::var, and whoever takes i reads it back, so Relacy reports a data race if
// the deque does not publish what the owner wrote before push (I3 in deque.hpp). Checked:
//   - no item is taken twice (asserted at the moment of the second take, so the trace ends
//     there), and at the end every pushed item was taken exactly once (nothing lost);
//   - a taken value is an item that was pushed, with the payload the owner wrote;
//   - no data race, no use of freed or uninitialised memory, no leak (Relacy's own checks).
#include "model_main.hpp"  // first: includes relacy_sync.hpp

#include "core/deque.hpp"

namespace weft::model {
namespace {

using detail::steal_result;

// What the threads of one check do.
struct scenario {
  const char* owner;  // 'u' push the next item, 'o' pop once; then pop until empty
  int steals;         // steal attempts per thief (a lost race counts as one)
  std::int64_t capacity;
};

constexpr int max_items = 8;

template <class Sync, int Thieves, const scenario& S>
struct deque_check : rl::test_suite<deque_check<Sync, Thieves, S>, 1 + Thieves> {
  using deque = detail::chase_lev_deque<int, Sync>;

  deque* q = nullptr;
  rl::var<int> payload[max_items + 1];
  int taken[max_items + 1] = {};  // test bookkeeping: Relacy runs all threads on one OS thread
  int pushed = 0;

  // (The deque itself is over-aligned, so its operator new is not Relacy's; its rings are.)
  void before() { q = new deque(S.capacity); }

  void after() {
    for (int i = 1; i <= pushed; ++i) RL_ASSERT(taken[i] == 1);  // nothing lost
    delete q;
  }

  void take(int x) {
    RL_ASSERT(x >= 1 && x <= max_items);  // a value that was pushed, not a stale slot
    RL_ASSERT(payload[x]($) == 10 * x);   // and the owner's writes before push are visible
    RL_ASSERT(taken[x] == 0);             // taken once
    ++taken[x];
  }

  void thread(unsigned index) {
    if (index == 0) {
      detail::deque_owner<int, Sync> owner(*q);
      int x = 0;
      for (const char* op = S.owner; *op != '\0'; ++op) {
        if (*op == 'u') {
          const int item = ++pushed;
          payload[item]($) = 10 * item;
          owner.push(item);
        } else if (owner.pop(x)) {
          take(x);
        }
      }
      while (owner.pop(x)) take(x);
    } else {
      detail::deque_stealer<int, Sync> thief(*q);
      for (int i = 0; i < S.steals; ++i) {
        int x = 0;
        if (thief.steal(x) == steal_result::success) take(x);
      }
    }
  }
};

// Owner pushes and pops around one thief; no growth.
constexpr scenario push_pop{"uuouo", 2, 8};
// The last element: one push, then the owner's pop races the thieves' steals.
constexpr scenario last_element{"u", 1, 8};
// Two elements, a thief takes the first and races the owner's pop for the second: the case
// the seq_cst fences of pop and steal exist for.
constexpr scenario two_then_race{"uu", 2, 8};
// Capacity 2, five pushes: the ring grows 2 -> 4 -> 8 while thieves read the old rings.
constexpr scenario growth{"uuuuu", 2, 2};
// Wrap-around: capacity 2, pushes and pops so that indices pass the ring size, reusing slots
// the thieves vacated (it grows only where the thieves fall behind).
constexpr scenario wrap{"uuouuo", 2, 2};

template <class Suite>
bool simulate(rl::test_params& p) {
  return rl::simulate<Suite>(p);
}

using ok = rl_sync;
using no_fence = basic_rl_sync<weakening::no_seq_cst_fence>;
using relaxed_release = basic_rl_sync<weakening::release_as_relaxed>;

// Tree searches where they finish in seconds; a context bound (preemptions per execution)
// where a full search does not; random executions where even bound 2 is too slow.
const check checks[] = {
    {"push_pop_1thief", simulate<deque_check<ok, 1, push_pop>>, rl::sched_bound, 0, 4, {}},
    {"push_pop_2thieves", simulate<deque_check<ok, 2, push_pop>>, rl::sched_bound, 0, 2, {}},
    {"last_element_1thief", simulate<deque_check<ok, 1, last_element>>, rl::sched_full, 0, 0, {}},
    {"last_element_2thieves", simulate<deque_check<ok, 2, last_element>>, rl::sched_bound, 0, 3, {}},
    {"pop_steal_race", simulate<deque_check<ok, 1, two_then_race>>, rl::sched_bound, 0, 4, {}},
    {"growth_1thief", simulate<deque_check<ok, 1, growth>>, rl::sched_bound, 0, 2, {}},
    {"growth_2thieves", simulate<deque_check<ok, 2, growth>>, rl::sched_bound, 0, 1, {}},
    {"wrap_2thieves", simulate<deque_check<ok, 2, wrap>>, rl::sched_random, 1'000'000, 0, {}},
    // Negatives: each must be caught. pop and steal without their seq_cst fences take one
    // element twice; push publishing bottom with a relaxed store lets a thief read the
    // payload without happens-before (or the slot before it is written).
    {"neg_no_seq_cst_fence", simulate<deque_check<no_fence, 1, two_then_race>>, rl::sched_bound, 0, 2,
     {rl::test_result_user_assert_failed}},
    {"neg_release_as_relaxed", simulate<deque_check<relaxed_release, 1, last_element>>, rl::sched_bound, 0, 2,
     {rl::test_result_data_race, rl::test_result_user_assert_failed}},
};

}  // namespace
}  // namespace weft::model

int main(int argc, char** argv) { return weft::model::run_checks(argc, argv, weft::model::checks); }
