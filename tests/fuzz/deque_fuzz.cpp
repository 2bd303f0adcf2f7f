// tests/fuzz/deque_fuzz.cpp: libFuzzer target for the Chase-Lev deque (runtime/core/deque.hpp).
//
// Input: a header byte, then one byte per operation (FuzzedDataProvider takes them from the
// end of the input backwards).
//   header bits 0-1: initial capacity 2 << n (2..16: growth all the time)
//   header bit 2:    after the sequential phase, a concurrent phase with a thief thread
//   op % 4 == 0, 1:  push a burst of 1 + (op >> 2) % 8 fresh values
//   op % 4 == 2:     pop            op % 4 == 3: steal (by the owner thread)
// Sequential phase: every result is checked against std::deque (pop = back, steal = front;
// a steal with no other thread is never a lost race), and size and capacity after every op.
// Concurrent phase: the remaining bytes drive the owner while one thief steals; every value
// pushed must be taken exactly once, by a pop, a steal, or the final drain.
#include <fuzzer/FuzzedDataProvider.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <thread>
#include <vector>

#include "core/deque.hpp"

namespace {

using weft::detail::chase_lev_deque;
using weft::detail::deque_owner;
using weft::detail::deque_stealer;
using weft::detail::steal_result;

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "deque_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

std::int64_t capacity_for(std::int64_t initial, std::size_t peak) {
  std::int64_t c = initial;
  while (static_cast<std::size_t>(c) < peak) c *= 2;
  return c;
}

void sequential(FuzzedDataProvider& in, std::int64_t initial, std::size_t ops) {
  chase_lev_deque<std::uint64_t> q(initial);
  deque_owner<std::uint64_t> owner(q);
  deque_stealer<std::uint64_t> thief(q);
  std::deque<std::uint64_t> model;
  std::uint64_t next = 1;
  std::size_t peak = 0;
  for (std::size_t i = 0; i < ops && in.remaining_bytes() > 0; ++i) {
    const std::uint8_t op = in.ConsumeIntegral<std::uint8_t>();
    std::uint64_t x = 0;
    switch (op % 4) {
      case 0:
      case 1:
        for (unsigned k = 0; k <= (op >> 2) % 8u; ++k) {
          owner.push(next);
          model.push_back(next++);
        }
        break;
      case 2:
        if (model.empty()) {
          FUZZ_CHECK(!owner.pop(x));
        } else {
          FUZZ_CHECK(owner.pop(x) && x == model.back());
          model.pop_back();
        }
        break;
      case 3:
        if (model.empty()) {
          FUZZ_CHECK(thief.steal(x) == steal_result::empty);
        } else {
          FUZZ_CHECK(thief.steal(x) == steal_result::success && x == model.front());
          model.pop_front();
        }
        break;
    }
    peak = std::max(peak, model.size());
    FUZZ_CHECK(owner.size_approx() == static_cast<std::int64_t>(model.size()));
    FUZZ_CHECK(q.capacity() == capacity_for(initial, peak));
  }
  std::uint64_t x = 0;
  while (!model.empty()) {
    FUZZ_CHECK(owner.pop(x) && x == model.back());
    model.pop_back();
  }
  FUZZ_CHECK(!owner.pop(x));
}

void concurrent(FuzzedDataProvider& in, std::int64_t initial) {
  chase_lev_deque<std::uint64_t> q(initial);
  deque_owner<std::uint64_t> owner(q);
  deque_stealer<std::uint64_t> thief_end(q);
  std::atomic<bool> owner_done{false};
  std::vector<std::uint64_t> stolen;
  std::thread thief([&] {
    std::uint64_t x = 0;
    for (;;) {
      const steal_result r = thief_end.steal(x);
      if (r == steal_result::success) stolen.push_back(x);
      // acquire: pairs with the owner's release store; after it, an empty deque stays empty.
      else if (r == steal_result::empty && owner_done.load(std::memory_order_acquire)) break;
    }
  });
  std::vector<std::uint64_t> taken;
  std::uint64_t next = 1;
  while (in.remaining_bytes() > 0) {
    const std::uint8_t op = in.ConsumeIntegral<std::uint8_t>();
    std::uint64_t x = 0;
    switch (op % 4) {
      case 0:
      case 1:
        for (unsigned k = 0; k <= (op >> 2) % 8u; ++k) owner.push(next++);
        break;
      case 2:
        if (owner.pop(x)) taken.push_back(x);
        break;
      case 3:
        if (thief_end.steal(x) == steal_result::success) taken.push_back(x);
        break;
    }
  }
  std::uint64_t x = 0;
  while (owner.pop(x)) taken.push_back(x);
  owner_done.store(true, std::memory_order_release);  // release: see the thief's acquire
  thief.join();
  std::vector<unsigned char> seen(next, 0);
  for (const auto* v : {&taken, &stolen}) {
    for (std::uint64_t y : *v) {
      FUZZ_CHECK(y >= 1 && y < next);
      FUZZ_CHECK(seen[y]++ == 0);  // taken twice
    }
  }
  for (std::uint64_t y = 1; y < next; ++y) FUZZ_CHECK(seen[y] == 1);  // lost
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  FuzzedDataProvider in(data, size);
  const std::uint8_t header = in.ConsumeIntegral<std::uint8_t>();
  const std::int64_t initial = std::int64_t{2} << (header & 3);
  const bool with_thief = (header & 4) != 0;
  // With a thief, half of the operations are sequential and checked exactly first.
  sequential(in, initial, with_thief ? in.remaining_bytes() / 2 : in.remaining_bytes());
  if (with_thief) concurrent(in, initial);
  return 0;
}
