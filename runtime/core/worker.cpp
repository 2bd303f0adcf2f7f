// runtime/core/worker.cpp: the worker loop, stealing and parking. Protocols: worker.hpp
// (stealing), sleep.hpp (parking), pool_impl.hpp (shutdown).
#include "core/worker.hpp"

#include <pthread.h>

#include <algorithm>
#include <string>

#include "core/cpu_relax.hpp"
#include "core/pool_impl.hpp"
#include "platform/topology.hpp"
#include "weft/task_group.hpp"

namespace weft::detail {
namespace {

thread_local const group_context* tls_scope = nullptr;

inline std::uint64_t next_random(std::uint64_t& s) noexcept {  // xorshift64*
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 0x2545F4914F6CDD1DULL;
}

}  // namespace

constinit thread_local worker* tls_worker = nullptr;

worker* current_worker() noexcept { return tls_worker; }
const group_context* current_scope() noexcept { return tls_scope; }

void enter_scope(group_context& g) noexcept { g.parent = tls_scope; }

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

namespace {
// The body of run_task, inlined into worker::execute (the per-task path).
inline task_result run_task_here(pool_impl& pool, task* t) noexcept {
  const group_context* saved = tls_scope;
  tls_scope = t->scope;
  task_result r;
  try {
    r = t->exec(t, pool.cancelling() ? task_mode::cancel : task_mode::run);
  } catch (...) {
    r = task_result::failed;
    pool.report_exception(std::current_exception());
  }
  // resumed: the block belongs to a coroutine frame that may already be running elsewhere
  // or be gone (weft/detail/task.hpp): touch nothing of it.
  if (r != task_result::resumed) [[likely]] {
    free_task(t);
  } else {
    r = task_result::ok;
  }
  tls_scope = saved;
  return r;
}
}  // namespace

task_result run_task(pool_impl& pool, task* t) noexcept { return run_task_here(pool, t); }

worker::worker(pool_impl& pool, unsigned index, std::optional<unsigned> pu, std::vector<std::vector<unsigned>> victims)
    : pool_(pool),
      index_(index),
      pu_(pu),
      victims_(std::move(victims)),
      deque_(static_cast<std::int64_t>(pool.options().deque_capacity)),
      owner_(deque_),
      stealer_(deque_),
      consumer_(pool.injector()),
      rng_(0x9E3779B97F4A7C15ULL * (index + 1)) {}

void worker::start() {
  thread_ = std::thread([this] { run(); });
}

void worker::join() {
  if (thread_.joinable()) thread_.join();
}

void worker::prepare_attach() noexcept {
  set_searching(true);  // T5 counted the new thread as a searcher
  tick_ = 0;
  depth_ = 0;
  isolation_ = {};
  batch_lo_ = batch_hi_ = owner_.mark();
}

void worker::run() noexcept {
  tls_worker = this;
  const std::string name = pool_.options().name.substr(0, 10) + ":" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  if (pu_) {
    std::string why;
    if (!bind_this_thread(*pu_, &why) && index_ == 0) pool_.log("weft: cannot pin workers (" + why + "); running unpinned");
  }
  if (const scheduler_hooks* h = pool_.hooks(); h != nullptr && h->thread_start != nullptr) {
    h->thread_start(h->ctx, index_, pu_ ? static_cast<int>(*pu_) : -1);
  }
  pool_.worker_ready();  // named, pinned, hooked: the pool's constructor may return
  park_result r = park_result::woken;
  while (r == park_result::woken) {
    if (task* t = find_work()) {
      execute(t);
      continue;
    }
    r = park(nullptr, nullptr, std::chrono::steady_clock::time_point::max());
  }
  if (const scheduler_hooks* h = pool_.hooks(); h != nullptr && h->thread_stop != nullptr) {
    h->thread_stop(h->ctx, index_);
  }
  tls_worker = nullptr;
  pool_.worker_exited();  // a retired thread has released its slot already (A2, pool_impl.hpp)
}

void worker::abandon() noexcept {
  task* t = nullptr;
  while (pop(t)) discard_task(t);
  // Reachable forever (no leak report), never joined, never destroyed.
  static auto* abandoned = new std::vector<std::thread>;
  try {
    abandoned->push_back(std::move(thread_));
  } catch (...) {
    new (std::nothrow) std::thread(std::move(thread_));  // leak the handle rather than terminate
  }
}

void worker::spawn(task* t) {
  t->isolation = isolation_.tag;  // a task spawned inside a region belongs to it
  bump(spawned_);  // before the task is visible (pool_impl::idle_now)
  try {
    push(t);
  } catch (...) {  // not queued after all: take the count back (owner-only counter)
    // relaxed load: only the owner writes; release: as in bump.
    spawned_.store(spawned_.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    throw;
  }
  // The full T1, fence included (sleep.hpp: a spawner may block outside weft next). A pool
  // of one worker skips it: the only worker that could be woken is this one, and it is
  // awake (the stopping drain of S6, pool_impl.hpp, empties deques without being woken).
  // The fence was a fifth of the time per task of weft::task's fib at one worker.
  if (pool_.size() > 1) pool_.sleep().notify_work();
}

void worker::push_or_run(task* t) noexcept {
  try {
    push(t);
  } catch (...) {  // the deque could not grow: run it here instead of losing it
    execute(t);
  }
}

void worker::requeue(task* t) noexcept {
  push_or_run(t);
  pool_.sleep().notify_work();
}

bool worker::injector_poll_due() noexcept {
  if (++tick_ < kInjectorInterval) return false;
  tick_ = 0;
  // Tasks of the last injector batch may still be in the deque (between its top and our
  // bottom): they are older than anything in the injection queue, so polling now would
  // start a newer external task before them. They are external work themselves, so
  // fairness to the injection queue is kept by running them first.
  return !(owner_.mark() > batch_lo_ && owner_.top_index() < batch_hi_);
}

task* worker::find_work(bool (*ready)(const void*) noexcept, const void* ctx) noexcept {
  task* t = nullptr;
  if (injector_poll_due()) t = poll_ingress_in_turn();
  if (t == nullptr && !pop(t)) t = poll_ingress();
  if (t == nullptr) t = search(ready, ctx);
  return stop_searching(t);
}

task* worker::search(bool (*ready)(const void*) noexcept, const void* ctx) noexcept {
  sleep_protocol<std_platform>& sleep = pool_.sleep();
  if (!searching_) {
    if (!sleep.try_begin_search()) return nullptr;
    set_searching(true);
  }
  const unsigned rounds = pool_.options().spin_rounds;
  const auto until = std::chrono::steady_clock::now() + kSearchBudget;
  for (unsigned r = 0;; ++r) {
    if (task* t = steal_sweep()) return t;
    if (task* t = poll_ingress()) return t;
    if (r >= rounds || sleep.terminating()) break;
    if ((r & 7) == 7 && std::chrono::steady_clock::now() >= until) break;
    if (ready != nullptr && ready(ctx)) break;
    for (unsigned i = 0, n = 1u << std::min(r, 6u); i < n; ++i) cpu_relax();
  }
  // Nothing found: still a searcher. park() (begin_park, T3) or leave_search (T2) ends it.
  return nullptr;
}

void worker::leave_search() noexcept {
  if (searching_) {
    set_searching(false);
    pool_.sleep().end_search([this] { return pool_.any_work(); });
  }
}

task* worker::from_injector() noexcept {
  if (trickle_until_ != 0) [[unlikely]] {  // trickle pacing (worker.hpp)
    if (now_ns() < trickle_until_) return nullptr;
    trickle_until_ = 0;
  }
  task* batch[kInjectorBatchMax];
  const std::size_t n = pool_.injector().try_dequeue_bulk(consumer_, batch, injector_batch_);
  if (n != 0 && n < kTrickleBatch) trickle_until_ = now_ns() + kTrickleGapNs;
  // Adaptive size (worker.hpp): doubles after a full batch, resets after a short one.
  injector_batch_ = n == injector_batch_ ? std::min(2 * injector_batch_, kInjectorBatchMax) : kInjectorBatch;
  if (n == 0) return nullptr;
  pool_.release_credits(n);  // C1 of pool_impl.hpp; nothing when the pool is unbounded
  // Keep FIFO order for the owner: push the later ones so that pop returns batch[1] next.
  batch_lo_ = owner_.mark();
  for (std::size_t i = n - 1; i >= 1; --i) push_or_run(batch[i]);
  batch_hi_ = owner_.mark();
  if (n > 1) pool_.sleep().notify_work();
  return batch[0];
}

task* worker::poll_ingress() noexcept {
  const source_registry& sources = pool_.sources();
  for (unsigned i = 0, n = sources.count(); i < n; ++i) {
    if (task* t = sources.at(i).poll(static_cast<int>(index_))) {
      t->isolation = 0;  // the source may have linked it through task::next (task_source.hpp)
      return t;
    }
  }
  return from_injector();
}

task* worker::poll_ingress_in_turn() noexcept {
  const source_registry& sources = pool_.sources();
  const unsigned n = sources.count();
  if (n == 0) return from_injector();  // the common case: no layer registered a source
  for (unsigned k = 0; k <= n; ++k) {
    const unsigned c = ingress_cursor_ % (n + 1);
    ingress_cursor_ = c + 1;
    task* t = c == n ? from_injector() : sources.at(c).poll(static_cast<int>(index_));
    if (t != nullptr) {
      if (c != n) t->isolation = 0;  // as in poll_ingress
      return t;
    }
  }
  return nullptr;
}

void worker::set_searching(bool on) noexcept {
  if (searching_ == on) return;
  searching_ = on;
  const scheduler_hooks* hooks = pool_.hooks();
  if (hooks != nullptr && hooks->search != nullptr) [[unlikely]] hooks->search(hooks->ctx, index_, on);
}

steal_result worker::steal_from(unsigned victim, task*& t) noexcept {
  worker& v = pool_.worker_at(victim);
  const steal_result r = v.steal(t);  // untagged by worker::steal
  if (r == steal_result::success) {
    bump(steals_);
    steal_more(v, t);
    last_victim_ = victim;
  }
  return r;
}

task* worker::steal_sweep() noexcept {
  task* t = nullptr;
  if (last_victim_ != kNoVictim) {
    switch (steal_from(last_victim_, t)) {
      case steal_result::success:
        return t;
      case steal_result::empty:
        last_victim_ = kNoVictim;  // dried up: sweep from a random start again
        break;
      case steal_result::lost_race:  // still has work; the sweep below may reach it again
        break;
    }
  }
  for (int attempt = 0; attempt < 4; ++attempt) {
    bool contended = false;
    for (const auto& bucket : victims_) {
      const std::size_t n = bucket.size();
      const std::size_t start = next_random(rng_) % n;
      for (std::size_t i = 0; i < n; ++i) {
        const steal_result r = steal_from(bucket[(start + i) % n], t);
        if (r == steal_result::success) return t;
        if (r == steal_result::lost_race) contended = true;
      }
    }
    if (!contended) break;
  }
  return nullptr;
}

void worker::steal_more(worker& victim, const task* first) noexcept {
  // Only siblings of the first: tasks of the same group (a spawner's flat fan-out), or
  // plain submissions (no group). A fork-join spine has one task per enclosing group; its
  // top is the biggest subtree, and taking more than that one only moves work the victim
  // will want back. The first non-sibling taken stops the batch (it cannot be put back).
  // Never a task of an isolated region, checked before the claim (its slot's tag bit): moved
  // here behind the unrelated task we run first, it could wait on a worker blocked in that
  // task (on the lock the region's owner holds, say) while the region's waiter, which steals
  // only from the tops of deques, waits for it.
  if (first->isolation != 0) return;
  const group_context* scope = first->scope;
  const std::int64_t extra = std::min(victim.queued() / 2, kStealBatch);
  for (std::int64_t i = 0; i < extra; ++i) {
    task* t = nullptr;
    if (victim.stealer_.steal_unless(t, &is_tagged) != steal_result::success) break;
    bump(steals_);
    const bool sibling = t->scope == scope;  // read before push_or_run hands t over
    push_or_run(t);
    if (!sibling) break;
  }
}

task* worker::steal_region_task() noexcept {
  for (unsigned i = 0, n = pool_.size(); i < n; ++i) {
    if (i == index_) continue;
    worker& v = pool_.worker_at(i);
    task* t = nullptr;
    if (v.stealer_.steal_unless(t, [](task* p) noexcept { return !is_tagged(p); }) != steal_result::success) continue;
    t = untag(t);
    bump(steals_);
    if (t->isolation == isolation_.tag) return t;
    pool_.hand_back(t);  // another region's: runnable by any worker outside an isolated wait
  }
  return nullptr;
}

task* worker::stop_searching(task* t) noexcept {
  // A searcher that found work stops searching (T2 of sleep.hpp); if it was the last one it
  // wakes another, so work still queued elsewhere keeps a searcher.
  if (t != nullptr && searching_) {
    set_searching(false);
    pool_.sleep().end_search([this] { return pool_.any_work(); });
  }
  return t;
}

void worker::execute(task* t) noexcept {
  // A task of another region than the current one (a stolen region task, or one run by a
  // non-isolated wait) puts this worker inside its region while it runs.
  if (t->isolation != isolation_.tag) [[unlikely]] {
    execute_in_region(t);
    return;
  }
  // relaxed: metrics only.
  running_.store(++depth_, std::memory_order_relaxed);
  const std::uint64_t stamp = t->stamp;
  const std::uint64_t start = stamp != 0 ? now_ns() : 0;
  const scheduler_hooks* hooks = pool_.hooks();
  const task_result r = hooks == nullptr ? run_task_here(pool_, t) : run_hooked(*hooks, t);
  if (stamp != 0) {
    const std::uint64_t end = now_ns();
    queue_wait_.record(start > stamp ? start - stamp : 0);
    run_time_.record(end - start);
  }
  running_.store(--depth_, std::memory_order_relaxed);  // relaxed: metrics only.
  bump(r == task_result::ok ? completed_ : r == task_result::failed ? failed_ : cancelled_);
}

task_result worker::run_hooked(const scheduler_hooks& hooks, task* t) noexcept {
  if (hooks.task_start != nullptr) hooks.task_start(hooks.ctx, index_, t);
  const task_result r = hooks.run != nullptr ? hooks.run(hooks.ctx, index_, pool_, t) : run_task_here(pool_, t);
  if (hooks.task_finish != nullptr) hooks.task_finish(hooks.ctx, index_, t, r);
  return r;
}

void worker::execute_in_region(task* t) noexcept {
  // Inside a region the floor is where this task starts: everything pushed above it from
  // here on is the region's (runtime/core/isolation.cpp, I1-I3).
  const isolation outer = exchange_isolation({t->isolation, t->isolation != 0 ? mark() : -1});
  execute(t);  // now t->isolation == isolation_.tag: the ordinary path
  exchange_isolation(outer);
}

worker::park_result worker::park(bool (*ready)(const void*) noexcept, const void* ctx,
                                 std::chrono::steady_clock::time_point deadline) {
  sleep_protocol<std_platform>& sleep = pool_.sleep();
  const bool in_wait = ready != nullptr;
  // A worker that blocks inside a wait may leave tasks in its deque below the wait: make
  // sure somebody is awake to take them.
  if (in_wait && queued() > 0) sleep.notify_work();
  trickle_until_ = 0;  // woken, this worker dequeues at once (trickle pacing, worker.hpp)
  const auto ticket = sleep.begin_park(index_, searching_, in_wait);
  set_searching(false);
  // Termination decided before we enlisted (any close(): the last worker to park can
  // decide it while we are between our last search and begin_park): the wake_all that set
  // it could not see us, so do not sleep (sleep.hpp, Shutdown).
  if (sleep.terminating()) return park_result::terminating;
  // T3's re-check. It may wake this very worker (the last parker is the newest sleeper):
  // then the park below returns at once and the caller searches again, which is the point.
  if (ticket.last_searcher && pool_.any_work()) sleep.notify_work();
  // S3 (pool_impl.hpp).
  if (ticket.last_awake && pool_.closing()) {
    if (!pool_.any_work()) {
      sleep.wake_all(true);  // nothing can appear any more
      return park_result::terminating;
    }
    sleep.notify_work();
  }
  // The pool is going idle: a good moment to give freed task blocks back to the kernel,
  // once it has stayed idle for kTrimDelay (task_alloc.cpp: trimming between two bursts
  // would make the second fault every page back in). An elastic pool's worker trims at
  // once: its park is the keep_alive countdown to retiring.
  const bool trim_later = ticket.last_awake && heap_trim_due() && !in_wait &&
                          deadline == std::chrono::steady_clock::time_point::max();
  if (trim_later && pool_.elastic()) trim_heap_if_worthwhile();
  bump(parks_);
  const scheduler_hooks* hooks = pool_.hooks();
  if (hooks != nullptr && hooks->park != nullptr) hooks->park(hooks->ctx, index_);
  if (in_wait && ready(ctx)) {
    if (!sleep.cancel_park(index_)) sleep.park(index_);
  } else if (deadline != std::chrono::steady_clock::time_point::max()) {
    if (!sleep.park_until(index_, deadline) && !sleep.cancel_park(index_)) sleep.park(index_);
  } else if (trim_later && !pool_.elastic()) [[unlikely]] {
    if (!sleep.park_until(index_, std::chrono::steady_clock::now() + kTrimDelay)) {
      if (sleep.cancel_park(index_)) {
        trim_heap_if_worthwhile();  // idle for kTrimDelay; the caller searches, then parks again
      } else {
        sleep.park(index_);  // a waker took us off the list meanwhile: consume its token
      }
    }
  } else if (!in_wait && pool_.elastic()) [[unlikely]] {
    if (park_or_retire()) {
      if (hooks != nullptr && hooks->unpark != nullptr) hooks->unpark(hooks->ctx, index_);
      return park_result::retired;
    }
  } else {
    sleep.park(index_);
  }
  if (hooks != nullptr && hooks->unpark != nullptr) hooks->unpark(hooks->ctx, index_);
  if (sleep.terminating()) return park_result::terminating;
  set_searching(sleep.woke_as_searcher(index_));
  return park_result::woken;
}

worker::counters worker::read_counters() const noexcept {
  // relaxed: metrics snapshot.
  return {completed_.load(std::memory_order_relaxed), failed_.load(std::memory_order_relaxed),
          cancelled_.load(std::memory_order_relaxed), steals_.load(std::memory_order_relaxed),
          parks_.load(std::memory_order_relaxed), running_.load(std::memory_order_relaxed)};
}

void worker::add_latencies(latency_histogram::counts& wait, std::uint64_t& wait_max, std::uint64_t& wait_sum,
                           latency_histogram::counts& run, std::uint64_t& run_max,
                           std::uint64_t& run_sum) const noexcept {
  queue_wait_.add_to(wait, wait_max, wait_sum);
  run_time_.add_to(run, run_max, run_sum);
}

}  // namespace weft::detail
