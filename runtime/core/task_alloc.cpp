// runtime/core/task_alloc.cpp: task blocks from per-thread caches over a shared depot.
//
// Each thread keeps a LIFO free list of blocks (its cache). A thread that frees more than
// it allocates (a thief running stolen tasks) hands a full magazine of kMagazine blocks to
// the depot once its cache holds 2 * kMagazine; a thread that allocates more than it frees
// (a spawner whose children run elsewhere) takes a magazine from the depot before it falls
// back to operator new. The depot lock is taken once per kMagazine blocks, never per task.
// The depot keeps at most kDepotMax magazines; beyond that blocks go back to the heap.
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
// once per burst by a worker that has nothing else to do.
#include <malloc.h>

#include <atomic>
#include <cstddef>
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
constexpr std::size_t kDepotMax = 256;  // 64Ki blocks, 8 MiB at most kept for reuse

struct chain {
  task* head = nullptr;
  std::size_t count = 0;
};
static_assert(std::is_trivially_destructible_v<chain>);

task* pop(chain& c) noexcept {
  task* t = c.head;
  c.head = t->next;
  --c.count;
  return t;
}

void push(chain& c, task* t) noexcept {
  t->next = c.head;
  c.head = t;
  ++c.count;
}

constexpr std::size_t kTrimThreshold = std::size_t{32} << 20;  // bytes handed back to the heap

// Bytes of blocks handed back to the heap since the last trim. relaxed everywhere: a
// heuristic trigger; a lost or late count only moves a trim by one burst.
std::atomic<std::size_t> released_bytes{0};

void release_chain(task* head) noexcept {
  std::size_t n = 0;
  while (head != nullptr) {
    task* next = head->next;
    ::operator delete(static_cast<void*>(head));
    head = next;
    ++n;
  }
  released_bytes.fetch_add(n * sizeof(task), std::memory_order_relaxed);  // relaxed: see above
}

class depot {
 public:
  depot() { full_.reserve(kDepotMax); }  // so that give() never allocates
  void lock() noexcept { mu_.lock(); }
  void unlock() noexcept { mu_.unlock(); }

  bool take(chain& into) {
    std::lock_guard lock(mu_);
    if (full_.empty()) return false;
    into = full_.back();
    full_.pop_back();
    return true;
  }
  void give(chain c) noexcept {
    {
      std::lock_guard lock(mu_);
      if (full_.size() < kDepotMax) {
        full_.push_back(c);  // within the reserved capacity: cannot throw
        return;
      }
    }
    release_chain(c.head);
  }

 private:
  std::mutex mu_;
  std::vector<chain> full_;
};

depot& the_depot() {
  // Never destroyed: thread caches may return blocks during static destruction.
  static depot* d = new depot;
  return *d;
}

// The cache itself is trivially destructible and constant-initialised, so the per-task
// paths touch it with no thread-local init guard. Returning it to the depot at thread exit
// is the job of `reaper`, a second thread-local that is touched only on the slow paths
// (a thread takes from the depot or the heap, or gives to the depot) and when a free
// finds the cache empty, so that a thread that only frees returns its blocks too.
constinit thread_local chain cache;

struct reaper {
  bool armed = false;
  ~reaper() {
    while (cache.count > 0) {
      chain m;
      while (m.count < kMagazine && cache.count > 0) push(m, pop(cache));
      the_depot().give(m);
    }
  }
};
thread_local reaper cache_reaper;

inline void arm_reaper() noexcept { cache_reaper.armed = true; }

}  // namespace

task* allocate_task() {
  if (fault::should_fail(fault::point::task_alloc)) throw std::bad_alloc();
  chain& c = cache;
  if (c.count == 0) [[unlikely]] {
    arm_reaper();
    if (!the_depot().take(c)) {
      return ::new (::operator new(sizeof(task))) task;
    }
  }
  return pop(c);
}

void trim_heap_if_worthwhile() noexcept {
  // relaxed: see released_bytes.
  if (released_bytes.load(std::memory_order_relaxed) < kTrimThreshold) return;
  if (released_bytes.exchange(0, std::memory_order_relaxed) < kTrimThreshold) return;  // another worker trims
  ::malloc_trim(0);
}

void task_alloc_prepare_fork() noexcept { the_depot().lock(); }
void task_alloc_after_fork() noexcept { the_depot().unlock(); }

void free_task(task* t) noexcept {
  chain& c = cache;
  push(c, t);
  // A thread that only frees (a worker running tasks submitted elsewhere) never reaches the
  // other slow paths, yet must hand its cache back at exit: arm the reaper whenever the
  // cache goes from empty to one block.
  if (c.count == 1) [[unlikely]] arm_reaper();
  if (c.count >= 2 * kMagazine) [[unlikely]] {
    arm_reaper();
    chain m;
    while (m.count < kMagazine) push(m, pop(c));
    the_depot().give(m);
  }
}

}  // namespace weft::detail
