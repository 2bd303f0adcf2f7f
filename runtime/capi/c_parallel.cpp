// runtime/capi/c_parallel.cpp: weft_parallel_for and weft_parallel_reduce of the C API,
// over weft::parallel_for (chunk form) and weft::parallel_reduce.
//
// The reduction runs weft::parallel_reduce over chunk numbers 0 .. ceil(n / grain) - 1
// with a grain of one chunk: chunk c is [begin + c * grain, min(begin + (c + 1) * grain,
// end)), folded by the user's map into a copy of identity. weft's reduce tree halves the
// chunk numbers, which depends only on n and the grain, so the C result is deterministic
// exactly as the C++ one is. The values are opaque byte buffers (c_value).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "capi/capi.hpp"
#include "weft/parallel.hpp"

namespace weft::capi {
namespace {

using offset = std::uint64_t;

// [begin, end) as an unsigned count; begin <= end was checked. Two's complement
// subtraction in uint64 is exact for every pair of int64 with begin <= end.
offset count(std::int64_t begin, std::int64_t end) noexcept {
  return static_cast<offset>(end) - static_cast<offset>(begin);
}
std::int64_t at(std::int64_t begin, offset k) noexcept {
  return static_cast<std::int64_t>(static_cast<offset>(begin) + k);  // modular (C++20)
}

// Checks common to both loops; empty when fine, else why not.
const char* range_problem(weft_pool* p, std::int64_t begin, std::int64_t end, std::int64_t grain) noexcept {
  if (p == nullptr) return "pool is NULL";
  if (begin > end) return "begin is greater than end";
  if (grain < 0) return "grain is negative (0 picks the default)";
  return nullptr;
}

// A value of the user's type: `size` bytes, inline up to kInline, else on the heap;
// copied with memcpy. max_align_t alignment either way.
class c_value {
 public:
  static constexpr std::size_t kInline = 64;
  c_value(const void* src, std::size_t size) : size_(size) {
    // malloc, not new: a failed allocation is a status for the C caller, and the
    // sanitizers report a failed operator new as fatal even with allocator_may_return_null.
    if (size_ > kInline) {
      heap_.reset(std::malloc(size_));  // max_align_t alignment, like inline_
      if (!heap_) throw std::bad_alloc();
    }
    std::memcpy(data(), src, size_);
  }
  c_value(const c_value& o) : c_value(o.data(), o.size_) {}
  c_value(c_value&& o) noexcept : size_(o.size_), heap_(std::move(o.heap_)) {
    if (!heap_) std::memcpy(inline_, o.inline_, size_);
  }
  c_value& operator=(const c_value& o) {
    if (this != &o) *this = c_value(o);
    return *this;
  }
  c_value& operator=(c_value&& o) noexcept {
    size_ = o.size_;
    heap_ = std::move(o.heap_);
    if (!heap_) std::memcpy(inline_, o.inline_, size_);
    return *this;
  }
  void* data() noexcept { return heap_ ? heap_.get() : static_cast<void*>(inline_); }
  const void* data() const noexcept { return heap_ ? heap_.get() : static_cast<const void*>(inline_); }

 private:
  std::size_t size_;
  alignas(std::max_align_t) unsigned char inline_[kInline];
  struct free_bytes {
    void operator()(void* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<void, free_bytes> heap_;
};

}  // namespace
}  // namespace weft::capi

extern "C" {

weft_status weft_parallel_for(weft_pool* pool, int64_t begin, int64_t end, int64_t grain, weft_range_fn fn,
                              void* ctx) {
  using namespace weft::capi;
  constexpr const char* name = "weft_parallel_for";
  if (const char* why = range_problem(pool, begin, end, grain)) return fail(WEFT_INVALID_ARGUMENT, name, why);
  if (fn == nullptr) return fail(WEFT_INVALID_ARGUMENT, name, "fn is NULL");
  return guarded(name, [&] {
    const auto body = [fn, ctx](std::int64_t lo, std::int64_t hi) { invoke_user([&] { fn(lo, hi, ctx); }); };
    if (grain == 0) {
      weft::parallel_for(pool->pool, begin, end, body);
    } else {
      weft::parallel_for(pool->pool, begin, end, grain, body);
    }
    return WEFT_OK;
  });
}

weft_status weft_parallel_reduce(weft_pool* pool, int64_t begin, int64_t end, int64_t grain, size_t value_size,
                                 const void* identity, weft_reduce_map_fn map, weft_reduce_combine_fn combine,
                                 void* ctx, void* result) {
  using namespace weft::capi;
  constexpr const char* name = "weft_parallel_reduce";
  if (const char* why = range_problem(pool, begin, end, grain)) return fail(WEFT_INVALID_ARGUMENT, name, why);
  if (value_size == 0) return fail(WEFT_INVALID_ARGUMENT, name, "value_size is 0");
  // No object is larger than PTRDIFF_MAX: such a size is a bug in the caller, not a request.
  if (value_size > static_cast<std::size_t>(PTRDIFF_MAX)) {
    return fail(WEFT_INVALID_ARGUMENT, name, "value_size is larger than any object");
  }
  if (identity == nullptr || result == nullptr) return fail(WEFT_INVALID_ARGUMENT, name, "identity or result is NULL");
  if (map == nullptr || combine == nullptr) return fail(WEFT_INVALID_ARGUMENT, name, "map or combine is NULL");
  return guarded(name, [&] {
    const offset n = count(begin, end);
    const offset g = grain == 0 ? weft::detail::default_grain<offset>(n, pool->pool.size()) : static_cast<offset>(grain);
    const offset chunks = n / g + (n % g != 0 ? 1 : 0);
    const c_value id(identity, value_size);
    const auto map_chunk = [&](offset c) {
      c_value acc = id;
      const offset lo = c * g;  // < n: no overflow
      const offset len = std::min(g, n - lo);
      invoke_user([&] { map(at(begin, lo), at(begin, lo + len), acc.data(), ctx); });
      return acc;
    };
    const auto join = [&](c_value&& left, c_value&& right) {
      invoke_user([&] { combine(left.data(), right.data(), ctx); });
      return std::move(left);
    };
    const c_value r = weft::parallel_reduce(pool->pool, offset{0}, chunks, offset{1}, id, map_chunk, join);
    std::memcpy(result, r.data(), value_size);
    return WEFT_OK;
  });
}

}  // extern "C"
