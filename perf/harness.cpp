// perf/harness.cpp: thread counts, registration, counters and result checks.
#include "harness.hpp"

#include <sched.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

namespace weft_perf {
namespace {

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

std::vector<int> parse_thread_list(const std::string& text) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = text.find(',', pos);
    const std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    std::size_t used = 0;
    const int n = std::stoi(item, &used);
    if (used != item.size() || n < 1) throw std::invalid_argument("WEFT_PERF_THREADS: bad thread count '" + item + "'");
    out.push_back(n);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::vector<int> default_thread_list() {
  const int n = usable_cpus();
  std::vector<int> out;
  for (int t = 1; t < n; t *= 2) out.push_back(t);
  out.push_back(n);
  return out;
}

}  // namespace

const std::vector<int>& thread_counts() {
  static const std::vector<int> counts = [] {
    const char* env = std::getenv("WEFT_PERF_THREADS");
    return (env != nullptr && *env != '\0') ? parse_thread_list(env) : default_thread_list();
  }();
  return counts;
}

void register_runtime(const std::string& family, const std::string& runtime, void (*fn)(benchmark::State&)) {
  const std::string name = family + "/" + runtime;
  benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name.c_str(), fn);
  b->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
  for (int t : thread_counts()) b->Arg(t);
}

void report_tasks(benchmark::State& state, double tasks, metric m) {
  using benchmark::Counter;
  state.counters["tasks"] = Counter(tasks);
  if (m == metric::tasks_per_second) {
    state.counters["tasks/s"] = Counter(tasks, Counter::kIsIterationInvariantRate);
  } else {
    // Seconds per task (tasks * iterations / seconds, inverted); the console shows it
    // with an SI prefix ("time/task=22.7ns"), the JSON in seconds.
    state.counters["time/task"] = Counter(tasks, Counter::kIsIterationInvariantRate | Counter::kInvert);
  }
}

bool result_check::report(benchmark::State& state) const {
  if (wrong_ == 0) return true;
  const std::string msg = "wrong result in " + std::to_string(wrong_) + " run(s): got " + std::to_string(last_wrong_) +
                          ", want " + std::to_string(want_);
  state.SkipWithError(msg.c_str());  // copies the message
  return false;
}

}  // namespace weft_perf
