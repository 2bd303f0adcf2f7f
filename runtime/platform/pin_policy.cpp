// runtime/platform/pin_policy.cpp: pin_policy <-> text, for WEFT_PIN and weft-topo.
#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "weft/options.hpp"

namespace weft {
namespace {

// Every accepted spelling. "explicit_list" (the enumerator's name) is accepted as an
// alias of "explicit" so that either the documentation or the code can be copied.
constexpr std::array<std::pair<std::string_view, pin_policy>, 5> kNames{{
    {"none", pin_policy::none},
    {"compact", pin_policy::compact},
    {"scatter", pin_policy::scatter},
    {"explicit", pin_policy::explicit_list},
    {"explicit_list", pin_policy::explicit_list},
}};

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view to_string(pin_policy p) noexcept {
  switch (p) {
    case pin_policy::none: return "none";
    case pin_policy::compact: return "compact";
    case pin_policy::scatter: return "scatter";
    case pin_policy::explicit_list: return "explicit";
  }
  return "invalid";  // only reachable through a cast of an out-of-range value
}

pin_policy parse_pin_policy(std::string_view text, std::string_view option) {
  for (const auto& [name, policy] : kNames) {
    if (equals_ignoring_case(text, name)) return policy;
  }
  std::string message(option);
  message += ": unknown pin policy \"";
  message += text;
  message += "\" (valid: none, compact, scatter, explicit)";
  throw std::invalid_argument(message);
}

}  // namespace weft
