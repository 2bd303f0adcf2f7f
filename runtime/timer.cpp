// runtime/timer.cpp: see timer.hpp.
#include "timer.hpp"

#include <pthread.h>

#include <vector>

namespace weft::detail {

timer_service::timer_service(std::string thread_name) : name_(std::move(thread_name)) {}

timer_service::~timer_service() {
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

void submission_base::release_deadline() noexcept {
  // `timer` is written once, before the submission is queued or can be cancelled.
  if (timer != nullptr) static_cast<timer_service*>(timer)->cancel(*this);
}

}  // namespace weft::detail
