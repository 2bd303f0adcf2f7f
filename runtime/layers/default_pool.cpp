// runtime/layers/default_pool.cpp: the library-scope pool (weft/default_pool.hpp).
//
// Lifetime. The pool is heap-allocated and owned by a function-local static holder, so it is
// created on first use (C++11 guarantees one thread constructs it, the others wait) and shut
// down by the holder's destructor during static destruction. The "retired" flag is a
// constant-initialized atomic (trivially destructible, so it is still there after every
// destructor ran): a default_pool() call from a later static destructor reads it and throws
// pool_closed instead of touching a destroyed pool.
//
// Shutdown never hangs: close(deadline) with a one-second grace runs what is queued if it
// fits, then cancels the rest and fires running tasks' tokens. If a task still runs after
// that (it ignores its token), waiting for it could hang the exit, so the pool is leaked
// instead of destroyed; the process ends its threads as it exits. The same if exit() is
// called from one of the pool's own workers (close would wait for itself: logic_error).
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>

#include "weft/default_pool.hpp"
#include "weft/pool.hpp"

namespace weft {

namespace {

constinit std::atomic<bool> retired{false};

pool_options default_options() {
  pool_options o;
  o.read_environment = true;  // WEFT_WORKERS / WEFT_PIN
  return o;
}

struct holder {
  pool* p = new pool(default_options());
  ~holder() {
    // release: pairs with the acquire in default_pool (a later caller throws).
    retired.store(true, std::memory_order_release);
    bool joined = false;
    try {
      joined = p->close(std::chrono::seconds(1));
    } catch (const std::logic_error&) {  // exit() on one of its workers
    }
    if (joined) delete p;  // otherwise leaked: see the top of the file
  }
  holder() = default;
  holder(const holder&) = delete;
  holder& operator=(const holder&) = delete;
};

}  // namespace

pool& default_pool() {
  static holder h;
  // acquire: pairs with the holder's release store.
  if (retired.load(std::memory_order_acquire)) {
    throw pool_closed("weft: the default pool has been shut down (program exit)");
  }
  return *h.p;
}

}  // namespace weft
