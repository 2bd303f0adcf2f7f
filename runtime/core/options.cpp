// runtime/core/options.cpp: validation of pool_options and the environment overrides.
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "layers/lanes.hpp"
#include "core/pool_impl.hpp"
#include "platform/topology.hpp"

namespace weft::detail {
namespace {

constexpr int kMaxWorkers = 4096;
constexpr unsigned kMaxSpinRounds = 1'000'000;
// 2^20 slots are 8 MiB per worker, zero-filled when the pool starts. 2^30 (8 GiB per worker)
// used to be accepted and could not be allocated; a deque also grows on demand, so a
// larger initial capacity buys nothing.
constexpr std::size_t kMaxDequeCapacity = std::size_t{1} << 20;

[[noreturn]] void invalid(const std::string& option, const std::string& why) {
  throw std::invalid_argument("weft::pool_options::" + option + ": " + why);
}

int parse_workers_env(const char* text) {
  int value = 0;
  const char* end = text + std::char_traits<char>::length(text);
  const auto [ptr, ec] = std::from_chars(text, end, value);
  if (ec != std::errc() || ptr != end || value < 0) {
    throw std::invalid_argument(std::string("weft: environment variable WEFT_WORKERS must be a non-negative integer, got '") +
                                text + "'");
  }
  return value;
}

}  // namespace

pool_options resolve_options(pool_options o, const topology& topo) {
  if (o.read_environment) {
    if (const char* w = std::getenv("WEFT_WORKERS"); w != nullptr && *w != '\0') o.workers = parse_workers_env(w);
    if (const char* p = std::getenv("WEFT_PIN"); p != nullptr && *p != '\0') o.pinning = parse_pin_policy(p, "WEFT_PIN");
    if (const char* t = std::getenv("WEFT_TRACE"); t != nullptr && *t != '\0') o.trace_path = t;
  }
  if (o.workers < 0) invalid("workers", "must be >= 0 (0 means one per usable core), got " + std::to_string(o.workers));
  if (o.workers > kMaxWorkers) invalid("workers", "must be at most " + std::to_string(kMaxWorkers) + ", got " + std::to_string(o.workers));
  if (o.deque_capacity < 2 || o.deque_capacity > kMaxDequeCapacity || (o.deque_capacity & (o.deque_capacity - 1)) != 0) {
    invalid("deque_capacity", "must be a power of two in [2, 2^20], got " + std::to_string(o.deque_capacity));
  }
  if (o.spin_rounds > kMaxSpinRounds) invalid("spin_rounds", "must be at most 1000000, got " + std::to_string(o.spin_rounds));
  switch (o.pinning) {
    case pin_policy::none:
    case pin_policy::compact:
    case pin_policy::scatter:
      if (!o.pus.empty()) invalid("pus", "is only used with pin_policy::explicit_list; set pinning too");
      break;
    case pin_policy::explicit_list:
      if (o.pus.empty()) invalid("pus", "pin_policy::explicit_list needs a non-empty list of PUs");
      break;
    default:
      invalid("pinning", "is not a pin_policy value");
  }
  validate_lanes(o.lanes);
  // Messages built with append: g++ 12 warns (-Wrestrict, PR 105329) on chains of operator+.
  if (o.max_workers < 0 || o.max_workers > kMaxWorkers) {
    invalid("max_workers", std::string("must be in [0, 4096] (0 means `workers`), got ").append(std::to_string(o.max_workers)));
  }
  if (o.min_workers < 0) {
    invalid("min_workers", std::string("must be >= 1 (or 0: equal to max_workers), got ").append(std::to_string(o.min_workers)));
  }
  if (o.max_workers != 0 && o.workers != 0 && o.max_workers != o.workers) {
    invalid("max_workers", std::string("conflicts with workers (")
                               .append(std::to_string(o.workers))
                               .append(" vs ")
                               .append(std::to_string(o.max_workers))
                               .append("); set one of them"));
  }
  if (o.keep_alive <= std::chrono::nanoseconds::zero() || o.keep_alive > std::chrono::hours(24)) {
    invalid("keep_alive",
            std::string("must be > 0 and at most 24 h, got ").append(std::to_string(o.keep_alive.count())).append(" ns"));
  }
  if (o.metrics_sink && o.metrics_interval <= std::chrono::steady_clock::duration::zero()) {
    invalid("metrics_interval", std::string("must be > 0 when metrics_sink is set, got ")
                                    .append(std::to_string(o.metrics_interval.count()))
                                    .append(" ns"));
  }
  if (o.max_workers == 0) o.max_workers = o.workers;
  if (o.max_workers == 0) o.max_workers = static_cast<int>(usable_cores(topo));
  if (o.min_workers > o.max_workers) {
    invalid("min_workers", std::string("must be at most max_workers (")
                               .append(std::to_string(o.max_workers))
                               .append("), got ")
                               .append(std::to_string(o.min_workers)));
  }
  if (o.min_workers == 0) o.min_workers = o.max_workers;
  o.workers = o.max_workers;  // the slot count, used for everything sized per worker
  return o;
}

}  // namespace weft::detail
