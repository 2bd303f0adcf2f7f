// runtime/task_alloc.cpp: task blocks from per-thread caches over a shared depot.
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
#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

#include "fault.hpp"
#include "fork.hpp"
#include "weft/detail/task.hpp"

namespace weft::detail {
namespace {

constexpr std::size_t kMagazine = 256;
constexpr std::size_t kDepotMax = 64;

struct chain {
  task* head = nullptr;
  std::size_t count = 0;
};

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

void release_chain(task* head) noexcept {
  while (head != nullptr) {
    task* next = head->next;
    ::operator delete(static_cast<void*>(head), std::align_val_t{alignof(task)});
    head = next;
  }
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

struct thread_cache {
  chain free;
  ~thread_cache() {
    while (free.count > 0) {
      chain m;
      while (m.count < kMagazine && free.count > 0) push(m, pop(free));
      the_depot().give(m);
    }
  }
};

thread_local thread_cache cache;

}  // namespace

task* allocate_task() {
  if (fault::should_fail(fault::point::task_alloc)) throw std::bad_alloc();
  chain& c = cache.free;
  if (c.count == 0 && !the_depot().take(c)) {
    return ::new (::operator new(sizeof(task), std::align_val_t{alignof(task)})) task;
  }
  return pop(c);
}

void task_alloc_prepare_fork() noexcept { the_depot().lock(); }
void task_alloc_after_fork() noexcept { the_depot().unlock(); }

void free_task(task* t) noexcept {
  chain& c = cache.free;
  push(c, t);
  if (c.count >= 2 * kMagazine) {
    chain m;
    while (m.count < kMagazine) push(m, pop(c));
    the_depot().give(m);
  }
}

}  // namespace weft::detail
