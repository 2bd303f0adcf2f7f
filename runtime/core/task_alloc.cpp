// runtime/core/task_alloc.cpp: task blocks from per-thread caches over a shared depot.
//
// Each thread keeps a LIFO stack of free blocks (its cache): an array of pointers, not a
// list threaded through the blocks. A thread that frees more than it allocates (a thief
// running stolen tasks, a worker running what outside producers posted) hands a magazine
// of kMagazine pointers to the depot once its cache is full (2 * kMagazine); a thread that
// allocates more than it frees (an outside producer, a spawner whose children run
// elsewhere) takes a magazine from the depot before it falls back to operator new. The
// depot lock is taken once per kMagazine blocks, never per task. The depot keeps at most
// kDepotMax magazines; beyond that blocks go back to the heap.
//
// Why an array. The blocks a producer takes from the depot were last written by a worker
// on another core. With a free list threaded through them, every allocation first read
// the block's link: a cache miss whose result the next allocation depends on, so the
// misses were paid one after another (half the producer's samples in the external
// submission profile). With an array, the pointers arrive 8 per cache line from a copy
// the prefetcher streams, no block is read to find the next one, and the next block is
// prefetched for writing while the current one is filled.
//
// Blocks in the depot and in a thread's cache stay reachable (no leak reports); a thread
// that exits returns its cache to the depot.
//
// Memory after a burst. Blocks beyond the depot go back to operator delete, but glibc keeps
// freed small chunks in its bins and per-thread arenas, so 20M queued tasks used to leave
// ~2.6 GiB resident after the drain. Every block handed back to the heap is counted; when a
// pool goes idle (its last awake worker parks) with more than kTrimThreshold bytes handed
// back since the last trim, that worker calls malloc_trim(0), which returns the free pages
// of every arena to the kernel. The cost (milliseconds after a burst of millions) is paid
// once per burst by a worker that has nothing else to do. Not at once, though: a trim
// returns the pages the next burst will fault back in (a spawner that queued 1M children
// in a loop ran 6x slower with an immediate trim: 504 against 76 ns per task), so the
// worker first parks for kTrimDelay (worker.cpp) and trims only if nothing woke it.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <type_traits>
#include <vector>

#include "testing/fault.hpp"
#include "platform/fork.hpp"
#include "weft/detail/task.hpp"

namespace weft::detail {
namespace {

static_assert(alignof(task) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "plain operator new must suffice for task blocks");

constexpr std::size_t kMagazine = 256;
constexpr std::size_t kCacheMax = 2 * kMagazine;
constexpr std::size_t kDepotMax = 256;  // 64Ki blocks, 8 MiB at most kept for reuse

// The per-thread cache. Trivially destructible and constant-initialised, so the per-task
// paths touch it with no thread-local init guard (4 KiB of TLS per thread).
struct stack {
  std::size_t count = 0;
  task* blocks[kCacheMax] = {};
};
static_assert(std::is_trivially_destructible_v<stack>);

// A magazine in the depot: up to kMagazine pointers (a thread's exit hands back a partial one).
struct magazine {
  std::size_t count = 0;
  task* blocks[kMagazine];
};

constexpr std::size_t kTrimThreshold = std::size_t{32} << 20;  // bytes handed back to the heap

// Bytes of blocks handed back to the heap since the last trim. relaxed everywhere: a
// heuristic trigger; a lost or late count only moves a trim by one burst.
std::atomic<std::size_t> released_bytes{0};

void release_blocks(task* const* blocks, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) ::operator delete(static_cast<void*>(blocks[i]));
  released_bytes.fetch_add(n * sizeof(task), std::memory_order_relaxed);  // relaxed: see above
}

// Full magazines, and the empty ones kept for reuse. Every magazine ever made is in one of
// the two lists, and one is made only while full_ holds fewer than kDepotMax, so neither
// list outgrows the capacity reserved up front: take and give never allocate a list.
class depot {
 public:
  depot() {
    full_.reserve(kDepotMax);
    spare_.reserve(kDepotMax);
  }
  void lock() noexcept { mu_.lock(); }
  void unlock() noexcept { mu_.unlock(); }

  // Moves a magazine's blocks to the top of `into` (which has room for kMagazine more).
  bool take(stack& into) noexcept {
    std::lock_guard lock(mu_);
    if (full_.empty()) return false;
    magazine* m = full_.back();
    full_.pop_back();
    std::memcpy(into.blocks + into.count, m->blocks, m->count * sizeof(task*));
    into.count += m->count;
    m->count = 0;
    spare_.push_back(m);  // within the reserved capacity: cannot throw
    return true;
  }
  // Takes n <= kMagazine blocks; those the depot cannot keep go back to the heap.
  void give(task* const* blocks, std::size_t n) noexcept {
    {
      std::lock_guard lock(mu_);
      if (full_.size() < kDepotMax) {
        magazine* m = nullptr;
        if (!spare_.empty()) {
          m = spare_.back();
          spare_.pop_back();
        } else {
          m = new (std::nothrow) magazine;
        }
        if (m != nullptr) {
          std::memcpy(m->blocks, blocks, n * sizeof(task*));
          m->count = n;
          full_.push_back(m);  // within the reserved capacity: cannot throw
          return;
        }
      }
    }
    release_blocks(blocks, n);
  }

 private:
  std::mutex mu_;
  std::vector<magazine*> full_;
  std::vector<magazine*> spare_;
};

depot& the_depot() {
  // Never destroyed: thread caches may return blocks during static destruction.
  static depot* d = new depot;
  return *d;
}

constinit thread_local stack cache;

// Hands the top kMagazine blocks (or all, if fewer) of c to the depot.
void give_magazine(stack& c) noexcept {
  const std::size_t n = std::min(c.count, kMagazine);
  c.count -= n;
  the_depot().give(c.blocks + c.count, n);
}

// Returning the cache to the depot at thread exit is the job of `reaper`, a second
// thread-local that is touched only on the slow paths (a thread takes from the depot or
// the heap, or gives to the depot) and when a free finds the cache empty, so that a thread
// that only frees returns its blocks too.
struct reaper {
  bool armed = false;
  ~reaper() {
    while (cache.count > 0) give_magazine(cache);
  }
};
thread_local reaper cache_reaper;

inline void arm_reaper() noexcept { cache_reaper.armed = true; }

}  // namespace

task* allocate_task() {
  if (fault::should_fail(fault::point::task_alloc)) throw std::bad_alloc();
  stack& c = cache;
  if (c.count == 0) [[unlikely]] {
    arm_reaper();
    if (!the_depot().take(c)) {
      return ::new (::operator new(sizeof(task))) task;
    }
  }
  task* t = c.blocks[--c.count];
  // The block after this one is likely the next allocation: ask for its line for writing
  // now, so that a block last written by another core arrives while this one is filled.
  if (c.count != 0) __builtin_prefetch(c.blocks[c.count - 1], 1, 3);
  return t;
}

namespace {
std::atomic<std::uint64_t> trims{0};  // relaxed: a statistic for tests
}  // namespace

bool heap_trim_due() noexcept {
  return released_bytes.load(std::memory_order_relaxed) >= kTrimThreshold;  // relaxed: see released_bytes
}

void trim_heap_if_worthwhile() noexcept {
  // relaxed: see released_bytes.
  if (released_bytes.load(std::memory_order_relaxed) < kTrimThreshold) return;
  if (released_bytes.exchange(0, std::memory_order_relaxed) < kTrimThreshold) return;  // another worker trims
  ::malloc_trim(0);
  trims.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t heap_trims() noexcept { return trims.load(std::memory_order_relaxed); }

void task_alloc_prepare_fork() noexcept { the_depot().lock(); }
void task_alloc_after_fork() noexcept { the_depot().unlock(); }

void free_task(task* t) noexcept {
  stack& c = cache;
  // A thread that only frees (a worker running tasks submitted elsewhere) never reaches the
  // other slow paths, yet must hand its cache back at exit: arm the reaper whenever the
  // cache goes from empty to one block.
  if (c.count == 0) [[unlikely]] arm_reaper();
  if (c.count == kCacheMax) [[unlikely]] give_magazine(c);
  c.blocks[c.count++] = t;
}

}  // namespace weft::detail
