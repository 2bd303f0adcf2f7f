// runtime/layers/coro.cpp: what weft::task (weft/coro.hpp) needs from the core: pushing a
// continuation onto the current worker's deque, popping it back, and frame memory.
//
// The layer uses only the worker's owner-side interface (spawn, pop_own, requeue); the
// join protocol itself lives in weft/detail/coro_promise.hpp.
//
// Frame cache. Coroutine frames are allocated where a task is created and freed where it
// ends, which is mostly the same worker (a stolen parent creates its next children on the
// thief). Each thread keeps one LIFO free list per 64-byte size class up to kMaxCached
// bytes, at most kListMax blocks each; a list that is full sends the block back to the heap,
// an empty one takes a fresh block from it. In steady state (the same frame sizes over and
// over) no heap call is made. Unlike task blocks there is no shared depot: frames move
// between threads only with steals, far less often than task blocks with spawns.
// The cache is trivially destructible and constant-initialised (no init guard on the hot
// path); `reaper`, touched on the slow paths only, returns it to the heap at thread exit.
#include <cstddef>
#include <new>
#include <type_traits>

#include "weft/detail/coro_promise.hpp"
#include "core/worker.hpp"

namespace weft::detail::coro {

bool push_continuation(task* t) noexcept {
  worker* w = tls_worker;
  if (w == nullptr) return false;
  try {
    w->spawn(t);  // sets the block's region; the full T1 wake-up check (sleep.hpp)
  } catch (...) {  // the deque could not grow: the caller runs the child as a plain call
    return false;
  }
  return true;
}

bool pop_continuation(const task* expected) noexcept {
  worker* w = tls_worker;
  if (w == nullptr) return false;
  task* t = nullptr;
  if (!w->pop_own(t)) return false;
  if (t == expected) return true;
  // Something pushed after the parent's block (a post() from the child, say) or a task
  // below a stolen one: not ours. Back where it was; the parent's block, if still queued,
  // goes through exec (F3 of coro_promise.hpp).
  w->requeue(t);
  return false;
}

namespace {

constexpr std::size_t kGranule = 64;
constexpr std::size_t kMaxCached = 2048;
constexpr std::size_t kClasses = kMaxCached / kGranule;
constexpr std::uint32_t kListMax = 1024;

struct free_block {
  free_block* next;
};

struct frame_cache {
  free_block* head[kClasses];
  std::uint32_t count[kClasses];
};
static_assert(std::is_trivially_destructible_v<frame_cache>);

constinit thread_local frame_cache cache{};

struct reaper {
  bool armed = false;
  ~reaper() {
    for (std::size_t c = 0; c < kClasses; ++c) {
      while (free_block* b = cache.head[c]) {
        cache.head[c] = b->next;
        ::operator delete(static_cast<void*>(b));
      }
      cache.count[c] = 0;
    }
  }
};
thread_local reaper cache_reaper;

inline std::size_t class_of(std::size_t n) noexcept { return (n - 1) / kGranule; }

}  // namespace

void* allocate_frame(std::size_t n) {
  if (n == 0 || n > kMaxCached) return ::operator new(n);
  const std::size_t c = class_of(n);
  frame_cache& fc = cache;
  if (free_block* b = fc.head[c]) [[likely]] {
    fc.head[c] = b->next;
    --fc.count[c];
    return b;
  }
  cache_reaper.armed = true;
  return ::operator new((c + 1) * kGranule);
}

void free_frame(void* p, std::size_t n) noexcept {
  if (n == 0 || n > kMaxCached) {
    ::operator delete(p);
    return;
  }
  const std::size_t c = class_of(n);
  frame_cache& fc = cache;
  if (fc.count[c] >= kListMax) [[unlikely]] {
    ::operator delete(p);
    return;
  }
  // A thread that only frees (it ends frames created elsewhere) must return them at exit too.
  if (fc.count[c] == 0) [[unlikely]] cache_reaper.armed = true;
  auto* b = static_cast<free_block*>(p);
  b->next = fc.head[c];
  fc.head[c] = b;
  ++fc.count[c];
}

}  // namespace weft::detail::coro
