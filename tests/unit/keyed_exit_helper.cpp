// tests/unit/keyed_exit_helper.cpp: a program that uses the default pool and its keyed
// serializers and returns from main without closing anything (keyed_test's DefaultPool
// tests run it under a watchdog). Modes:
//   queued  thousands of tasks and keyed jobs still queued at exit
//   stuck   additionally a task and a keyed job that ignore their stop tokens forever
// It must exit with status 0, in a bounded time, in both.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string_view>
#include <thread>

#include "weft/default_pool.hpp"

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  const std::string_view mode = argc > 1 ? argv[1] : "queued";
  static std::atomic<int> started{0};
  if (mode == "stuck") {
    weft::post([] {
      started.fetch_add(1);
      for (;;) std::this_thread::sleep_for(1ms);
    });
    weft::post("stuck-key", [] {
      started.fetch_add(1);
      for (;;) std::this_thread::sleep_for(1ms);
    });
    while (started.load() < 2) std::this_thread::sleep_for(1ms);
  } else if (mode != "queued") {
    std::fprintf(stderr, "usage: keyed_exit_helper queued|stuck\n");
    return 2;
  }
  for (int i = 0; i < 5000; ++i) {
    weft::post([] { std::this_thread::sleep_for(10us); });
    weft::post(i % 50, [](std::stop_token) { std::this_thread::sleep_for(10us); });
    weft::post("key", [] {});
  }
  return 0;
}
