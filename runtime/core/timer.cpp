// runtime/core/timer.cpp: see timer.hpp.
#include "core/timer.hpp"

#include <pthread.h>

#include <type_traits>
#include <vector>

namespace weft::detail {
namespace {

// The live timers, and those a forked child inherited (see timer.hpp). Constant-initialised
// (std::mutex's constructor is constexpr): no guard that a fork could catch half-taken, and
// usable at any time, also by a timer destroyed during static destruction (it has a trivial
// destructor). The abandoned timers stay reachable from it: no leak to a leak checker.
struct timer_registry {
  std::mutex mu;
  timer_service* live = nullptr;       // guarded by mu
  timer_service* abandoned = nullptr;  // guarded by mu (only ever appended to, in a child)
};
static_assert(std::is_trivially_destructible_v<timer_registry>, "the registry must outlive every timer");
constinit timer_registry the_registry;
timer_registry& registry() noexcept { return the_registry; }

}  // namespace

timer_service::timer_service(std::string thread_name) : name_(std::move(thread_name)) {
  timer_registry& r = registry();
  std::lock_guard lock(r.mu);
  next_ = r.live;
  if (next_ != nullptr) next_->prev_ = this;
  r.live = this;
}

timer_service::~timer_service() {
  {
    timer_registry& r = registry();
    std::lock_guard lock(r.mu);
    (prev_ != nullptr ? prev_->next_ : r.live) = next_;
    if (next_ != nullptr) next_->prev_ = prev_;
  }
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (entry* e : entries_) {
    if (auto s = e->target.lock()) s->timer_entry = nullptr;
    delete e;
  }
}

void timer_service::schedule(std::chrono::steady_clock::time_point deadline, const std::shared_ptr<submission_base>& s) {
  auto e = std::make_unique<entry>(entry{deadline, 0, s});
  bool earliest = false;
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    e->seq = next_seq_++;
    s->timer = this;
    s->timer_entry = e.get();
    earliest = entries_.empty() || earlier{}(e.get(), *entries_.begin());
    entries_.insert(e.release());
  }
  if (earliest) cv_.notify_one();
}

void timer_service::cancel(submission_base& s) noexcept {
  std::lock_guard lock(mu_);
  auto* e = static_cast<entry*>(s.timer_entry);
  if (e == nullptr) return;
  entries_.erase(e);
  s.timer_entry = nullptr;
  delete e;
}

void timer_service::run() noexcept {
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  std::unique_lock lock(mu_);
  std::vector<std::shared_ptr<submission_base>> due;
  while (!stopping_) {
    if (entries_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto next = (*entries_.begin())->deadline;
    if (std::chrono::steady_clock::now() < next) {
      cv_.wait_until(lock, next);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    while (!entries_.empty() && (*entries_.begin())->deadline <= now) {
      entry* e = *entries_.begin();
      entries_.erase(entries_.begin());
      if (auto s = e->target.lock()) {
        s->timer_entry = nullptr;
        due.push_back(std::move(s));
      }
      delete e;
    }
    lock.unlock();
    for (auto& s : due) {  // outside the lock: cancelling delivers outcomes (user code)
      s->try_cancel();
      s->request_stop();
    }
    due.clear();
    lock.lock();
  }
}

void timer_service::prepare_fork() noexcept {
  timer_registry& r = registry();
  r.mu.lock();  // no timer can be created or destroyed until after the fork
  for (timer_service* t = r.live; t != nullptr; t = t->next_) t->mu_.lock();
}

void timer_service::after_fork_in_parent() noexcept {
  timer_registry& r = registry();
  for (timer_service* t = r.live; t != nullptr; t = t->next_) t->mu_.unlock();
  r.mu.unlock();
}

void timer_service::after_fork_in_child() noexcept {
  // Single-threaded: the forking thread's copy is the only thread. Every inherited timer
  // moves to the abandoned list; its thread does not exist here.
  timer_registry& r = registry();
  while (timer_service* t = r.live) {
    r.live = t->next_;
    t->abandoned_ = true;
    t->prev_ = nullptr;
    t->next_ = r.abandoned;
    r.abandoned = t;
    t->mu_.unlock();
  }
  r.mu.unlock();
}

void abandon_timer(std::unique_ptr<timer_service> timer) noexcept {
  if (timer && timer->abandoned()) {
    (void)timer.release();  // still reachable from the registry's abandoned list
  }
  // else: destroyed normally as `timer` goes out of scope
}

void submission_base::release_deadline() noexcept {
  // `timer` is written once, before the submission is queued or can be cancelled.
  if (timer != nullptr) static_cast<timer_service*>(timer)->cancel(*this);
}

}  // namespace weft::detail
