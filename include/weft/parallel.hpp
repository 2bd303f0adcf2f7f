// weft/parallel.hpp: parallel algorithms over a pool: parallel_invoke, parallel_for,
// parallel_reduce.
//
// Overview. These are a layer over task_group (no scheduler hooks). Each call forks its
// work into pieces that are run() on one internal task_group and joins them before it
// returns:
//
//   weft::pool p;
//   std::vector<double> a(n);
//   weft::parallel_for(p, std::size_t{0}, a.size(), [&](std::size_t i) { a[i] = std::sqrt(i); });
//   double s = weft::parallel_reduce(p, std::size_t{0}, a.size(), 0.0,
//                                    [&](std::size_t i) { return a[i]; }, std::plus<>{});
//
// From which threads. Every function may be called from any thread:
//   - from a worker of `p` (nested parallelism, e.g. inside a parallel_for body or any
//     task): the caller runs the first piece itself, the pieces it splits off go on its own
//     deque for other workers to steal, and it runs tasks of this call while it waits;
//   - from any other thread (outside the pool, or a worker of another pool): the root piece
//     is submitted to `p` and the caller blocks (as in future::get) until the whole call is
//     done. All the work runs on p's workers, none on the caller.
// A pool of one worker cannot deadlock on nesting: the waiting worker runs the pieces.
//
// Exceptions. If the user's code throws, the call stops splitting, skips every piece that
// has not started yet, waits for the pieces that are running, and then rethrows the first
// exception (first in time over all pieces; the others are dropped). No index is run twice.
// Indices after the failure may or may not have run. Invalid arguments throw
// std::invalid_argument naming the argument ("first", "last", "grain") before anything runs.
// Called from outside a closed pool, a call with work throws pool_closed before any of it runs.
//
// Cancellation. When a task_group enclosing the calling task is cancelled (task_group.hpp),
// pieces that have not started are skipped, running parallel_for pieces stop at their next
// block of `grain` indices, and the call returns normally (as oneTBB's algorithms do): parallel_for
// has then run only some indices and parallel_reduce returns an unspecified value. Check
// the enclosing group (its wait() reports group_status::cancelled).
//
// Costs. One task_group and, per piece split off, one task (no allocation in steady state:
// the closures fit a task block's inline storage); parallel_for also allocates one small
// array of p.size() + 1 counters per call, and parallel_reduce one task_group per split. A
// call whose range fits one grain, made from a worker, runs inline with no task at all.
// From outside the pool, the root is one pool::submit (one shared-state allocation). The
// callables are taken by reference and inlined into the loop over indices; nothing is
// copied.
//
// Measurements behind the defaults: lazy (demand) vs eager splitting, and the grain.
// AMD EPYC VM, 2 cores (no SMT, one NUMA node), g++ 12 -O3, 2 workers; ms, median (min) of
// 6 runs interleaved across variants; perf/bench_parallel.cpp, WEFT_PERF_PARALLEL_SWEEP=1.
// demand = lazy binary splitting, halving = recursive halving, flat = eager pre-split into
// k pieces per worker (detail/parallel_impl.hpp); grain = ceil(n / (k * workers)).
//   k = 8                                 demand      halving     flat
//   sqrt, 100M doubles (compute-bound)    110 (108)   113 (104)   115 (108)
//   STREAM triad, 3 x 32M doubles         23 (19)     23 (22)     22 (21)
// Big loops: no difference beyond noise. k = 1 is the one clear loser once the machine is
// shared (sqrt with another process busy on the cores: 271 ms at k = 1 against 166-195 at
// k = 4..64, for every strategy): pieces must be small enough to rebalance. Small nested
// loops decide it: 2000 inner parallel_for calls of 100 / 1000 cheap indices run inside an
// outer parallel_for take demand 0.42 / 0.77, halving 0.76 / 1.05, flat 0.70 / 1.00 ms, as
// demand splits only when a thief is waiting (fewer tasks). For demand, the same nested
// loops by pieces per worker: k = 4: 0.34 / 0.57-0.76, 8: 0.41 / 0.68, 16: 0.51 / 0.83,
// 64: 0.92 / 1.38. Hence demand splitting with k = 8 (small nested loops cheap, an eighth
// of a share as the balancing unit for big ones). Against the peers, same machine, 1 / 2
// threads, median ms: sqrt weft 211 / 110, oneTBB 218 / 110, OpenMP static 214 / 116;
// triad 24 / 19, 26 / 19, 25 / 21; sum (parallel_reduce) 55 / 29, 56 / 28, 56 / 28.
#pragma once

#include <type_traits>
#include <utility>

#include "weft/detail/parallel_impl.hpp"
#include "weft/pool.hpp"

namespace weft {

// parallel_invoke(p, f1, f2, ..., fn): runs every fi() once, in parallel, and returns
// when all have finished.
//
// f1 .. f(n-1) are spawned as tasks; fn runs inline on the calling worker (from outside
// the pool, a root task on `p` does this and the caller waits). The callables are invoked
// as lvalues, by reference (never copied); their results are discarded.
// If any throws, callables that have not started are skipped, and the first exception is
// rethrown once all the others have finished or been skipped.
// Cost: one task_group and n - 1 tasks (none for n == 1 from a worker).
template <class... F>
void parallel_invoke(pool& p, F&&... fs) {
  static_assert(sizeof...(F) >= 1, "parallel_invoke needs at least one callable");
  static_assert((std::is_invocable_v<std::remove_reference_t<F>&> && ...), "each callable is called as f()");
  detail::failure_slot slot;
  detail::on_pool(p, p.current_worker_index() < 0, [&] {
    task_group g(p);
    detail::invoke_all(g, slot, fs...);
    g.wait();  // the children never throw into g
  });
  slot.rethrow_if_failed();
}

// parallel_for(p, first, last, f) and parallel_for(p, first, last, grain, f): calls f once
// for every index in [first, last), in parallel.
//
// Indices: first and last are integers of any types except bool; they are compared by value
// and the index type is their common type (so parallel_for(p, 0, v.size(), f) runs over
// std::size_t). first > last, or a negative first whose common type with last is unsigned,
// throws std::invalid_argument. first == last is an empty range: nothing runs.
//
// f: called through a const reference, concurrently from several threads, so it must be
// safe to call concurrently (a mutable lambda does not compile). Two forms:
//   - f(i): called once for each index i;
//   - f(lo, hi): the chunk form, detected when f(i) is not callable: called with
//     non-empty, disjoint half-open sub-ranges [lo, hi) that together cover [first, last),
//     each of at most `grain` indices, so the body can keep per-chunk state or vectorise.
//
// grain: the largest number of consecutive indices one piece hands to f without checking
// for a split, and so the smallest unit that can move to another worker. Must be >= 1, or
// std::invalid_argument naming "grain" is thrown. Default: about 1/8 of an equal share,
// ceil((last - first) / (8 * p.size())), at least 1 (see the measurements above). Choose a
// larger grain when f is very cheap and the range is small (a piece should take at least a
// few microseconds); a smaller one when iterations vary a lot in cost.
//
// Splitting (lazy binary splitting, on demand): a piece runs its indices `grain` at a time,
// and before each block it splits off the right half of what it has left, as a task, only
// if the piece it split off before has already been taken (stolen, or popped by its own
// worker). Idle workers thus always find one big half to steal, and a loop nobody steals
// from creates only about log2(n / grain) tasks. Each worker keeps at most one untaken
// piece of a loop in its deque. The split points depend on timing; every index still runs
// exactly once.
template <class First, class Last, class Grain, class F>
requires detail::parallel_index<First> && detail::parallel_index<Last> && detail::parallel_index<Grain>
void parallel_for(pool& p, First first, Last last, Grain grain, F&& f) {
  using Index = std::common_type_t<First, Last>;
  using Body = std::remove_cvref_t<F>;
  static_assert(detail::index_body<Body, Index> || detail::chunk_body<Body, Index>,
                "parallel_for needs f(i) or f(lo, hi) callable through a const reference");
  const auto n = detail::checked_count<Index>("weft::parallel_for", first, last);
  const auto g = detail::checked_grain<detail::offset_t<Index>>("weft::parallel_for", grain);
  detail::parallel_for_impl<Index, Body>(p, detail::default_split, static_cast<Index>(first), n, g, f);
}

template <class First, class Last, class F>
requires detail::parallel_index<First> && detail::parallel_index<Last>
void parallel_for(pool& p, First first, Last last, F&& f) {
  using Index = std::common_type_t<First, Last>;
  using Body = std::remove_cvref_t<F>;
  static_assert(detail::index_body<Body, Index> || detail::chunk_body<Body, Index>,
                "parallel_for needs f(i) or f(lo, hi) callable through a const reference");
  const auto n = detail::checked_count<Index>("weft::parallel_for", first, last);
  detail::parallel_for_impl<Index, Body>(p, detail::default_split, static_cast<Index>(first), n,
                                         detail::default_grain(n, p.size()), f);
}

// parallel_reduce(p, first, last, identity, map, combine), and the same with a grain after
// `last`: returns combine(...combine(identity, map(first))..., map(last - 1)) computed in
// parallel, or identity for an empty range.
//
// T is the type of `identity` (write 0.0, not 0, to sum doubles). map(i) must be callable
// through a const reference with an index and return something convertible to T;
// combine(T&&, T&&) must return something convertible to T. Both are called concurrently.
// identity must be an identity of combine: every piece starts from a copy of it.
//
// Order and determinism. Partial results are always combined as combine(left, right) of
// adjacent sub-ranges in index order, so combine needs to be associative, not commutative
// (string concatenation works). The split tree (halving down to `grain`) depends only on
// last - first and the grain, never on timing or stealing: for the same inputs and grain
// the result is bit-identical from run to run, floating-point sums included. The default
// grain depends on p.size(), so with it the result is deterministic for a given pool size.
//
// Indices, grain, exceptions, threads: as parallel_for. Cost: one task and one task_group
// per split (each split joins its two halves), and one copy of identity per piece.
template <class First, class Last, class Grain, class T, class Map, class Combine>
requires detail::parallel_index<First> && detail::parallel_index<Last> && detail::parallel_index<Grain> T
parallel_reduce(pool& p, First first, Last last, Grain grain, T identity, const Map& map, const Combine& combine) {
  using Index = std::common_type_t<First, Last>;
  static_assert(std::is_invocable_v<const Map&, Index>, "parallel_reduce needs map(i)");
  static_assert(std::is_convertible_v<std::invoke_result_t<const Map&, Index>, T>, "map(i) must convert to T");
  static_assert(std::is_convertible_v<std::invoke_result_t<const Combine&, T&&, T&&>, T>,
                "combine(T, T) must be callable and convert to T");
  const auto n = detail::checked_count<Index>("weft::parallel_reduce", first, last);
  const auto g = detail::checked_grain<detail::offset_t<Index>>("weft::parallel_reduce", grain);
  return detail::parallel_reduce_impl<Index>(p, static_cast<Index>(first), n, g, identity, map, combine);
}

template <class First, class Last, class T, class Map, class Combine>
requires detail::parallel_index<First> && detail::parallel_index<Last> T parallel_reduce(pool& p, First first,
                                                                                         Last last, T identity,
                                                                                         const Map& map,
                                                                                         const Combine& combine) {
  using Index = std::common_type_t<First, Last>;
  static_assert(std::is_invocable_v<const Map&, Index>, "parallel_reduce needs map(i)");
  static_assert(std::is_convertible_v<std::invoke_result_t<const Map&, Index>, T>, "map(i) must convert to T");
  static_assert(std::is_convertible_v<std::invoke_result_t<const Combine&, T&&, T&&>, T>,
                "combine(T, T) must be callable and convert to T");
  const auto n = detail::checked_count<Index>("weft::parallel_reduce", first, last);
  return detail::parallel_reduce_impl<Index>(p, static_cast<Index>(first), n, detail::default_grain(n, p.size()),
                                             identity, map, combine);
}

}  // namespace weft
