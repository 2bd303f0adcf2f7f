// weft/lanes.hpp: priority lanes, decided when a worker picks its next task.
//
//   weft::pool_options o;
//   o.lanes = {{.name = "default", .weight = 1},
//              {.name = "high", .weight = 8, .max_wait = 50ms},
//              {.name = "urgent", .critical = true, .capacity = 256, .quantum = 4}};
//   weft::pool p(o);
//   p.post(f, {.lane = weft::lane{"high"}});           // by name
//   auto fut = p.submit(g, {.lane = weft::lane{2u}});   // or by index
//
// Overview. A pool configured with lanes keeps each lane as its own FIFO queue, and a worker
// looking for work takes ONE lane task at a time (never a batch into its deque), choosing
// the lane at that moment. A low-priority task therefore never sits in a worker's deque in
// front of a high-priority one: a task in a favoured lane (critical, overdue, or winning
// the weighted choice) starts as soon as any worker finishes the task it is running. One
// exception, inherited from the core's work chain (runtime/core/task_source.hpp): a worker with
// tasks in its own deque (fork-join children it spawned) runs those first, and looks at the
// lanes in between only every kInjectorInterval of them.
//
// Which lane is served next, in order (runtime/layers/lanes.hpp has the proofs):
//   1. max_wait: a lane whose oldest task has waited at least its max_wait is served (the
//      most overdue first). So no lane's head waits longer than max_wait plus the run time
//      of one task per worker (the tasks already started when it became overdue).
//   2. the critical lane (at most one): strict priority, except that after `quantum`
//      dispatches in a row from it, one task of another backlogged lane is served.
//   3. the weighted lanes: weighted fair queuing across the backlogged lanes. While every
//      weighted lane stays backlogged, over ANY window of W consecutive weighted dispatches
//      lane i gets at least floor(W * w_i / sum(w)) - 1 (and at most ceil(W * w_i / sum(w))
//      + 1). A lane that empties and refills starts afresh (no credit is saved while idle);
//      a backlogged weighted lane is never starved (it is served within about 2 * sum(w) +
//      lanes weighted dispatches).
//
// Where a submission goes once lanes are configured:
// | call                                   | from outside the pool     | from one of its workers       |
// |----------------------------------------|---------------------------|-------------------------------|
// | post/submit(f, {.lane = L})            | lane L                    | lane L (dispatch priority)    |
// | post/submit(f) or options without lane | the default lane (lane 0) | the worker's deque (fork-join)|
// | task_group::run, batches, parallel_*   | the default lane          | the worker's deque            |
// | post_bulk/submit_bulk                  | the default lane, one at  | the worker's deque            |
// |                                        | a time, under its policy  |                               |
// | post_until/post_for/submit_until       | the default lane, waiting | the worker's deque            |
// |                                        | for room (see below)      |                               |
// The default lane is the first one configured. Without lanes (the default) nothing is
// registered and every path is the plain one, except that naming a lane throws.
//
// Errors. Invalid lane configurations throw std::invalid_argument from the pool's
// constructor, naming the option ("weft::pool_options::lanes[2].weight: ..."). A lane that
// does not exist (unknown name, index out of range, or any lane on a pool without lanes)
// throws std::invalid_argument naming weft::task_options::lane; the callable is destroyed
// without running and counted as rejected.
//
// A full lane. A bounded lane (lane_config::capacity) that is full applies its policy:
// lane_config::when_full when set, else the pool's pool_options::when_full (so one setting
// covers the pool and its lanes, and a lane can differ: a critical lane that must never
// make its producers wait can reject while the others block). Per call:
// | call                     | reject           | block                  | caller_runs   | discard_oldest         |
// |--------------------------|------------------|------------------------|---------------|------------------------|
// | post, submit, post_bulk  | throws lane_full | waits for room in THAT | runs f on the | the lane's oldest task |
// | (from outside the pool)  | (a queue_full)   | lane; close/stop_now:  | calling       | -> cancelled (counted  |
// |                          |                  | pool_closed            | thread        | discarded), f queued   |
// | the same, from a worker  | throws lane_full | runs f inline (a       | runs f inline | as from outside        |
// | of this pool, naming L   |                  | worker never waits for |               |                        |
// |                          |                  | its own pool's room)   |               |                        |
// | try_post, try_submit     | submit_status::full, whatever the policy                                            |
// | post_until, submit_until | waits for room in the lane until the deadline or the stop token, then full; close  |
// |                          | or stop_now: closed. From a worker of this pool the wait runs the pool's tasks     |
// |                          | (lane tasks among them), so it cannot wait for itself                               |
// "Room" is a task of that lane being taken by a worker (or discarded, or drained by a stop).
// discard_oldest cancels the oldest task of that lane whatever its kind, exactly like the
// pool's policy does with its injection queue: a future gets task_cancelled, an on_done a
// cancelled outcome; counted in metrics::cancelled and ::discarded and lane_metrics::discarded.
// A refused callable is destroyed without running and counted in metrics::rejected and
// lane_metrics::refused. The bound is checked against a counter: it is never exceeded, and
// under concurrent submitters a submission may be refused (or wait) a moment before the lane
// is truly full. The pool's own capacity bounds its injection queue, which lane tasks do
// not use: with lanes, bound the lanes.
//
// Not promised: an order between tasks of different lanes beyond the rules above; an order
// among tasks of one lane when several workers run them (they start in FIFO order); batches
// and task groups choosing a lane (they use the default lane from outside); post_bulk being
// all or nothing with lanes (without lanes, on an unbounded pool, it is one operation).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "weft/errors.hpp"
#include "weft/full_policy.hpp"

namespace weft {

// One lane of pool_options::lanes.
// | field    | valid values                                  | meaning                                  |
// |----------|-----------------------------------------------|------------------------------------------|
// | name     | non-empty, unique among the lanes             | for weft::lane{"name"} and lane_stats    |
// | weight   | 1 .. 1'000'000                                | share among the weighted lanes           |
// |          |                                               | (ignored for the critical lane)          |
// | max_wait | >= 0; zero: none                              | the head is served once it waited this   |
// | critical | at most one lane                              | strict priority with a quantum           |
// | capacity | 0: unbounded; critical lane: >= 1 (required)  | tasks the lane may hold                  |
// | quantum  | critical lane: >= 1; others: 0                | dispatches in a row before another lane  |
// | when_full| unset, or any full_policy                     | unset: pool_options::when_full; what a   |
// |          |                                               | full bounded lane does (see above)       |
struct lane_config {
  std::string name;
  unsigned weight = 1;
  std::chrono::steady_clock::duration max_wait = std::chrono::steady_clock::duration::zero();
  bool critical = false;
  std::size_t capacity = 0;
  unsigned quantum = 0;
  std::optional<full_policy> when_full{};
};

// Names a lane for task_options::lane: by index into pool_options::lanes, or by name. A
// default-constructed lane names none (the submission takes the default path, see above).
// Looking a name up costs a comparison per configured lane; an index costs nothing.
class lane {
 public:
  lane() = default;
  explicit lane(unsigned index) noexcept : index_(index) {}
  explicit lane(std::string_view name) : name_(name), by_name_(true) {}
  explicit lane(const char* name) : lane(std::string_view(name)) {}

  bool given() const noexcept { return by_name_ || index_ != kNone; }
  bool by_name() const noexcept { return by_name_; }
  unsigned index() const noexcept { return index_; }
  const std::string& name() const noexcept { return name_; }

 private:
  static constexpr unsigned kNone = std::numeric_limits<unsigned>::max();
  std::string name_;
  unsigned index_ = kNone;
  bool by_name_ = false;
};

// A bounded lane (lane_config::capacity) is full (its policy: reject). The callable was
// destroyed without running. A queue_full, so one handler covers the pool and its lanes.
class lane_full : public queue_full {
 public:
  explicit lane_full(const std::string& lane_name)
      : queue_full("weft: lane '" + lane_name + "' is at capacity; the task was not queued") {}
};

// pool::lane_stats(): one entry per configured lane, in configuration order. Approximate
// while tasks run (each field is exact for some instant).
struct lane_metrics {
  std::string name;
  std::uint64_t depth = 0;       // tasks waiting in the lane
  std::uint64_t dispatched = 0;  // tasks taken from it (run, or cancelled at dispatch or by a stop;
                                 // not the discarded ones)
  std::uint64_t refused = 0;     // submissions refused because the lane was full
  std::uint64_t discarded = 0;   // queued tasks cancelled for newer ones (full_policy::discard_oldest)
  // Time from entering the lane to being taken from it (ns), over the tasks whose enqueue
  // time is known: the pool's latency samples (pool_options::latency_sample_every) and
  // every task of a lane with a max_wait (which needs the time anyway).
  std::uint64_t wait_samples = 0;
  std::uint64_t wait_p50 = 0, wait_p99 = 0, wait_max = 0;
};

}  // namespace weft
