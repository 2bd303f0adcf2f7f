// weft/batch.hpp: run a range of callables on a pool and collect every outcome.
//
// Overview. Three calls, one mechanism (each element becomes one pool::post with an
// on-done callback and the batch's stop token; see detail/batch_impl.hpp):
//
//   std::vector<std::function<int(std::stop_token)>> jobs = ...;
//   // All outcomes, in submission order (jobs[i] -> results[i]):
//   std::vector<weft::outcome<int>> results = weft::run_batch(pool, jobs);
//   // Outcomes as they finish:
//   for (auto&& [index, outcome] : weft::stream_batch(pool, jobs)) use(index, outcome);
//   // Plain values; the first failure is thrown (seed 002's Process/ProcessMap):
//   std::vector<std::size_t> sizes = weft::parallel_map(pool, paths, [](const std::string& p) { return size_of(p); });
//
// Elements. Every element is called once as f() or f(std::stop_token), as an lvalue, on
// one of the pool's workers; different elements run concurrently. All return the same type
// R (a range has one element type; for different callables use std::function<R(...)>),
// which is void or a movable object type. Wrong element types fail to compile with a
// static_assert that says so. The token fires when the batch is cancelled (below), when the
// pool is stopped (stop_now, a close deadline, its base token), and never otherwise.
//
// Error policies, and what cancels a batch:
// | event                                  | collect_all                     | fail_fast                          |
// |----------------------------------------|---------------------------------|------------------------------------|
// | a task throws                          | its outcome holds the exception | cancels the batch; the exception   |
// |                                        |                                 | is thrown once every element ended |
// | the caller's token fires               | cancels the batch               | cancels the batch                  |
// | stream: cancel(), the destructor       | cancels the batch               | cancels the batch                  |
// | the pool stops (stop_now, close        | queued elements -> cancelled; running elements' tokens fire (either   |
// | deadline, its base token)              | policy; a failure this provokes under fail_fast cancels the batch)    |
// Cancelling a batch: elements not started never run and complete as cancelled
// (outcome::cancelled(), error() holding task_cancelled); running elements see their
// std::stop_token fire and end as they choose (under fail_fast an exception they throw then
// is a failure like any other). "The first exception" is the first delivered (completion
// order), not the lowest index; later ones are dropped. A cancellation is never a failure:
// a fail_fast batch cancelled by its caller's token returns its outcomes normally.
//
// Threads. Any thread may start a batch. Waiting (run_batch, parallel_map, a stream's
// next() and destructor) uses weft's wait protocol: on a worker thread the waiter runs other
// tasks of its pool meanwhile (the batch's own included), so a batch started from inside a
// task cannot deadlock even on a pool of one worker; on any other thread it blocks in the
// kernel. The waiting is not isolated (unlike task_group::wait): the waiting task may run
// any queued task of the pool.
//
// A closed pool. From outside a closed (or closing, or stopped) pool the first post throws
// pool_closed. When that happens part-way, the batch is cancelled, every element already
// posted is waited for (none is left running or referencing the batch), and the exception
// propagates from the call. From one of the pool's workers a draining pool accepts the batch
// (part of the drain) and a stopping pool accepts it and cancels every element. A batch with
// no element, or whose caller token has already fired, posts nothing and so never throws
// pool_closed (all its elements are simply cancelled).
//
// Costs. Per element: one pool::post with task_options (one make_shared of about 270 bytes
// plus a pooled task block), two stop-callback registrations, and for a cancelled element
// one task_cancelled exception object. Per batch: one std::stop_source, one array of n
// outcome slots (run_batch, parallel_map also build the returned vector), or for a stream
// one copy of the callables and one buffer of n items. A cancellation walks every element
// still registered on the batch's token, on the thread that cancels.
//
// Not promised: any execution order. (From outside a pool of one worker the elements run in
// submission order; from inside a task they are pushed on the worker's own deque and mostly
// run last-in first-out.) No limit on concurrency beyond the pool's size.
// Compilers: g++ 12 and later, clang 15 and later. clang 14 with libstdc++ 12 (Debian 12's
// clang) cannot compile libstdc++'s <ranges> views (iota_view, subrange), so there the
// range overloads fail for views; containers such as std::vector work.
#pragma once

#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/detail/batch_impl.hpp"
#include "weft/outcome.hpp"
#include "weft/pool.hpp"

namespace weft {

enum class error_policy {
  collect_all,  // run everything; every value, exception and cancellation is reported
  fail_fast,    // the first task exception cancels the rest and is thrown
};

// One finished element of a stream: its position in the submitted range and how it ended.
//   for (auto&& [index, outcome] : stream) ...
template <class R>
struct batch_item {
  std::size_t index;
  outcome<R> result;
};

// ---------------------------------------------------------------------------------------
// run_batch(p, first, last, policy, token) and run_batch(p, range, policy, token)
//
// Posts every element of the range to p, waits until every one has ended, and returns their
// outcomes in submission order: result[i] is how the i-th element ended.
//   collect_all: returns every outcome (value, exception, cancelled); never throws a task's
//     exception.
//   fail_fast: the first task exception cancels the batch; run_batch rethrows it after every
//     element has ended (the tasks reference the range, so none outlives the call). Without
//     a task exception it returns like collect_all.
//   token: firing it cancels the batch (not started -> cancelled outcomes; running ->
//     their stop token fires). Already fired: nothing is posted, everything is cancelled.
// The range must be a forward range (each element is read on the worker that runs it,
// through a copy of its iterator); it is not copied: the elements are called where they
// lie, so move-only callables work, and the range must not change during the call. A range
// yielding prvalues (views::transform making lambdas) works: each is made on its worker.
// Each task holds a copy of its element's iterator, destroyed with the task, possibly on a
// worker after the call has returned: fine for every standard iterator, not for one whose
// destructor touches its range.
// Throws: pool_closed (see the overview), std::bad_alloc; in both cases nothing of the
// batch is still running. Empty range: returns an empty vector at once.
template <std::input_or_output_iterator I, std::sentinel_for<I> S>
auto run_batch(pool& p, I first, S last, error_policy policy = error_policy::collect_all, std::stop_token token = {})
    -> std::vector<outcome<detail::batch_result_t<detail::batch_element_t<I>>>> {
  static_assert(std::forward_iterator<I>,
                "weft::run_batch needs a forward range (each element is read on its worker); copy a "
                "single-pass range into a std::vector, or use weft::stream_batch, which copies");
  using R = detail::batch_result_t<detail::batch_element_t<I>>;
  static_assert(detail::check_batch_element<detail::batch_element_t<I>>());
  std::vector<outcome<R>> out;
  const auto n = static_cast<std::size_t>(std::ranges::distance(first, last));
  if (n == 0) return out;
  detail::result_sink<R> sink(n, policy == error_policy::fail_fast, token);
  detail::submit_elements(p, sink, std::move(first), std::move(last),
                          [](const I& it) { return detail::element_call<I, R>{it}; });
  sink.wait_all();
  if (const std::exception_ptr& e = sink.control().first_error()) std::rethrow_exception(e);
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(std::move(sink[i]));
  return out;
}

template <std::ranges::range Rng>
auto run_batch(pool& p, Rng&& range, error_policy policy = error_policy::collect_all, std::stop_token token = {}) {
  return run_batch(p, std::ranges::begin(range), std::ranges::end(range), policy, std::move(token));
}

// ---------------------------------------------------------------------------------------
// batch_stream<R>: the outcomes of a batch in completion order. Made by stream_batch.
//
// An input range of batch_item<R> (`for (auto&& [index, outcome] : stream)`), or call
// next() directly; each outcome is yielded exactly once, as soon as its element ends.
//
// next(): the next item in completion order, waiting for one if none is ready (see Threads
// in the overview); nullopt once all size() items have been yielded.
//   fail_fast: the call to next() that reaches the failed element's item -- the first task
//   exception in completion order -- throws that exception instead of returning the item,
//   after every element of the batch has ended (the failure already cancelled those not
//   started and fired the stop token of those running). Items delivered before it were
//   returned normally; items after it are dropped; every later next() returns nullopt.
//   Through the range interface the exception leaves begin() or operator++, that is, the
//   range-for header, between two iterations of the body.
// cancel(): cancels the batch (not started -> cancelled items, still yielded; running ->
//   stop token fires). Idempotent; thread-safe (may be called from any thread).
// The destructor cancels the batch and waits until every element has ended (as
//   std::jthread's destructor requests stop and joins): no task outlives the stream, and
//   items never consumed are destroyed with it. From a worker, it runs other tasks meanwhile.
// Moving a stream moves the batch; a moved-from or default-constructed stream is empty.
// next(), begin() and the iterators belong to one consumer thread at a time; the stream is
// otherwise not thread-safe (cancel() excepted).
template <class R>
class batch_stream {
 public:
  using value_type = batch_item<R>;

  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = batch_item<R>;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    batch_item<R>& operator*() const noexcept { return *stream_->state_->current(); }
    batch_item<R>* operator->() const noexcept { return stream_->state_->current(); }
    iterator& operator++() {
      stream_->state_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return it.done();
    }

   private:
    friend class batch_stream;
    explicit iterator(batch_stream* s) noexcept : stream_(s) {}
    bool done() const noexcept { return stream_ == nullptr || !stream_->state_ || !stream_->state_->current(); }
    batch_stream* stream_ = nullptr;
  };

  batch_stream() noexcept = default;
  // Internal: stream_batch's way in; the state's tasks are already posted.
  explicit batch_stream(std::unique_ptr<detail::stream_state<R>> state) noexcept : state_(std::move(state)) {}
  batch_stream(batch_stream&&) noexcept = default;
  batch_stream& operator=(batch_stream&& other) noexcept {
    if (this != &other) {
      finish();
      state_ = std::move(other.state_);
      started_ = other.started_;
    }
    return *this;
  }
  ~batch_stream() { finish(); }

  std::optional<batch_item<R>> next() { return state_ ? state_->next() : std::nullopt; }

  // Input-range interface: begin() takes the first item (it may wait, and may throw like
  // next()); call it once.
  iterator begin() {
    if (!started_ && state_) {
      started_ = true;
      state_->advance();
    }
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return std::default_sentinel; }

  void cancel() noexcept {
    if (state_) state_->control().cancel();
  }
  // Number of elements in the batch (items the stream yields without fail_fast).
  std::size_t size() const noexcept { return state_ ? state_->size() : 0; }

 private:
  void finish() noexcept {
    if (!state_) return;
    state_->shut_down();  // the tasks reference the state and its callables
    state_.reset();
  }

  std::unique_ptr<detail::stream_state<R>> state_;  // also holds the range interface's current item
  bool started_ = false;
};

// ---------------------------------------------------------------------------------------
// stream_batch(p, first, last, policy, token) and stream_batch(p, range, policy, token)
//
// Copies the callables into the stream, posts one task per element, and returns the stream
// of their outcomes in completion order (see batch_stream). The copy is what lets the stream
// outlive the range it came from: callables are moved instead when the range is a container
// passed as an rvalue (std::move(jobs)) or through std::make_move_iterator, so move-only
// callables work that way; they are destroyed with the stream. Any input range works.
// policy, token, pool_closed and the empty range: as run_batch (a stream that throws
// pool_closed from stream_batch has already waited for what it posted). Thread, cost: the
// overview, plus one vector of callables.
template <std::input_iterator I, std::sentinel_for<I> S>
auto stream_batch(pool& p, I first, S last, error_policy policy = error_policy::collect_all, std::stop_token token = {})
    -> batch_stream<detail::batch_result_t<std::remove_cvref_t<std::iter_reference_t<I>>>> {
  return stream_batch(p, std::ranges::subrange(std::move(first), std::move(last)), policy, std::move(token));
}

template <std::ranges::input_range Rng>
auto stream_batch(pool& p, Rng&& range, error_policy policy = error_policy::collect_all, std::stop_token token = {})
    -> batch_stream<detail::batch_result_t<std::remove_cvref_t<std::ranges::range_reference_t<Rng>>>> {
  using Fn = std::remove_cvref_t<std::ranges::range_reference_t<Rng>>;
  using R = detail::batch_result_t<Fn>;
  static_assert(std::is_move_constructible_v<Fn> && std::is_constructible_v<Fn, detail::callable_source_t<Rng>>,
                "weft::stream_batch copies each callable into the stream: pass a container as an rvalue "
                "(std::move) or use std::make_move_iterator to move move-only callables");
  static_assert(detail::check_batch_element<Fn>());
  using It = typename std::vector<Fn>::iterator;
  auto state = std::make_unique<detail::owning_stream<R, Fn>>(detail::copy_callables<Fn>(std::forward<Rng>(range)),
                                                              policy == error_policy::fail_fast, token);
  std::vector<Fn>& fns = state->callables();
  detail::submit_elements(p, *state, fns.begin(), fns.end(), [](const It& it) { return detail::element_call<It, R>{it}; });
  return batch_stream<R>(std::move(state));
}

// ---------------------------------------------------------------------------------------
// parallel_map(p, inputs, fn, policy = fail_fast, token): returns {fn(x) for x in inputs}
// in input order, computed as a batch (one task per input).
//
// fn is called as fn(x) or fn(x, std::stop_token), with x an element of `inputs` (an
// iterator's reference), through a const reference, concurrently: a mutable lambda does not
// compile. fn and the inputs are used in place (never copied) and must stay unchanged during
// the call. inputs is a forward range (a std::map gives its pairs, as seed 002's ProcessMap).
// Result: std::vector<R>, R the result of fn (not void: use run_batch, or parallel_for).
// Throws, after every task has ended:
//   fail_fast (default): the first task exception (completion order); collect_all: every
//   task runs, then the exception of the lowest-indexed element that failed. If some element
//   was cancelled (token, pool stop) and none failed, task_cancelled. Also pool_closed and
//   std::bad_alloc, as run_batch.
template <std::ranges::range In, class Fn>
auto parallel_map(pool& p, In&& inputs, Fn&& fn, error_policy policy = error_policy::fail_fast, std::stop_token token = {})
    -> std::vector<detail::map_result_t<std::ranges::iterator_t<In>, std::remove_cvref_t<Fn>>> {
  using I = std::ranges::iterator_t<In>;
  using F = std::remove_cvref_t<Fn>;
  using R = detail::map_result_t<I, F>;
  static_assert(std::ranges::forward_range<In>,
                "weft::parallel_map needs a forward range of inputs (each is read on its worker)");
  static_assert(!std::is_same_v<R, detail::not_a_batch_task>,
                "weft::parallel_map: fn must be callable as fn(x) or fn(x, std::stop_token) through a const "
                "reference, x an element of the inputs");
  static_assert(!std::is_void_v<R>, "weft::parallel_map: fn returns void; use weft::run_batch or weft::parallel_for");
  static_assert(detail::check_batch_result<R>());
  std::vector<R> out;
  const auto n = static_cast<std::size_t>(std::ranges::distance(inputs));
  if (n == 0) return out;
  const F& f = fn;
  detail::result_sink<R> sink(n, policy == error_policy::fail_fast, token);
  detail::submit_elements(p, sink, std::ranges::begin(inputs), std::ranges::end(inputs),
                          [&f](const I& it) { return detail::map_call<I, F, R>{&f, it}; });
  sink.wait_all();
  if (const std::exception_ptr& e = sink.control().first_error()) std::rethrow_exception(e);
  for (std::size_t i = 0; i < n; ++i) {  // collect_all: a failure takes precedence over a cancellation
    if (!sink[i].has_value() && !sink[i].cancelled()) std::rethrow_exception(sink[i].error());
  }
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(std::move(sink[i]).value());  // throws task_cancelled
  return out;
}

}  // namespace weft
