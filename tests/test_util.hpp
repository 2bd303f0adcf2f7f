// tests/test_util.hpp: helpers shared by weft's tests.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

namespace weft_test {

// Multiplies a stress size by WEFT_STRESS_SCALE (CTest sets 0.05 in sanitizer builds).
inline std::uint64_t scaled(std::uint64_t n) {
  const char* s = std::getenv("WEFT_STRESS_SCALE");
  const double f = (s != nullptr && *s != '\0') ? std::strtod(s, nullptr) : 1.0;
  const auto v = static_cast<std::uint64_t>(static_cast<double>(n) * f);
  return v == 0 ? 1 : v;
}

}  // namespace weft_test
