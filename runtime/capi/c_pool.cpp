// runtime/capi/c_pool.cpp: weft_pool_* of the C API: configuration (ABI-extensible by its
// size field), lifecycle, post.
//
// Config ABI. A caller's weft_pool_config is `size` bytes long. Accepted sizes:
//   - the end of one of the fields below (an older header: a prefix of today's fields),
//     or sizeof(weft_pool_config) (today's, trailing padding included);
//   - larger (a newer header), up to kMaxConfigSize, if every byte past today's struct is
//     zero: the newer fields the caller left at zero (their init default in this library)
//     do not change behaviour, a non-zero one would be silently ignored, so it is rejected
//     (the rule of Linux's copy_struct_from_user for clone3/openat2).
// Anything else (a size inside a field, below the size field itself, or absurdly large) is
// garbage: WEFT_INVALID_ARGUMENT.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>
#include <string>

#include "capi/capi.hpp"

namespace weft::capi {
namespace {

constexpr std::size_t kMaxConfigSize = 4096;

#define WEFT_FIELD_END(f) (offsetof(weft_pool_config, f) + sizeof(weft_pool_config::f))
constexpr std::size_t kFieldEnds[] = {
    WEFT_FIELD_END(size),           WEFT_FIELD_END(workers),     WEFT_FIELD_END(pinning),
    WEFT_FIELD_END(pus),            WEFT_FIELD_END(pu_count),    WEFT_FIELD_END(name),
    WEFT_FIELD_END(spin_rounds),    WEFT_FIELD_END(read_environment), WEFT_FIELD_END(deque_capacity),
    WEFT_FIELD_END(capacity),       WEFT_FIELD_END(when_full),
};
#undef WEFT_FIELD_END
static_assert(kFieldEnds[std::size(kFieldEnds) - 1] <= sizeof(weft_pool_config));

// Null when `size` can be the size of some version's weft_pool_config (see the top), else
// why not.
const char* size_shape_problem(std::size_t size) noexcept {
  if (size < sizeof(std::size_t)) return "config->size is smaller than the size field itself";
  if (size > kMaxConfigSize) return "config->size is implausibly large (not a weft_pool_config?)";
  if (size >= sizeof(weft_pool_config)) return nullptr;
  for (std::size_t end : kFieldEnds) {
    if (size == end) return nullptr;
  }
  return "config->size ends inside a field (not a size any weft.h has produced)";
}

// Null when the caller's config of `size` bytes can be read (see the top), else why not.
const char* size_problem(const weft_pool_config* c, std::size_t size) noexcept {
  if (const char* why = size_shape_problem(size)) return why;
  if (size > sizeof(weft_pool_config)) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(c);
    const bool zero = std::all_of(bytes + sizeof(weft_pool_config), bytes + size, [](unsigned char b) { return b == 0; });
    if (!zero) return "config sets fields this version of libweft does not know (non-zero bytes past its struct)";
  }
  return nullptr;
}

weft_pool_config defaults() noexcept {
  weft_pool_config c{};
  c.size = sizeof c;
  c.workers = 0;
  c.pinning = WEFT_PIN_COMPACT;
  c.pus = nullptr;
  c.pu_count = 0;
  c.name = nullptr;
  c.spin_rounds = 64;
  c.read_environment = 0;
  c.deque_capacity = 256;
  c.capacity = 0;
  c.when_full = WEFT_FULL_REJECT;
  return c;
}

pool_options to_options(const weft_pool_config& c) {
  pool_options o;
  o.workers = c.workers;
  switch (c.pinning) {
    case WEFT_PIN_NONE: o.pinning = pin_policy::none; break;
    case WEFT_PIN_COMPACT: o.pinning = pin_policy::compact; break;
    case WEFT_PIN_SCATTER: o.pinning = pin_policy::scatter; break;
    case WEFT_PIN_EXPLICIT: o.pinning = pin_policy::explicit_list; break;
    default:
      throw std::invalid_argument("pinning: " + std::to_string(c.pinning) + " is not a weft_pin_policy");
  }
  if (c.pu_count != 0 && c.pus == nullptr) throw std::invalid_argument("pus: NULL with pu_count > 0");
  if (c.pus != nullptr) o.pus.assign(c.pus, c.pus + c.pu_count);
  if (c.name != nullptr) o.name = c.name;
  o.spin_rounds = c.spin_rounds;
  o.read_environment = c.read_environment != 0;
  o.deque_capacity = c.deque_capacity;
  o.capacity = c.capacity;
  switch (c.when_full) {
    case WEFT_FULL_REJECT: o.when_full = full_policy::reject; break;
    case WEFT_FULL_BLOCK: o.when_full = full_policy::block; break;
    case WEFT_FULL_CALLER_RUNS: o.when_full = full_policy::caller_runs; break;
    case WEFT_FULL_DISCARD_OLDEST: o.when_full = full_policy::discard_oldest; break;
    default:
      throw std::invalid_argument("when_full: " + std::to_string(c.when_full) + " is not a weft_full_policy");
  }
  return o;
}

weft_status submit(const char* fn_name, weft_pool* p, weft_task_fn fn, void* ctx, weft_ctx_dtor dtor, bool try_only) {
  c_callback cb(fn, ctx, dtor);  // owns ctx from here: every return below releases it once
  if (p == nullptr) return fail(WEFT_INVALID_ARGUMENT, fn_name, "pool is NULL");
  if (fn == nullptr) return fail(WEFT_INVALID_ARGUMENT, fn_name, "fn is NULL");
  return guarded(fn_name, [&] {
    if (!try_only) {
      p->pool.post(std::move(cb));  // consumes cb even when it throws
      return WEFT_OK;
    }
    switch (p->pool.try_post(std::move(cb))) {
      case submit_status::accepted:
        return WEFT_OK;
      case submit_status::full:
        return fail(WEFT_QUEUE_FULL, fn_name, "the pool's queue is at capacity");
      case submit_status::closed:
        break;
    }
    return fail(WEFT_SHUT_DOWN, fn_name, "the pool is closed and accepts no new tasks");
  });
}

}  // namespace
}  // namespace weft::capi

extern "C" {

weft_status weft_pool_config_init_size(weft_pool_config* config, size_t size) {
  using namespace weft::capi;
  if (config == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_pool_config_init_size", "config is NULL");
  if (const char* why = size_shape_problem(size)) return fail(WEFT_INVALID_ARGUMENT, "weft_pool_config_init_size", why);
  const weft_pool_config d = defaults();
  std::memcpy(config, &d, std::min(size, sizeof d));
  if (size > sizeof d) std::memset(reinterpret_cast<unsigned char*>(config) + sizeof d, 0, size - sizeof d);
  config->size = size;
  return WEFT_OK;
}

weft_status weft_pool_create(const weft_pool_config* config, weft_pool** out) {
  using namespace weft::capi;
  constexpr const char* fn = "weft_pool_create";
  if (out == nullptr) return fail(WEFT_INVALID_ARGUMENT, fn, "out is NULL");
  *out = nullptr;
  weft_pool_config c = defaults();
  if (config != nullptr) {
    if (const char* why = size_problem(config, config->size)) return fail(WEFT_INVALID_ARGUMENT, fn, why);
    std::memcpy(&c, config, std::min(config->size, sizeof c));
    c.size = sizeof c;
  }
  return guarded(fn, [&] {
    *out = new weft_pool(to_options(c));
    return WEFT_OK;
  });
}

weft_status weft_pool_close(weft_pool* pool) {
  using namespace weft::capi;
  if (pool == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_pool_close", "pool is NULL");
  return guarded("weft_pool_close", [&] {
    pool->pool.close();  // std::logic_error on one of its own workers
    return WEFT_OK;
  });
}

weft_status weft_pool_close_timeout(weft_pool* pool, int64_t timeout_ns) {
  using namespace weft::capi;
  constexpr const char* fn = "weft_pool_close_timeout";
  if (pool == nullptr) return fail(WEFT_INVALID_ARGUMENT, fn, "pool is NULL");
  return guarded(fn, [&] {
    // close(duration) saturates: INT64_MAX ns (292 years) is no limit, <= 0 stops at once.
    if (pool->pool.close(std::chrono::nanoseconds(timeout_ns))) return WEFT_OK;
    return fail(WEFT_TIMED_OUT, fn, "the limit passed before the drain completed; queued tasks were cancelled");
  });
}

weft_status weft_pool_destroy(weft_pool* pool) {
  using namespace weft::capi;
  if (pool == nullptr) return fail(WEFT_INVALID_ARGUMENT, "weft_pool_destroy", "pool is NULL");
  return guarded("weft_pool_destroy", [&] {
    // Close first: on one of the pool's own workers close() throws std::logic_error (and
    // nothing is freed), where ~pool would have to terminate.
    pool->pool.close();
    delete pool;
    return WEFT_OK;
  });
}

size_t weft_pool_size(const weft_pool* pool) {
  if (pool == nullptr) {
    weft::capi::fail(WEFT_INVALID_ARGUMENT, "weft_pool_size", "pool is NULL");
    return 0;
  }
  return pool->pool.size();
}

weft_status weft_pool_post(weft_pool* pool, weft_task_fn fn, void* ctx, weft_ctx_dtor dtor) {
  return weft::capi::submit("weft_pool_post", pool, fn, ctx, dtor, false);
}

weft_status weft_pool_try_post(weft_pool* pool, weft_task_fn fn, void* ctx, weft_ctx_dtor dtor) {
  return weft::capi::submit("weft_pool_try_post", pool, fn, ctx, dtor, true);
}

}  // extern "C"
