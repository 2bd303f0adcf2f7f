// tests/unit/full_policy_util.hpp: helpers shared by lane_policy_test.cpp and
// key_policy_test.cpp (full_policy on the layers' bounds).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "watchdog.hpp"
#include "weft/errors.hpp"
#include "weft/full_policy.hpp"

namespace full_policy_test {

using namespace std::chrono_literals;
using weft::full_policy;
using weft_test::run_in_child;

inline void expect_passes(const std::function<void()>& scenario, std::chrono::seconds limit = 60s) {
  const auto r = run_in_child(scenario, limit);
  EXPECT_TRUE(r.passed()) << r.describe();
}

// True once `f` holds, polling for up to `limit` (false: it never did).
template <class F>
bool eventually(F f, std::chrono::seconds limit = 20s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!f()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

template <class E, class F>
bool throws(F&& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

inline const char* name_of(full_policy p) {
  switch (p) {
    case full_policy::reject:
      return "reject";
    case full_policy::block:
      return "block";
    case full_policy::caller_runs:
      return "caller_runs";
    case full_policy::discard_oldest:
      return "discard_oldest";
  }
  return "unknown";
}

}  // namespace full_policy_test
