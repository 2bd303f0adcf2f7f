// runtime/layers/burst.cpp: burst scaling, the policy of an elastic pool
// (pool_options::min_workers < max_workers, options.hpp).
//
// The mechanism is the core's: max_workers slots allocated for the pool's life, threads that
// attach to a slot and detach from it (sleep.hpp T5/T6 with the re-check R; pool_impl.hpp
// A1-A3). This file decides *when*, from the scheduler's own signals only, with no thread
// that polls:
//   Grow  T1 (notify_work, right after somebody published work) found nobody searching,
//         nobody parked and a slot without a thread: every attached worker is busy while work
//         waits. It calls the saturation hook, which attaches one thread to the lowest vacant
//         slot (so pinning follows the plan: slot i runs on the plan's PU i). One at a time:
//         one grower runs, later requests only bump its counter, and the new thread counts
//         as a searcher from the attach on, so no later T1 calls the hook again until that thread has found work
//         (ended its search) or parked. A backlog that persists therefore adds a thread per
//         "search that found work", up to max_workers; a pool with an idle or searching
//         worker never grows.
//   Shrink A worker's idle park (its run loop's, never a park inside a wait) lasts at most
//         keep_alive; then it retires (T6) if more than min_workers are attached, re-checks
//         every queue (R) and leaves, or comes back as a searcher if work appeared. At
//         min_workers it parks on without a time limit.
// A thread that cannot be created (EAGAIN: a process or cgroup thread limit) is logged; the
// pool keeps running on the threads it has and tries again no sooner than 100 ms later.
#include <chrono>
#include <mutex>
#include <string>
#include <system_error>

#include "core/pool_impl.hpp"
#include "core/worker.hpp"

namespace weft::detail {
namespace {
constexpr std::chrono::milliseconds kRetryAfterFailure{100};
}  // namespace

void pool_impl::on_saturated(void* self) noexcept { static_cast<pool_impl*>(self)->grow(); }

void pool_impl::grow() noexcept {
  // One grower at a time, and no request lost: a request that finds a grower running only
  // counts itself, and the grower re-evaluates until it has seen every request (a try_lock
  // instead lost the signal of a thread that found work while its own grower still held the
  // lock, and a burst stalled below max). acq_rel: the RMWs order the requests among
  // themselves; the state they ask about is re-read by grow_once.
  if (grow_requests_.fetch_add(1, std::memory_order_acq_rel) != 0) return;
  for (std::uint32_t seen = 1;;) {
    grow_once();
    if (grow_requests_.compare_exchange_strong(seen, 0, std::memory_order_acq_rel)) return;
  }
}

void pool_impl::grow_once() noexcept {
  std::unique_lock lock(slots_mu_);
  if (sealed_ || forked() || sleep_.terminating()) return;
  // Re-read: since T1 looked, a worker may have parked or another grow attached a searcher.
  // A stale read only makes a thread more or less (attaching is always safe, T5).
  const idle_word s = sleep_.load();
  if (s.searching() != 0 || s.unparked() < s.attached() || s.attached() >= size()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < grow_retry_) return;
  unsigned slot = 0;
  while (slot < size() && occupied_[slot]) ++slot;
  if (slot == size()) {
    // attached < slots, yet no slot is vacant: a retiree sits between T6 and A2 (its re-check
    // R may have missed the work whose T1 brought us here, having read the queues before it
    // was published, while that T1 read the word after the retire). It must not leave:
    // release_slot hands it this request and it re-attaches (model check
    // retire_while_work_arrives).
    grow_wanted_ = true;
    return;
  }
  grow_wanted_ = false;
  worker& w = *workers_[slot];
  w.join();  // the slot's previous thread marked it vacant as its last act (A1)
  w.prepare_attach();
  // relaxed: the new thread's own decrement (worker_exited, release) follows its start, and
  // close's wait only needs the count to reach zero once every thread has left (A3).
  live_.fetch_add(1, std::memory_order_relaxed);
  sleep_.attach(slot);  // T5: attached, unparked and searching before the thread exists
  occupied_[slot] = 1;
  try {
    w.start();
  } catch (const std::exception& e) {
    occupied_[slot] = 0;
    grow_retry_ = now + kRetryAfterFailure;
    const auto ticket = sleep_.abort_attach(slot);
    worker_exited();  // the live_ count taken above
    lock.unlock();
    log(std::string("weft: cannot start another worker thread (")  // append: g++ 12 -Wrestrict on operator+ chains
            .append(e.what())
            .append("); running on ")
            .append(std::to_string(s.attached()))
            .append(" threads"));
    // T3's re-check and S3 on behalf of the thread that never ran (sleep.hpp, T5).
    if (ticket.last_searcher && any_work()) sleep_.notify_work();
    if (ticket.last_awake && closing()) {
      if (!any_work()) {
        sleep_.wake_all(true);
      } else {
        sleep_.notify_work();
      }
    }
    return;
  }
  // relaxed (all): metrics, written under slots_mu_ only.
  const unsigned threads = threads_.load(std::memory_order_relaxed) + 1;
  threads_.store(threads, std::memory_order_relaxed);
  if (threads > peak_threads_.load(std::memory_order_relaxed)) peak_threads_.store(threads, std::memory_order_relaxed);
  grown_.store(grown_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

bool pool_impl::release_slot(unsigned slot) noexcept {
  std::lock_guard lock(slots_mu_);
  if (grow_wanted_ && !sealed_) {
    grow_wanted_ = false;  // a grow found no vacant slot because of us: stay, as its thread
    return false;
  }
  occupied_[slot] = 0;  // A2: a grow may reuse it now (and joins this thread first)
  // relaxed (both): metrics, written under slots_mu_ only.
  threads_.store(threads_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  retired_.store(retired_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return true;
}

bool worker::park_or_retire() noexcept {
  sleep_protocol<std_platform>& sleep = pool_.sleep();
  if (sleep.park_until(index_, std::chrono::steady_clock::now() + pool_.options().keep_alive)) return false;
  switch (sleep.retire(index_)) {
    case sleep_protocol<std_platform>::retire_result::woken:  // a waker took us: consume its token
    case sleep_protocol<std_platform>::retire_result::stay:   // at min_workers: park on, untimed
      sleep.park(index_);
      return false;
    case sleep_protocol<std_platform>::retire_result::retired:
      break;
  }
  // R (sleep.hpp): re-check every queue after T6's RMW; work found is ours to search for.
  // Then A2, unless a grow wanted this slot meanwhile (release_slot).
  if ((!sleep.terminating() && pool_.any_work()) || !pool_.release_slot(index_)) {
    sleep.reattach(index_);  // woke_as_searcher(index_) now says so: park()'s tail sets searching_
    return false;
  }
  return true;
}

}  // namespace weft::detail
