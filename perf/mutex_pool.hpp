// perf/mutex_pool.hpp: the baseline peer, a pool as most hand-rolled ones look.
//
// One std::deque of std::function under one std::mutex, one std::condition_variable;
// post() locks, pushes and notifies one thread; each worker locks, waits while the queue is
// empty, pops the front and runs it unlocked. No spinning, no batching, no per-thread
// queues: every task passes through the one lock twice (push, pop). The destructor runs
// what is queued and joins. For the external-submission, latency and idle families.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace weft_perf {

class mutex_pool {
 public:
  explicit mutex_pool(int threads) {
    threads_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~mutex_pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  mutex_pool(const mutex_pool&) = delete;
  mutex_pool& operator=(const mutex_pool&) = delete;

  void post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> lock(m_);
      queue_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stop_ and drained
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by m_
  bool stop_ = false;                         // guarded by m_
  std::vector<std::thread> threads_;
};

}  // namespace weft_perf
