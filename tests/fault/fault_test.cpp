// tests/fault/fault_test.cpp: exact-once accounting with faults injected (weft_fault library).
//
// A random mix of submissions, under injected failures and delays:
//   external threads  post / try_post / submit (futures kept) / task_group run+wait
//   tasks             post (on a worker: to its own deque), task_group run+wait, submit+get,
//                     nested up to kMaxDepth levels; one task in eight throws
//   the test thread   close() at a random moment while the external threads keep submitting
// with faults: task blocks fail to allocate, worker deques (initial capacity 2) fail to grow,
// thieves pause before their CAS, owners pause after pop's fence, workers pause before they
// park. Every submission attempt gets an id and must end exactly one way:
//   ran        its callable ran exactly once;
//   rejected   the submitter got std::bad_alloc or pool_closed (or try_post's `closed`), and
//              the callable was destroyed without running;
//   cancelled  a task_group child destroyed without running, which task_group.hpp allows only
//              when its group or an enclosing one was cancelled: here, when one of their
//              children threw (the first exception cancels the group).
// Every exception must reach its observer: a posted task's through on_task_exception, a
// submitted task's through its future, a group's first through wait(). Every future must
// be ready once close() returns, the pool's counters must agree with the ledger, and
// nothing may hang: a wait longer than kHang, or a round longer than its watchdog allows,
// aborts the process with a description (before CTest's timeout would kill it silently).
//
// Built twice from this file: fault_test (labels unit;fault: short rounds) and fault_stress
// (stress;fault: longer rounds, WEFT_FAULT_STRESS=1). Sizes shrink with WEFT_STRESS_SCALE.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "testing/fault.hpp"
#include "test_util.hpp"
#include "weft/weft.hpp"

namespace {

namespace fault = weft::detail::fault;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

#if WEFT_FAULT_STRESS
constexpr int kRounds = 6;
constexpr auto kRoundTime = 4000ms;
constexpr std::uint64_t kMaxIds = 4'000'000;
#else
constexpr int kRounds = 3;
constexpr auto kRoundTime = 700ms;
constexpr std::uint64_t kMaxIds = 400'000;
#endif
constexpr int kMaxDepth = 3;
constexpr unsigned kWorkers = 3;
constexpr unsigned kExternalThreads = 4;
constexpr auto kHang = 60s;  // a wait this long is a hang

// The exception thrown by failing tasks: carries the task's id.
struct task_error {
  std::uint64_t id;
};

enum class kind : std::uint8_t { none, post, try_post, submit, group };

// A task_group as the test sees it: its enclosing group (the group of the task that created
// it, as weft's group_context::parent) and whether one of its children threw.
struct group_rec {
  const group_rec* parent = nullptr;
  std::atomic<bool> child_threw{false};
};

bool chain_threw(const group_rec* g) {
  for (; g != nullptr; g = g->parent) {
    if (g->child_threw.load()) return true;
  }
  return false;
}

// What happened to each submission attempt, indexed by id.
class ledger {
 public:
  explicit ledger(std::uint64_t n) : ran_(n), rejected_(n), dropped_(n), threw_(n), delivered_(n), kind_(n), group_(n) {}

  // A fresh id, or nullopt once every id is used (which ends all submitting).
  std::optional<std::uint64_t> take(kind k, const group_rec* group) noexcept {
    const std::uint64_t id = next_.fetch_add(1);
    if (id >= kind_.size()) return std::nullopt;
    kind_[id].store(k);
    group_[id].store(group);
    return id;
  }
  bool exhausted() const noexcept { return next_.load() >= kind_.size(); }
  std::uint64_t used() const noexcept { return std::min<std::uint64_t>(next_.load(), kind_.size()); }
  bool valid(std::uint64_t id) const noexcept { return id < used(); }

  void ran(std::uint64_t id) noexcept { ran_[id].fetch_add(1); }
  void rejected(std::uint64_t id) noexcept { rejected_[id].fetch_add(1); }
  void dropped(std::uint64_t id) noexcept { dropped_[id].fetch_add(1); }  // destroyed without running
  void threw(std::uint64_t id) noexcept { threw_[id].store(1); }
  bool has_thrown(std::uint64_t id) const noexcept { return threw_[id].load() != 0; }
  void delivered(std::uint64_t id) noexcept { delivered_[id].fetch_add(1); }

  struct summary {
    std::uint64_t attempts = 0, ran = 0, rejected = 0, cancelled = 0, threw = 0, errors = 0;
    std::string first_error;
  };
  // Classifies every id; call once nothing runs any more.
  summary check() const {
    summary s;
    s.attempts = used();
    for (std::uint64_t id = 0; id < s.attempts; ++id) {
      const unsigned r = ran_[id].load(), j = rejected_[id].load(), x = dropped_[id].load();
      const unsigned t = threw_[id].load(), d = delivered_[id].load();
      const kind k = kind_[id].load();
      std::string why;
      if (r == 1 && j == 0 && x == 0) {
        ++s.ran;
      } else if (r == 0 && j == 1 && x == 1) {
        ++s.rejected;
      } else if (r == 0 && j == 0 && x == 1 && k == kind::group && chain_threw(group_[id].load())) {
        ++s.cancelled;
      } else {
        why = "ran " + std::to_string(r) + "x, rejected " + std::to_string(j) + "x, dropped " + std::to_string(x) + "x";
      }
      s.threw += t;
      // A group rethrows only its first child exception; every other kind delivers each one.
      if (why.empty() && (k == kind::group ? d > t : d != t)) {
        why = "threw " + std::to_string(t) + ", delivered " + std::to_string(d) + " times";
      }
      if (!why.empty() && s.errors++ == 0) {
        s.first_error = "id " + std::to_string(id) + " (kind " + std::to_string(static_cast<int>(k)) + "): " + why;
      }
    }
    return s;
  }

 private:
  std::atomic<std::uint64_t> next_{0};
  std::vector<std::atomic<std::uint32_t>> ran_, rejected_, dropped_, threw_, delivered_;
  std::vector<std::atomic<kind>> kind_;
  std::vector<std::atomic<const group_rec*>> group_;
};

// Failures noticed while running (as opposed to the ledger's final check).
class problems {
 public:
  void add(std::string what) {
    std::lock_guard lock(mu_);
    if (list_.size() < 20) list_.push_back(std::move(what));
  }
  std::vector<std::string> take() {
    std::lock_guard lock(mu_);
    return std::move(list_);
  }

 private:
  std::mutex mu_;
  std::vector<std::string> list_;
};

std::uint64_t mix(std::uint64_t x) {  // splitmix64: a task's decisions come from its id
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

std::uint64_t value_of(std::uint64_t id) { return id * 3 + 1; }

class round_state {
 public:
  using keyed_future = std::pair<std::uint64_t, weft::future<std::uint64_t>>;

  round_state(std::uint64_t seed, std::uint64_t max_ids) : seed_(seed), book_(max_ids) {
    weft::pool_options o;
    o.workers = kWorkers;
    o.pinning = weft::pin_policy::none;
    o.deque_capacity = 2;  // growth (and its injected failure) all the time
    o.spin_rounds = 8;     // park often: before_park delays and the sleep protocol's races
    o.logger = [this](std::string_view line) { on_log(line); };
    o.on_task_exception = [this](std::exception_ptr e) { on_posted_exception(e); };
    pool_.emplace(std::move(o));
  }

  // One external submitter: random attempts until the deadline, or a while after close.
  void external(unsigned index, clock_type::time_point deadline) {
    std::mt19937_64 rng(mix(seed_ * 131 + index));
    std::vector<keyed_future> futures;
    int after_close = 0;
    while (clock_type::now() < deadline && !book_.exhausted() && after_close < 200) {
      if (pool_->closed()) ++after_close;
      switch (rng() % 10) {
        case 0: case 1: case 2: attempt(kind::post, 0); break;
        case 3: case 4: attempt(kind::try_post, 0); break;
        case 5: case 6: case 7:
          if (auto f = submit(0)) futures.push_back(std::move(*f));
          break;
        default: group_of(static_cast<unsigned>(rng() % 4 + 1), 0, nullptr); break;
      }
      if (futures.size() > 64) collect(futures, rng() % futures.size());
    }
    std::lock_guard lock(futures_mu_);
    for (auto& f : futures) futures_.push_back(std::move(f));
  }

  void close() { pool_->close(); }

  // After close(): every future kept by the external threads must be ready.
  void check_futures() {
    for (auto& [id, f] : futures_) {
      if (!f.ready()) issues_.add("future of id " + std::to_string(id) + " not ready after close()");
      take_result(id, f);
    }
  }

  ledger& book() { return book_; }
  problems& issues() { return issues_; }
  weft::pool& pool() { return *pool_; }
  unsigned escape_hatch_logs() const { return hatch_logs_.load(); }

 private:
  // The callable of every submission: runs run_body once; if it is destroyed without having
  // run (a rejected submission, a cancelled group child), the ledger hears of it.
  class body {
   public:
    body(round_state* s, std::uint64_t id, int depth, const group_rec* group)
        : s_(s), id_(id), depth_(depth), group_(group) {}
    body(body&& o) noexcept : s_(o.s_), id_(o.id_), depth_(o.depth_), group_(o.group_), armed_(std::exchange(o.armed_, false)) {}
    body(const body&) = delete;
    body& operator=(const body&) = delete;
    body& operator=(body&&) = delete;
    ~body() {
      if (armed_) s_->book_.dropped(id_);
    }
    std::uint64_t operator()() {
      armed_ = false;
      return s_->run_body(id_, depth_, group_);
    }

   private:
    round_state* s_;
    std::uint64_t id_;
    int depth_;
    const group_rec* group_;  // the group this task is a child of, or null
    bool armed_ = true;
  };

  // One submission attempt of the given kind (a child of g, recorded as `rec`, for
  // kind::group). Returns the id if the submission was accepted; a submit's future goes to *out.
  std::optional<std::uint64_t> attempt(kind k, int depth, weft::task_group* g = nullptr, const group_rec* rec = nullptr,
                                       std::optional<keyed_future>* out = nullptr) {
    const std::optional<std::uint64_t> id = book_.take(k, rec);
    if (!id) return std::nullopt;
    body b(this, *id, depth, rec);
    try {
      switch (k) {
        case kind::post: pool_->post(std::move(b)); break;
        case kind::try_post:
          if (pool_->try_post(std::move(b)) == weft::submit_status::closed) {
            if (on_worker()) issues_.add("try_post on a worker returned closed");
            book_.rejected(*id);
            return std::nullopt;
          }
          break;
        case kind::submit: out->emplace(*id, pool_->submit(std::move(b))); break;
        case kind::group: g->run(std::move(b)); break;
        case kind::none: break;
      }
      return id;
    } catch (const std::bad_alloc&) {
      book_.rejected(*id);
    } catch (const weft::pool_closed& e) {
      if (on_worker()) issues_.add(std::string("pool_closed on a worker: ") + e.what());
      book_.rejected(*id);
    }
    return std::nullopt;
  }

  std::optional<keyed_future> submit(int depth) {
    std::optional<keyed_future> f;
    attempt(kind::submit, depth, nullptr, nullptr, &f);
    return f;
  }

  // A task_group of n children, created by a task whose own group is `parent` (or by a
  // thread outside any task). wait() must rethrow iff one of its children threw, and then
  // one of theirs; it may report cancelled only if an enclosing group was cancelled.
  void group_of(unsigned n, int depth, const group_rec* parent) {
    group_rec& rec = new_group(parent);
    weft::task_group g(*pool_);
    std::vector<std::uint64_t> children;
    for (unsigned i = 0; i < n; ++i) {
      if (const auto id = attempt(kind::group, depth, &g, &rec)) children.push_back(*id);
    }
    std::optional<std::uint64_t> caught;
    try {
      if (g.wait() == weft::group_status::cancelled && !chain_threw(parent)) {
        issues_.add("a group's wait() reported cancelled, but no enclosing group was cancelled");
      }
    } catch (const task_error& e) {
      caught = e.id;
      book_.delivered(e.id);
    }
    bool any_threw = false;
    for (std::uint64_t c : children) any_threw |= book_.has_thrown(c);
    if (caught && std::find(children.begin(), children.end(), *caught) == children.end()) {
      issues_.add("a group rethrew the exception of id " + std::to_string(*caught) + ", not one of its children");
    }
    if (any_threw && !caught) issues_.add("a group's child threw but wait() returned normally");
  }

  // The task body: record the run, maybe submit more, maybe throw. Returns value_of(id).
  std::uint64_t run_body(std::uint64_t id, int depth, const group_rec* group) {
    book_.ran(id);
    const std::uint64_t r = mix(id ^ seed_);
    if (depth < kMaxDepth) {
      const unsigned n = static_cast<unsigned>((r >> 8) % 5);  // up to 4: deques of 2 grow
      switch ((r >> 16) % 8) {
        case 0: case 1: case 2:
          for (unsigned i = 0; i < n; ++i) attempt(kind::post, depth + 1);
          break;
        case 3: group_of(n, depth + 1, group); break;
        case 4:
          if (auto f = submit(depth + 1)) take_result(f->first, f->second);
          break;
        default: break;
      }
    }
    if (r % 8 == 0) {
      book_.threw(id);
      if (group != nullptr) const_cast<group_rec*>(group)->child_threw.store(true);
      throw task_error{id};
    }
    return value_of(id);
  }

  // get() with a hang check: the value must match, or the exception must be this task's.
  void take_result(std::uint64_t id, weft::future<std::uint64_t>& f) {
    if (f.wait_for(kHang) != std::future_status::ready) hang("the future of id " + std::to_string(id));
    try {
      const std::uint64_t v = f.get();
      if (v != value_of(id)) issues_.add("future of id " + std::to_string(id) + " has a wrong value");
    } catch (const task_error& e) {
      if (e.id != id) issues_.add("future of id " + std::to_string(id) + " got the exception of " + std::to_string(e.id));
      book_.delivered(e.id);
    } catch (const std::exception& e) {
      issues_.add("future of id " + std::to_string(id) + " got " + e.what());
    }
  }

  [[noreturn]] void hang(const std::string& what) {
    // The task may still be referenced by a queue: there is no way to go on.
    const weft::metrics m = pool_->stats();
    std::fprintf(stderr, "fault_test: HANG: %s is not ready after %lld s (pool: %llu queued, %llu running, closed %d)\n",
                 what.c_str(), static_cast<long long>(kHang.count()), static_cast<unsigned long long>(m.queued),
                 static_cast<unsigned long long>(m.running), pool_->closed() ? 1 : 0);
    std::abort();
  }

  void collect(std::vector<keyed_future>& v, std::size_t i) {
    take_result(v[i].first, v[i].second);
    v[i] = std::move(v.back());
    v.pop_back();
  }

  group_rec& new_group(const group_rec* parent) {
    std::lock_guard lock(groups_mu_);
    group_rec& g = groups_.emplace_back();
    g.parent = parent;
    return g;
  }

  void on_posted_exception(std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const task_error& te) {
      if (!book_.valid(te.id)) issues_.add("on_task_exception got an unknown id");
      else book_.delivered(te.id);
    } catch (...) {
      issues_.add("on_task_exception got a foreign exception");
    }
  }

  void on_log(std::string_view line) {
    // The documented escape hatch of isolated waiting (task_group.hpp) may log; nothing else should.
    if (line.find("isolation") != std::string_view::npos) hatch_logs_.fetch_add(1);
    else issues_.add("logged: " + std::string(line));
  }

  bool on_worker() const { return pool_->current_worker_index() >= 0; }

  const std::uint64_t seed_;
  ledger book_;
  problems issues_;
  std::atomic<unsigned> hatch_logs_{0};
  std::mutex groups_mu_;
  std::deque<group_rec> groups_;  // guarded by groups_mu_; stable addresses
  std::mutex futures_mu_;
  std::vector<keyed_future> futures_;
  std::optional<weft::pool> pool_;  // last: destroyed (closed) first
};

// Aborts the process if not disarmed within `limit`: a hang shows as a crash with context.
class watchdog {
 public:
  watchdog(std::chrono::seconds limit, std::string what)
      : thread_([this, limit, what = std::move(what)] {
          std::unique_lock lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "fault_test: HANG: %s did not finish in %lld s\n", what.c_str(),
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

void configure_faults(std::uint64_t seed) {
  fault::reset();
  fault::seed(seed);
  fault::configure(fault::point::task_alloc, 0.02);
  fault::configure(fault::point::deque_grow, 0.5);
  fault::configure(fault::point::before_steal_cas, 0.0, 20us, 0.1);
  fault::configure(fault::point::pop_after_fence, 0.0, 10us, 0.02);
  fault::configure(fault::point::before_park, 0.0, 200us, 0.5);
}

constexpr const char* kPointNames[] = {"task_alloc", "deque_grow", "before_steal_cas", "pop_after_fence", "before_park"};
static_assert(std::size(kPointNames) == static_cast<std::size_t>(fault::point::count_));

#if WEFT_FAULT_STRESS
#define FAULT_SUITE FaultAccountingStress  // distinct CTest names for the two builds
#else
#define FAULT_SUITE FaultAccounting
#endif

TEST(FAULT_SUITE, EverySubmissionRunsOnceOrIsRejected) {
  const std::uint64_t max_ids = weft_test::scaled(kMaxIds);
  std::uint64_t injected[std::size(kPointNames)] = {};
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::uint64_t seed = 1000 + static_cast<std::uint64_t>(round);
    configure_faults(seed);
    const auto start = clock_type::now();
    {
      watchdog dog(std::chrono::duration_cast<std::chrono::seconds>(kRoundTime) + 2 * kHang, "a round");
      round_state s(seed, max_ids);
      std::vector<std::thread> threads;
      for (unsigned i = 0; i < kExternalThreads; ++i) threads.emplace_back([&, i] { s.external(i, start + kRoundTime); });
      std::mt19937_64 rng(seed);
      std::this_thread::sleep_for(kRoundTime * (30 + static_cast<int>(rng() % 40)) / 100);
      s.close();
      EXPECT_TRUE(s.pool().closed());
      for (auto& t : threads) t.join();
      s.check_futures();
      // The pool is closed and its workers joined: the ledger is final.
      const ledger::summary sum = s.book().check();
      const weft::metrics m = s.pool().stats();
      for (const std::string& p : s.issues().take()) ADD_FAILURE() << p;
      EXPECT_EQ(sum.errors, 0u) << "first: " << sum.first_error;
      EXPECT_EQ(sum.ran + sum.rejected + sum.cancelled, sum.attempts);
      EXPECT_EQ(m.completed + m.failed, sum.ran) << "tasks the workers counted as run vs callables that ran";
      EXPECT_EQ(m.cancelled, sum.cancelled);
      EXPECT_EQ(m.failed, sum.threw);
      EXPECT_EQ(m.queued, 0u);
      std::printf("round %d: %llu attempts: %llu ran (%llu threw), %llu rejected, %llu cancelled; %u escape-hatch "
                  "logs; %.2f s\n",
                  round, static_cast<unsigned long long>(sum.attempts), static_cast<unsigned long long>(sum.ran),
                  static_cast<unsigned long long>(sum.threw), static_cast<unsigned long long>(sum.rejected),
                  static_cast<unsigned long long>(sum.cancelled), s.escape_hatch_logs(),
                  std::chrono::duration<double>(clock_type::now() - start).count());
    }
    for (std::size_t p = 0; p < std::size(kPointNames); ++p) {
      const auto pt = static_cast<fault::point>(p);
      injected[p] += fault::injected_failures(pt) + fault::injected_delays(pt);
    }
  }
  fault::reset();
  // Every point must have fired, or the test proved less than it claims.
  for (std::size_t p = 0; p < std::size(kPointNames); ++p) {
    std::printf("%s: %llu injections\n", kPointNames[p], static_cast<unsigned long long>(injected[p]));
    EXPECT_GT(injected[p], 0u) << kPointNames[p] << " never fired";
  }
}

}  // namespace
