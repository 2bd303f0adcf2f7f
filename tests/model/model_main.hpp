// tests/model/model_main.hpp: the command line shared by the model-check executables.
//
//   <model> NAME [SCHEDULER]              run a check that must pass: exit 0 when Relacy
//                                          finds nothing, 1 when it reports a failure
//   <model> --negative NAME [SCHEDULER]   run a negative: a deliberately broken variant that
//                                          Relacy must catch
//   <model> --list                         list the checks with their default schedulers
//   <model> --registered NAME...           exit 0 iff NAME... are exactly the checks (CMake
//                                          runs this, so a check cannot go unregistered)
// SCHEDULER overrides the check's default, for deeper runs by hand:
//   --full            full search (every interleaving and every value a load may return)
//   --bound K         context-bound search: at most K preemptions per execution
//   --random N        N random executions
//
// A negative exits 1 only when Relacy reports one of the failures listed for it, and 0 in
// every other case: it passes, it fails for another reason, or NAME is not a negative (a
// typo). CTest runs negatives with WILL_FAIL, so a model checker that silently stops
// checking, or a negative that breaks for the wrong reason, turns the suite red.
#pragma once

#include "relacy_sync.hpp"  // first: see its header comment

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace weft::model {

struct check {
  std::string_view name;
  bool (*simulate)(rl::test_params&);       // rl::simulate<Suite>
  rl::scheduler_type_e scheduler;
  rl::iteration_t iterations;               // random scheduler only; tree searches run to the end
  unsigned context_bound;                   // context-bound scheduler only
  std::vector<rl::test_result_e> must_find; // empty: must pass; else: a negative
};

inline std::string describe(rl::scheduler_type_e s, rl::iteration_t iterations, unsigned bound) {
  switch (s) {
    case rl::sched_random: return "random scheduler, " + std::to_string(iterations) + " iterations";
    case rl::sched_bound: return "context-bound scheduler, bound " + std::to_string(bound);
    case rl::sched_full: return "full-search scheduler";
    default: return "?";
  }
}

inline int run_checks(int argc, char** argv, std::span<const check> checks) {
  if (argc < 2 || std::string_view(argv[1]) == "--list") {
    for (const check& c : checks) {
      std::cout << c.name << ": " << describe(c.scheduler, c.iterations, c.context_bound)
                << (c.must_find.empty() ? "" : " (negative)") << "\n";
    }
    return argc < 2 ? 2 : 0;
  }
  if (std::string_view(argv[1]) == "--registered") {
    std::vector<std::string_view> given(argv + 2, argv + argc);
    bool same = given.size() == checks.size();
    for (const check& c : checks) {
      if (std::find(given.begin(), given.end(), c.name) == given.end()) {
        std::cout << "check '" << c.name << "' is not registered with CTest (tests/model/CMakeLists.txt)\n";
        same = false;
      }
    }
    for (std::string_view g : given) {
      bool known = false;
      for (const check& c : checks) known = known || c.name == g;
      if (!known) {
        std::cout << "CTest registers '" << g << "', which is not a check\n";
        same = false;
      }
    }
    return same ? 0 : 1;
  }
  const bool negative = std::string_view(argv[1]) == "--negative";
  if (negative) {
    ++argv;
    --argc;
    if (argc < 2) return 0;
  }
  const std::string_view name = argv[1];
  for (const check& c : checks) {
    if (c.name != name) continue;
    if (negative != !c.must_find.empty()) {
      std::cout << name << (negative ? " is not a negative check" : " is a negative check: use --negative") << std::endl;
      return negative ? 0 : 2;
    }
    struct null_buf : std::streambuf {
      int overflow(int ch) override { return ch; }
    } nb;
    std::ostream null_out(&nb);
    rl::test_params p;
    p.search_type = c.scheduler;
    p.iteration_count = c.iterations;
    p.context_bound = c.context_bound;
    p.execution_depth_limit = 20000;
    p.progress_stream = &null_out;
    if (argc > 2) {
      const std::string_view how = argv[2];
      const unsigned long long n = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 0;
      if (how == "--full") {
        p.search_type = rl::sched_full;
      } else if (how == "--bound" && n > 0) {
        p.search_type = rl::sched_bound;
        p.context_bound = static_cast<unsigned>(n);
      } else if (how == "--random" && n > 0) {
        p.search_type = rl::sched_random;
        p.iteration_count = n;
      } else {
        std::cout << "bad scheduler option (--full, --bound K, --random N)" << std::endl;
        return negative ? 0 : 2;
      }
    }
    std::cout << "model check " << c.name << ": " << describe(p.search_type, p.iteration_count, p.context_bound)
              << std::endl;
    const auto start = std::chrono::steady_clock::now();
    c.simulate(p);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const char* result = rl::test_result_str(p.test_result);
    std::cout << "model check " << c.name << ": " << result << " after " << p.stop_iteration << " iterations, " << secs
              << " s" << std::endl;
    if (c.must_find.empty()) return p.test_result == rl::test_result_success ? 0 : 1;
    for (rl::test_result_e want : c.must_find) {
      if (p.test_result == want) {
        std::cout << "negative check " << c.name << ": Relacy caught the planted bug (" << result
                  << "); exiting 1 as CTest's WILL_FAIL expects" << std::endl;
        return 1;
      }
    }
    std::cout << "negative check " << c.name << ": FAILED TO FAIL: expected Relacy to report";
    for (rl::test_result_e want : c.must_find) std::cout << " '" << rl::test_result_str(want) << "'";
    std::cout << ", got '" << result << "'" << std::endl;
    return 0;
  }
  std::cout << "unknown check '" << name << "' (--list lists them)" << std::endl;
  return negative ? 0 : 2;
}

}  // namespace weft::model
