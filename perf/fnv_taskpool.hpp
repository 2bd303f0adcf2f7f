// perf/fnv_taskpool.hpp: the keyed pool of the seed design (shared/seeds 004, a Go
// "TaskPool"), as a peer for perf/keyed.cpp: N worker threads, each with its own bounded
// queue (the seed's buffered channel of 100 jobs), and a job's key hashed with FNV-1a onto
// one of them. Same key -> same thread -> serial, in order; different keys share a thread
// whenever they hash together, so a slow job delays every key behind it on its queue, and a
// full queue blocks the submitter (as a full Go channel does).
//
// Translated, not improved: one std::mutex + two std::condition_variables + a std::deque of
// std::function per queue, which is what a Go channel of func values amounts to.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace weft_perf {

class fnv_taskpool {
 public:
  static constexpr std::size_t kQueueCapacity = 100;  // the seed's channel buffer

  explicit fnv_taskpool(int workers) {
    for (int i = 0; i < workers; ++i) queues_.push_back(std::make_unique<queue>());
    for (auto& q : queues_) q->thread = std::thread([q = q.get()] { q->work(); });
  }
  ~fnv_taskpool() {
    for (auto& q : queues_) {
      {
        std::lock_guard lock(q->m);
        q->stop = true;
      }
      q->not_empty.notify_all();
    }
    for (auto& q : queues_) q->thread.join();
  }
  fnv_taskpool(const fnv_taskpool&) = delete;
  fnv_taskpool& operator=(const fnv_taskpool&) = delete;

  // FNV-1a over the key's bytes, as the seed does over its string keys.
  static std::uint32_t fnv1a(std::uint64_t key) noexcept {
    std::uint32_t h = 2166136261u;
    for (int i = 0; i < 8; ++i) {
      h ^= static_cast<std::uint8_t>(key >> (8 * i));
      h *= 16777619u;
    }
    return h;
  }

  template <class F>
  void submit(std::uint64_t key, F&& f) {
    queue& q = *queues_[fnv1a(key) % queues_.size()];
    std::unique_lock lock(q.m);
    q.not_full.wait(lock, [&] { return q.jobs.size() < kQueueCapacity; });
    q.jobs.emplace_back(std::forward<F>(f));
    lock.unlock();
    q.not_empty.notify_one();
  }

 private:
  struct queue {
    std::mutex m;
    std::condition_variable not_empty, not_full;
    std::deque<std::function<void()>> jobs;  // guarded by m
    bool stop = false;                       // guarded by m
    std::thread thread;

    void work() {
      for (;;) {
        std::unique_lock lock(m);
        not_empty.wait(lock, [&] { return stop || !jobs.empty(); });
        if (jobs.empty()) return;  // stop, and everything queued ran
        std::function<void()> job = std::move(jobs.front());
        jobs.pop_front();
        lock.unlock();
        not_full.notify_one();
        job();
      }
    }
  };
  std::vector<std::unique_ptr<queue>> queues_;
};

}  // namespace weft_perf
