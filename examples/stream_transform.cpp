// examples/stream_transform.cpp: a streaming transform from a channel, then the same work as
// a pipeline.
//
// 1. weft::stream: a producer thread feeds log lines into a channel; each line is parsed on
//    the pool as soon as it arrives, and the results come back in input order (a reorder
//    window of 8), while the producer is still producing.
// 2. weft::pipeline: a serial source, a parallel parse, and a serial in-order sink, with at
//    most 8 lines alive at once.
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weft/channel.hpp"
#include "weft/pipeline.hpp"
#include "weft/pool.hpp"
#include "weft/stream.hpp"

namespace {

struct record {
  std::string level;
  int code;
};

record parse(const std::string& line) {  // "LEVEL code"
  const auto space = line.find(' ');
  if (space == std::string::npos) throw std::invalid_argument("no code in '" + line + "'");
  return {line.substr(0, space), std::stoi(line.substr(space + 1))};
}

std::vector<std::string> log_lines() {
  std::vector<std::string> lines;
  for (int i = 0; i < 12; ++i) lines.push_back((i % 4 == 3 ? "WARN " : "INFO ") + std::to_string(100 + i));
  lines[6] = "garbage";
  return lines;
}

}  // namespace

int main() {
  weft::pool_options options;
  options.workers = 4;
  weft::pool pool(options);

  std::puts("1. stream from a channel, input order");
  weft::channel<std::string> lines(4);
  std::jthread producer([&lines] {
    for (std::string& l : log_lines()) {
      if (lines.send(std::move(l)) != weft::channel_status::success) return;
    }
    lines.close();
  });
  int warnings = 0;
  for (auto&& [index, r] : weft::stream(pool, lines, [](std::string l) { return parse(l); },
                                        {.max_in_flight = 8, .order = weft::stream_order::input})) {
    if (!r.has_value()) {
      try {
        r.value();
      } catch (const std::exception& e) {
        std::printf("  line %zu: skipped (%s)\n", index, e.what());
      }
      continue;
    }
    warnings += r.value().level == "WARN";
    std::printf("  line %zu: %s %d\n", index, r.value().level.c_str(), r.value().code);
  }
  std::printf("  %d warnings\n", warnings);

  std::puts("2. the same as a pipeline");
  std::vector<std::string> input = log_lines();
  std::size_t next = 0;
  int sum = 0;
  int bad = 0;
  weft::make_pipeline([&]() -> std::optional<std::string> {
    if (next == input.size()) return std::nullopt;
    return input[next++];
  })
      .then(weft::stage_mode::parallel, [](std::string l) -> std::optional<record> {
        try {
          return parse(l);
        } catch (const std::invalid_argument&) {
          return std::nullopt;
        }
      })
      .then(weft::stage_mode::serial_in_order, [&](std::optional<record> r) {
        if (r) sum += r->code;
        else ++bad;
      })
      .run(pool, {.max_tokens = 8});
  std::printf("  sum of codes %d, %d bad line(s)\n", sum, bad);
  return 0;
}
