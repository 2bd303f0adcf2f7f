// tests/fuzz/options_fuzz.cpp: libFuzzer target for pool_options validation, the environment
// overrides (WEFT_WORKERS, WEFT_PIN with read_environment) and weft::parse_pin_policy.
//
// Each input builds options (any int for workers and pinning, any size_t for the deque
// capacity, any spin_rounds, a few PUs, a name) and maybe sets the two variables, then
// constructs a pool. Construction must either succeed, and then run a task, or throw
// std::invalid_argument whose message names an option or variable that an independent
// oracle (below) also finds invalid; anything else (another exception, a crash, a hang) is
// a finding. Inputs that would start more than kMaxWorkers threads, or spin for long, are
// skipped to keep the fuzzer fast; the values above the validator's limits are still tried.
#include <fuzzer/FuzzedDataProvider.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "weft/weft.hpp"

namespace {

#define FUZZ_CHECK(cond, text)                                                                         \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      std::fprintf(stderr, "options_fuzz: %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, std::string(text).c_str()); \
      std::abort();                                                                                    \
    }                                                                                                  \
  } while (0)

constexpr int kMaxWorkers = 8;           // skip inputs that would start more threads
constexpr unsigned kMaxSpin = 256;       // skip valid spin_rounds above this (slow to close)
constexpr std::size_t kMaxCapacity = std::size_t{1} << 16;  // skip larger valid capacities
constexpr int kLimitWorkers = 4096;      // runtime/options.cpp
constexpr unsigned kLimitSpin = 1'000'000;
constexpr std::size_t kLimitCapacity = std::size_t{1} << 30;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The oracle's pin policy parser, written from the documentation, not from the code.
std::optional<weft::pin_policy> expected_policy(std::string_view s) {
  if (iequals(s, "none")) return weft::pin_policy::none;
  if (iequals(s, "compact")) return weft::pin_policy::compact;
  if (iequals(s, "scatter")) return weft::pin_policy::scatter;
  if (iequals(s, "explicit") || iequals(s, "explicit_list")) return weft::pin_policy::explicit_list;
  return std::nullopt;
}

void check_parse_pin_policy(const std::string& text, const std::string& option) {
  const std::optional<weft::pin_policy> want = expected_policy(text);
  try {
    const weft::pin_policy got = weft::parse_pin_policy(text, option);
    FUZZ_CHECK(want && *want == got, text);
    FUZZ_CHECK(expected_policy(weft::to_string(got)) == got, "to_string round trip");
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(!want, text);
    FUZZ_CHECK(std::string_view(e.what()).find(option) != std::string_view::npos, e.what());
  }
}

// Sets or clears an environment variable; a string with a NUL is cut there, as getenv sees it.
void set_env(const char* name, bool set, const std::string& value) {
  if (set) ::setenv(name, value.c_str(), 1);
  else ::unsetenv(name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  {
    const std::string option = in.ConsumeRandomLengthString(16);
    check_parse_pin_policy(in.ConsumeRandomLengthString(24), option.empty() ? "pinning" : option);
  }

  weft::pool_options o;
  o.workers = in.ConsumeIntegral<int>();
  o.pinning = static_cast<weft::pin_policy>(in.ConsumeIntegralInRange<int>(-1, 4));
  o.spin_rounds = in.ConsumeIntegral<unsigned>();
  o.deque_capacity = in.ConsumeBool() ? (std::size_t{1} << in.ConsumeIntegralInRange(0, 40)) : in.ConsumeIntegral<std::size_t>();
  for (unsigned n = in.ConsumeIntegralInRange(0u, 3u); n > 0; --n) o.pus.push_back(in.ConsumeIntegralInRange(0u, 64u));
  o.name = in.ConsumeRandomLengthString(24);
  o.read_environment = in.ConsumeBool();
  const bool set_workers = in.ConsumeBool();
  const std::string env_workers = in.ConsumeRandomLengthString(12).c_str();  // as getenv sees it
  const bool set_pin = in.ConsumeBool();
  const std::string env_pin = in.ConsumeRandomLengthString(16).c_str();

  // ---- the oracle: which options are invalid, from options.hpp's table ----
  std::vector<std::string_view> invalid;  // names that may appear in the message
  int workers = o.workers;
  weft::pin_policy pinning = o.pinning;
  bool pinning_known = true;
  if (o.read_environment && set_workers && !env_workers.empty()) {
    int v = 0;
    const char* end = env_workers.data() + env_workers.size();
    const auto [ptr, ec] = std::from_chars(env_workers.data(), end, v);
    if (ec != std::errc() || ptr != end || v < 0) invalid.push_back("WEFT_WORKERS");
    else workers = v;
  }
  if (o.read_environment && set_pin && !env_pin.empty()) {
    if (const auto p = expected_policy(env_pin)) {
      pinning = *p;
    } else {
      invalid.push_back("WEFT_PIN");
      pinning_known = false;
    }
  }
  if (invalid.empty()) {  // the environment is applied first; its errors come first
    if (workers < 0 || workers > kLimitWorkers) invalid.push_back("workers");
    const std::size_t cap = o.deque_capacity;
    if (cap < 2 || cap > kLimitCapacity || (cap & (cap - 1)) != 0) invalid.push_back("deque_capacity");
    if (o.spin_rounds > kLimitSpin) invalid.push_back("spin_rounds");
    const auto policy = static_cast<int>(pinning);
    if (pinning_known && (policy < 0 || policy > 3)) invalid.push_back("pinning");
    if (pinning_known && pinning != weft::pin_policy::explicit_list && policy >= 0 && policy <= 3 && !o.pus.empty()) {
      invalid.push_back("pus");
    }
    if (pinning == weft::pin_policy::explicit_list && o.pus.empty()) invalid.push_back("pus");
  }
  // explicit_list with PUs: valid only if the PUs are distinct and allowed here, which the
  // oracle does not know; either outcome is accepted, but an error must name "pus".
  const bool unknowable = invalid.empty() && pinning == weft::pin_policy::explicit_list;
  if (unknowable) invalid.push_back("pus");

  // Skip inputs that are valid but slow: many threads, or long spinning before a park.
  if (invalid.empty() || unknowable) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    if (workers > kMaxWorkers || (workers == 0 && cores > static_cast<unsigned>(kMaxWorkers))) return 0;
    if (o.spin_rounds > kMaxSpin) return 0;
    if (o.deque_capacity > kMaxCapacity) return 0;  // 2^30 slots per worker: gigabytes
  }

  set_env("WEFT_WORKERS", set_workers, env_workers);
  set_env("WEFT_PIN", set_pin, env_pin);
  try {
    weft::pool p(o);
    FUZZ_CHECK(invalid.empty() || unknowable, "accepted invalid options, e.g. " + std::string(invalid.front()));
    FUZZ_CHECK(p.submit([] { return 42; }).get() == 42, "a task did not run");
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(!invalid.empty(), std::string("rejected valid options: ") + e.what());
    const std::string_view what = e.what();
    const bool named = std::any_of(invalid.begin(), invalid.end(),
                                   [&](std::string_view name) { return what.find(name) != std::string_view::npos; });
    FUZZ_CHECK(named, std::string("message names none of the invalid options: ") + e.what());
  }
  ::unsetenv("WEFT_WORKERS");
  ::unsetenv("WEFT_PIN");
  return 0;
}
