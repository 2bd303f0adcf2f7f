// tests/fuzz/pool_fuzz.cpp: libFuzzer target for the task layer (pool, future, task_group).
//
// Input: a header (workers 1..3, deque capacity 2..16, spin rounds 0..15), then one byte per
// operation on a pool made for this input:
//   0 post            1 post, throwing       2 submit (future kept)  3 submit, throwing
//   4 task_group of 1..4 children, some throwing, run and waited from here
//   5 submit a task that itself posts, runs a group and does a nested submit+get
//   6 try_post        7 get() one of the kept futures now
//   8 close()         (later operations must be refused with pool_closed / closed)
// At the end the pool is closed, and then: every kept future is ready and holds its value
// or its own exception; every accepted task ran exactly once; every exception of a posted
// task reached on_task_exception; every group's wait() rethrew iff a child threw; every
// submission after close() was refused. A pool per input keeps inputs independent; each
// input is bounded (at most 512 operations, tasks nest at most two levels).
#include <fuzzer/FuzzedDataProvider.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "weft/weft.hpp"

namespace {

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "pool_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

struct fuzz_error {
  int tag;
};

constexpr std::size_t kMaxOps = 512;

struct counters {
  std::atomic<long> accepted{0};      // tasks (at any depth) accepted by the pool
  std::atomic<long> ran{0};           // task bodies that ran
  std::atomic<long> post_threw{0};    // posted tasks that threw
  std::atomic<long> handled{0};       // exceptions that reached on_task_exception
  std::atomic<long> foreign{0};       // anything unexpected seen by a task or the handler
};

// A task that posts, runs a group and does a nested submit+get (on a worker).
int nested_body(weft::pool& p, counters& c, std::uint8_t shape) {
  c.ran.fetch_add(1);
  for (unsigned i = 0; i < shape % 4u; ++i) {
    p.post([&c] { c.ran.fetch_add(1); });
    c.accepted.fetch_add(1);
  }
  weft::task_group g(p);
  std::atomic<int> n{0};
  const unsigned kids = (shape >> 2) % 4u;
  for (unsigned i = 0; i < kids; ++i) {
    g.run([&c, &n] {
      c.ran.fetch_add(1);
      n.fetch_add(1);
    });
    c.accepted.fetch_add(1);
  }
  g.wait();
  if (n.load() != static_cast<int>(kids)) c.foreign.fetch_add(1);
  auto f = p.submit([&c] {
    c.ran.fetch_add(1);
    return 7;
  });
  c.accepted.fetch_add(1);
  return f.get() + n.load();
}

void run_input(FuzzedDataProvider& in) {
  counters c;
  weft::pool_options o;
  o.workers = in.ConsumeIntegralInRange(1, 3);
  o.deque_capacity = std::size_t{2} << in.ConsumeIntegralInRange(0, 3);
  o.spin_rounds = in.ConsumeIntegralInRange(0u, 15u);
  o.pinning = weft::pin_policy::none;
  o.logger = [&c](std::string_view) { c.foreign.fetch_add(1); };  // nothing should be logged
  o.on_task_exception = [&c](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const fuzz_error&) {
      c.handled.fetch_add(1);
    } catch (...) {
      c.foreign.fetch_add(1);
    }
  };
  struct kept {
    weft::future<int> f;
    int value;  // expected value, or -tag of the expected fuzz_error
  };
  std::vector<kept> futures;
  bool closed = false;
  long refused = 0, refusals_expected = 0;
  {
    weft::pool p(o);
    auto refuse = [&](auto&& submit_call) {  // after close(): must throw pool_closed
      ++refusals_expected;
      try {
        submit_call();
      } catch (const weft::pool_closed&) {
        ++refused;
      }
    };
    for (std::size_t i = 0; i < kMaxOps && in.remaining_bytes() > 0; ++i) {
      const std::uint8_t op = in.ConsumeIntegral<std::uint8_t>();
      const int tag = static_cast<int>(i) + 1;
      switch (op % 9) {
        case 0:
        case 1: {
          const bool throws = op % 9 == 1;
          auto task = [&c, throws, tag] {
            c.ran.fetch_add(1);
            if (throws) throw fuzz_error{tag};
          };
          if (closed) {
            refuse([&] { p.post(task); });
            break;
          }
          p.post(task);
          c.accepted.fetch_add(1);
          if (throws) c.post_threw.fetch_add(1);
          break;
        }
        case 2:
        case 3: {
          const bool throws = op % 9 == 3;
          auto task = [&c, throws, tag]() -> int {
            c.ran.fetch_add(1);
            if (throws) throw fuzz_error{tag};
            return tag;
          };
          if (closed) {
            refuse([&] { (void)p.submit(task); });
            break;
          }
          futures.push_back({p.submit(task), throws ? -tag : tag});
          c.accepted.fetch_add(1);
          break;
        }
        case 4: {
          weft::task_group g(p);
          const unsigned kids = 1 + (op >> 4) % 4u;
          const unsigned throwing = (op >> 6) % 3u;  // how many of the children throw
          for (unsigned k = 0; k < kids; ++k) {
            auto child = [&c, k, throwing, tag] {
              c.ran.fetch_add(1);
              if (k < throwing) throw fuzz_error{tag};
            };
            if (closed) {
              refuse([&] { g.run(child); });
              continue;
            }
            g.run(child);
            c.accepted.fetch_add(1);
          }
          bool rethrown = false;
          try {
            g.wait();
          } catch (const fuzz_error& e) {
            FUZZ_CHECK(e.tag == tag);
            rethrown = true;
          }
          FUZZ_CHECK(rethrown == (!closed && throwing > 0));
          break;
        }
        case 5: {
          auto task = [&p, &c, shape = static_cast<std::uint8_t>(op >> 4)] { return nested_body(p, c, shape); };
          if (closed) {
            refuse([&] { (void)p.submit(task); });
            break;
          }
          const std::uint8_t shape = static_cast<std::uint8_t>(op >> 4);
          futures.push_back({p.submit(task), 7 + static_cast<int>((shape >> 2) % 4u)});
          c.accepted.fetch_add(1);
          break;
        }
        case 6: {
          const weft::submit_status s = p.try_post([&c] { c.ran.fetch_add(1); });
          FUZZ_CHECK(s == (closed ? weft::submit_status::closed : weft::submit_status::accepted));
          if (s == weft::submit_status::accepted) c.accepted.fetch_add(1);
          break;
        }
        case 7:
          if (!futures.empty()) {
            kept& k = futures[op % futures.size()];
            if (k.f.valid()) FUZZ_CHECK(k.f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
          }
          break;
        case 8:
          p.close();
          FUZZ_CHECK(p.closed());
          closed = true;
          break;
      }
    }
    p.close();
    const weft::metrics m = p.stats();
    FUZZ_CHECK(m.queued == 0);
    FUZZ_CHECK(static_cast<long>(m.completed + m.failed) == c.accepted.load());
  }
  // The pool is closed and gone: everything it accepted has run.
  FUZZ_CHECK(c.ran.load() == c.accepted.load());
  FUZZ_CHECK(c.handled.load() == c.post_threw.load());
  FUZZ_CHECK(c.foreign.load() == 0);
  FUZZ_CHECK(refused == refusals_expected);
  for (kept& k : futures) {
    FUZZ_CHECK(k.f.ready());
    try {
      FUZZ_CHECK(k.f.get() == k.value);
    } catch (const fuzz_error& e) {
      FUZZ_CHECK(-e.tag == k.value);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  run_input(in);
  return 0;
}
