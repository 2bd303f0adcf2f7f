// runtime/core/sleep.hpp: how idle workers park and how new work wakes them.
//
// The protocol follows the searching/parked split of Go's scheduler and Tokio's idle.rs:
// a worker with no work first *searches* (steals, polls the injection queue) for a bounded
// number of rounds, then *parks*. At most about half the workers search at once.
//
// Slots and threads. The protocol knows `slots` workers (fixed for the pool's life: parkers,
// flags) of which only the *attached* ones have a thread; a detached slot is neither parked
// nor unparked and is never woken. A fixed pool has every slot attached for good.
//
// State (one 64-bit atomic word, see `idle_word`):
//   attached   slots with a thread (the only workers the counts below are about)
//   searching  workers currently looking for work
//   unparked   attached workers not parked (running a task, searching, or about to park)
// Invariant of the counts: unparked + (enlisted sleepers) == attached, searching <= unparked.
// plus, under `mu_`: the list of parked workers and which of them are parked inside a wait
// (a task blocked on a future or group, see wait.cpp).
//
// Invariant (no lost wake-up): whenever work is visible in a queue, either some worker is
// searching and will see it, or some unparked worker will run it, or a parked worker is
// being woken. Transitions, and why each keeps it:
//   T1 notify_work (after publishing work): fence(seq_cst), then read the state. If nobody
//      searches and someone is parked, wake one parked worker *as a searcher*. The fence
//      pairs with the seq_cst RMW of T3: either the parking searcher's re-check sees the
//      work, or our read sees searching == 0 and we wake someone.
//   T2 end_search (a searcher found work): if it was the last searcher it re-checks every
//      queue after its seq_cst decrement and calls notify_work if work is left, so remaining
//      queued work still has a searcher or a waker (Go's "spinning M" rule). Not waking when
//      nothing is left matters on an idle pool: waking a second worker costs the first one a
//      futex syscall (and a VM exit for the IPI) before it starts the task it found.
//   T3 begin_park (searcher gives up): under mu_, decrement unparked and searching (seq_cst)
//      and enlist. If it was the last searcher, the caller re-checks every queue *after*
//      this RMW and calls notify_work if it finds anything (it may wake itself).
//   T4 park blocks until unparked; an unpark that comes first leaves a token, so a wake
//      between T3 and T4 is not lost.
//   A worker that parks without having searched (the half limit) re-checks like T3 when its
//   RMW shows no searcher left: the limit was read relaxed, and the searchers it counted
//   may all have ended their search since (found in the model check spawn_then_block).
// Local spawns use notify_work too, fence included. An earlier version skipped the fence
// for spawns, arguing that the spawner drains its own deque before it parks; that is false
// when the spawning task then blocks outside weft (a latch, a condition variable, MPI): the
// child sat in the deque of a blocked worker while the other workers slept (issue 8,
// defect 2; tests/unit/hostile_wait_test.cpp and the model check spawn_then_block).
// A worker blocked inside a weft wait that cannot take new work (an isolated wait, see
// runtime/core/isolation.cpp) does not park here at all: it counts as unparked (busy, like a
// worker running a long task) and sleeps on the awaited object.
//
// Attach and detach (elastic pools, runtime/layers/burst.cpp). Both happen under mu_, so the
// attached count and the sleepers list change together; the lock-free paths only read it.
//   T5 attach(w): a thread is about to start on the vacant slot w. One seq_cst RMW adds it
//      as attached, unparked *and searching*, before the thread exists: from that RMW on it
//      is "a searcher that will see the work", so T1 needs nobody else, and T3's last
//      searcher is not the last (the newcomer's own search ends in T2 or T3, with their
//      re-checks). The slot's owner-thread flag must say "searching" too (worker::attach_to);
//      a slot counted as a searcher whose thread never ends a search would keep T1 from
//      waking anyone forever (model check neg_attach_not_searching). If the thread cannot be
//      created, abort_attach takes all three back and the caller does T3's re-check and S3
//      for the thread that never ran.
//   T6 retire(w): a worker whose idle park outlived the keep-alive leaves. Under mu_, only if
//      it is still enlisted (otherwise a waker counted it unparked, maybe as a searcher, and
//      its token is on the way: it must take the wake-up, model check
//      neg_retire_ignores_wake) and only while attached > min: unlist, then one seq_cst RMW
//      takes it out of `attached`. Its deque is empty (it parks only after its own deque
//      was found empty, and only the owner pushes). Then R: it RE-CHECKS every queue
//      (any_work, seq_cst fence first) *after* that RMW. A notifier T1 that read the word
//      before the RMW saw this worker parked and may have gone to wake it, finding nobody
//      under mu_; the fences pair as in T1/T3: either the notifier read the word after the
//      RMW, or the re-check sees its work. On finding work the retiree re-attaches
//      (reattach: attached, unparked and searching again, as T5) and searches (model
//      check neg_retire_without_recheck: a spawner blocked outside weft waits forever).
//      A notifier that read the word after the RMW decides among the workers that remain;
//      finding them all busy it asks to grow (the saturation hook), and the only slot free
//      for that may be the retiree's own, not vacant yet: the grow leaves a request that the
//      retiree takes on its way out and re-attaches instead (pool_impl.hpp, A2; model check
//      neg_release_ignores_grow).
//   Detaching a parked worker changes neither `unparked` nor `waiting_`, so S3 below (the
//   last unparked worker terminates the pool) counts attached workers only and is not
//   disturbed by a retire racing with close(); a reattach after termination sees
//   terminating() and exits (model check close_races_retire).
//
// Shutdown: once the pool is closing, the worker whose begin_park makes `unparked` zero
// (with no worker parked inside a wait) re-checks every queue; if all are empty no task can
// appear any more (external submission is closed, nothing runs), so it calls wake_all with
// `terminate` set and every worker exits. close() itself calls wake_all after setting the
// closing flag, so a pool that was already idle goes through the same path.
// A worker must check terminating() right after its begin_park, before it blocks: on every
// close(), the terminating wake_all can run between a worker's last search and its
// enlisting, and then wakes only the workers already enlisted (worker::park does this
// check; the Relacy model tests/model/sleep_model.cpp shows the hang without it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

namespace weft::detail {

// Layout of the state word (21 bits a field: a pool has at most 4096 slots, options.cpp):
//   bits 62..42  attached   (slots with a thread)
//   bits 41..21  unparked   (attached workers not parked)
//   bits 20..0   searching  (workers looking for work)
class idle_word {
 public:
  static constexpr unsigned kBits = 21;
  static constexpr std::uint64_t kMask = (std::uint64_t{1} << kBits) - 1;
  static constexpr std::uint64_t one_searching = 1;
  static constexpr std::uint64_t one_unparked = std::uint64_t{1} << kBits;
  static constexpr std::uint64_t one_attached = std::uint64_t{1} << (2 * kBits);
  static constexpr std::uint32_t kMaxSlots = static_cast<std::uint32_t>(kMask);
  static_assert((one_searching * kMask & one_unparked * kMask) == 0 && (one_unparked * kMask & one_attached * kMask) == 0,
                "searching, unparked and attached occupy disjoint bits");
  static_assert(one_attached * kMask < (std::uint64_t{1} << 63), "attached fits below bit 63");
  static_assert(kMaxSlots >= 4096, "a pool takes up to 4096 workers (options.cpp)");

  constexpr explicit idle_word(std::uint64_t raw) noexcept : raw_(raw) {}
  constexpr std::uint32_t searching() const noexcept { return static_cast<std::uint32_t>(raw_ & kMask); }
  constexpr std::uint32_t unparked() const noexcept { return static_cast<std::uint32_t>((raw_ >> kBits) & kMask); }
  constexpr std::uint32_t attached() const noexcept { return static_cast<std::uint32_t>((raw_ >> (2 * kBits)) & kMask); }
  static constexpr std::uint64_t make(std::uint32_t attached, std::uint32_t unparked, std::uint32_t searching) noexcept {
    return (std::uint64_t{attached} << (2 * kBits)) | (std::uint64_t{unparked} << kBits) | searching;
  }

 private:
  std::uint64_t raw_;
};

// Platform: a Sync policy (see weft/detail/sync.hpp) plus `mutex` (lock/unlock) and
// `parker` (park(), unpark(), and optionally park_until(deadline) -> bool woken).
template <class Platform>
class sleep_protocol {
  using atomic_word = typename Platform::template atomic<std::uint64_t>;
  using atomic_flag = typename Platform::template atomic<bool>;

 public:
  // A fixed pool: every slot attached for good.
  explicit sleep_protocol(unsigned workers) : sleep_protocol(workers, workers, workers) {}
  // `slots` workers, of which the first `attached` start attached (unparked; searching too
  // when `start_searching`, as T5 attaches, and then their owner-thread flags must say so);
  // retire keeps at least `min_attached` attached.
  sleep_protocol(unsigned slots, unsigned attached, unsigned min_attached, bool start_searching = false)
      : slots_(slots),
        min_attached_(min_attached),
        parkers_(slots),
        asleep_(slots, 0),
        in_wait_(slots, 0),
        as_searcher_(slots, 0) {
    sleepers_.reserve(slots);
    // relaxed: construction precedes the start of every worker thread.
    state_.store(idle_word::make(attached, attached, start_searching ? attached : 0), Platform::relaxed);
  }

  // Called by notify_work (T1) when it finds nobody searching, nobody parked and a slot
  // without a thread (an elastic pool that may grow). Set before any worker starts; a fixed
  // pool never calls it (attached == slots).
  void set_saturation_hook(void (*hook)(void*) noexcept, void* ctx) noexcept {
    saturated_ = hook;
    saturated_ctx_ = ctx;
  }

  unsigned workers() const noexcept { return slots_; }
  idle_word load() const noexcept {
    // relaxed: a snapshot for metrics and heuristics only.
    return idle_word(state_.load(Platform::relaxed));
  }
  bool terminating() const noexcept {
    // acquire: pairs with the release store in wake_all(terminate=true); a worker that sees
    // it exits, and must see everything done before termination was decided.
    return terminate_.load(Platform::acquire);
  }

  // T1, full version: for work published from outside the pool, or when the caller needs the
  // guarantee.
  void notify_work() {
    // seq_cst: pairs with the seq_cst RMW in begin_park (T3): the work we published before
    // this fence is seen by the last searcher's re-check, or we see its decrement.
    Platform::fence(Platform::seq_cst);
    // relaxed: ordered by the fence above.
    const idle_word s(state_.load(Platform::relaxed));
    if (should_wake(s)) {
      wake_one_searcher();
    } else if (s.attached() < slots_ && s.searching() == 0 && saturated_ != nullptr) [[unlikely]] {
      saturated_(saturated_ctx_);  // every attached worker is busy: an elastic pool may grow (T5)
    }
  }

  // A worker wants to search. False when about half the workers already do.
  bool try_begin_search() {
    // relaxed: the limit is a heuristic; the RMW below is what counts.
    const idle_word s(state_.load(Platform::relaxed));
    if (2 * s.searching() >= s.attached()) return false;
    // seq_cst: searching counts are read by notify_work after its fence (T1).
    state_.fetch_add(idle_word::one_searching, Platform::seq_cst);
    return true;
  }

  // T2: a searcher found work. If it was the last searcher and `any_work()` (the caller's
  // re-check of every queue, which must start with a seq_cst fence) finds more, it calls
  // notify_work: the same shape as T3, so work published concurrently is seen either by
  // the re-check or by its publisher's T1, which then reads searching == 0.
  template <class AnyWork>
  void end_search(AnyWork&& any_work) {
    // seq_cst: the same total order as T1/T3 on the state word.
    const idle_word prev(state_.fetch_sub(idle_word::one_searching, Platform::seq_cst));
    if (prev.searching() == 1 && any_work()) notify_work();
  }

  struct park_ticket {
    bool last_searcher;        // nobody searches now: the caller must re-check all queues and
                               // notify_work on finding work
    bool last_awake;           // nobody else unparked and nobody parked inside a wait
  };

  // T3: enlist worker w as parked. in_wait: the worker is blocked inside a task (a wait
  // that helps: woken for new work, it runs it, see wait.cpp).
  park_ticket begin_park(unsigned w, bool was_searching, bool in_wait) {
    std::lock_guard lock(mu_);
    const std::uint64_t dec = idle_word::one_unparked + (was_searching ? idle_word::one_searching : 0);
    // seq_cst: pairs with the fence in notify_work (T1).
    const idle_word prev(state_.fetch_sub(dec, Platform::seq_cst));
    sleepers_.push_back(w);
    asleep_[w] = 1;
    as_searcher_[w] = 0;
    in_wait_[w] = in_wait ? kWait : kIdle;
    waiting_ += in_wait ? 1 : 0;
    // No searcher left after this transition, whether or not we were one: re-check. A worker
    // that parks without searching (try_begin_search said no) may have read a stale count of
    // searchers that has since dropped to zero; without the re-check its park could follow a
    // spawn that read "nobody parked" and so woke nobody (model check spawn_then_block).
    return {prev.searching() == (was_searching ? 1u : 0u), prev.unparked() == 1 && waiting_ == 0};
  }

  // T4: block until woken.
  void park(unsigned w) { parkers_[w].park(); }

  // After park returns: whether the waker counted w as a searcher (wake_one_searcher), in
  // which case w must search and later call end_search or begin_park(was_searching=true).
  // Written under mu_ only while w is enlisted; read by w after the parker's
  // unpark->park edge, so it needs no lock.
  bool woke_as_searcher(unsigned w) const noexcept { return as_searcher_[w] != 0; }

  // T4 with a time limit. Returns false on timeout, with the worker still enlisted: the
  // caller then calls cancel_park.
  template <class Deadline>
  bool park_until(unsigned w, Deadline deadline) {
    return parkers_[w].park_until(deadline);
  }

  // Takes w off the parked list if it is still there (true). False means a waker already
  // took it and its token is on the way: the caller must park() once to consume it.
  bool cancel_park(unsigned w) {
    std::lock_guard lock(mu_);
    if (!asleep_[w]) return false;
    unlist(w);
    // seq_cst: same total order as T1/T3.
    state_.fetch_add(idle_word::one_unparked, Platform::seq_cst);
    return true;
  }

  // Wakes worker w if it is parked (the waited-for object of a blocked task completed).
  void wake_worker(unsigned w) {
    {
      std::lock_guard lock(mu_);
      if (!asleep_[w]) return;
      unlist(w);
      // seq_cst: same total order as T1/T3.
      state_.fetch_add(idle_word::one_unparked, Platform::seq_cst);
    }
    parkers_[w].unpark();
  }

  // Wakes every parked worker; with terminate, they exit.
  void wake_all(bool terminate) {
    // release: pairs with the acquire in terminating().
    if (terminate) terminate_.store(true, Platform::release);
    std::vector<unsigned> woken;
    {
      std::lock_guard lock(mu_);
      woken.swap(sleepers_);
      sleepers_.reserve(slots_);
      for (unsigned w : woken) {
        asleep_[w] = 0;
        waiting_ -= in_wait_[w] != kIdle ? 1 : 0;
        in_wait_[w] = 0;
      }
      // seq_cst: same total order as T1/T3.
      state_.fetch_add(idle_word::one_unparked * woken.size(), Platform::seq_cst);
    }
    for (unsigned w : woken) parkers_[w].unpark();
  }

  // T5: a thread is about to start on the vacant slot w; it counts as attached, unparked
  // and searching from here on (its owner-thread flag must say searching too).
  void attach(unsigned w) {
    std::lock_guard lock(mu_);
    as_searcher_[w] = 0;
    // seq_cst: the same total order as T1/T3 on the state word.
    state_.fetch_add(idle_word::one_attached + idle_word::one_unparked + idle_word::one_searching, Platform::seq_cst);
  }

  // T5 undone: the thread for slot w could not be created. The ticket is begin_park's: the
  // caller re-checks (T3) and runs S3 on behalf of the thread that never ran.
  park_ticket abort_attach(unsigned) {
    std::lock_guard lock(mu_);
    // seq_cst: as begin_park (T3).
    const idle_word prev(state_.fetch_sub(
        idle_word::one_attached + idle_word::one_unparked + idle_word::one_searching, Platform::seq_cst));
    return {prev.searching() == 1, prev.unparked() == 1 && waiting_ == 0};
  }

  enum class retire_result {
    retired,  // detached: the caller must re-check (R) and reattach on finding work
    stay,     // attached == min: still enlisted, park on
    woken,    // a waker took w off the list: its token is on the way (park() consumes it)
  };
  // T6: worker w, enlisted by an idle begin_park whose keep-alive ran out, leaves.
  retire_result retire(unsigned w) {
    std::lock_guard lock(mu_);
    if (!asleep_[w]) return retire_result::woken;
    // relaxed: `attached` changes only under mu_, which we hold.
    if (idle_word(state_.load(Platform::relaxed)).attached() <= min_attached_) return retire_result::stay;
    unlist(w);
    // seq_cst: pairs with the fence in notify_work (T1), like T3; the caller's re-check (R)
    // follows it.
    state_.fetch_sub(idle_word::one_attached, Platform::seq_cst);
    return retire_result::retired;
  }

  // R found work after T6: w is attached again, as a searcher (woke_as_searcher says so).
  void reattach(unsigned w) {
    std::lock_guard lock(mu_);
    as_searcher_[w] = 1;
    // seq_cst: as attach (T5).
    state_.fetch_add(idle_word::one_attached + idle_word::one_unparked + idle_word::one_searching, Platform::seq_cst);
  }

 private:
  static bool should_wake(idle_word s) noexcept { return s.searching() == 0 && s.unparked() < s.attached(); }

  void wake_one_searcher() {
    unsigned w;
    {
      std::lock_guard lock(mu_);
      // relaxed: re-checked under mu_, which every enlisting/unlisting transition holds.
      if (!should_wake(idle_word(state_.load(Platform::relaxed)))) return;
      // Prefer a worker parked idle over one parked inside a wait: the latter only runs
      // other work until its own wait completes.
      auto it = std::find_if(sleepers_.rbegin(), sleepers_.rend(), [&](unsigned s) { return in_wait_[s] == kIdle; });
      w = it != sleepers_.rend() ? *it : sleepers_.back();
      unlist(w);
      as_searcher_[w] = 1;
      // seq_cst: same total order as T1/T3. The woken worker starts as a searcher.
      state_.fetch_add(idle_word::one_unparked + idle_word::one_searching, Platform::seq_cst);
    }
    parkers_[w].unpark();
  }

  // Requires mu_.
  void unlist(unsigned w) {
    sleepers_.erase(std::find(sleepers_.begin(), sleepers_.end(), w));
    asleep_[w] = 0;
    waiting_ -= in_wait_[w] != kIdle ? 1 : 0;
    in_wait_[w] = 0;
  }

  const unsigned slots_;
  const unsigned min_attached_;
  void (*saturated_)(void*) noexcept = nullptr;
  void* saturated_ctx_ = nullptr;
  atomic_word state_{0};
  atomic_flag terminate_{false};
  std::vector<typename Platform::parker> parkers_;
  typename Platform::mutex mu_;
  std::vector<unsigned> sleepers_;  // guarded by mu_
  std::vector<char> asleep_;        // guarded by mu_
  static constexpr char kIdle = 0, kWait = 1;
  std::vector<char> in_wait_;       // guarded by mu_: kIdle or kWait
  std::vector<char> as_searcher_;   // written under mu_ while w is enlisted; see woke_as_searcher
  unsigned waiting_ = 0;            // guarded by mu_: parked workers that are inside a wait
};

}  // namespace weft::detail
