// runtime/layers/lanes.hpp: priority lanes (weft/lanes.hpp), a layer over the scheduler
// interface (scheduler.hpp, task_source.hpp). Nothing in the core knows about lanes: the
// pool registers ONE task source, lanes_source, whose poll() decides which lane is served.
//
// Structure.
//   - Each lane is an intrusive multi-producer single-consumer FIFO (lane_queue: Vyukov's
//     MPSC node queue, linked through task::next as task_source.hpp allows). push is a
//     single exchange plus a store: lock-free for producers, and FIFO across producers (the
//     exchange order), which max_wait needs (the head is the oldest task).
//   - The consumer side of every lane and the choice (lane_picker plus the critical lane's
//     run counter) are guarded by one small spin lock, `busy_`. It is held for a peek at
//     each lane's head, the choice, and one unlink: a few dozen ns, never across a task,
//     never while calling out. Workers only try it (poll returns null when another poller
//     holds it, a lost race, like a steal's: the loser searches on and retries; TS4: poll
//     never blocks); the stopping thread's drain (worker -1) spins for it, so the drain
//     cannot miss a lane (TS3). Why a lock: the choice reads and updates the state of every
//     lane (lags, membership, run counter) at once; making that lock-free would need a
//     multi-word CAS, and the pollers that lose here would only have lost a CAS race
//     instead. perf/lanes.cpp measures what the layer costs (BENCHMARKS.md).
//
// Protocol (the invariants, and why each step keeps them):
//   LN1 Every task pushed is counted in its lane's `enqueued_` (relaxed fetch_add before the
//       exchange) and, once unlinked by a poller, in `dispatched_` (under busy_). So
//       enqueued_ - dispatched_ is the lane's depth, never negative: a task is unlinked only
//       after its push, and empty() reads dispatched_ (acquire) before enqueued_ (see
//       there). A bounded lane refuses a push that finds depth >= capacity (it backs its
//       increment out): the bound is never exceeded; concurrent pushers may refuse a moment
//       early.
//   LN2 No lost wake-up (TS2): a push's increment of enqueued_ is sequenced before
//       submit_to's notify_work (seq_cst fence, T1); empty() after any_work's fence (T3)
//       therefore reads it and answers "not empty" until a poller has unlinked the task.
//   LN3 One task per poll: a poll unlinks exactly one task, so no lane task waits in a
//       worker's deque behind another lane's (priority is decided at dispatch).
//   LN4 Enqueue time: a task's `stamp` carries its enqueue time, either the core's latency
//       sample (scheduler::submit_to stamps one in latency_sample_every) or, for a lane with
//       max_wait, the layer's own clock read; bit 0 says which (1: the layer's; the core's
//       sample is kept with bit 0 cleared, 1 ns off). Before a polled task is returned, a
//       layer-only stamp is reset to 0, so the core's metrics see exactly their samples.
//   LN6 A full lane (weft/lanes.hpp, "A full lane"). The policy is applied by the submitter
//       (lanes_source::submit), never by a poller: scheduler::offer_to leaves a refused task
//       in its hands. block and post_until wait on the lane's address (wait.hpp) for
//       depth < capacity or the pool closed: every event that can make that true notifies
//       the address after making it true: a poller's take (on a bounded lane its store of
//       `dispatched` is seq_cst, then notify_address's seq_cst load of the waiter count;
//       the waiter enlists with seq_cst, then re-reads `dispatched`: the store-buffering
//       pattern, so either the re-check sees the new count or the notifier sees the
//       waiter), a discard (the same), and close_gate (TS5: the closed flag is a seq_cst store). discard_oldest unlinks the lane's head under busy_ (the
//       consumer's lock: the discarder is a consumer for that one unlink), counts it in
//       `dispatched` (LN1: it left the lane) and `discarded`, and cancels it outside the
//       lock. A worker of this pool never waits for its own lane under block: it runs the
//       task inline (a pool whose every worker waits for room would never make any).
//   LN5 Choice order under busy_: an overdue head (now >= enqueue + max_wait, most overdue
//       first); else the critical lane unless it has had `quantum` dispatches in a row and
//       another lane is backlogged; else lane_picker over the backlogged weighted lanes.
//       The picker is charged for every weighted dispatch (an overdue one too), so shares
//       stay fair; critical dispatches are outside it.
//
// Weighted choice (lane_picker): Pfair-style earliest-deadline-first over unit tasks
// (Baruah et al., "Proportionate progress", Algorithmica 1996; on one server this is the
// discrete form of WF2Q, Bennett and Zhang, INFOCOM 1996). With S the sum of the backlogged
// weights and c_i(n) lane i's dispatches among the first n, lane i's k-th task is released
// at the first n with k*S < (n+1)*w_i and due by (k+1)*S/w_i. The lag A_i = n*w_i - S*c_i
// is all the state (an integer per lane). At each step P_i = A_i + w_i; lane i is eligible
// when P_i > 0 (released); the eligible lane with the earliest deadline, (S - P_i)/w_i,
// compared by cross-multiplication, is served (ties: lower index); then A_i = P_i for every
// backlogged lane and A_served -= S. Since the weights' utilisations sum to 1 and EDF is
// optimal for unit jobs on one server, every deadline is met: floor(n*w_i/S) <= c_i(n) <=
// ceil(n*w_i/S), which gives the window bound of weft/lanes.hpp. (The sum of the A_i stays
// 0, so some P_i > 0 at every step.) Departures from the paper: a lane that empties leaves
// with its lag dropped and rejoins at lag 0 (no credit saved while idle, as in DRR); the
// sum of lags is then no longer 0, so when no lane is eligible the largest P_i is served
// instead, and every lag is clamped to [-W, W] (W: the sum of all weights) so that no lane
// can bank an unbounded credit or debt. A backlogged lane that is not served gains w_i >= 1
// per step, reaches the clamp within 2W steps, and is then overtaken only by lanes at the
// clamp with a larger weight, each of which drops far below it once served.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stop_token>
#include <string>
#include <vector>

#include "core/latency.hpp"
#include "core/scheduler.hpp"
#include "core/task_source.hpp"
#include "weft/errors.hpp"
#include "weft/lanes.hpp"

namespace weft::detail {

// Limits, and the validation of pool_options::lanes (throws std::invalid_argument naming
// the field, "weft::pool_options::lanes[2].weight: ...").
inline constexpr std::size_t kMaxLanes = 16;
inline constexpr unsigned kMaxLaneWeight = 1'000'000;
void validate_lanes(const std::vector<lane_config>& lanes);

// The weighted choice (see the top). Plain state: the caller serialises every call.
class lane_picker {
 public:
  explicit lane_picker(std::vector<unsigned> weights);
  // The lane to serve among `backlogged` (bit i: lane i has a task; only lanes with a
  // weight), or -1 when it is 0. Does not change the state: commit() does.
  int choose(std::uint32_t backlogged) noexcept;
  // Lane i (in `backlogged`) was served: advances every backlogged lane's lag.
  void commit(unsigned i, std::uint32_t backlogged) noexcept;

 private:
  void sync(std::uint32_t backlogged) noexcept;  // lanes that left or joined restart at lag 0
  std::vector<std::int64_t> weight_;
  std::vector<std::int64_t> lag_;
  std::uint32_t active_ = 0;
  std::int64_t clamp_ = 0;  // the sum of all weights
};

// One lane's FIFO. push: any thread. front/pop_front: the consumer (whoever holds the
// lanes_source's lock), one at a time.
class lane_queue {
 public:
  lane_queue() noexcept;
  lane_queue(const lane_queue&) = delete;
  lane_queue& operator=(const lane_queue&) = delete;
  void push(task* t) noexcept;
  // The oldest task, or null: empty, or its pusher is between its exchange and its link.
  task* front() noexcept;
  // Unlinks `t`, which front() just returned; false when it cannot yet (a push behind it
  // has exchanged but not linked): the caller reports a lost race.
  bool pop_front(task* t) noexcept;

 private:
  static std::atomic_ref<task*> link(task* t) noexcept { return std::atomic_ref<task*>(t->next); }
  alignas(128) std::atomic<task*> head_;  // written by every pusher (exchange): the newest node
  alignas(128) task* tail_;               // the consumer's: the oldest node (maybe the stub)
  task stub_;                              // keeps the list non-empty (Vyukov)
};

class lanes_source final : public task_source {
 public:
  // Registers the layer's source with the pool (TS1). `lanes` is validated.
  static std::shared_ptr<lanes_source> install(scheduler s, const std::vector<lane_config>& lanes);
  // `pool_policy`: the pool's when_full, for lanes that do not set their own.
  explicit lanes_source(const std::vector<lane_config>& lanes, full_policy pool_policy = full_policy::reject);

  // What submit does with a full lane (LN6).
  enum class on_full {
    refuse,  // full (try_post)
    policy,  // the lane's full_policy (post/submit); full only for reject: throw_full then
    wait,    // wait for room until `deadline` or `stop` (post_until), then full
  };
  // Queues t in lane `index`; index -1 is the default path (weft/lanes.hpp: a worker of the
  // pool spawns onto its deque, any other thread uses lane 0). Consumes t like
  // scheduler::try_submit: closed (gate), full (a bounded lane), or accepted (queued, or run
  // here under caller_runs). Throws std::bad_alloc only.
  submit_status submit(scheduler s, task* t, int index, on_full mode = on_full::refuse,
                       std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max(),
                       const std::stop_token& stop = {});
  // The lane a task_options::lane names: its index, or -1 when it names none. Throws
  // std::invalid_argument naming weft::task_options::lane for an unknown lane.
  int resolve(const lane& l) const;
  [[noreturn]] void throw_full(int index) const;
  std::vector<lane_metrics> stats() const;

  bool push(task* t) override;
  task* poll(int worker) noexcept override;
  bool empty() const noexcept override;
  std::size_t size_approx() const noexcept override;
  void gate_closed() noexcept override;  // TS5: wakes the submitters waiting for room (LN6)

 private:
  struct alignas(128) lane_state {
    std::string name;
    std::uint64_t capacity = 0;   // 0: unbounded
    std::uint64_t max_wait = 0;   // ns; 0: none
    full_policy when_full = full_policy::reject;  // resolved: the lane's, or the pool's
    lane_queue queue;
    alignas(128) std::atomic<std::uint64_t> enqueued{0};  // pushers (LN1)
    std::atomic<std::uint64_t> refused{0};                 // pushers; a counter
    alignas(128) std::atomic<std::uint64_t> dispatched{0};  // written under busy_ only (LN1): taken out,
                                                             // dispatched or discarded
    std::atomic<std::uint64_t> discarded{0};                 // written under busy_ only (LN6); a counter
    latency_histogram wait;                                  // written under busy_ only
  };
  bool lock(bool wait) noexcept;
  void unlock() noexcept;
  task* take(lane_state*& from) noexcept;  // under busy_: LN5, one task or null (and its lane)
  // LN6: the submitter's side of a full lane.
  bool wait_for_room(scheduler s, lane_state& l, std::chrono::steady_clock::time_point deadline,
                     const std::stop_token& stop);
  bool discard_oldest(scheduler s, lane_state& l) noexcept;  // false: nothing to discard now
  static void room_made(lane_state& l) noexcept;             // LN6: the notifier's side
  std::uint64_t depth(const lane_state& l) const noexcept;

  std::vector<std::unique_ptr<lane_state>> lanes_;
  lane_picker picker_;                 // guarded by busy_
  int critical_ = -1;                  // the critical lane's index, or -1
  unsigned quantum_ = 0;
  unsigned run_ = 0;                   // guarded by busy_: critical dispatches in a row
  std::uint32_t weighted_mask_ = 0;    // lanes in the picker (all but the critical one)
  bool any_max_wait_ = false;
  unsigned id_ = 0;                    // the source's id in the pool's registry
  alignas(128) std::atomic<bool> busy_{false};  // the poll lock (see the top)
};

}  // namespace weft::detail
