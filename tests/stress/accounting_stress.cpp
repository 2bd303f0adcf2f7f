// tests/stress/accounting_stress.cpp: exact-once accounting of every operation across the
// whole lifecycle of several pools, one after another.
//
// Each round creates a pool (1, 2 or 4 workers, deques of 2 slots) and three external
// threads that submit a seeded random mix: submit with and without options, post plain /
// with options / with on_done, task_groups run and waited from outside (sometimes
// cancelled), fan-outs (a task that forks a wide group and waits on a worker), nested
// groups inside tasks, posts from inside tasks. Bodies throw now and then, spin while
// honouring their token, and take pre-fired tokens, tokens fired later by the submitter,
// deadlines and timeouts. Each round ends in one of six ways: close() after the submitters,
// close() while they submit, close(deadline) while they submit, stop_now() while they
// submit, the pool's base token fired while they submit, or the destructor.
//
// Every operation gets an id and ends as exactly one of: ran (returned or threw), cancelled
// (never ran), rejected (the submitting call threw pool_closed). Checked per id: the body ran
// at most once; a future is ready and holds the value / the body's own exception /
// task_cancelled, consistent with whether the body ran; on_done was called exactly once
// with the same; a rejected submission never ran and never reported; a post's exception
// reached on_task_exception exactly once; an on_done that throws reached it exactly once; a
// group's wait rethrew exactly when one of its children threw, and an exception of that
// group. Totals are then cross-checked with pool.stats() (completed, failed, cancelled,
// rejected), except in the rounds that end in the destructor, where no stats remain; there
// the pool's logger must not report leftover tasks.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.hpp"
#include "weft/pool.hpp"
#include "weft/task_group.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr std::uint64_t kSeed = 0xACC0'0417'5EED'0001ULL;
constexpr int kRounds = 12;
constexpr int kSubmitters = 3;
constexpr int kMaxDepth = 3;  // bodies at this depth spawn nothing more
constexpr auto kRoundTimeLimit = 20s;

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// What the body of operation `id` does, decided by its hash.
struct plan {
  bool throws;        // the body throws stress_error{id} at its end
  bool takes_token;   // the callable is f(std::stop_token)
  bool done_throws;   // its on_done (if it has one) throws done_error{id}
  bool inside_post;   // the body posts one more operation
  bool nested_group;  // the body forks a small group and waits on it
  unsigned spin_us;   // the body spins this long, or until its token fires
};

plan plan_of(std::uint64_t id) {
  const std::uint64_t h = mix(kSeed ^ (id * 0x9E3779B97F4A7C15ULL));
  plan p{};
  p.throws = (h & 31) == 0;
  p.takes_token = ((h >> 5) & 1) != 0;
  p.done_throws = ((h >> 6) & 15) == 0;
  p.inside_post = ((h >> 10) & 15) == 0;
  p.nested_group = ((h >> 14) & 15) == 0;
  p.spin_us = ((h >> 18) & 15) == 0 ? static_cast<unsigned>((h >> 22) % 300) : 0;
  return p;
}

struct stress_error : std::runtime_error {
  explicit stress_error(std::uint64_t i) : std::runtime_error("planned failure"), id(i) {}
  std::uint64_t id;
};
struct done_error : std::runtime_error {
  explicit done_error(std::uint64_t i) : std::runtime_error("planned on_done failure"), id(i) {}
  std::uint64_t id;
};

// Where an operation's outcome is reported.
enum class channel : std::uint8_t {
  future,   // submit: its future
  on_done,  // post(f, on_done, options)
  handler,  // post(f) / post(f, options): only an exception, to on_task_exception
  group,    // task_group::run: an exception to the group's wait (the first one only)
};
enum outcome_kind : std::uint8_t { none, ok, threw, cancelled };

struct ledger {
  explicit ledger(std::uint64_t n)
      : cap(n), kind(n), body(n), rejected(n), delivered(n), delivered_kind(n), handler_hits(n), done_hits(n) {}
  const std::uint64_t cap;
  std::vector<std::atomic<std::uint8_t>> kind;            // channel, set at allocation
  std::vector<std::atomic<std::uint8_t>> body;            // times the body started
  std::vector<std::atomic<std::uint8_t>> rejected;        // the submitting call threw pool_closed
  std::vector<std::atomic<std::uint8_t>> delivered;       // on_done calls / future outcomes read
  std::vector<std::atomic<std::uint8_t>> delivered_kind;  // what they said
  std::vector<std::atomic<std::uint8_t>> handler_hits;    // stress_error{id} seen by on_task_exception
  std::vector<std::atomic<std::uint8_t>> done_hits;       // done_error{id} seen by on_task_exception
  std::atomic<std::uint64_t> next{0};

  // relaxed throughout: the values are read after the pool has been joined (a full
  // happens-before edge for everything its tasks did) or after a wait that acquired them.
  std::optional<std::uint64_t> alloc(channel c) {
    const std::uint64_t id = next.fetch_add(1, std::memory_order_relaxed);
    if (id >= cap) return std::nullopt;
    kind[id].store(static_cast<std::uint8_t>(c), std::memory_order_relaxed);
    return id;
  }
  bool exhausted() const { return next.load(std::memory_order_relaxed) >= cap; }
  std::uint64_t used() const { return std::min(next.load(std::memory_order_relaxed), cap); }
};

struct round_ctx {
  explicit round_ctx(std::uint64_t cap) : led(cap), futures(kSubmitters) {}
  weft::pool* p = nullptr;
  ledger led;
  std::stop_source prefired;
  std::atomic<bool> stop_submitting{false};
  clock_type::time_point deadline;
  std::vector<std::vector<std::pair<std::uint64_t, weft::future<std::uint64_t>>>> futures;  // per submitter
  std::atomic<std::uint64_t> unexpected_handler{0}, groups_rethrew{0}, leftover_lines{0}, hatch_lines{0};
  std::mutex mu;
  std::vector<std::string> failures;  // guarded by mu; the first few
  std::atomic<std::uint64_t> failure_count{0};

  void fail(const std::string& what) {
    if (failure_count.fetch_add(1) < 20) {
      std::lock_guard lock(mu);
      failures.push_back(what);
    }
  }
};

// ---- bodies ----

void spawn_inside(round_ctx& rc, std::uint64_t parent, int depth);
void nested_group(round_ctx& rc, int depth);

std::uint64_t body(round_ctx& rc, std::uint64_t id, const std::stop_token& st, int depth) {
  if (rc.led.body[id].fetch_add(1, std::memory_order_relaxed) != 0) rc.fail("op " + std::to_string(id) + " ran twice");
  const plan pl = plan_of(id);
  if (pl.spin_us != 0) {
    const auto end = clock_type::now() + std::chrono::microseconds(pl.spin_us);
    while (clock_type::now() < end && !st.stop_requested()) std::this_thread::yield();
  }
  if (pl.inside_post && depth < kMaxDepth) spawn_inside(rc, id, depth);
  if (pl.nested_group && depth < kMaxDepth) nested_group(rc, depth);
  if (pl.throws) throw stress_error(id);
  return id;
}

// Calls use(fn) with the body of `id` as f() or f(std::stop_token), as its plan says.
template <class Use>
void with_body(round_ctx& rc, std::uint64_t id, int depth, Use&& use) {
  if (plan_of(id).takes_token) {
    use([&rc, id, depth](std::stop_token st) { return body(rc, id, st, depth); });
  } else {
    use([&rc, id, depth] { return body(rc, id, std::stop_token{}, depth); });
  }
}

// Runs a submitting call; a pool_closed marks the operation rejected.
template <class Call>
bool accepted(round_ctx& rc, std::uint64_t id, Call&& call) {
  try {
    call();
    return true;
  } catch (const weft::pool_closed&) {
    rc.led.rejected[id].store(1, std::memory_order_relaxed);
    return false;
  }
}

auto on_done_for(round_ctx& rc, std::uint64_t id) {
  return [&rc, id](weft::outcome<std::uint64_t> o) {
    if (rc.led.delivered[id].fetch_add(1, std::memory_order_relaxed) != 0) {
      rc.fail("on_done of op " + std::to_string(id) + " called twice");
    }
    outcome_kind k = none;
    if (o.has_value()) {
      k = ok;
      if (o.value() != id) rc.fail("on_done of op " + std::to_string(id) + " got another op's value");
    } else {
      try {
        std::rethrow_exception(o.error());
      } catch (const weft::task_cancelled&) {
        k = cancelled;
        if (!o.cancelled()) rc.fail("task_cancelled outcome not marked cancelled");
      } catch (const stress_error& e) {
        k = threw;
        if (e.id != id || o.cancelled()) rc.fail("on_done of op " + std::to_string(id) + " got a wrong exception");
      } catch (...) {
        rc.fail("on_done got an unknown exception");
      }
    }
    rc.led.delivered_kind[id].store(k, std::memory_order_relaxed);
    if (plan_of(id).done_throws) throw done_error(id);
  };
}

// Waits on g and checks the exception contract against what its children did.
void settle_group(round_ctx& rc, weft::task_group& g, const std::vector<std::uint64_t>& kids, bool we_cancelled) {
  std::optional<std::uint64_t> thrown;
  weft::group_status status = weft::group_status::complete;
  try {
    status = g.wait();
  } catch (const stress_error& e) {
    thrown = e.id;
  } catch (const std::exception& e) {
    rc.fail(std::string("a group's wait threw an unexpected exception: ") + e.what());
    return;
  }
  bool a_child_threw = false;
  for (std::uint64_t k : kids) {
    if (rc.led.body[k].load(std::memory_order_relaxed) != 0 && plan_of(k).throws) a_child_threw = true;
  }
  if (thrown) {
    rc.groups_rethrew.fetch_add(1, std::memory_order_relaxed);
    const bool ours = std::find(kids.begin(), kids.end(), *thrown) != kids.end();
    if (!ours || rc.led.body[*thrown].load(std::memory_order_relaxed) == 0 || !plan_of(*thrown).throws) {
      rc.fail("a group's wait rethrew an exception none of its children threw (op " + std::to_string(*thrown) + ")");
    }
  } else if (a_child_threw) {
    rc.fail("a child threw but the group's wait did not rethrow");
  }
  if (we_cancelled && !thrown && status != weft::group_status::cancelled) {
    rc.fail("a cancelled group's wait returned complete");
  }
}

// Runs up to n children of depth `depth` on g; returns their ids (rejected ones excluded).
std::vector<std::uint64_t> run_children(round_ctx& rc, weft::task_group& g, unsigned n, int depth) {
  std::vector<std::uint64_t> kids;
  for (unsigned i = 0; i < n; ++i) {
    const auto id = rc.led.alloc(channel::group);
    if (!id) break;
    if (!accepted(rc, *id, [&] { with_body(rc, *id, depth, [&](auto fn) { g.run(std::move(fn)); }); })) break;
    kids.push_back(*id);
  }
  return kids;
}

void nested_group(round_ctx& rc, int depth) {
  weft::task_group g(*rc.p);
  const auto kids = run_children(rc, g, 1 + static_cast<unsigned>(mix(rc.led.used()) % 4), depth + 1);
  settle_group(rc, g, kids, false);
}

void spawn_inside(round_ctx& rc, std::uint64_t parent, int depth) {
  const bool with_done = (mix(parent) & 1) != 0;
  const auto id = rc.led.alloc(with_done ? channel::on_done : channel::handler);
  if (!id) return;
  // From a worker this is always accepted; a body run by a non-worker helping a group's
  // wait posts from outside and may meet a closed pool.
  accepted(rc, *id, [&] {
    with_body(rc, *id, depth + 1, [&](auto fn) {
      if (with_done) rc.p->post(std::move(fn), on_done_for(rc, *id));
      else rc.p->post(std::move(fn));
    });
  });
}

// ---- the submitters' operations ----

enum class step { accepted, rejected, exhausted };

weft::task_options random_options(std::mt19937_64& rng, round_ctx& rc, const std::stop_source& rotating) {
  weft::task_options o;
  switch (rng() % 8) {
    case 0: o.stop_token = rc.prefired.get_token(); break;
    case 1:
    case 2: o.stop_token = rotating.get_token(); break;
    case 3: o.timeout = std::chrono::microseconds(rng() % 3000); break;
    case 4: o.deadline = clock_type::now() + std::chrono::microseconds(rng() % 2000); break;
    case 5:
      o.stop_token = rotating.get_token();
      o.timeout = std::chrono::microseconds(rng() % 1000);
      break;
    default: break;
  }
  return o;
}

step op_submit(round_ctx& rc, unsigned t, std::mt19937_64& rng, const std::stop_source& rotating, bool with_options) {
  const auto id = rc.led.alloc(channel::future);
  if (!id) return step::exhausted;
  auto& fs = rc.futures[t];
  const bool ok = accepted(rc, *id, [&] {
    with_body(rc, *id, 0, [&](auto fn) {
      if (with_options) fs.emplace_back(*id, rc.p->submit(std::move(fn), random_options(rng, rc, rotating)));
      else fs.emplace_back(*id, rc.p->submit(std::move(fn)));
    });
  });
  if (!ok) return step::rejected;
  if (rng() % 16 == 0) fs.back().second.wait();  // an external thread blocking on a future
  return step::accepted;
}

enum class post_kind { plain, options, on_done };

step op_post(round_ctx& rc, std::mt19937_64& rng, const std::stop_source& rotating, post_kind k) {
  const auto id = rc.led.alloc(k == post_kind::on_done ? channel::on_done : channel::handler);
  if (!id) return step::exhausted;
  const bool ok = accepted(rc, *id, [&] {
    with_body(rc, *id, 0, [&](auto fn) {
      switch (k) {
        case post_kind::plain: rc.p->post(std::move(fn)); break;
        case post_kind::options: rc.p->post(std::move(fn), random_options(rng, rc, rotating)); break;
        case post_kind::on_done: rc.p->post(std::move(fn), on_done_for(rc, *id), random_options(rng, rc, rotating)); break;
      }
    });
  });
  return ok ? step::accepted : step::rejected;
}

// A group run and waited from this external thread (which helps run its children).
step op_external_group(round_ctx& rc, std::mt19937_64& rng) {
  if (rc.led.exhausted()) return step::exhausted;
  weft::task_group g(*rc.p);
  const auto kids = run_children(rc, g, 2 + static_cast<unsigned>(rng() % 7), 1);
  const bool cancel = rng() % 8 == 0;
  if (cancel) g.cancel();
  settle_group(rc, g, kids, cancel);
  return kids.empty() && !rc.led.exhausted() ? step::rejected : step::accepted;
}

// A task that forks a wide group on a worker and waits on it, then runs its own body.
step op_fan_out(round_ctx& rc, unsigned t, std::mt19937_64& rng) {
  const auto id = rc.led.alloc(channel::future);
  if (!id) return step::exhausted;
  const unsigned width = 16 + static_cast<unsigned>(rng() % 33);
  auto root = [&rc, id = *id, width](std::stop_token st) {
    weft::task_group g(*rc.p);
    const auto kids = run_children(rc, g, width, 2);
    settle_group(rc, g, kids, false);
    return body(rc, id, st, 2);
  };
  const bool ok = accepted(rc, *id, [&] { rc.futures[t].emplace_back(*id, rc.p->submit(std::move(root))); });
  return ok ? step::accepted : step::rejected;
}

void submitter(round_ctx& rc, int round, unsigned t) {
  std::mt19937_64 rng(mix(kSeed ^ (static_cast<std::uint64_t>(round) << 8) ^ t));
  std::stop_source rotating;
  unsigned rejections = 0;
  for (std::uint64_t n = 0;; ++n) {
    // relaxed: a request to stop early; the ledger is the real bound.
    if (rc.stop_submitting.load(std::memory_order_relaxed) || clock_type::now() > rc.deadline || rejections > 256) break;
    if (n % 64 == 63) {  // cancels whatever of the last batch is still queued
      rotating.request_stop();
      rotating = std::stop_source{};
    }
    step s = step::accepted;
    switch (rng() % 16) {
      case 0:
      case 1:
      case 2: s = op_submit(rc, t, rng, rotating, false); break;
      case 3:
      case 4:
      case 5: s = op_submit(rc, t, rng, rotating, true); break;
      case 6:
      case 7: s = op_post(rc, rng, rotating, post_kind::plain); break;
      case 8:
      case 9: s = op_post(rc, rng, rotating, post_kind::options); break;
      case 10:
      case 11:
      case 12: s = op_post(rc, rng, rotating, post_kind::on_done); break;
      case 13:
      case 14: s = op_external_group(rc, rng); break;
      case 15: s = op_fan_out(rc, t, rng); break;
    }
    if (s == step::exhausted) break;
    if (s == step::rejected) ++rejections;
  }
  rotating.request_stop();
}

// ---- checking ----

struct tally {
  std::uint64_t ok = 0, threw = 0, cancelled = 0, rejected = 0;
};

tally check_ledger(round_ctx& rc) {
  // Futures: every one ready, holding the value, the body's exception, or task_cancelled.
  for (auto& fs : rc.futures) {
    for (auto& [id, f] : fs) {
      if (!f.ready()) {
        rc.fail("future of op " + std::to_string(id) + " not ready at the end");
        continue;
      }
      outcome_kind k = none;
      try {
        if (f.get() != id) rc.fail("future of op " + std::to_string(id) + " holds another op's value");
        k = ok;
      } catch (const weft::task_cancelled&) {
        k = cancelled;
      } catch (const stress_error& e) {
        k = threw;
        if (e.id != id) rc.fail("future of op " + std::to_string(id) + " holds another op's exception");
      } catch (const std::exception& e) {
        rc.fail(std::string("future holds an unexpected exception: ") + e.what());
      }
      rc.led.delivered[id].fetch_add(1, std::memory_order_relaxed);
      rc.led.delivered_kind[id].store(k, std::memory_order_relaxed);
    }
  }
  tally t;
  ledger& led = rc.led;
  for (std::uint64_t id = 0; id < led.used(); ++id) {
    const auto kind = static_cast<channel>(led.kind[id].load(std::memory_order_relaxed));
    const unsigned ran = led.body[id].load(std::memory_order_relaxed);
    const unsigned delivered = led.delivered[id].load(std::memory_order_relaxed);
    const plan pl = plan_of(id);
    const std::string op = "op " + std::to_string(id) + " (channel " + std::to_string(static_cast<int>(kind)) + ")";
    if (ran > 1) rc.fail(op + " ran " + std::to_string(ran) + " times");
    if (led.rejected[id].load(std::memory_order_relaxed) != 0) {
      ++t.rejected;
      if (ran != 0 || delivered != 0) rc.fail(op + " was rejected, yet it ran or reported an outcome");
      if (led.handler_hits[id].load() != 0 || led.done_hits[id].load() != 0) rc.fail(op + " rejected but reported");
      continue;
    }
    outcome_kind k = none;
    if (kind == channel::future || kind == channel::on_done) {
      if (delivered != 1) {
        rc.fail(op + " reported its outcome " + std::to_string(delivered) + " times");
        continue;
      }
      k = static_cast<outcome_kind>(led.delivered_kind[id].load(std::memory_order_relaxed));
      const bool consistent = (k == ok && ran == 1 && !pl.throws) || (k == threw && ran == 1 && pl.throws) ||
                              (k == cancelled && ran == 0);
      if (!consistent) {
        rc.fail(op + " reported outcome " + std::to_string(k) + " but its body ran " + std::to_string(ran) +
                " times (plan throws: " + std::to_string(pl.throws) + ")");
      }
    } else {
      k = ran == 0 ? cancelled : pl.throws ? threw : ok;
    }
    const unsigned want_handler = (kind == channel::handler && k == threw) ? 1 : 0;
    if (led.handler_hits[id].load(std::memory_order_relaxed) != want_handler) {
      rc.fail(op + " exception reached on_task_exception " + std::to_string(led.handler_hits[id].load()) +
              " times, expected " + std::to_string(want_handler));
    }
    const unsigned want_done = (kind == channel::on_done && pl.done_throws) ? 1 : 0;
    if (led.done_hits[id].load(std::memory_order_relaxed) != want_done) {
      rc.fail(op + " on_done's exception reached on_task_exception " + std::to_string(led.done_hits[id].load()) +
              " times, expected " + std::to_string(want_done));
    }
    switch (k) {
      case ok: ++t.ok; break;
      case threw: ++t.threw; break;
      case cancelled: ++t.cancelled; break;
      case none: rc.fail(op + " has no outcome"); break;
    }
  }
  if (rc.unexpected_handler.load() != 0) rc.fail("on_task_exception received exceptions of no operation");
  return t;
}

// ---- rounds ----

enum class ending { close_after, close_during, close_deadline_during, stop_now_during, base_token_during, destructor };

const char* name_of(ending e) {
  switch (e) {
    case ending::close_after: return "close after";
    case ending::close_during: return "close during";
    case ending::close_deadline_during: return "close(deadline) during";
    case ending::stop_now_during: return "stop_now during";
    case ending::base_token_during: return "base token during";
    case ending::destructor: return "destructor";
  }
  return "?";
}

weft::pool_options options_for(round_ctx& rc, int workers, const std::stop_source& base) {
  weft::pool_options o;
  o.workers = workers;
  o.deque_capacity = 2;
  o.name = "acct";
  o.stop_token = base.get_token();
  o.on_task_exception = [&rc](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const stress_error& x) {
      if (x.id < rc.led.cap) rc.led.handler_hits[x.id].fetch_add(1, std::memory_order_relaxed);
      else rc.unexpected_handler.fetch_add(1);
    } catch (const done_error& x) {
      if (x.id < rc.led.cap) rc.led.done_hits[x.id].fetch_add(1, std::memory_order_relaxed);
      else rc.unexpected_handler.fetch_add(1);
    } catch (...) {
      rc.unexpected_handler.fetch_add(1);
    }
  };
  o.logger = [&rc](std::string_view line) {
    if (line.find("left after shutdown") != std::string_view::npos) rc.leftover_lines.fetch_add(1);
    else if (line.find("isolation") != std::string_view::npos) rc.hatch_lines.fetch_add(1);
    else if (line.find("pin") == std::string_view::npos) rc.fail("unexpected log line: " + std::string(line));
  };
  return o;
}

void run_round(int round, std::uint64_t ops_per_round) {
  static const int kWorkers[] = {1, 2, 4};
  const auto end = static_cast<ending>(round % 6);
  const int workers = kWorkers[(round + round / 6) % 3];
  SCOPED_TRACE(std::string("round ") + std::to_string(round) + ": " + std::to_string(workers) + " workers, " +
               name_of(end));
  auto ctx = std::make_unique<round_ctx>(ops_per_round);
  round_ctx& rc = *ctx;
  rc.prefired.request_stop();
  rc.deadline = clock_type::now() + kRoundTimeLimit;
  std::stop_source base;
  const auto start = clock_type::now();
  auto p = std::make_unique<weft::pool>(options_for(rc, workers, base));
  rc.p = p.get();

  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kSubmitters; ++t) threads.emplace_back([&rc, round, t] { submitter(rc, round, t); });
  auto halfway = [&] {
    while (rc.led.next.load(std::memory_order_relaxed) < rc.led.cap / 2 && clock_type::now() < rc.deadline) {
      std::this_thread::sleep_for(1ms);
    }
  };
  auto join_submitters = [&] {
    for (auto& t : threads) t.join();
  };
  std::optional<weft::metrics> m;
  switch (end) {
    case ending::close_after:
      join_submitters();
      p->close();
      break;
    case ending::close_during:
      halfway();
      p->close();
      join_submitters();
      break;
    case ending::close_deadline_during:
      halfway();
      p->close(clock_type::now() + 1ms);
      join_submitters();
      p->close();  // joins workers still finishing after a missed deadline
      break;
    case ending::stop_now_during:
      halfway();
      p->stop_now();
      join_submitters();
      break;
    case ending::base_token_during:
      halfway();
      base.request_stop();
      join_submitters();
      p->close();
      break;
    case ending::destructor:
      join_submitters();
      break;
  }
  if (end != ending::destructor) m = p->stats();
  p.reset();  // the destructor drains what is left (all of it, in the destructor round)
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();

  const tally t = check_ledger(rc);
  EXPECT_EQ(rc.failure_count.load(), 0u);
  {
    std::lock_guard lock(rc.mu);
    for (const auto& f : rc.failures) ADD_FAILURE() << f;
  }
  EXPECT_EQ(rc.leftover_lines.load(), 0u) << "the pool's destructor found tasks left after shutdown";
  if (m) {
    EXPECT_EQ(m->completed, t.ok);
    EXPECT_EQ(m->failed, t.threw);
    EXPECT_EQ(m->cancelled, t.cancelled);
    EXPECT_EQ(m->rejected, t.rejected);
    EXPECT_EQ(m->queued, 0u);
    EXPECT_EQ(m->running, 0u);
  }
  const std::uint64_t ops = t.ok + t.threw + t.cancelled + t.rejected;
  EXPECT_EQ(ops, rc.led.used()) << "operations not accounted";
  std::cout << "[ round " << round << " ] " << workers << " workers, " << name_of(end) << ": " << ops << " ops: " << t.ok
            << " ok, " << t.threw << " threw, " << t.cancelled << " cancelled, " << t.rejected << " rejected; "
            << rc.groups_rethrew.load() << " group rethrows, " << rc.hatch_lines.load() << " hatch lines, " << seconds
            << " s\n";
}

TEST(AccountingStressTest, EveryOperationEndsExactlyOnceAcrossPoolLifecycles) {
  const std::uint64_t total = weft_test::scaled(3'000'000);
  const std::uint64_t per_round = std::max<std::uint64_t>(total / kRounds, 1000);
  const auto start = clock_type::now();
  for (int round = 0; round < kRounds; ++round) {
    run_round(round, per_round);
    if (HasFailure()) break;  // the first broken round's report is the useful one
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  std::cout << "[ stats    ] " << kRounds << " rounds of " << per_round << " ops, " << seconds << " s\n";
}

}  // namespace
