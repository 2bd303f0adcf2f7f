// runtime/platform/futex.hpp: the one place weft blocks a thread in the kernel (Linux futex).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace weft::detail {

// Blocks while word == expected, until woken, or until `deadline` (steady_clock) passes.
// Returns false on timeout. Spurious returns are possible: callers loop on their condition.
bool futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max()) noexcept;

// Wakes up to `count` threads blocked on word. The word's memory may already have been
// reused by its owner: the kernel only compares addresses, and every waiter re-checks its
// own condition, so a stray wake is harmless.
void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept;

}  // namespace weft::detail
