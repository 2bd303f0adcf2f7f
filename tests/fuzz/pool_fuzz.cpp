// tests/fuzz/pool_fuzz.cpp: libFuzzer target for the task layer (pool, future, task_group).
//
// Input: a header (workers 1..3, deque capacity 2..16, spin rounds 0..15), then one byte per
// operation on a pool made for this input (FuzzedDataProvider takes these integers from the
// end of the input backwards):
//   0 post            1 post, throwing       2 submit (future kept)  3 submit, throwing
//   4 task_group of 1..4 children, some throwing (the first exception cancels the group's
//     children that have not started), run and waited from here
//   5 submit a task that itself posts, runs a group and does a nested submit+get
//   6 try_post        7 get() one of the kept futures now
//   8 close()         (later operations must be refused with pool_closed / closed)
// At the end the pool is closed, and then: every kept future is ready and holds its value
// or its own exception; every accepted task ran at most once; every exception of a posted
// task reached on_task_exception; every group's wait() rethrew iff a child threw, and only
// such a group lost children to cancellation; every submission after close() was refused;
// the pool's counters agree. A pool per input keeps inputs independent; each
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
  std::atomic<long> cancelled{0};     // group children cancelled because a sibling threw
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

weft::pool_options options_from(FuzzedDataProvider& in, counters& c) {
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
  return o;
}

// One input's pool and what it has been asked to do.
class session {
 public:
  explicit session(FuzzedDataProvider& in) : pool_(options_from(in, c_)) {}

  void apply(std::uint8_t op, int tag) {
    switch (op % 9) {
      case 0: case 1: post(op % 9 == 1, tag); break;
      case 2: case 3: submit(op % 9 == 3, tag); break;
      case 4: group(op, tag); break;
      case 5: nested(static_cast<std::uint8_t>(op >> 4)); break;
      case 6: try_post(); break;
      case 7: wait_one(op); break;
      case 8: close(); break;
    }
  }

  // Closes the pool; then everything it accepted has run or was cancelled with its group.
  void finish() {
    pool_.close();
    const weft::metrics m = pool_.stats();
    FUZZ_CHECK(m.queued == 0);
    FUZZ_CHECK(static_cast<long>(m.completed + m.failed) == c_.ran.load());
    FUZZ_CHECK(static_cast<long>(m.cancelled) == c_.cancelled.load());
    FUZZ_CHECK(c_.ran.load() + c_.cancelled.load() == c_.accepted.load());
    FUZZ_CHECK(c_.handled.load() == c_.post_threw.load());
    FUZZ_CHECK(c_.foreign.load() == 0);
    FUZZ_CHECK(refused_ == refusals_expected_);
    for (kept& k : futures_) {
      FUZZ_CHECK(k.f.ready());
      try {
        FUZZ_CHECK(k.f.get() == k.value);
      } catch (const fuzz_error& e) {
        FUZZ_CHECK(-e.tag == k.value);
      }
    }
  }

 private:
  struct kept {
    weft::future<int> f;
    int value;  // expected value, or -tag of the expected fuzz_error
  };

  // After close(): a submission must throw pool_closed.
  template <class F>
  void refuse(F&& submit_call) {
    ++refusals_expected_;
    try {
      submit_call();
    } catch (const weft::pool_closed&) {
      ++refused_;
    }
  }

  void post(bool throws, int tag) {
    auto task = [c = &c_, throws, tag] {
      c->ran.fetch_add(1);
      if (throws) throw fuzz_error{tag};
    };
    if (closed_) return refuse([&] { pool_.post(task); });
    pool_.post(task);
    c_.accepted.fetch_add(1);
    if (throws) c_.post_threw.fetch_add(1);
  }

  void submit(bool throws, int tag) {
    auto task = [c = &c_, throws, tag]() -> int {
      c->ran.fetch_add(1);
      if (throws) throw fuzz_error{tag};
      return tag;
    };
    if (closed_) return refuse([&] { (void)pool_.submit(task); });
    futures_.push_back({pool_.submit(task), throws ? -tag : tag});
    c_.accepted.fetch_add(1);
  }

  // 1-4 children, the first 0-2 of them throwing, run and waited from this thread.
  void group(std::uint8_t op, int tag) {
    weft::task_group g(pool_);
    const unsigned kids = 1 + (op >> 4) % 4u;
    const unsigned throwing = (op >> 6) % 3u;
    std::atomic<unsigned> started{0};
    for (unsigned k = 0; k < kids; ++k) {
      auto child = [c = &c_, &started, k, throwing, tag] {
        c->ran.fetch_add(1);
        started.fetch_add(1);
        if (k < throwing) throw fuzz_error{tag};
      };
      if (closed_) {
        refuse([&] { g.run(child); });
        continue;
      }
      g.run(child);
      c_.accepted.fetch_add(1);
    }
    bool rethrown = false;
    try {
      g.wait();
    } catch (const fuzz_error& e) {
      FUZZ_CHECK(e.tag == tag);
      rethrown = true;
    }
    FUZZ_CHECK(rethrown == (!closed_ && throwing > 0));
    // The first exception cancels the group: children that had not started do not run.
    const unsigned ran = started.load();
    if (closed_) FUZZ_CHECK(ran == 0);
    else if (throwing == 0) FUZZ_CHECK(ran == kids);
    else FUZZ_CHECK(ran >= 1 && ran <= kids);
    if (!closed_) c_.cancelled.fetch_add(kids - ran);
  }

  void nested(std::uint8_t shape) {
    auto task = [p = &pool_, c = &c_, shape] { return nested_body(*p, *c, shape); };
    if (closed_) return refuse([&] { (void)pool_.submit(task); });
    futures_.push_back({pool_.submit(task), 7 + static_cast<int>((shape >> 2) % 4u)});
    c_.accepted.fetch_add(1);
  }

  void try_post() {
    const weft::submit_status s = pool_.try_post([c = &c_] { c->ran.fetch_add(1); });
    FUZZ_CHECK(s == (closed_ ? weft::submit_status::closed : weft::submit_status::accepted));
    if (s == weft::submit_status::accepted) c_.accepted.fetch_add(1);
  }

  void wait_one(std::uint8_t op) {
    if (futures_.empty()) return;
    kept& k = futures_[op % futures_.size()];
    FUZZ_CHECK(k.f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  }

  void close() {
    pool_.close();
    FUZZ_CHECK(pool_.closed());
    closed_ = true;
  }

  counters c_;        // first: the pool's handlers refer to it
  weft::pool pool_;
  std::vector<kept> futures_;
  bool closed_ = false;
  long refused_ = 0, refusals_expected_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  session s(in);
  for (std::size_t i = 0; i < kMaxOps && in.remaining_bytes() > 0; ++i) {
    s.apply(in.ConsumeIntegral<std::uint8_t>(), static_cast<int>(i) + 1);
  }
  s.finish();
  return 0;
}
