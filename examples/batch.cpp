// examples/batch.cpp: weft's batch API (weft/batch.hpp) in four short scenes.
//
//   g++ -std=c++20 -O2 -I include examples/batch.cpp -L build/release/runtime -lweft -lhwloc -pthread
//
// 1. run_batch: every outcome, in submission order (collect_all).
// 2. stream_batch: outcomes as they finish, with the index of the job each belongs to.
// 3. fail_fast: the first failure cancels the jobs that have not started and is rethrown.
// 4. parallel_map: plain values in input order (seed 002's Process / ProcessMap).
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "weft/batch.hpp"
#include "weft/pool.hpp"

namespace {

// A stand-in for real work (an RPC, a file read): sleeps, and gives up early when stopped.
int slow_square(int x, const std::stop_token& stop) {
  for (int i = 0; i < x * 5 && !stop.stop_requested(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (x == 13) throw std::runtime_error("unlucky input 13");
  return x * x;
}

std::vector<std::function<int(std::stop_token)>> make_jobs(std::vector<int> inputs) {
  std::vector<std::function<int(std::stop_token)>> jobs;
  for (int x : inputs) jobs.emplace_back([x](std::stop_token stop) { return slow_square(x, stop); });
  return jobs;
}

void describe(std::size_t index, weft::outcome<int>& o) {
  if (o.has_value()) {
    std::printf("  job %zu -> %d\n", index, o.value());
  } else if (o.cancelled()) {
    std::printf("  job %zu cancelled before it started\n", index);
  } else {
    try {
      std::rethrow_exception(o.error());
    } catch (const std::exception& e) {
      std::printf("  job %zu failed: %s\n", index, e.what());
    }
  }
}

}  // namespace

int main() {
  weft::pool_options options;
  options.workers = 2;
  weft::pool pool(options);

  std::puts("1. run_batch, collect_all: submission order, every kind of outcome");
  auto results = weft::run_batch(pool, make_jobs({3, 1, 13, 2}));
  for (std::size_t i = 0; i < results.size(); ++i) describe(i, results[i]);

  std::puts("2. stream_batch: completion order (short jobs first)");
  for (auto&& [index, outcome] : weft::stream_batch(pool, make_jobs({8, 1, 4, 2}))) describe(index, outcome);

  std::puts("3. fail_fast: 13 fails; jobs not started yet never run");
  try {
    weft::run_batch(pool, make_jobs({2, 13, 20, 20, 20, 20}), weft::error_policy::fail_fast);
  } catch (const std::exception& e) {
    std::printf("  run_batch threw: %s (after every job had ended)\n", e.what());
  }

  std::puts("4. parallel_map over a map, as Go's ProcessMap");
  const std::map<std::string, int> sizes{{"config.json", 3}, {"data.json", 5}, {"index.json", 4}};
  const std::vector<int> squares =
      weft::parallel_map(pool, sizes, [](const auto& entry, std::stop_token stop) { return slow_square(entry.second, stop); });
  std::size_t i = 0;
  for (const auto& [name, size] : sizes) std::printf("  %s: %d -> %d\n", name.c_str(), size, squares[i++]);
  return 0;
}
