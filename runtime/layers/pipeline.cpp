// runtime/layers/pipeline.cpp: the engine behind weft::pipeline (weft/pipeline.hpp).
//
// The algorithm is oneTBB's parallel_pipeline (Intel TBB, "pipeline.cpp"; Reinders, Intel
// Threading Building Blocks, ch. 4): a fixed number of tokens; an item is a task that carries
// one token through the stages; a serial stage admits one item at a time and parks the
// others in a buffer in front of it (in input order: keyed by sequence number); the item
// leaving a serial stage hands it to the next parked item by posting a task for it.
// Departures: no thread ever waits for a stage (TBB also never blocks; we post where TBB
// spawns), and a failure or cancellation flushes the buffers at once instead of letting
// items drain through "cancelled" stages.
//
// State and invariants (all under the named mutex; no lock is taken while holding another):
//   run mu_:  free_ tokens; input_busy_ (a source call is in progress: at most one);
//             input_done_ (no further source call); finished_.
//   P1  tokens out = max_ - free_ = items alive (parked, between stages, in a stage) plus
//       the one reserved by a source call in progress. An item gives its token back
//       (release) exactly once: after its last stage, when dropped, or when its stage threw.
//   P2  The pipeline is finished when input_done_ && !input_busy_ && free_ == max_: then no
//       stage call is in progress or can start. finished_ is set once, then done_ (seq_cst,
//       N1 of weft's wait protocol) and the waiter is notified.
//   stage s's mu: busy (one item inside), next_seq (in-order: the sequence number allowed
//             in next), the parked items.
//   P3  A parked item's stage is busy, or (in order) its predecessor has not arrived yet;
//       whoever clears busy admits the next parked item, if any (finish_serial). Every
//       sequence number reaches every serial stage unless the pipeline is cancelled, so an
//       in-order buffer always drains.
//   P4  Cancellation sets cancelled_ (seq_cst) before flushing each stage's buffer under its
//       mutex; an item parks only after reading cancelled_ == false under the same mutex.
//       So every item is either flushed or never parks: no token is lost.
#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <utility>
#include <vector>

#include "weft/detail/wait.hpp"
#include "weft/errors.hpp"
#include "weft/pipeline.hpp"

namespace weft::detail {
namespace {

struct item {
  std::size_t seq = 0;
  pipeline_box box = empty_box();
};

struct serial_stage {
  std::mutex mu;
  bool busy = false;                       // guarded by mu
  std::size_t next_seq = 0;                // in-order admission; guarded by mu
  std::map<std::size_t, item> waiting_in_order;  // guarded by mu
  std::deque<item> waiting_any;            // guarded by mu
};

class pipeline_run : public std::enable_shared_from_this<pipeline_run> {
 public:
  pipeline_run(pool& p, std::vector<stage_spec> stages, std::size_t max)
      : pool_(p), stages_(std::move(stages)), serial_(stages_.size()), max_(max), free_(max) {
    for (std::size_t i = 1; i < stages_.size(); ++i) {
      if (stages_[i].mode != stage_mode::parallel) serial_[i] = std::make_unique<serial_stage>();
    }
  }

  // Starts a source call if a token is free and the input is open.
  void pump_input() noexcept {
    {
      std::lock_guard lock(mu_);
      if (input_done_ || input_busy_ || free_ == 0) return;
      input_busy_ = true;
      --free_;  // P1: reserved for the item the source call makes
    }
    auto self = shared_from_this();
    if (!post([self] { self->run_source(); })) {
      std::lock_guard lock(mu_);
      input_busy_ = false;
      ++free_;
    }
    check_finished();
  }

  // Any thread: the first failure or a cancellation (P4).
  void cancel(std::exception_ptr error) noexcept {
    {
      std::lock_guard lock(mu_);
      if (error && !error_) error_ = std::move(error);
      input_done_ = true;
    }
    // seq_cst: P4's flag; pairs with the acquire loads under the stages' mutexes and in
    // advance (which only decide to drop an item early; the locked read is the one that counts).
    cancelled_.store(true, std::memory_order_seq_cst);
    std::stop_source keep = stop_;
    keep.request_stop();
    for (auto& s : serial_) {
      if (!s) continue;
      std::vector<item> dropped;
      {
        std::lock_guard lock(s->mu);
        for (auto& [seq, it] : s->waiting_in_order) dropped.push_back(std::move(it));
        s->waiting_in_order.clear();
        for (auto& it : s->waiting_any) dropped.push_back(std::move(it));
        s->waiting_any.clear();
      }
      for (auto& it : dropped) release(std::move(it));
    }
    check_finished();
  }

  void wait() {
    if (!finished(this)) wait_until(&done_, &finished, this);
  }
  // Moved out, so that the exception is freed on the thread that rethrows it, not on a
  // worker dropping the last reference to this run (whose refcount, inside libstdc++, TSan
  // cannot see).
  std::exception_ptr take_error() {
    std::lock_guard lock(mu_);
    return std::exchange(error_, nullptr);
  }
  bool cancelled() const noexcept {
    return cancelled_.load(std::memory_order_acquire);  // acquire: pairs with cancel's store
  }

 private:
  bool post(std::function<void()> f) noexcept {
    try {
      pool_.post(std::move(f));
      return true;
    } catch (...) {
      cancel(std::current_exception());
      return false;
    }
  }

  void run_source() noexcept {
    item it;
    bool ended = cancelled();
    if (!ended) {
      try {
        it.box = stages_[0].fn->call(empty_box(), stop_.get_token());
        ended = it.box == nullptr;
      } catch (...) {
        cancel(std::current_exception());
        ended = true;
      }
    }
    bool keep = false;
    {
      std::lock_guard lock(mu_);
      input_busy_ = false;
      if (ended || input_done_) {  // input_done_: cancelled meanwhile; the item is dropped
        input_done_ = true;
        ++free_;  // P1: the reserved token is not used
      } else {
        keep = true;
        it.seq = next_seq_++;  // guarded by mu_: source calls are serial, but run on different workers
      }
    }
    if (!keep) {
      it.box.reset();
      check_finished();
      return;
    }
    pump_input();  // the next source call, on another task, while this item moves on
    advance(std::move(it), 1, false);
  }

  // Carries `it` from stage i on; owns_i: it has already been admitted to serial stage i.
  void advance(item it, std::size_t i, bool owns_i) noexcept {
    for (; i < stages_.size(); ++i, owns_i = false) {
      serial_stage* s = serial_[i].get();
      if (s != nullptr && !owns_i && !admit(*s, i, it)) return;  // parked, or dropped
      if (s == nullptr && cancelled()) break;
      bool ok = true;
      try {
        it.box = stages_[i].fn->call(std::move(it.box), stop_.get_token());
      } catch (...) {
        ok = false;
        cancel(std::current_exception());
      }
      if (s != nullptr) finish_serial(*s, i, it.seq);
      if (!ok) break;
    }
    release(std::move(it));
  }

  // Admits `it` to serial stage i, or parks it (P3), or drops it (P4). True: admitted.
  bool admit(serial_stage& s, std::size_t i, item& it) noexcept {
    {
      std::lock_guard lock(s.mu);
      if (!cancelled()) {
        const bool in_order = stages_[i].mode == stage_mode::serial_in_order;
        if (!s.busy && (!in_order || it.seq == s.next_seq)) {
          s.busy = true;
          return true;
        }
        try {
          if (in_order) {
            s.waiting_in_order.emplace(it.seq, std::move(it));
          } else {
            s.waiting_any.push_back(std::move(it));
          }
          return false;
        } catch (...) {
          // No memory for the buffer: fail the pipeline and drop the item below.
        }
      }
    }
    if (!cancelled()) cancel(std::make_exception_ptr(std::bad_alloc()));
    release(std::move(it));
    return false;
  }

  // The item `seq` left serial stage i: admit the next parked one (P3).
  void finish_serial(serial_stage& s, std::size_t i, std::size_t seq) noexcept {
    std::optional<item> next;
    {
      std::lock_guard lock(s.mu);
      s.busy = false;
      if (stages_[i].mode == stage_mode::serial_in_order) {
        s.next_seq = seq + 1;
        auto found = s.waiting_in_order.find(s.next_seq);
        if (found != s.waiting_in_order.end()) {
          next.emplace(std::move(found->second));
          s.waiting_in_order.erase(found);
        }
      } else if (!s.waiting_any.empty()) {
        next.emplace(std::move(s.waiting_any.front()));
        s.waiting_any.pop_front();
      }
      if (next) s.busy = true;
    }
    if (!next) return;
    auto self = shared_from_this();
    auto carried = std::make_shared<item>(std::move(*next));
    if (!post([self, carried, i] { self->advance(std::move(*carried), i, true); })) {
      {
        std::lock_guard lock(s.mu);
        s.busy = false;
      }
      release(std::move(*carried));
    }
  }

  // P1: `it` gives its token back.
  void release(item it) noexcept {
    it.box.reset();  // the item is destroyed before its token is reused
    {
      std::lock_guard lock(mu_);
      ++free_;
    }
    pump_input();
    check_finished();
  }

  void check_finished() noexcept {
    {
      std::lock_guard lock(mu_);
      if (finished_ || !input_done_ || input_busy_ || free_ != max_) return;  // P2
      finished_ = true;
    }
    // seq_cst: N1 of the wait protocol (weft/detail/wait.hpp) for finished().
    done_.store(true, std::memory_order_seq_cst);
    notify_address(&done_);
  }
  static bool finished(const void* self) noexcept {
    // acquire: pairs with the seq_cst store in check_finished.
    return static_cast<const pipeline_run*>(self)->done_.load(std::memory_order_acquire);
  }

  pool& pool_;
  std::vector<stage_spec> stages_;
  std::vector<std::unique_ptr<serial_stage>> serial_;  // [i]: stage i's state; null for parallel stages and the source
  const std::size_t max_;
  std::stop_source stop_;
  std::mutex mu_;
  std::size_t free_;              // guarded by mu_ (P1)
  bool input_busy_ = false;       // guarded by mu_
  bool input_done_ = false;       // guarded by mu_
  bool finished_ = false;         // guarded by mu_
  std::size_t next_seq_ = 0;      // guarded by mu_
  std::exception_ptr error_;      // guarded by mu_
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> done_{false};
};

}  // namespace

pipeline_status run_pipeline(pool& p, std::vector<stage_spec> stages, std::size_t max_tokens,
                             const std::stop_token& token) {
  const std::size_t max = max_tokens != 0 ? max_tokens : 2 * std::size_t{p.size()};
  if (max == 0) throw std::invalid_argument("weft::pipeline: max_tokens must be at least 1");
  if (stages.size() < 2) throw std::invalid_argument("weft::pipeline: needs a source and at least one stage");
  if (p.closed() && !on_worker_thread()) throw pool_closed();
  auto run = std::make_shared<pipeline_run>(p, std::move(stages), max);
  std::atomic<bool> by_caller{false};
  {
    struct relay {
      pipeline_run* run;
      std::atomic<bool>* by_caller;
      void operator()() noexcept {
        // release: pairs with the acquire load below, for a relay that ran on another
        // thread (the callback's unregistration also orders it; this does not rely on that).
        by_caller->store(true, std::memory_order_release);
        run->cancel(nullptr);
      }
    };
    // Destroyed before by_caller is read: stop_callback's destructor waits for a relay in
    // progress on another thread.
    std::optional<std::stop_callback<relay>> link;
    if (token.stop_possible()) link.emplace(token, relay{run.get(), &by_caller});
    run->pump_input();
    run->wait();
  }
  if (std::exception_ptr e = run->take_error()) std::rethrow_exception(e);
  // acquire: pairs with the relay's release store.
  return by_caller.load(std::memory_order_acquire) ? pipeline_status::cancelled : pipeline_status::completed;
}

}  // namespace weft::detail
