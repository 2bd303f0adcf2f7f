// examples/event_processor.cpp: events processed on a pool with per-task timings (the
// seeds' "Event Processing System", whose Go pool takes a task wrapper).
//
// The instrumentation is a plain wrapper: timed(name, f) returns a callable that measures f
// and records the duration, so every submission goes through it. The results and the
// timings come back through weft::future; a failing event's exception reaches its future.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weft/pool.hpp"

namespace {

struct timings {
  std::mutex mu;
  std::vector<std::pair<std::string, std::chrono::microseconds>> records;

  void record(std::string name, std::chrono::microseconds d) {
    std::lock_guard lock(mu);
    records.emplace_back(std::move(name), d);
  }
};

// Wraps a task so that its run time is recorded, whether it returns or throws.
template <class F>
auto timed(timings& t, std::string name, F f) {
  return [&t, name = std::move(name), f = std::move(f)]() mutable {
    const auto start = std::chrono::steady_clock::now();
    struct recorder {
      timings& t;
      const std::string& name;
      std::chrono::steady_clock::time_point start;
      ~recorder() {
        t.record(name, std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start));
      }
    } on_exit{t, name, start};
    return f();
  };
}

struct event {
  std::string type;
  int payload;
};

int handle(const event& e) {
  std::this_thread::sleep_for(std::chrono::milliseconds(1 + e.payload % 3));
  if (e.type == "corrupt") throw std::runtime_error("event " + std::to_string(e.payload) + " is corrupt");
  return e.payload * 2;
}

}  // namespace

int main() {
  weft::pool_options options;
  options.workers = 3;
  weft::pool pool(options);
  timings stats;

  std::vector<event> events;
  for (int i = 0; i < 20; ++i) events.push_back({i == 13 ? "corrupt" : "user_action", i});

  std::vector<weft::future<int>> results;
  for (const event& e : events) results.push_back(pool.submit(timed(stats, e.type + "#" + std::to_string(e.payload), [e] { return handle(e); })));

  int sum = 0;
  int errors = 0;
  for (auto& f : results) {
    try {
      sum += f.get();
    } catch (const std::exception& ex) {
      std::printf("error: %s\n", ex.what());
      ++errors;
    }
  }
  pool.close();

  const bool all_at_least_1ms = std::all_of(stats.records.begin(), stats.records.end(),
                                            [](const auto& r) { return r.second >= std::chrono::milliseconds(1); });
  std::printf("%zu events, %d failed, sum of results %d\n", events.size(), errors, sum);
  std::printf("%zu timings recorded, every one >= 1 ms: %s\n", stats.records.size(), all_at_least_1ms ? "yes" : "no");
  return stats.records.size() == events.size() && all_at_least_1ms ? 0 : 1;
}
