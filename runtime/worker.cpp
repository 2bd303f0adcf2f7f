// runtime/worker.cpp: the worker loop, stealing and parking. Protocols: worker.hpp
// (stealing), sleep.hpp (parking), pool_impl.hpp (shutdown).
#include "worker.hpp"

#include <pthread.h>

#include <algorithm>
#include <string>

#include "pool_impl.hpp"
#include "topology.hpp"

namespace weft::detail {
namespace {

thread_local worker* tls_worker = nullptr;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline std::uint64_t next_random(std::uint64_t& s) noexcept {  // xorshift64*
  s ^= s >> 12;
  s ^= s << 25;
  s ^= s >> 27;
  return s * 0x2545F4914F6CDD1DULL;
}

}  // namespace

worker* current_worker() noexcept { return tls_worker; }

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

void worker::run() noexcept {
  tls_worker = this;
  const std::string name = pool_.options().name.substr(0, 10) + ":" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  if (pu_) {
    std::string why;
    if (!bind_this_thread(*pu_, &why) && index_ == 0) pool_.log("weft: cannot pin workers (" + why + "); running unpinned");
  }
  for (;;) {
    if (task* t = find_work()) {
      execute(t);
      continue;
    }
    if (!park(nullptr, nullptr, std::chrono::steady_clock::time_point::max())) break;
  }
  tls_worker = nullptr;
}

void worker::spawn(task* t) {
  owner_.push(t);
  pool_.sleep().notify_work_relaxed();
}

void worker::push_or_run(task* t) noexcept {
  try {
    owner_.push(t);
  } catch (...) {  // the deque could not grow: run it here instead of losing it
    execute(t);
  }
}

task* worker::find_work() {
  task* t = nullptr;
  if (++tick_ == kInjectorInterval) {
    tick_ = 0;
    if ((t = from_injector())) return t;
  }
  if (owner_.pop(t)) return t;
  if ((t = from_injector())) return t;
  sleep_protocol<std_platform>& sleep = pool_.sleep();
  if (!searching_) {
    if (!sleep.try_begin_search()) return nullptr;
    searching_ = true;
  }
  const unsigned rounds = pool_.options().spin_rounds;
  for (unsigned r = 0;; ++r) {
    if ((t = steal_sweep()) || (t = from_injector())) {
      searching_ = false;
      sleep.end_search();
      return t;
    }
    if (r >= rounds || sleep.terminating()) return nullptr;
    for (unsigned i = 0, n = 1u << std::min(r, 6u); i < n; ++i) cpu_relax();
  }
}

task* worker::from_injector() noexcept {
  task* batch[kInjectorBatch];
  const std::size_t n = pool_.injector().try_dequeue_bulk(consumer_, batch, kInjectorBatch);
  if (n == 0) return nullptr;
  // Keep FIFO order for the owner: push the later ones so that pop returns batch[1] next.
  for (std::size_t i = n - 1; i >= 1; --i) push_or_run(batch[i]);
  if (n > 1) pool_.sleep().notify_work_relaxed();
  return batch[0];
}

task* worker::steal_sweep() noexcept {
  for (int attempt = 0; attempt < 4; ++attempt) {
    bool contended = false;
    for (const auto& bucket : victims_) {
      const std::size_t n = bucket.size();
      const std::size_t start = next_random(rng_) % n;
      for (std::size_t i = 0; i < n; ++i) {
        worker& v = pool_.worker_at(bucket[(start + i) % n]);
        task* t = nullptr;
        switch (v.steal(t)) {
          case steal_result::success:
            bump(steals_);
            steal_more(v);
            return t;
          case steal_result::lost_race:
            contended = true;
            break;
          case steal_result::empty:
            break;
        }
      }
    }
    if (!contended) break;
  }
  return nullptr;
}

void worker::steal_more(worker& victim) noexcept {
  const std::int64_t extra = std::min(victim.queued() / 2, kStealBatch);
  for (std::int64_t i = 0; i < extra; ++i) {
    task* t = nullptr;
    if (victim.steal(t) != steal_result::success) break;
    bump(steals_);
    push_or_run(t);
  }
}

void worker::execute(task* t) noexcept {
  // relaxed: metrics only.
  running_.store(++depth_, std::memory_order_relaxed);
  bool ok;
  try {
    ok = t->exec(t, task_mode::run);
  } catch (...) {
    ok = false;
    pool_.report_exception(std::current_exception());
  }
  free_task(t);
  running_.store(--depth_, std::memory_order_relaxed);  // relaxed: metrics only.
  bump(ok ? completed_ : failed_);
}

bool worker::park(bool (*ready)(const void*) noexcept, const void* ctx, std::chrono::steady_clock::time_point deadline) {
  sleep_protocol<std_platform>& sleep = pool_.sleep();
  // A worker that blocks inside a wait may leave tasks in its deque below the wait: make
  // sure somebody is awake to take them (the relaxed notify of spawn may have missed).
  if (ready != nullptr && queued() > 0) sleep.notify_work();
  const auto ticket = sleep.begin_park(index_, searching_, ready != nullptr);
  searching_ = false;
  if (ticket.last_searcher && pool_.any_work()) sleep.notify_work();
  if (ticket.last_awake && pool_.closing()) {
    if (!pool_.any_work()) {
      sleep.wake_all(true);  // S3: nothing can appear any more
      return false;
    }
    sleep.notify_work();
  }
  bump(parks_);
  if (ready != nullptr && ready(ctx)) {
    if (!sleep.cancel_park(index_)) sleep.park(index_);
  } else if (deadline != std::chrono::steady_clock::time_point::max()) {
    if (!sleep.park_until(index_, deadline) && !sleep.cancel_park(index_)) sleep.park(index_);
  } else {
    sleep.park(index_);
  }
  if (sleep.terminating()) return false;
  searching_ = sleep.woke_as_searcher(index_);
  return true;
}

worker::counters worker::read_counters() const noexcept {
  // relaxed: metrics snapshot.
  return {completed_.load(std::memory_order_relaxed), failed_.load(std::memory_order_relaxed),
          steals_.load(std::memory_order_relaxed), parks_.load(std::memory_order_relaxed),
          running_.load(std::memory_order_relaxed)};
}

}  // namespace weft::detail
