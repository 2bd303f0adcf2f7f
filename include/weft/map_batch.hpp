// weft/map_batch.hpp: a batch over a map, returning a map (seed 002's ProcessMap).
//
//   std::map<std::string, std::string> urls = ...;
//   auto r = weft::process_map(pool, urls, [](const std::string& name, const std::string& url) {
//     return fetch_size(url);
//   });
//   if (r.failed_key) log("first failure: ", *r.failed_key);  // fail_fast (the default)
//   for (auto& [name, size] : r.values) use(name, size);       // the results that are there
//
// One task per entry (a batch, weft/batch.hpp: same threads, costs, cancellation and
// closed-pool rules). fn is called through a const reference, concurrently, as
// fn(key, value), fn(key, value, std::stop_token), fn(entry) or fn(entry, std::stop_token);
// the map is used in place (not copied) and must not change during the call. Any map-like
// forward range of pairs works (std::map, std::unordered_map, a vector of pairs); the result
// map is a std::map<K, R> (an input with duplicate keys keeps one value, unspecified which).
// Nothing is thrown for a task's exception: the result says what happened to every key.
//   collect_all: every entry runs; `errors` holds every key whose task threw.
//   fail_fast (default): the first exception (completion order) cancels the entries not
//     started; failed_key/error name it; `values` holds the partial results (every entry
//     that finished before or despite the failure), `cancelled` the keys never run.
// The caller's token cancels the batch: its entries not started are in `cancelled`.
// Throws: pool_closed, std::bad_alloc (as run_batch); nothing of the batch is then running.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/batch.hpp"
#include "weft/detail/batch_impl.hpp"
#include "weft/pool.hpp"

namespace weft {

template <class K, class R>
struct map_results {
  std::map<K, R> values;                    // keys whose task returned
  std::map<K, std::exception_ptr> errors;   // keys whose task threw (fail_fast: the first, and any that threw after)
  std::vector<K> cancelled;                 // keys whose task never ran
  std::optional<K> failed_key;              // fail_fast: the key of the first failure
  std::exception_ptr error;                 // fail_fast: its exception

  // Every key has a value.
  bool complete() const noexcept { return errors.empty() && cancelled.empty(); }
};

namespace detail {

template <class I, class Fn, class R>
struct entry_call {
  const Fn* fn;
  I it;
  R operator()(std::stop_token token) {
    auto&& e = *it;
    if constexpr (std::is_invocable_v<const Fn&, decltype(e.first), decltype(e.second), std::stop_token>) {
      return std::invoke(*fn, e.first, e.second, std::move(token));
    } else if constexpr (std::is_invocable_v<const Fn&, decltype(e.first), decltype(e.second)>) {
      return std::invoke(*fn, e.first, e.second);
    } else if constexpr (std::is_invocable_v<const Fn&, decltype(e), std::stop_token>) {
      return std::invoke(*fn, e, std::move(token));
    } else {
      return std::invoke(*fn, e);
    }
  }
};

template <class E, class Fn>
auto entry_probe() {
  using K = decltype(std::declval<E&>().first);
  using V = decltype(std::declval<E&>().second);
  if constexpr (std::is_invocable_v<const Fn&, K&, V&, std::stop_token>) {
    return std::type_identity<std::invoke_result_t<const Fn&, K&, V&, std::stop_token>>{};
  } else if constexpr (std::is_invocable_v<const Fn&, K&, V&>) {
    return std::type_identity<std::invoke_result_t<const Fn&, K&, V&>>{};
  } else if constexpr (std::is_invocable_v<const Fn&, E&, std::stop_token>) {
    return std::type_identity<std::invoke_result_t<const Fn&, E&, std::stop_token>>{};
  } else if constexpr (std::is_invocable_v<const Fn&, E&>) {
    return std::type_identity<std::invoke_result_t<const Fn&, E&>>{};
  } else {
    return std::type_identity<not_a_batch_task>{};
  }
}

}  // namespace detail

template <class Map, class Fn>
auto process_map(pool& p, const Map& inputs, const Fn& fn, error_policy policy = error_policy::fail_fast,
                 std::stop_token token = {}) {
  using I = typename Map::const_iterator;
  using E = std::remove_reference_t<std::iter_reference_t<I>>;
  using K = std::remove_cv_t<decltype(std::declval<E&>().first)>;
  using R = typename decltype(detail::entry_probe<E, Fn>())::type;
  static_assert(!std::is_same_v<R, detail::not_a_batch_task>,
                "weft::process_map: fn must be callable through a const reference as fn(key, value), "
                "fn(key, value, std::stop_token), fn(entry) or fn(entry, std::stop_token)");
  static_assert(!std::is_void_v<R>, "weft::process_map: fn returns void; use weft::run_batch");
  static_assert(detail::check_batch_result<R>());

  map_results<K, R> out;
  const auto n = static_cast<std::size_t>(std::distance(inputs.begin(), inputs.end()));
  if (n == 0) return out;
  detail::result_sink<R> sink(n, policy == error_policy::fail_fast, token);
  detail::submit_elements(p, sink, inputs.begin(), inputs.end(),
                          [&fn](const I& it) { return detail::entry_call<I, Fn, R>{&fn, it}; });
  sink.wait_all();
  const std::exception_ptr& first = sink.control().first_error();
  std::size_t i = 0;
  for (auto it = inputs.begin(); it != inputs.end(); ++it, ++i) {
    outcome<R>& o = sink[i];
    if (o.has_value()) {
      out.values.insert_or_assign(it->first, std::move(o).value());
    } else if (o.cancelled()) {
      out.cancelled.push_back(it->first);
    } else {
      if (first && o.error() == first && !out.failed_key) {
        out.failed_key = it->first;
        out.error = first;
      }
      out.errors.insert_or_assign(it->first, o.error());
    }
  }
  return out;
}

}  // namespace weft
