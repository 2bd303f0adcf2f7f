// examples/image_service.cpp: an image-processing service with a bounded queue and a
// graceful shutdown with a deadline (the seeds' "Image Processing Pipeline" and "Email
// Sending Service", in C++20).
//
// An acceptor thread takes requests and puts them on a weft::channel of 8: when the service
// falls behind, the acceptor's send() waits (backpressure instead of an unbounded queue).
// weft::stream processes what is queued on the pool, at most 4 images at a time, and the
// main thread collects the results. Shutdown: the acceptor closes the channel, the stream
// ends once what was accepted is done, and pool.close(deadline) gives the stragglers a
// bounded time: a task still running at the deadline sees its stop token fire.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <stop_token>
#include <thread>
#include <vector>

#include "weft/channel.hpp"
#include "weft/pool.hpp"
#include "weft/stream.hpp"

namespace {

struct image {
  int id;
  std::vector<std::uint8_t> pixels;
};

struct thumbnail {
  int id;
  std::uint32_t checksum;
};

image receive_upload(int id) {  // stands in for reading a request off the network
  image img{id, std::vector<std::uint8_t>(64 * 64)};
  for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>(i * 7 + id);
  return img;
}

thumbnail make_thumbnail(image img, std::stop_token stop) {  // 2x2 box filter, 64x64 -> 32x32
  std::uint32_t sum = 0;
  for (int y = 0; y < 64 && !stop.stop_requested(); y += 2) {
    for (int x = 0; x < 64; x += 2) {
      const auto at = [&](int dx, int dy) { return img.pixels[static_cast<std::size_t>((y + dy) * 64 + x + dx)]; };
      sum += static_cast<std::uint32_t>((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1)) / 4);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the slow part: encoding, storage
  return {img.id, sum};
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  weft::pool_options options;
  options.workers = 4;
  weft::pool pool(options);
  weft::channel<image> queue(8);

  std::jthread acceptor([&queue] {
    for (int id = 0; id < 40; ++id) {
      if (queue.send(receive_upload(id)) != weft::channel_status::success) break;  // closed: shutting down
    }
    queue.close();  // no more uploads: the stream ends after what was accepted
  });

  std::uint64_t total = 0;
  int done = 0;
  int failed = 0;
  for (auto&& [index, result] : weft::stream(pool, queue, make_thumbnail, {.max_in_flight = 4})) {
    if (result.has_value()) {
      total += result.value().checksum;
      ++done;
    } else {
      ++failed;
    }
  }
  acceptor.join();
  std::printf("processed %d images (%d failed), checksum %llu\n", done, failed, static_cast<unsigned long long>(total));

  // A straggler that would run for a minute: the shutdown deadline interrupts it.
  auto straggler = pool.submit([](std::stop_token stop) {
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (!stop.stop_requested() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
    return stop.stop_requested();
  });
  const bool drained = pool.close(100ms);
  std::printf("shutdown: %s; straggler %s\n", drained ? "drained in time" : "deadline reached",
              straggler.get() ? "saw its stop token and stopped" : "ran to its end");
  return done == 40 && !drained ? 0 : 1;
}
