// runtime/core/submission_gate.hpp: close() against concurrent external submitters, with no
// shared read-modify-write per submission.
//
// Every thread that submits from outside the pool raises a flag of its own (its producer
// slot's, runtime/core/producers.hpp) around its enqueue, instead of all of them counting
// themselves in and out of one shared word (two locked RMWs per post on a line every
// producer writes; a one-producer profile spent half its time on them).
//   G1 enter(f): f.store(true, seq_cst), then closed_.load(seq_cst). Closed: lower f and
//      refuse (nothing was enqueued).
//   G2 leave(f): f.store(false, release), after the enqueue.
//   G3 close(each, relax): closed_.store(true, seq_cst); then, for every flag that exists,
//      wait while f.load(seq_cst) is raised. `each(fn)` must call fn on every flag whose
//      slot was published before a seq_cst load that follows the store (producers.hpp, P2
//      publishes slots with seq_cst).
// Why no submission slips past a completed close: the four seq_cst operations lie in one
// total order S. If a submitter's G1 load precedes close's store in S, its G1 store does
// too, and close's later load of that flag sees it raised, or lowered by G2, whose release
// pairs with that load, so the enqueue is visible to close's caller (it then drains the
// queues, pool_impl.hpp S1). Otherwise the G1 load sees closed_ and the submitter backs out.
// A slot published after close's traversal began was published after close's store in S
// (its owner published it before its G1 store), so its owner's G1 sees closed_.
// Model check: tests/model/gate_model.cpp (with mutants: a G1 store that is not seq_cst, a
// close that does not wait).
#pragma once

namespace weft::detail {

template <class Sync>
class submission_gate {
 public:
  using flag = typename Sync::template atomic<bool>;

  // G1. True: the caller is inside the gate and must call leave(f) after its enqueue.
  bool enter(flag& f) noexcept {
    f.store(true, Sync::seq_cst);  // seq_cst: G1, in S before the load below (pairs with G3's load of f)
    if (closed_.load(Sync::seq_cst)) {  // seq_cst: G1, pairs with G3's store
      // release: we enqueued nothing now, but close's load of this value must still acquire
      // our last G2 (C++20 no longer lets a later relaxed store continue its release sequence).
      f.store(false, Sync::release);
      return false;
    }
    return true;
  }

  // G2.
  static void leave(flag& f) noexcept {
    f.store(false, Sync::release);  // release: pairs with G3's load; our enqueue is visible to close
  }

  // G3. `relax()` is called while a flag is still raised.
  template <class EachFlag, class Relax>
  void close(EachFlag&& each, Relax&& relax) noexcept {
    closed_.store(true, Sync::seq_cst);  // seq_cst: G3, pairs with G1's load
    each([&](flag& f) {
      // seq_cst: G3, after our store in S (pairs with G1's store); acquire for G2's release.
      while (f.load(Sync::seq_cst)) relax();
    });
  }

  bool closed() const noexcept {
    return closed_.load(Sync::acquire);  // acquire: pairs with G3's seq_cst store
  }

 private:
  typename Sync::template atomic<bool> closed_{false};
};

}  // namespace weft::detail
