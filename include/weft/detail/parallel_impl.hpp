// weft/detail/parallel_impl.hpp: the machinery behind weft/parallel.hpp. Not API.
//
// Everything here is a template over the user's callable, so that the callable is inlined
// into the loop over indices; the scheduler is used only through task_group (run/wait).
//
// One algorithm call ("a loop") has:
//   - the user's callables, by reference;
//   - a failure_slot, on the caller's stack: the first exception of any piece, and a stop
//     flag that makes every later piece and every later split a no-op;
//   - the task_group(s) its pieces are run() on, created by the root piece on the worker
//     that runs it (the caller, or the task the caller submitted: see on_pool) and waited
//     on there; declared last, so that a group's destructor (which waits for running
//     children) runs before anything a child uses is destroyed.
// Pieces never throw into the task_group: each catches what the user's code throws and
// hands it to the failure_slot, so "first" means first in time over every piece, the one
// the caller runs inline included.
//
// Splitting strategies for parallel_for (split below). All three hand the user's chunk
// form pieces of at most `grain` indices and give every index to exactly one call.
//   demand  (the default) Lazy binary splitting (Tzannes, Caragea, Barua, Vishkin, "Lazy Binary
//           Splitting", PPoPP 2010). A piece runs its range `grain` indices at a time; before
//           each block it splits off the right half of what is left, as a task, only if
//           every task it spawned earlier has already started (been stolen or popped).
//           Departure from the paper: LBS tests "my deque is empty"; weft's deque is not
//           visible from here, so each worker counts its own spawned-but-not-started pieces
//           of this loop (`surplus`). Pieces of other loops in the same deque are not seen:
//           the test is per loop, which only makes splitting a little more eager.
//   halving Recursive halving (Cilk's cilk_for): split in halves down to `grain`, spawning
//           the right half and continuing with the left. The tree depends only on the range
//           and the grain; thieves take the biggest untaken half. parallel_reduce's shape.
//   flat    Eager pre-split: the root spawns all ceil(n / grain) pieces at once (OpenMP
//           static-like). Kept for measurement; with a tiny grain it queues n / grain task
//           blocks at once.
// parallel_reduce always uses halving with a join per split, so that partial results are
// combined in a tree that depends only on the range and the grain (a deterministic result).
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace weft::detail {

// ---- indices ---------------------------------------------------------------------------

template <class T>
concept parallel_index = std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool>;

// Offsets from `first` count in an unsigned type at least as wide as the index and as
// unsigned int: last - first of any range (INT_MIN..INT_MAX included) fits, and offset
// arithmetic wraps with defined behaviour.
template <class Index>
using offset_t = std::make_unsigned_t<std::common_type_t<Index, unsigned>>;

// a < b for integers of any signedness (std::cmp_less, which rejects character types).
template <class A, class B>
constexpr bool int_less(A a, B b) noexcept {
  if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) {
    return a < b;
  } else if constexpr (std::is_signed_v<A>) {
    return a < 0 || static_cast<std::make_unsigned_t<A>>(a) < b;
  } else {
    return b >= 0 && a < static_cast<std::make_unsigned_t<B>>(b);
  }
}

template <class T>
std::string int_text(T v) {
  if constexpr (std::is_signed_v<T>) {
    return std::to_string(static_cast<long long>(v));
  } else {
    return std::to_string(static_cast<unsigned long long>(v));
  }
}

// The number of indices in [first, last) as an offset of the common index type; throws
// std::invalid_argument naming `first`/`last` for a reversed range or a negative first
// whose common type with last is unsigned.
template <class Index, class First, class Last>
offset_t<Index> checked_count(const char* algo, First first, Last last) {
  if (int_less(last, first)) {
    throw std::invalid_argument(std::string(algo) + ": first (" + int_text(first) + ") is greater than last (" +
                                int_text(last) + ")");
  }
  if constexpr (std::is_unsigned_v<Index>) {
    if (int_less(first, 0)) {
      throw std::invalid_argument(std::string(algo) + ": first (" + int_text(first) +
                                  ") is negative but the common index type of first and last is unsigned");
    }
  }
  using U = offset_t<Index>;
  return static_cast<U>(static_cast<U>(static_cast<Index>(last)) - static_cast<U>(static_cast<Index>(first)));
}

// A user's grain as an offset; throws std::invalid_argument naming `grain` when < 1.
// A grain larger than any range is clamped (it means "never split").
template <class U, class G>
U checked_grain(const char* algo, G grain) {
  static_assert(parallel_index<G>, "the grain is an integer");
  if (int_less(grain, 1)) {
    throw std::invalid_argument(std::string(algo) + ": grain must be at least 1, got " + int_text(grain));
  }
  return int_less(std::numeric_limits<U>::max(), grain) ? std::numeric_limits<U>::max() : static_cast<U>(grain);
}

// Default grain: about kPiecesPerWorker pieces per worker (at least 1 index each). The
// figure comes from the measurements in weft/parallel.hpp.
inline constexpr unsigned kPiecesPerWorker = 8;

template <class U>
U default_grain(U n, unsigned workers) noexcept {
  const U pieces = static_cast<U>(kPiecesPerWorker) * static_cast<U>(std::max(workers, 1u));
  const U g = static_cast<U>(n / pieces + (n % pieces != 0 ? 1 : 0));
  return std::max<U>(g, 1);
}

// ---- failures ----------------------------------------------------------------------------

// The first exception of a loop, and the flag that stops it.
class failure_slot {
 public:
  bool stopped() const noexcept {
    // relaxed: a hint that only skips work early; error_ itself reaches the reader through
    // the group's wait (see capture).
    return stop_.load(std::memory_order_relaxed);
  }
  // Call from a catch block. The first caller in the RMW order keeps its exception.
  void capture() noexcept {
    // relaxed: the exchange alone decides who owns error_; the owner's write reaches the
    // caller through the owner's task finishing (task_group's seq_cst decrement, acquired
    // by wait), then, from outside the pool, through the root task's future (fulfilled
    // with release, read with acquire by get); or by program order when the owner is the
    // caller itself.
    if (!stop_.exchange(true, std::memory_order_relaxed)) error_ = std::current_exception();
  }
  // On the calling thread, after the group's wait.
  void rethrow_if_failed() {
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

// Runs fn(), handing an exception to `slot`.
template <class Fn>
void guarded(failure_slot& slot, Fn&& fn) noexcept {
  try {
    std::forward<Fn>(fn)();
  } catch (...) {
    slot.capture();
  }
}

// Runs `fn` as a child of `g`. False when it could not be queued (std::bad_alloc, or the
// pool refused it): the caller then runs that work itself, so nothing is lost.
template <class Fn>
bool try_spawn(task_group& g, Fn&& fn) noexcept {
  try {
    g.run(std::forward<Fn>(fn));
    return true;
  } catch (...) {
    return false;
  }
}

// Runs root() (which must not throw) on the calling worker, or, when `submit_root` (the
// caller is not one of p's workers), as a task on p while the caller sleeps in
// future::get. root() creates the call's task_groups itself, so that each is created on the
// worker that waits on it: its splits then go on that worker's deque, and the join counts
// the pieces that worker runs itself without atomics (task_group.hpp; a group created on
// the external thread would send every split through the injection queue). Throws
// pool_closed from outside a closed pool (root never ran then).
template <class Root>
void on_pool(pool& p, bool submit_root, Root&& root) {
  if (submit_root) {
    p.submit(std::forward<Root>(root)).get();
  } else {
    std::forward<Root>(root)();
  }
}

// ---- parallel_for ------------------------------------------------------------------------

enum class split : unsigned char { demand, halving, flat };

// The strategy parallel_for uses (measurements in weft/parallel.hpp).
inline constexpr split default_split = split::demand;

template <class Body, class Index>
concept index_body = std::invocable<const Body&, Index>;
template <class Body, class Index>
concept chunk_body = !index_body<Body, Index> && std::invocable<const Body&, Index, Index>;

// Calls body on the indices base + [lo, hi): once with (lo, hi) in the chunk form, else
// once per index.
template <class Index, class Body>
void call_body(const Body& body, offset_t<Index> base, offset_t<Index> lo, offset_t<Index> hi) {
  const Index a = static_cast<Index>(base + lo);
  const Index z = static_cast<Index>(base + hi);
  if constexpr (chunk_body<Body, Index>) {
    std::invoke(body, a, z);
  } else {
    for (Index i = a; i < z; ++i) std::invoke(body, i);
  }
}

template <class Index, class Body>
class for_loop {
 public:
  using U = offset_t<Index>;

  // Construct on the thread that runs the root piece and waits (task_group.hpp: a group is
  // waited on by the worker that created it).
  for_loop(pool& p, Index first, U grain, const Body& body, split how, failure_slot& fail)
      : body_(body), base_(static_cast<U>(first)), grain_(grain), how_(how), pool_(&p), fail_(fail), group_(p) {
    if (how_ == split::demand) surplus_ = std::make_unique<std::atomic<int>[]>(p.size() + 1);
  }
  for_loop(const for_loop&) = delete;
  for_loop& operator=(const for_loop&) = delete;

  // Runs [b, e) with the chosen strategy; never throws (failures go to the slot).
  void run(U b, U e) noexcept {
    switch (how_) {
      case split::demand:
        demand(b, e);
        break;
      case split::halving:
        halving(b, e);
        break;
      case split::flat:
        flat(b, e);
        break;
    }
  }

  // Runs [0, n) and waits for every piece; failures are in the slot.
  void run_all(U n) noexcept {
    run(0, n);
    group_.wait();  // the pieces never throw into the group
  }

 private:
  // A failure, or the cancellation of a group enclosing the call (task_group.hpp): no new
  // block, split or spawn. One relaxed load each while nothing was ever cancelled.
  bool stopping() const noexcept { return fail_.stopped() || group_.is_cancelled(); }

  // Runs [b, e) here, grain_ indices at a time, until the loop is stopped.
  void run_blocks(U b, U e) noexcept {
    while (b != e && !stopping()) {
      const U stop = e - b > grain_ ? b + grain_ : e;
      guarded(fail_, [&] { call_body<Index>(body_, base_, b, stop); });
      b = stop;
    }
  }

  void halving(U b, U e) noexcept {
    while (e - b > grain_ && !stopping()) {
      const U mid = b + (e - b) / 2;
      if (!try_spawn(group_, [this, mid, e] { halving(mid, e); })) break;  // keep [b, e)
      e = mid;
    }
    run_blocks(b, e);
  }

  void demand(U b, U e) noexcept {
    std::atomic<int>& mine = surplus_of_caller();
    while (b != e && !stopping()) {
      // relaxed (both counter accesses): a heuristic that decides only *when* to split;
      // every piece is run once whatever it reads (deliberate weakening, argued above).
      if (e - b > grain_ && mine.load(std::memory_order_relaxed) == 0) {
        const U mid = b + (e - b) / 2;
        mine.fetch_add(1, std::memory_order_relaxed);
        const bool spawned = try_spawn(group_, [this, from = &mine, mid, e] {
          from->fetch_sub(1, std::memory_order_relaxed);  // relaxed: as above
          demand(mid, e);
        });
        if (spawned) {
          e = mid;
        } else {
          mine.fetch_sub(1, std::memory_order_relaxed);  // relaxed: as above
        }
      }
      const U stop = e - b > grain_ ? b + grain_ : e;
      guarded(fail_, [&] { call_body<Index>(body_, base_, b, stop); });
      b = stop;
    }
  }

  void flat(U b, U e) noexcept {
    const U n = e - b;
    const U pieces = n / grain_ + (n % grain_ != 0 ? 1 : 0);
    // Last piece first: the caller then pops them in index order, thieves take the far end.
    for (U k = pieces; k-- > 1 && !stopping();) {
      const U lo = b + k * grain_;
      const U hi = e - lo > grain_ ? lo + grain_ : e;
      if (!try_spawn(group_, [this, lo, hi] { run_blocks(lo, hi); })) run_blocks(lo, hi);
    }
    run_blocks(b, e - b > grain_ ? b + grain_ : e);
  }

  // The caller's counter: a worker's own, or the last one for any other thread (defensive:
  // pieces run on p's workers). Unpadded: touched only when a piece is split off or starts.
  std::atomic<int>& surplus_of_caller() const noexcept {
    const int w = pool_->current_worker_index();
    return surplus_[w >= 0 ? static_cast<unsigned>(w) : pool_->size()];
  }

  const Body& body_;
  const U base_;
  const U grain_;
  const split how_;
  pool* const pool_;
  failure_slot& fail_;
  std::unique_ptr<std::atomic<int>[]> surplus_;  // demand only: pool size + 1 counters
  // Last: destroyed first, waiting for running pieces, so no piece outlives the rest.
  task_group group_;
};

template <class Index, class Body>
void parallel_for_impl(pool& p, split how, Index first, offset_t<Index> n, offset_t<Index> grain, const Body& body) {
  if (n == 0) return;
  const bool on_worker = p.current_worker_index() >= 0;
  if (on_worker && n <= grain) {  // one piece: run it here, with no task and no group
    call_body<Index>(body, static_cast<offset_t<Index>>(first), 0, n);
    return;
  }
  failure_slot fail;
  on_pool(p, !on_worker, [&] { for_loop<Index, Body>(p, first, grain, body, how, fail).run_all(n); });
  fail.rethrow_if_failed();
}

// ---- parallel_reduce ---------------------------------------------------------------------

template <class Index, class T, class Map, class Combine>
class reduce_tree {
 public:
  using U = offset_t<Index>;

  reduce_tree(pool& p, Index first, U grain, const T& identity, const Map& map, const Combine& combine)
      : pool_(p), base_(static_cast<U>(first)), grain_(grain), identity_(identity), map_(map), combine_(combine) {}
  reduce_tree(const reduce_tree&) = delete;
  reduce_tree& operator=(const reduce_tree&) = delete;

  // The whole reduction; `submit_root`: see on_pool.
  T run_all(U n, bool submit_root) {
    std::optional<T> result;
    on_pool(pool_, submit_root, [&] { guarded(fail_, [&] { result = node(0, n); }); });
    fail_.rethrow_if_failed();
    // Empty only if an enclosing group was cancelled (pieces skipped): unspecified value.
    return result ? std::move(*result) : identity_;
  }

  // Index-order fold of [b, e), from identity, into `out`; may throw (the user's code).
  // Not `return acc`: with the named return value optimisation acc would live in the
  // caller's memory, which map's loads (through pointers to T) might alias, so the fold
  // would go through memory: a store and a reload per element, 2x slower for a sum of
  // doubles (measured: 100 ms against 55 ms for 100M).
  void leaf(U b, U e, std::optional<T>& out) const {
    T acc = identity_;
    const Index z = static_cast<Index>(base_ + e);
    for (Index i = static_cast<Index>(base_ + b); i < z; ++i) {
      acc = std::invoke(combine_, std::move(acc), static_cast<T>(std::invoke(map_, i)));
    }
    out.emplace(std::move(acc));
  }

 private:
  // The partial result of [b, e): nullopt when a failure or a cancellation skipped some of
  // it. Children record their own failures; this never throws.
  std::optional<T> node(U b, U e) noexcept {
    std::optional<T> out;
    if (fail_.stopped()) return out;
    if (e - b <= grain_) {
      guarded(fail_, [&] { leaf(b, e, out); });
      return out;
    }
    const U mid = b + (e - b) / 2;
    std::optional<T> right;
    {
      task_group g(pool_);
      const bool spawned = try_spawn(g, [this, &right, mid, e] { guarded(fail_, [&] { right = node(mid, e); }); });
      guarded(fail_, [&] { out = node(b, mid); });
      if (!spawned) guarded(fail_, [&] { right = node(mid, e); });
      g.wait();  // children never throw into g
    }
    if (!out || !right) return out ? std::move(out) : std::move(right);
    guarded(fail_, [&] { out = static_cast<T>(std::invoke(combine_, std::move(*out), std::move(*right))); });
    return out;
  }

  pool& pool_;
  const U base_;
  const U grain_;
  const T& identity_;
  const Map& map_;
  const Combine& combine_;
  failure_slot fail_;
};

template <class Index, class T, class Map, class Combine>
T parallel_reduce_impl(pool& p, Index first, offset_t<Index> n, offset_t<Index> grain, const T& identity,
                       const Map& map, const Combine& combine) {
  if (n == 0) return identity;
  reduce_tree<Index, T, Map, Combine> tree(p, first, grain, identity, map, combine);
  const bool on_worker = p.current_worker_index() >= 0;
  if (on_worker && n <= grain) {  // one piece: here, no task, no group
    std::optional<T> out;
    tree.leaf(0, n, out);
    return std::move(*out);
  }
  return tree.run_all(n, !on_worker);
}

// ---- parallel_invoke ---------------------------------------------------------------------

// Runs f() unless the call was stopped; failures go to `slot`.
template <class F>
void invoke_one(failure_slot& slot, F& f) noexcept {
  if (!slot.stopped()) guarded(slot, [&f] { std::invoke(f); });
}

// Spawns all but the last callable on g and runs the last here; failures go to `slot`.
// The children reference only `slot` and the callables, which outlive g's wait.
template <class... F>
void invoke_all(task_group& g, failure_slot& slot, F&... fs) noexcept {
  auto refs = std::tie(fs...);
  constexpr std::size_t last = sizeof...(F) - 1;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    // A callable that cannot be queued (std::bad_alloc) runs here instead.
    ((try_spawn(g, [s = &slot, f = &std::get<I>(refs)] { invoke_one(*s, *f); }) ||
      (invoke_one(slot, std::get<I>(refs)), true)),
     ...);
  }(std::make_index_sequence<last>{});
  invoke_one(slot, std::get<last>(refs));
}

}  // namespace weft::detail
