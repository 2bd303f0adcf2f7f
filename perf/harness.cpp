// perf/harness.cpp: thread counts, registration, counters and result checks.
#include "harness.hpp"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
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

// Full: 1, 2, 4, ... below the number of usable CPUs, then that number. Quick: 1, 2 and
// that number.
std::vector<int> default_thread_list(bool quick_run) {
  const int n = usable_cpus();
  std::vector<int> out;
  for (int t = 1; t < n && (!quick_run || t <= 2); t *= 2) out.push_back(t);
  out.push_back(n);
  return out;
}

// The watchdog: one benchmark function call (one repetition) that runs longer than
// WEFT_PERF_WATCHDOG_S seconds (default 600; 0 turns it off) is taken for a hang, since
// nothing here legitimately takes more than a few seconds: the process prints the
// benchmark's name and aborts, so that a run fails loudly (tools/weft-bench reports it)
// instead of sitting until an outer timeout. A hung runtime can be inspected first with
// gdb -p while the message's grace period runs (the same number of seconds again).
class watchdog {
 public:
  static watchdog& get() {
    static watchdog* w = new watchdog;  // never destroyed: its thread runs until exit
    return *w;
  }
  void begin(const std::string& name) {
    std::lock_guard<std::mutex> lock(m_);
    name_ = name;
    since_ = std::chrono::steady_clock::now();
    running_ = true;
  }
  void end() {
    std::lock_guard<std::mutex> lock(m_);
    running_ = false;
  }

 private:
  watchdog() : limit_(limit_seconds()) {
    if (limit_.count() > 0) std::thread([this] { watch(); }).detach();
  }
  static std::chrono::seconds limit_seconds() {
    const char* env = std::getenv("WEFT_PERF_WATCHDOG_S");
    return std::chrono::seconds(env != nullptr && *env != '\0' ? std::atol(env) : 600);
  }
  void watch() {
    bool warned = false;
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      std::lock_guard<std::mutex> lock(m_);
      const auto ran = std::chrono::steady_clock::now() - since_;
      if (!running_ || ran < limit_) {
        warned = false;
        continue;
      }
      if (!warned) {
        std::fprintf(stderr, "weft-perf: %s has run for %lld s: hung? pid %ld; aborting in %lld s\n", name_.c_str(),
                     static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(ran).count()),
                     static_cast<long>(getpid()), static_cast<long long>(limit_.count()));
        warned = true;
      } else if (ran >= 2 * limit_) {
        std::fprintf(stderr, "weft-perf: %s hung; aborting\n", name_.c_str());
        std::abort();
      }
    }
  }

  std::mutex m_;
  std::string name_;                                // guarded by m_
  std::chrono::steady_clock::time_point since_{};  // guarded by m_
  bool running_ = false;                            // guarded by m_
  const std::chrono::seconds limit_;
};

// Registers fn under the watchdog.
benchmark::internal::Benchmark* register_watched(const std::string& name, void (*fn)(benchmark::State&)) {
  watchdog::get();
  return benchmark::RegisterBenchmark(name.c_str(), [fn, name](benchmark::State& state) {
    watchdog::get().begin(name + "/threads:" + std::to_string(state.range(0)));
    fn(state);
    watchdog::get().end();
  });
}

}  // namespace

bool quick() noexcept {
  static const bool q = [] {
    const char* env = std::getenv("WEFT_PERF_QUICK");
    return env != nullptr && *env != '\0' && std::string(env) != "0";
  }();
  return q;
}

const std::vector<int>& thread_counts() {
  static const std::vector<int> counts = [] {
    const char* env = std::getenv("WEFT_PERF_THREADS");
    return (env != nullptr && *env != '\0') ? parse_thread_list(env) : default_thread_list(quick());
  }();
  return counts;
}

void register_runtime(const std::string& family, const std::string& runtime, void (*fn)(benchmark::State&)) {
  const std::string name = family + "/" + runtime;
  benchmark::internal::Benchmark* b = register_watched(name, fn);
  b->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
  for (int t : thread_counts()) b->Arg(t);
}

void register_runtime(const std::string& family, const std::string& runtime, void (*fn)(benchmark::State&),
                      const std::string& param, const std::vector<std::int64_t>& values) {
  const std::string name = family + "/" + runtime;
  benchmark::internal::Benchmark* b = register_watched(name, fn);
  b->ArgNames({"threads", param})->UseRealTime()->Unit(benchmark::kMillisecond);
  for (int t : thread_counts()) {
    for (std::int64_t v : values) b->Args({t, v});
  }
}

void register_runtime_once(const std::string& family, const std::string& runtime, void (*fn)(benchmark::State&)) {
  const std::string name = family + "/" + runtime;
  benchmark::internal::Benchmark* b = register_watched(name, fn);
  b->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1);
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
