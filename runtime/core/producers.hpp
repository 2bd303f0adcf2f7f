// runtime/core/producers.hpp: producer slots, the per-thread submission state of a pool.
//
// A thread that submits to a pool from outside it (or a worker's submit_global) does so
// through a slot of its own in that pool: the submission gate's flag (submission_gate.hpp),
// a count of the tasks it had accepted (wait_idle's double collect, pool.cpp idle_now), and
// a moodycamel ProducerToken, so that its enqueue goes straight to its own sub-queue instead
// of looking its implicit producer up in a hash table, and one outside thread's tasks stay
// in one FIFO sub-queue. Nothing in a slot is written by another thread per submission.
//   P1 Slots belong to their registry (one per pool) and live as long as something holds
//      them: the registry, and the cache of every thread that used one (shared ownership,
//      so a thread may outlive the pool and a pool its threads). A slot is held by at most
//      one thread at a time (`owned`): taken under the registry's mutex (a compare-and-swap
//      from false, acquire), given back at thread exit (a store of false, release), so every
//      single-writer field passes from one holder to the next with a happens-before edge.
//   P2 Slots are never unlinked while the registry lives. A new slot is linked at the head
//      with a seq_cst store, after its fields are initialised; the gate's close and
//      idle_now traverse the list from a load of the head (seq_cst: the gate's G3 needs a
//      slot published before its owner's first G1 store to be seen by every close that
//      follows that store in S).
//   P3 The registry's destructor (the pool's, after its workers were joined and no thread
//      submits any more, by contract) destroys every slot's token while the queue is alive,
//      then marks the slot retired. A thread's cache drops retired slots when it next looks
//      for a slot, and at exit only stores `owned` (never the token): a thread exiting while
//      the pool is destroyed touches nothing the destructor frees.
//   P4 A thread finds its slot for a pool through a one-entry thread-local cache keyed by
//      the registry's serial (process-unique, never reused, so a new pool at a dead pool's
//      address never matches); a miss looks in the thread's list, then takes a free slot or
//      makes one. A pool gets at most one slot per thread that is alive and has submitted to
//      it: a thread that exits gives its slot back for the next thread. A submission made
//      after the thread's slot list was destroyed (from a later thread_local destructor)
//      takes a slot for that one submission (`transient`) and gives it back when it leaves
//      the gate; nothing caches it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/injector.hpp"
#include "core/submission_gate.hpp"
#include "weft/detail/sync.hpp"

namespace weft::detail {

struct alignas(destructive_interference) producer_slot {
  std::atomic<bool> in_flight{false};  // the submission gate's flag (G1-G3)
  // Tasks accepted through this slot (pool.cpp, idle_now). One writer at a time (P1).
  std::atomic<std::uint64_t> accepted{0};
  std::optional<moodycamel::ProducerToken> token;  // reset by the registry's destructor (P3)
  producer_slot* next = nullptr;                   // immutable once linked (P2)
  std::atomic<bool> owned{true};                   // P1
  // Taken for one submission by a thread whose slot list is gone (P4): given back by the
  // gate's leave (pool_impl::gate_pass). Written only by the holder.
  bool transient = false;
  std::atomic<bool> retired{false};                // P3

  // Before the task becomes visible (idle_now's S); only the holder writes it (P1).
  void count_accepted(std::uint64_t n = 1) noexcept {
    // relaxed (both): a single writer; the enqueue's release that follows publishes it.
    accepted.store(accepted.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void uncount_accepted(std::uint64_t n = 1) noexcept {  // the tasks were never visible
    accepted.store(accepted.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);  // relaxed: as above
  }
};

// P4's cache. constinit: plain TLS loads, no wrapper or guard on the submission path.
extern constinit thread_local std::uint64_t tls_producer_serial;
extern constinit thread_local producer_slot* tls_producer_slot;

class producer_registry {
 public:
  explicit producer_registry(injection_queue& queue);
  ~producer_registry();  // P3
  producer_registry(const producer_registry&) = delete;
  producer_registry& operator=(const producer_registry&) = delete;

  // The calling thread's slot (P4); if `transient` is set, the caller gives it back
  // (release_transient) once done with it. Throws std::bad_alloc (a new slot or token).
  producer_slot& mine() {
    if (tls_producer_serial == serial_) [[likely]] return *tls_producer_slot;
    return mine_slow();
  }

  static void release_transient(producer_slot& s) noexcept {
    s.transient = false;
    s.owned.store(false, std::memory_order_release);  // release: P1, pairs with take_slot's acquire CAS
  }

  // fn(slot) for every slot linked so far (P2).
  template <class Fn>
  void for_each(Fn&& fn) const {
    // seq_cst: P2 (the gate's G3); also acquire for the slots' initialisation.
    for (producer_slot* s = head_.load(std::memory_order_seq_cst); s != nullptr; s = s->next) fn(*s);
  }

  // Slots made so far (tests: a pool keeps one per live submitting thread).
  std::size_t slots() const;

 private:
  producer_slot& mine_slow();
  std::shared_ptr<producer_slot> take_slot();  // a free slot, or a new one (P1, P2)

  injection_queue& queue_;
  const std::uint64_t serial_;
  std::atomic<producer_slot*> head_{nullptr};
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<producer_slot>> owned_;  // guarded by mu_
};

}  // namespace weft::detail
