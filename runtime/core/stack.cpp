// runtime/core/stack.cpp: stack bounds and fresh stack segments (see stack.hpp).
#include "core/stack.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif
#ifdef WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace weft::detail {
namespace {

constexpr std::size_t kMinReserve = 256 * 1024;
constexpr std::size_t kDefaultStack = 8 * 1024 * 1024;

// The stack the thread is running on right now: [lo, lo + size). Zero until first needed.
struct bounds {
  std::uintptr_t lo = 0;
  std::size_t size = 0;
};
constinit thread_local bounds current;

std::size_t reserve_for(std::size_t size) noexcept;
void set_current(bounds b) noexcept {
  current = b;
  stack_limit = b.lo + reserve_for(b.size);
}

bounds thread_stack() noexcept {
  bounds b;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr != nullptr && size != 0) {
      b.lo = reinterpret_cast<std::uintptr_t>(addr);
      b.size = size;
    }
    pthread_attr_destroy(&attr);
  }
  if (b.size == 0) {  // unknown: assume the default below the current frame
    b.size = kDefaultStack;
    const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
    b.lo = here > b.size ? here - b.size + 64 * 1024 : 0;
  }
  return b;
}

std::size_t reserve_for(std::size_t size) noexcept { return std::max(kMinReserve, size / 4); }

// A mapped segment: a guard page at the low end, then `usable` bytes of stack.
struct segment {
  void* base = nullptr;  // the mapping, guard page first
  std::size_t mapped = 0;
  char* lo() const noexcept { return static_cast<char*>(base) + static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }
  std::size_t usable() const noexcept { return mapped - static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }
};

// Segments this thread has mapped, reused innermost-first; unmapped at thread exit.
struct segment_cache {
  std::vector<segment> free;
  ~segment_cache() {
    for (const segment& s : free) munmap(s.base, s.mapped);
  }
};
thread_local segment_cache cache;

bool take_segment(segment& out, std::size_t size) noexcept {
  if (!cache.free.empty()) {
    out = cache.free.back();
    cache.free.pop_back();
    return true;
  }
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t mapped = (size + page - 1) / page * page + page;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) return false;
  if (mprotect(p, page, PROT_NONE) != 0) {  // the guard page: an overflow faults, never corrupts
    munmap(p, mapped);
    return false;
  }
  out = segment{p, mapped};
  return true;
}

void give_segment(const segment& s) noexcept {
  try {
    cache.free.push_back(s);
  } catch (...) {
    munmap(s.base, s.mapped);
  }
}

// What the segment's entry function needs; handed over through a thread-local because
// makecontext passes only ints.
struct call {
  void (*fn)(void*);
  void* arg;
  ucontext_t* back;  // where to return
  ucontext_t* self;
  const void* back_lo;  // the caller's stack, for ASan's switch back
  std::size_t back_size;
  void* tsan_back;  // the caller's TSan fiber
};
constinit thread_local call* pending = nullptr;

void entry() noexcept {
  call* c = pending;
#ifdef WEFT_ASAN
  const void* from_lo = nullptr;
  std::size_t from_size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &from_lo, &from_size);
  c->back_lo = from_lo;
  c->back_size = from_size;
#endif
  c->fn(c->arg);
#ifdef WEFT_ASAN
  // nullptr: this context is never resumed (the segment is re-entered through makecontext).
  __sanitizer_start_switch_fiber(nullptr, c->back_lo, c->back_size);
#endif
#ifdef WEFT_TSAN
  __tsan_switch_to_fiber(c->tsan_back, 0);
#endif
  swapcontext(c->self, c->back);
}

}  // namespace

constinit thread_local std::uintptr_t stack_limit = 0;

bool stack_low_slow() noexcept {
  if (current.size == 0) set_current(thread_stack());
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) < stack_limit;
}

bool run_on_fresh_stack(void (*fn)(void*), void* arg) noexcept {
  if (current.size == 0) set_current(thread_stack());
  const bounds outer = current;
  segment seg;
  if (!take_segment(seg, std::max(outer.size, kDefaultStack))) return false;
  ucontext_t back;
  ucontext_t self;
  if (getcontext(&self) != 0) {
    give_segment(seg);
    return false;
  }
  self.uc_stack.ss_sp = seg.lo();
  self.uc_stack.ss_size = seg.usable();
  self.uc_link = nullptr;
  makecontext(&self, &entry, 0);
  call c{fn, arg, &back, &self, nullptr, 0, nullptr};
  pending = &c;
  set_current(bounds{reinterpret_cast<std::uintptr_t>(seg.lo()), seg.usable()});
#ifdef WEFT_TSAN
  c.tsan_back = __tsan_get_current_fiber();
  void* fiber = __tsan_create_fiber(0);
  __tsan_switch_to_fiber(fiber, 0);
#endif
#ifdef WEFT_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, seg.lo(), seg.usable());
#endif
  swapcontext(&back, &self);
#ifdef WEFT_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
#ifdef WEFT_TSAN
  __tsan_destroy_fiber(fiber);
#endif
  set_current(outer);
  give_segment(seg);
  return true;
}

}  // namespace weft::detail
