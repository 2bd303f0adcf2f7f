// runtime/layers/lanes.cpp: priority lanes. Protocol and algorithm: lanes.hpp.
#include "layers/lanes.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "core/cpu_relax.hpp"
#include "weft/detail/wait.hpp"

namespace weft::detail {
namespace {

// The lane the current thread's push is for: lanes_source::submit sets it around its call
// of scheduler::submit_to, which calls push synchronously on this thread (task_source::push
// has no other way to receive it). Any other push (none in weft) goes to lane 0.
thread_local unsigned tls_target_lane = 0;

[[noreturn]] void invalid_lane(std::size_t i, const char* field, const std::string& why) {
  throw std::invalid_argument("weft::pool_options::lanes[" + std::to_string(i) + "]." + field + ": " + why);
}

std::uint64_t clock_ns() noexcept {
  // The clock of the core's stamps (worker.hpp now_ns): steady_clock in nanoseconds.
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace

void validate_lanes(const std::vector<lane_config>& lanes) {
  if (lanes.size() > kMaxLanes) {
    throw std::invalid_argument("weft::pool_options::lanes: at most " + std::to_string(kMaxLanes) + " lanes, got " +
                                std::to_string(lanes.size()));
  }
  int critical = -1;
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    const lane_config& l = lanes[i];
    if (l.name.empty()) invalid_lane(i, "name", "must not be empty");
    for (std::size_t j = 0; j < i; ++j) {
      if (lanes[j].name == l.name) invalid_lane(i, "name", "'" + l.name + "' is also lanes[" + std::to_string(j) + "]'s name");
    }
    if (l.weight < 1 || l.weight > kMaxLaneWeight) {
      invalid_lane(i, "weight", "must be in [1, 1000000], got " + std::to_string(l.weight));
    }
    if (l.max_wait < std::chrono::steady_clock::duration::zero()) invalid_lane(i, "max_wait", "must not be negative");
    if (l.critical) {
      if (critical >= 0) invalid_lane(i, "critical", "only one lane may be critical, lanes[" + std::to_string(critical) + "] already is");
      critical = static_cast<int>(i);
      if (l.capacity == 0) invalid_lane(i, "capacity", "a critical lane must be bounded (>= 1)");
      if (l.quantum == 0) invalid_lane(i, "quantum", "a critical lane needs a quantum >= 1");
    } else if (l.quantum != 0) {
      invalid_lane(i, "quantum", "applies only to the critical lane; must be 0 here, got " + std::to_string(l.quantum));
    }
    if (l.when_full && (*l.when_full < full_policy::reject || *l.when_full > full_policy::discard_oldest)) {
      invalid_lane(i, "when_full", "is not a full_policy value");
    }
  }
}

// ---- lane_picker ----

lane_picker::lane_picker(std::vector<unsigned> weights) : weight_(weights.begin(), weights.end()), lag_(weights.size(), 0) {
  for (std::int64_t w : weight_) clamp_ += w;
}

void lane_picker::sync(std::uint32_t backlogged) noexcept {
  std::uint32_t changed = active_ ^ backlogged;  // left or joined: restart at lag 0
  while (changed != 0) {
    const int i = __builtin_ctz(changed);
    changed &= changed - 1;
    lag_[static_cast<std::size_t>(i)] = 0;
  }
  active_ = backlogged;
}

int lane_picker::choose(std::uint32_t backlogged) noexcept {
  if (backlogged == 0) return -1;
  if ((backlogged & (backlogged - 1)) == 0) return __builtin_ctz(backlogged);  // one lane: no choice
  std::int64_t sum = 0;
  for (std::uint32_t m = backlogged; m != 0; m &= m - 1) sum += weight_[static_cast<std::size_t>(__builtin_ctz(m))];
  const bool fresh = active_ != backlogged;  // choose reads lags as sync would leave them
  int best = -1, fallback = -1;
  std::int64_t best_p = 0, fallback_p = 0;
  for (std::uint32_t m = backlogged; m != 0; m &= m - 1) {
    const int i = __builtin_ctz(m);
    const auto k = static_cast<std::size_t>(i);
    const bool restarted = fresh && ((active_ >> i) & 1u) == 0;
    const std::int64_t p = (restarted ? 0 : lag_[k]) + weight_[k];
    if (fallback < 0 || p > fallback_p) {
      fallback = i;
      fallback_p = p;
    }
    if (p <= 0) continue;  // not released yet
    // Deadline (sum - p) / w: earlier than best's iff (sum - p) * w_best < (sum - best_p) * w.
    if (best < 0 || (sum - p) * weight_[static_cast<std::size_t>(best)] < (sum - best_p) * weight_[k]) {
      best = i;
      best_p = p;
    }
  }
  return best >= 0 ? best : fallback;
}

void lane_picker::commit(unsigned served, std::uint32_t backlogged) noexcept {
  sync(backlogged);
  // One backlogged lane: its lag moves by w - S = 0 (the common case of one busy lane).
  if ((backlogged & (backlogged - 1)) == 0) return;
  std::int64_t sum = 0;
  for (std::uint32_t m = backlogged; m != 0; m &= m - 1) sum += weight_[static_cast<std::size_t>(__builtin_ctz(m))];
  for (std::uint32_t m = backlogged; m != 0; m &= m - 1) {
    const auto k = static_cast<std::size_t>(__builtin_ctz(m));
    std::int64_t a = lag_[k] + weight_[k] - (k == served ? sum : 0);
    lag_[k] = std::clamp(a, -clamp_, clamp_);
  }
}

// ---- lane_queue (Vyukov's intrusive MPSC queue) ----

lane_queue::lane_queue() noexcept : tail_(&stub_) {
  stub_.next = nullptr;
  head_.store(&stub_, std::memory_order_relaxed);  // relaxed: before the queue is shared (published with the pool)
}

void lane_queue::push(task* t) noexcept {
  link(t).store(nullptr, std::memory_order_relaxed);  // relaxed: published by the exchange's release below
  // acq_rel. release: publishes t (its contents and the null link) to the pusher that
  // exchanges after us and links behind t. acquire: pairs with the previous pusher's
  // release, so its null store to prev's link is ordered before our store of t there.
  task* prev = head_.exchange(t, std::memory_order_acq_rel);
  // release: pairs with the acquire loads of a link in front()/pop_front(): the consumer
  // that reaches t through prev sees everything written to t before push.
  link(prev).store(t, std::memory_order_release);
}

task* lane_queue::front() noexcept {
  if (tail_ == &stub_) {
    task* next = link(&stub_).load(std::memory_order_acquire);  // acquire: pairs with push's release link store
    if (next == nullptr) return nullptr;
    tail_ = next;  // step over the stub
  }
  return tail_;
}

bool lane_queue::pop_front(task* t) noexcept {
  task* next = link(t).load(std::memory_order_acquire);  // acquire: pairs with push's release link store
  if (next == nullptr) {
    // t is the newest linked node. If it is also the newest pushed, put the stub behind it
    // so that t can leave; otherwise a pusher is between its exchange and its link.
    // acquire: pairs with the pushers' acq_rel exchange (which head_ value is current).
    if (head_.load(std::memory_order_acquire) != t) return false;
    push(&stub_);
    next = link(t).load(std::memory_order_acquire);  // acquire: as above (our own stub, or a racing pusher's task)
    if (next == nullptr) return false;
  }
  tail_ = next;  // t is unlinked: no pusher writes its link again (it is not the head)
  return true;
}

// ---- lanes_source ----

std::shared_ptr<lanes_source> lanes_source::install(scheduler s, const std::vector<lane_config>& lanes) {
  auto src = std::make_shared<lanes_source>(lanes, s.when_full());
  src->id_ = s.add_source(src);  // TS1: before any submission can name a lane
  return src;
}

lanes_source::lanes_source(const std::vector<lane_config>& lanes, full_policy pool_policy)
    : picker_([&] {
        std::vector<unsigned> w;
        for (const auto& l : lanes) w.push_back(l.critical ? 0u : l.weight);
        return w;
      }()) {
  validate_lanes(lanes);
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    auto st = std::make_unique<lane_state>();
    st->name = lanes[i].name;
    st->capacity = lanes[i].capacity;
    st->when_full = lanes[i].when_full.value_or(pool_policy);
    st->max_wait = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(lanes[i].max_wait).count());
    any_max_wait_ = any_max_wait_ || st->max_wait != 0;
    if (lanes[i].critical) {
      critical_ = static_cast<int>(i);
      quantum_ = lanes[i].quantum;
    } else {
      weighted_mask_ |= 1u << i;
    }
    lanes_.push_back(std::move(st));
  }
}

int lanes_source::resolve(const lane& l) const {
  if (!l.given()) return -1;
  if (l.by_name()) {
    for (std::size_t i = 0; i < lanes_.size(); ++i) {
      if (lanes_[i]->name == l.name()) return static_cast<int>(i);
    }
    throw std::invalid_argument("weft::task_options::lane: this pool has no lane named '" + l.name() + "'");
  }
  if (l.index() >= lanes_.size()) {
    throw std::invalid_argument("weft::task_options::lane: index " + std::to_string(l.index()) + " is out of range (" +
                                std::to_string(lanes_.size()) + " lanes)");
  }
  return static_cast<int>(l.index());
}

void lanes_source::throw_full(int index) const {
  throw lane_full(lanes_[static_cast<std::size_t>(std::max(index, 0))]->name);
}

submit_status lanes_source::submit(scheduler s, task* t, int index, on_full mode,
                                   std::chrono::steady_clock::time_point deadline, const std::stop_token& stop) {
  if (index < 0) {
    if (s.current_worker() >= 0) return s.try_submit(t);  // fork-join: the worker's deque
    index = 0;
  }
  lane_state& l = *lanes_[static_cast<std::size_t>(index)];
  s.announce(t);
  for (;;) {
    tls_target_lane = static_cast<unsigned>(index);
    submit_status st = submit_status::closed;
    try {
      st = s.offer_to(id_, t);  // gate, push (below), notify_work (TS2, TS3); t ours unless accepted
    } catch (...) {             // std::bad_alloc: t was destroyed and counted
      tls_target_lane = 0;
      throw;
    }
    tls_target_lane = 0;
    if (st == submit_status::closed) {
      s.reject(t);
      return st;
    }
    if (st == submit_status::accepted) return st;
    // Full (LN6).
    if (mode == on_full::wait) {
      if (!stop.stop_requested() && wait_for_room(s, l, deadline, stop)) continue;  // room, or closed
    } else if (mode == on_full::policy) {
      switch (l.when_full) {
        case full_policy::block:
          if (s.current_worker() < 0) {
            (void)wait_for_room(s, l, std::chrono::steady_clock::time_point::max(), {});
            continue;  // room, or closed: the next offer says which
          }
          [[fallthrough]];  // a worker of this pool never waits for its own pool: inline
        case full_policy::caller_runs:
          s.run_here(t);
          return submit_status::accepted;
        case full_policy::discard_oldest:
          if (!discard_oldest(s, l)) std::this_thread::yield();  // emptied meanwhile, or a push mid-link
          continue;
        case full_policy::reject:
          break;
      }
    }
    l.refused.fetch_add(1, std::memory_order_relaxed);  // relaxed: a counter
    s.reject(t);
    return submit_status::full;
  }
}

bool lanes_source::wait_for_room(scheduler s, lane_state& l, std::chrono::steady_clock::time_point deadline,
                                 const std::stop_token& stop) {
  struct room {
    const lanes_source* self;
    const lane_state* lane;
    scheduler sched;
    const std::stop_token* stop;
    static bool ready(const void* ctx) noexcept {
      const auto& r = *static_cast<const room*>(ctx);
      // LN6: depth reads `dispatched` (acquire) after the waiter's seq_cst enlisting.
      return r.self->depth(*r.lane) < r.lane->capacity || r.sched.closed() || r.stop->stop_requested();
    }
  } r{this, &l, s, &stop};
  if (!stop.stop_possible()) return s.help_until(&l, &room::ready, &r, deadline);
  // A stop request ends the wait too: the callback wakes the waiters of this lane.
  std::stop_callback wake(stop, [&l] { notify_address(&l); });
  return s.help_until(&l, &room::ready, &r, deadline) && !stop.stop_requested();
}

bool lanes_source::discard_oldest(scheduler s, lane_state& l) noexcept {
  lock(true);  // LN6: a consumer for one unlink
  task* t = l.queue.front();
  const bool taken = t != nullptr && l.queue.pop_front(t);
  if (taken) {
    // relaxed loads: we hold busy_, the only writer. seq_cst: as in take() (LN1, LN6).
    l.discarded.store(l.discarded.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    l.dispatched.store(l.dispatched.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  }
  unlock();
  if (!taken) return false;
  room_made(l);
  t->isolation = 0;  // linked through task::next while queued (task_source.hpp)
  s.discard(t);
  return true;
}

void lanes_source::room_made(lane_state& l) noexcept {
  // LN6: after the seq_cst store of `dispatched`; notify_address's seq_cst load of the
  // waiter count pairs with the waiter's seq_cst enlisting.
  notify_address(&l);
}

void lanes_source::gate_closed() noexcept {
  // TS5: the closed bit is set (a seq_cst RMW, LN6's notifier half).
  for (const auto& l : lanes_) {
    if (l->capacity != 0) notify_address(l.get());
  }
}

bool lanes_source::push(task* t) {
  lane_state& l = *lanes_[tls_target_lane < lanes_.size() ? tls_target_lane : 0];
  // relaxed: LN1, a count; ordered before the exchange in l.queue.push by program order and
  // published by it (and by notify_work's fence, LN2).
  const std::uint64_t before = l.enqueued.fetch_add(1, std::memory_order_relaxed);
  if (l.capacity != 0) {
    // acquire: pairs with the release store in take(), as in depth().
    const std::uint64_t out = l.dispatched.load(std::memory_order_acquire);
    if (before - out >= l.capacity) {
      l.enqueued.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a count, backing out LN1's increment
      return false;
    }
  }
  // LN4: the enqueue time. A core sample keeps its value with bit 0 cleared; a lane with
  // max_wait stamps every other task itself, marked by bit 0.
  if (t->stamp != 0) {
    t->stamp &= ~std::uint64_t{1};
  } else if (l.max_wait != 0) {
    t->stamp = clock_ns() | 1u;
  }
  l.queue.push(t);
  return true;
}

bool lanes_source::lock(bool wait) noexcept {
  for (;;) {
    // acquire: pairs with the release store in unlock(): the previous holder's consumer
    // state (tails, lags, histograms) is visible.
    if (!busy_.load(std::memory_order_relaxed) && !busy_.exchange(true, std::memory_order_acquire)) return true;
    // (The relaxed load above only avoids writing the line while another poller holds it.)
    if (!wait) return false;
    cpu_relax();
  }
}

void lanes_source::unlock() noexcept { busy_.store(false, std::memory_order_release); }  // release: pairs with lock's acquire

task* lanes_source::poll(int worker) noexcept {
  if (empty()) return nullptr;  // the common idle case takes no lock
  if (!lock(worker < 0)) return nullptr;  // another poller is choosing: a lost race (TS4)
  lane_state* from = nullptr;
  task* t = take(from);
  unlock();
  if (from != nullptr && from->capacity != 0) room_made(*from);  // LN6
  return t;
}

task* lanes_source::take(lane_state*& from) noexcept {
  std::array<task*, kMaxLanes> head;  // read only at the indices set in `backlogged`
  std::uint32_t backlogged = 0;
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    head[i] = lanes_[i]->queue.front();
    if (head[i] != nullptr) backlogged |= 1u << i;
  }
  if (backlogged == 0) return nullptr;
  std::uint64_t now = 0;
  int chosen = -1;
  if (any_max_wait_) {  // LN5 1: the most overdue head
    now = clock_ns();
    std::uint64_t worst = 0;
    for (std::uint32_t m = backlogged; m != 0; m &= m - 1) {
      const auto i = static_cast<std::size_t>(__builtin_ctz(m));
      const std::uint64_t mw = lanes_[i]->max_wait;
      const std::uint64_t enq = head[i]->stamp & ~std::uint64_t{1};
      if (mw == 0 || enq == 0 || now < enq + mw) continue;
      if (chosen < 0 || now - enq - mw > worst) {
        chosen = static_cast<int>(i);
        worst = now - enq - mw;
      }
    }
  }
  const std::uint32_t weighted = backlogged & weighted_mask_;
  if (chosen < 0 && critical_ >= 0 && ((backlogged >> critical_) & 1u) != 0 && (run_ < quantum_ || weighted == 0)) {
    chosen = critical_;  // LN5 2
  }
  if (chosen < 0) chosen = picker_.choose(weighted);  // LN5 3
  const auto c = static_cast<std::size_t>(chosen);
  task* t = head[c];
  if (!lanes_[c]->queue.pop_front(t)) return nullptr;  // a push in progress behind it: retry later
  if (chosen == critical_) {
    ++run_;
  } else {
    run_ = 0;
    picker_.commit(c, weighted);
  }
  lane_state& l = *lanes_[c];
  from = &l;
  // release: pairs with the acquire loads in depth() and push (LN1): a reader that sees
  // this count also sees the increment of enqueued for the task. seq_cst on a bounded lane:
  // LN6's notifier change, ordered before room_made's seq_cst load of the waiter count.
  l.dispatched.store(l.dispatched.load(std::memory_order_relaxed) + 1,
                     l.capacity != 0 ? std::memory_order_seq_cst : std::memory_order_release);
  if (t->stamp != 0) {  // LN4
    if (now == 0) now = clock_ns();
    const std::uint64_t enq = t->stamp & ~std::uint64_t{1};
    l.wait.record(now > enq ? now - enq : 0);
    if ((t->stamp & 1u) != 0) t->stamp = 0;  // the layer's own stamp: not a core sample
  }
  return t;
}

std::uint64_t lanes_source::depth(const lane_state& l) const noexcept {
  // acquire first: pairs with take()'s release store, so the enqueued increments of every
  // task counted as dispatched are visible to the relaxed load after it (LN1).
  const std::uint64_t out = l.dispatched.load(std::memory_order_acquire);
  const std::uint64_t in = l.enqueued.load(std::memory_order_relaxed);  // relaxed: ordered by the acquire above
  return in > out ? in - out : 0;
}

bool lanes_source::empty() const noexcept {
  for (const auto& l : lanes_) {
    if (depth(*l) != 0) return false;
  }
  return true;
}

std::size_t lanes_source::size_approx() const noexcept {
  std::size_t n = 0;
  for (const auto& l : lanes_) n += depth(*l);
  return n;
}

std::vector<lane_metrics> lanes_source::stats() const {
  std::vector<lane_metrics> out;
  out.reserve(lanes_.size());
  for (const auto& l : lanes_) {
    lane_metrics m;
    m.name = l->name;
    m.depth = depth(*l);
    // relaxed: counters (a snapshot); `dispatched` also counts the discards (LN6), so it is
    // taken out, saturating (the two loads may straddle a discard).
    const std::uint64_t taken = l->dispatched.load(std::memory_order_relaxed);
    m.discarded = l->discarded.load(std::memory_order_relaxed);
    m.dispatched = taken > m.discarded ? taken - m.discarded : 0;
    m.refused = l->refused.load(std::memory_order_relaxed);        // relaxed: a counter
    latency_histogram::counts c{};
    std::uint64_t max = 0, sum = 0;
    l->wait.add_to(c, max, sum);
    const metrics::distribution d = latency_histogram::summarize(c, max, sum);
    m.wait_samples = d.samples;
    m.wait_p50 = d.p50;
    m.wait_p99 = d.p99;
    m.wait_max = d.max;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace weft::detail
