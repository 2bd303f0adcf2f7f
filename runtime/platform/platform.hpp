// runtime/platform/platform.hpp: the production platform for the sleep protocol: std atomics, a
// std::mutex, and a futex-based parker. tests/model supplies a Relacy one instead.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

#include "testing/fault.hpp"
#include "platform/futex.hpp"
#include "weft/detail/sync.hpp"

namespace weft::detail {

// A binary semaphore for one thread: unpark() leaves a token that the next park() takes.
// Padded so neighbouring workers' parkers do not share lines.
class alignas(destructive_interference) futex_parker {
 public:
  void park() noexcept {
    fault::maybe_delay(fault::point::before_park);
    // acquire on the exchange: pairs with the release store in unpark, so the parked thread
    // sees what its waker wrote before waking it.
    while (token_.exchange(0, std::memory_order_acquire) == 0) futex_wait(token_, 0);
  }

  bool park_until(std::chrono::steady_clock::time_point deadline) noexcept {
    // acquire: as in park().
    while (token_.exchange(0, std::memory_order_acquire) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      futex_wait(token_, 0, deadline);
    }
    return true;
  }

  void unpark() noexcept {
    // release: pairs with the acquire exchange in park/park_until.
    token_.store(1, std::memory_order_release);
    futex_wake(token_, 1);
  }

 private:
  std::atomic<std::uint32_t> token_{0};
};

struct std_platform : std_sync {
  using mutex = std::mutex;
  using parker = futex_parker;
};

}  // namespace weft::detail
