// runtime/core/injector.hpp: the injection queue (moodycamel::ConcurrentQueue) and its traits.
#pragma once

#include <cstddef>

#include <concurrentqueue/concurrentqueue.h>

#include "weft/detail/task.hpp"

namespace weft::detail {

// The injection queue. Its blocks hold 1024 task pointers (moodycamel's default is 32), for
// memory after a burst: the queue keeps its blocks for reuse, and with 32 per block a small
// block was allocated every 32 tasks, between their task blocks in the heap, so that once
// the tasks were freed most gaps (32 x 144 bytes) held no whole page for malloc_trim to give
// back (task_alloc.cpp): 20M queued tasks kept ~2.6 GiB resident after the drain. One 8 KiB
// block per 1024 tasks leaves gaps of ~144 KiB, which trim returns nearly whole
// (BENCHMARKS.md, "Memory after a burst"). The post path gains too: a producer whose block
// is full takes a fresh one from the queue's free list (a compare-and-swap on the list
// head and a read of a block a worker emptied last, both misses on another core's lines),
// which with 32 slots happened every 32 posts and took a fifth of a one-producer post
// profile. Dequeue costs do not depend on the block size
// (an implicit producer's block counts dequeues with a counter either way); a pool starts
// with 2 blocks (16 KiB) instead of moodycamel's 32.
struct injector_traits : moodycamel::ConcurrentQueueDefaultTraits {
  static constexpr std::size_t BLOCK_SIZE = 1024;
};
using injection_queue = moodycamel::ConcurrentQueue<task*, injector_traits>;
inline constexpr std::size_t kInjectorInitialCapacity = 2 * injector_traits::BLOCK_SIZE;

}  // namespace weft::detail
