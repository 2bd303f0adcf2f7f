// weft/default_pool.hpp: a library-scope pool, and submission to it in one call.
//
//   weft::post([] { log_flush(); });                       // default_pool().post
//   auto f = weft::submit([] { return 6 * 7; });           // default_pool().submit
//   weft::post("user-123", [] { notify(); });              // serial per key
//   auto g = weft::submit(42, [](std::stop_token) { ... });
//
// default_pool() is created on first use (thread-safe: a function-local static), with
// default pool_options (one worker per usable core, compact pinning) except that
// read_environment is on, so WEFT_WORKERS / WEFT_PIN can size it without a code change.
//
// Keyed submission goes through default_keyed<K>(), a weft::keyed<K> over default_pool():
//   - string-like keys (std::string, std::string_view, const char*): default_keyed<std::string>();
//   - integral keys (any integer type, any signedness): default_keyed<std::uint64_t>(), the
//     value converted to 64 bits; so 5, 5u and 5ull are one key, and -1 and UINT64_MAX too.
// The two key spaces are separate: "5" and 5 are different keys. Other key types:
// default_keyed<MyKey>() gives a serializer of its own for each type.
//
// At exit (static destruction), in reverse order of creation: each default serializer is
// stopped (queued jobs cancelled, tokens fired) and given up to one second for its running
// jobs; then the default pool is closed with a one-second deadline: tasks already queued run
// if they fit in it, the rest are cancelled and running tasks' tokens fire. Whatever still
// runs after that (a job that ignores its token) is abandoned, not waited for: the objects
// are leaked and the process exits anyway (its threads end with it). So returning from main
// with work still queued never hangs. A call after the shutdown (from another static's
// destructor) throws pool_closed. A default serializer is created after the default pool,
// so it is destroyed before it.
//
// fork(): a default pool (or serializer) created before fork() is unusable in the child,
// like every pool (submissions throw pool_closed; see runtime/platform/fork.hpp), and is not
// replaced there: a child that needs a pool creates its own. A child that never touches
// them exits normally (the exit-time shutdown returns at once in a child).
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "weft/keyed.hpp"
#include "weft/pool.hpp"

namespace weft {

// The library-scope pool. Throws pool_closed once it has been shut down at exit.
pool& default_pool();

namespace detail {
template <class Key>
inline constinit std::atomic<bool> default_keyed_retired{false};  // trivially destructible: readable at any time

template <class Key>
struct default_keyed_holder {
  keyed<Key>* k;
  default_keyed_holder() : k(new keyed<Key>(default_pool())) {}
  ~default_keyed_holder() {
    // release: pairs with the acquire in default_keyed (a late caller sees it and throws).
    default_keyed_retired<Key>.store(true, std::memory_order_release);
    k->stop();
    if (k->wait_idle_for(std::chrono::seconds(1))) delete k;  // else leaked: a job ignores its token
  }
  default_keyed_holder(const default_keyed_holder&) = delete;
  default_keyed_holder& operator=(const default_keyed_holder&) = delete;
};

template <class K>
concept string_key = std::convertible_to<K, std::string_view> && !std::integral<std::remove_cvref_t<K>>;
template <class K>
concept integral_key = std::integral<std::remove_cvref_t<K>> && !std::same_as<std::remove_cvref_t<K>, bool>;
}  // namespace detail

// The default serializer for keys of type Key, over default_pool(); created on first use.
// Throws pool_closed once it has been shut down at exit.
template <class Key>
keyed<Key>& default_keyed() {
  static detail::default_keyed_holder<Key> holder;
  // acquire: pairs with the holder's release store.
  if (detail::default_keyed_retired<Key>.load(std::memory_order_acquire)) {
    throw pool_closed("weft: the default keyed serializer has been shut down (program exit)");
  }
  return *holder.k;
}

// ---- one-call submission ----
template <class F>
void post(F&& f) {
  default_pool().post(std::forward<F>(f));
}
template <class F>
auto submit(F&& f) {
  return default_pool().submit(std::forward<F>(f));
}

template <detail::string_key K, class F>
void post(K&& key, F&& f) {
  default_keyed<std::string>().post(std::string(std::string_view(key)), std::forward<F>(f));
}
template <detail::string_key K, class F>
auto submit(K&& key, F&& f) {
  return default_keyed<std::string>().submit(std::string(std::string_view(key)), std::forward<F>(f));
}
template <detail::integral_key K, class F>
void post(K key, F&& f) {
  default_keyed<std::uint64_t>().post(static_cast<std::uint64_t>(key), std::forward<F>(f));
}
template <detail::integral_key K, class F>
auto submit(K key, F&& f) {
  return default_keyed<std::uint64_t>().submit(static_cast<std::uint64_t>(key), std::forward<F>(f));
}

}  // namespace weft
