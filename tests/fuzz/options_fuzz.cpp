// tests/fuzz/options_fuzz.cpp: libFuzzer target for pool_options validation, the environment
// overrides (WEFT_WORKERS, WEFT_PIN with read_environment) and weft::parse_pin_policy.
//
// Each input builds options (any int for workers, every pin policy and two invalid values,
// any size_t for the deque capacity, any spin_rounds, a few PUs, a name) and maybe sets the
// two variables, then constructs a pool. Construction must either succeed, and then run a
// task, or throw std::invalid_argument whose message names an option or variable that an
// independent oracle (judge, below) also finds invalid; anything else (another exception, a
// crash, a hang) is a finding. Valid inputs that would start more than kMaxWorkers threads,
// spin for long or allocate huge deques are skipped to keep the fuzzer fast; the values
// beyond the validator's limits are still tried.
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
constexpr int kLimitWorkers = 4096;      // runtime/core/options.cpp
constexpr unsigned kLimitSpin = 1'000'000;
constexpr std::size_t kLimitCapacity = std::size_t{1} << 20;

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
    // what() is a C string: the message is the option's name up to its first NUL, if any.
    const std::string named = option.substr(0, option.find('\0'));
    FUZZ_CHECK(std::string_view(e.what()).find(named) != std::string_view::npos, e.what());
  }
}

// Sets or clears an environment variable; a string with a NUL is cut there, as getenv sees it.
void set_env(const char* name, bool set, const std::string& value) {
  if (set) ::setenv(name, value.c_str(), 1);
  else ::unsetenv(name);
}

struct input {
  weft::pool_options o;
  bool set_workers = false, set_pin = false;
  std::string env_workers, env_pin;  // as getenv would return them (cut at a NUL)
};

input read_input(FuzzedDataProvider& in) {
  input i;
  i.o.workers = in.ConsumeIntegral<int>();
  i.o.pinning = static_cast<weft::pin_policy>(in.ConsumeIntegralInRange<int>(-1, 4));
  i.o.spin_rounds = in.ConsumeIntegral<unsigned>();
  i.o.deque_capacity =
      in.ConsumeBool() ? (std::size_t{1} << in.ConsumeIntegralInRange(0, 40)) : in.ConsumeIntegral<std::size_t>();
  for (unsigned n = in.ConsumeIntegralInRange(0u, 3u); n > 0; --n) i.o.pus.push_back(in.ConsumeIntegralInRange(0u, 64u));
  i.o.name = in.ConsumeRandomLengthString(24);
  i.o.read_environment = in.ConsumeBool();
  i.set_workers = in.ConsumeBool();
  i.env_workers = in.ConsumeRandomLengthString(12).c_str();
  i.set_pin = in.ConsumeBool();
  i.env_pin = in.ConsumeRandomLengthString(16).c_str();
  return i;
}

// The oracle's judgement, from options.hpp's table.
struct verdict {
  std::vector<std::string_view> invalid;  // names the error message may name
  bool unknowable = false;                // explicit_list with PUs: depends on this machine
  int workers = 0;                        // after the environment
};

verdict judge(const input& i) {
  verdict v;
  v.workers = i.o.workers;
  weft::pin_policy pinning = i.o.pinning;
  if (i.o.read_environment && i.set_workers && !i.env_workers.empty()) {
    int n = 0;
    const char* end = i.env_workers.data() + i.env_workers.size();
    const auto [ptr, ec] = std::from_chars(i.env_workers.data(), end, n);
    if (ec != std::errc() || ptr != end || n < 0) v.invalid.push_back("WEFT_WORKERS");
    else v.workers = n;
  }
  if (i.o.read_environment && i.set_pin && !i.env_pin.empty()) {
    if (const auto p = expected_policy(i.env_pin)) {
      pinning = *p;
    } else {
      v.invalid.push_back("WEFT_PIN");
    }
  }
  if (!v.invalid.empty()) return v;  // the environment is applied first; its errors come first
  if (v.workers < 0 || v.workers > kLimitWorkers) v.invalid.push_back("workers");
  const std::size_t cap = i.o.deque_capacity;
  if (cap < 2 || cap > kLimitCapacity || (cap & (cap - 1)) != 0) v.invalid.push_back("deque_capacity");
  if (i.o.spin_rounds > kLimitSpin) v.invalid.push_back("spin_rounds");
  const bool policy_valid = static_cast<int>(pinning) >= 0 && static_cast<int>(pinning) <= 3;
  if (!policy_valid) v.invalid.push_back("pinning");
  if (policy_valid && pinning != weft::pin_policy::explicit_list && !i.o.pus.empty()) v.invalid.push_back("pus");
  if (pinning == weft::pin_policy::explicit_list && i.o.pus.empty()) v.invalid.push_back("pus");
  // explicit_list with PUs: valid only if they are distinct and allowed here, which the
  // oracle does not know; either outcome is accepted, but an error must name "pus".
  if (v.invalid.empty() && pinning == weft::pin_policy::explicit_list) {
    v.unknowable = true;
    v.invalid.push_back("pus");
  }
  return v;
}

// Valid but slow: many threads, long spinning before a park, or huge deques.
bool too_slow(const input& i, const verdict& v) {
  if (!v.invalid.empty() && !v.unknowable) return false;  // rejected before any thread starts
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  return v.workers > kMaxWorkers || (v.workers == 0 && cores > static_cast<unsigned>(kMaxWorkers)) ||
         i.o.spin_rounds > kMaxSpin || i.o.deque_capacity > kMaxCapacity;
}

void construct(const input& i, const verdict& v) {
  set_env("WEFT_WORKERS", i.set_workers, i.env_workers);
  set_env("WEFT_PIN", i.set_pin, i.env_pin);
  try {
    weft::pool p(i.o);
    FUZZ_CHECK(v.invalid.empty() || v.unknowable, "accepted invalid options, e.g. " + std::string(v.invalid.front()));
    FUZZ_CHECK(p.submit([] { return 42; }).get() == 42, "a task did not run");
  } catch (const std::invalid_argument& e) {
    FUZZ_CHECK(!v.invalid.empty(), std::string("rejected valid options: ") + e.what());
    const std::string_view what = e.what();
    const bool named = std::any_of(v.invalid.begin(), v.invalid.end(),
                                   [&](std::string_view name) { return what.find(name) != std::string_view::npos; });
    FUZZ_CHECK(named, std::string("message names none of the invalid options: ") + e.what());
  }
  ::unsetenv("WEFT_WORKERS");
  ::unsetenv("WEFT_PIN");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string option = in.ConsumeRandomLengthString(16);
  check_parse_pin_policy(in.ConsumeRandomLengthString(24), option.empty() ? "pinning" : option);
  const input i = read_input(in);
  const verdict v = judge(i);
  if (!too_slow(i, v)) construct(i, v);
  return 0;
}
