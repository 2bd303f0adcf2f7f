// tests/unit/options_test.cpp: pool_options validation, the environment overrides, the
// default worker count and the pin policies, observed through a real pool.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "weft/pool.hpp"

namespace {

using namespace std::chrono_literals;

// True when `name` occurs in `text` as a whole identifier (so "capacity" does not pass for
// "deque_capacity", nor "workers" for "WEFT_WORKERS").
bool names_option(const std::string& text, const std::string& name) {
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
  for (std::size_t pos = text.find(name); pos != std::string::npos; pos = text.find(name, pos + 1)) {
    const bool left = pos == 0 || !ident(text[pos - 1]);
    const bool right = pos + name.size() == text.size() || !ident(text[pos + name.size()]);
    if (left && right) return true;
  }
  return false;
}

std::vector<unsigned> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<unsigned> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (unsigned c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  return cpus;
}

std::vector<unsigned> this_thread_cpus() { return allowed_cpus(); }

std::optional<std::string> read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

// Distinct cores among the allowed CPUs, from sysfs (independent of hwloc); nullopt if
// sysfs does not say.
std::optional<unsigned> allowed_cores_from_sysfs() {
  std::set<std::pair<std::string, std::string>> cores;
  for (unsigned cpu : allowed_cpus()) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const auto pkg = read_first_line(dir + "physical_package_id");
    const auto core = read_first_line(dir + "core_id");
    if (!pkg || !core) return std::nullopt;
    cores.emplace(*pkg, *core);
  }
  return cores.empty() ? std::nullopt : std::optional<unsigned>(static_cast<unsigned>(cores.size()));
}

// The tightest cgroup v2 cpu.max on the way from our cgroup to the root, in CPUs rounded up.
std::optional<unsigned> cgroup_quota() {
  const auto self = read_first_line("/proc/self/cgroup");
  if (!self || self->rfind("0::", 0) != 0) return std::nullopt;
  std::string path = self->substr(3);
  std::optional<unsigned> best;
  for (;;) {
    if (const auto line = read_first_line("/sys/fs/cgroup" + path + "/cpu.max")) {
      const auto space = line->find(' ');
      if (space != std::string::npos && line->substr(0, space) != "max") {
        const double quota = std::stod(line->substr(0, space));
        const double period = std::stod(line->substr(space + 1));
        const auto cpus = static_cast<unsigned>((quota + period - 1) / period);
        best = best ? std::min(*best, cpus) : cpus;
      }
    }
    if (path.empty() || path == "/") break;
    path = path.substr(0, path.rfind('/'));
  }
  return best;
}

// Collects what the pool logs (the logger may be called from any thread).
struct log_capture {
  std::mutex mu;
  std::vector<std::string> lines;

  std::function<void(std::string_view)> sink() {
    return [this](std::string_view line) {
      std::lock_guard lock(mu);
      lines.emplace_back(line);
    };
  }
  bool mentions(const std::string& word) {
    std::lock_guard lock(mu);
    return std::any_of(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(word) != std::string::npos; });
  }
};

// Runs fn(worker index) once on every worker at the same time: each task waits for all the
// others, so no worker can run two of them. False if they did not all meet within 10 s.
bool run_on_every_worker(weft::pool& p, const std::function<void(int)>& fn) {
  const unsigned n = p.size();
  auto arrived = std::make_shared<std::atomic<unsigned>>(0);
  std::vector<weft::future<bool>> done;
  for (unsigned i = 0; i < n; ++i) {
    done.push_back(p.submit([&p, &fn, arrived, n] {
      fn(p.current_worker_index());
      arrived->fetch_add(1);
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (arrived->load() < n) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::yield();
      }
      return true;
    }));
  }
  bool ok = true;
  for (auto& f : done) ok = f.get() && ok;
  return ok;
}

// ---- invalid options ----

struct invalid_case {
  const char* label;
  const char* option;  // must be named by what()
  std::function<void(weft::pool_options&)> set;
};

class InvalidOptionTest : public testing::TestWithParam<invalid_case> {};

TEST_P(InvalidOptionTest, ThrowsInvalidArgumentNamingTheOption) {
  weft::pool_options o;
  o.workers = 1;
  GetParam().set(o);
  try {
    weft::pool p(o);
    FAIL() << "constructed a pool with invalid options (" << GetParam().label << ")";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(names_option(e.what(), GetParam().option)) << "what(): " << e.what();
    // Every option error, the PU checks of the pinning plan included, names the field the
    // same way: weft::pool_options::<field>.
    EXPECT_NE(std::string(e.what()).find(std::string("weft::pool_options::") + GetParam().option), std::string::npos)
        << "what(): " << e.what();
  }
}

unsigned outside_pu() { return 100000; }

INSTANTIATE_TEST_SUITE_P(
    Options, InvalidOptionTest,
    testing::Values(
        invalid_case{"workers_negative", "workers", [](auto& o) { o.workers = -1; }},
        invalid_case{"workers_huge", "workers", [](auto& o) { o.workers = 100000; }},
        invalid_case{"deque_capacity_zero", "deque_capacity", [](auto& o) { o.deque_capacity = 0; }},
        invalid_case{"deque_capacity_one", "deque_capacity", [](auto& o) { o.deque_capacity = 1; }},
        invalid_case{"deque_capacity_not_pow2", "deque_capacity", [](auto& o) { o.deque_capacity = 3; }},
        invalid_case{"deque_capacity_2pow31", "deque_capacity", [](auto& o) { o.deque_capacity = std::size_t{1} << 31; }},
        // 2^30 used to be documented as valid and could not be allocated (8 GiB per worker).
        invalid_case{"deque_capacity_2pow21", "deque_capacity", [](auto& o) { o.deque_capacity = std::size_t{1} << 21; }},
        invalid_case{"deque_capacity_2pow30", "deque_capacity", [](auto& o) { o.deque_capacity = std::size_t{1} << 30; }},
        invalid_case{"spin_rounds_huge", "spin_rounds", [](auto& o) { o.spin_rounds = 2'000'000; }},
        invalid_case{"explicit_empty_pus", "pus", [](auto& o) { o.pinning = weft::pin_policy::explicit_list; }},
        invalid_case{"explicit_duplicate_pus", "pus",
                     [](auto& o) {
                       const unsigned cpu = allowed_cpus().at(0);
                       o.pinning = weft::pin_policy::explicit_list;
                       o.pus = {cpu, cpu};
                     }},
        invalid_case{"explicit_pu_outside_cpuset", "pus",
                     [](auto& o) {
                       o.pinning = weft::pin_policy::explicit_list;
                       o.pus = {allowed_cpus().at(0), outside_pu()};
                     }},
        invalid_case{"pus_with_compact", "pus",
                     [](auto& o) {
                       o.pinning = weft::pin_policy::compact;
                       o.pus = {allowed_cpus().at(0)};
                     }},
        invalid_case{"pus_with_none", "pus",
                     [](auto& o) {
                       o.pinning = weft::pin_policy::none;
                       o.pus = {allowed_cpus().at(0)};
                     }}),
    [](const auto& info) { return std::string(info.param.label); });

// The lower edges of the valid ranges are accepted. (The upper edge of spin_rounds is not
// constructed: a million spin rounds keeps close() waiting; deque_capacity's is, below.)
TEST(ValidOptionTest, LowerEdgeValuesConstruct) {
  weft::pool_options o;
  o.workers = 2;
  o.deque_capacity = 2;
  o.spin_rounds = 0;
  o.name = "";
  weft::pool p(o);
  std::atomic<int> ran{0};
  p.submit([&] {
     for (int i = 0; i < 100; ++i) p.post([&] { ran.fetch_add(1); });
   }).get();
  p.close();
  EXPECT_EQ(ran.load(), 100);
}

// The largest valid deque_capacity (2^20 slots, 8 MiB per worker) constructs and runs.
TEST(ValidOptionTest, LargestDequeCapacityConstructs) {
  weft::pool_options o;
  o.workers = 2;
  o.deque_capacity = std::size_t{1} << 20;
  weft::pool p(o);
  EXPECT_EQ(p.submit([] { return 7; }).get(), 7);
}

// ---- environment ----

// Sets (or unsets, with nullptr) an environment variable for the scope; restores it after.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value != nullptr) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~scoped_env() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(EnvironmentTest, WeftWorkersOverridesWorkers) {
  scoped_env w("WEFT_WORKERS", "3");
  scoped_env pin("WEFT_PIN", nullptr);
  weft::pool_options o;
  o.workers = 1;
  o.read_environment = true;
  weft::pool p(o);
  EXPECT_EQ(p.size(), 3u);
  EXPECT_EQ(p.submit([] { return 1; }).get(), 1);
}

TEST(EnvironmentTest, WeftWorkersZeroMeansUsableCores) {
  scoped_env w("WEFT_WORKERS", "0");
  weft::pool_options o;
  o.workers = 5;
  o.read_environment = true;
  weft::pool p(o);
  EXPECT_GE(p.size(), 1u);
  EXPECT_LE(p.size(), allowed_cpus().size());
}

TEST(EnvironmentTest, WeftPinOverridesPinning) {
  scoped_env w("WEFT_WORKERS", nullptr);
  scoped_env pin("WEFT_PIN", "none");
  weft::pool_options o;
  o.workers = 2;
  o.pinning = weft::pin_policy::compact;
  o.read_environment = true;
  weft::pool p(o);
  EXPECT_NE(p.placement().find("pinning none"), std::string::npos) << p.placement();
  EXPECT_EQ(p.placement().find("->PU"), std::string::npos) << "no worker may be pinned: " << p.placement();
}

struct bad_env_case {
  const char* variable;
  const char* value;
};

class InvalidEnvironmentTest : public testing::TestWithParam<bad_env_case> {};

TEST_P(InvalidEnvironmentTest, ThrowsNamingTheVariable) {
  const auto [variable, value] = GetParam();
  scoped_env w("WEFT_WORKERS", nullptr);
  scoped_env pin("WEFT_PIN", nullptr);
  scoped_env bad(variable, value);
  weft::pool_options o;
  o.workers = 1;
  o.read_environment = true;
  try {
    weft::pool p(o);
    FAIL() << variable << "=" << value << " was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(names_option(e.what(), variable)) << "what(): " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Variables, InvalidEnvironmentTest,
                         testing::Values(bad_env_case{"WEFT_WORKERS", "abc"}, bad_env_case{"WEFT_WORKERS", "-2"},
                                         bad_env_case{"WEFT_WORKERS", "4x"}, bad_env_case{"WEFT_WORKERS", " 4"},
                                         bad_env_case{"WEFT_PIN", "diagonal"}, bad_env_case{"WEFT_PIN", "compactt"}),
                         [](const auto& info) {
                           std::string s = std::string(info.param.variable) + "_" + std::to_string(info.index);
                           return s;
                         });

TEST(EnvironmentTest, IgnoredWithoutReadEnvironment) {
  scoped_env w("WEFT_WORKERS", "not-a-number");
  scoped_env pin("WEFT_PIN", "diagonal");
  weft::pool_options o;
  o.workers = 2;
  o.read_environment = false;
  weft::pool p(o);  // must not throw
  EXPECT_EQ(p.size(), 2u);
}

// ---- worker count ----

TEST(WorkerCountTest, ZeroMeansOnePerUsableCore) {
  weft::pool_options o;
  o.workers = 0;
  weft::pool p(o);
  const unsigned cpus = static_cast<unsigned>(allowed_cpus().size());
  ASSERT_GE(cpus, 1u);
  EXPECT_GE(p.size(), 1u);
  EXPECT_LE(p.size(), cpus);
  if (const auto cores = allowed_cores_from_sysfs()) {
    unsigned expected = *cores;
    if (const auto quota = cgroup_quota()) expected = std::min(expected, *quota);
    EXPECT_EQ(p.size(), std::max(expected, 1u)) << "cores from sysfs " << *cores;
  }
  EXPECT_EQ(p.stats().workers, p.size());
}

TEST(WorkerCountTest, MoreWorkersThanCores) {
  weft::pool_options o;
  o.workers = static_cast<int>(allowed_cpus().size()) * 3 + 1;
  weft::pool p(o);
  EXPECT_EQ(p.size(), static_cast<unsigned>(o.workers));
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) p.post([&] { ran.fetch_add(1); });
  p.close();
  EXPECT_EQ(ran.load(), 1000);
}

// ---- pin policies ----

class PinPolicyTest : public testing::TestWithParam<weft::pin_policy> {};

TEST_P(PinPolicyTest, ConstructsAndRuns) {
  log_capture log;
  weft::pool_options o;
  o.pinning = GetParam();
  o.workers = static_cast<int>(allowed_cpus().size());
  o.logger = log.sink();
  weft::pool p(o);
  EXPECT_FALSE(p.placement().empty());
  EXPECT_NE(p.placement().find("pinning " + std::string(weft::to_string(GetParam()))), std::string::npos)
      << p.placement();
  EXPECT_EQ(p.submit([] { return 42; }).get(), 42);

  std::mutex mu;
  std::vector<std::vector<unsigned>> affinity(p.size());
  ASSERT_TRUE(run_on_every_worker(p, [&](int w) {
    std::lock_guard lock(mu);
    affinity.at(static_cast<std::size_t>(w)) = this_thread_cpus();
  })) << "the workers never all ran at once";
  if (log.mentions("unpinned")) return;  // this machine cannot bind threads: nothing more to check
  const std::vector<unsigned> all = allowed_cpus();
  std::set<unsigned> used;
  for (unsigned w = 0; w < p.size(); ++w) {
    if (GetParam() == weft::pin_policy::none) {
      EXPECT_EQ(affinity[w], all) << "an unpinned worker " << w << " keeps the process's cpuset";
    } else {
      ASSERT_EQ(affinity[w].size(), 1u) << "worker " << w << " is pinned to exactly one PU";
      EXPECT_NE(std::find(all.begin(), all.end(), affinity[w][0]), all.end());
      EXPECT_NE(p.placement().find(std::to_string(w) + "->PU" + std::to_string(affinity[w][0])), std::string::npos)
          << "placement() must say where worker " << w << " is: " << p.placement();
      used.insert(affinity[w][0]);
    }
  }
  // One worker per CPU: compact and scatter both use every CPU before reusing one.
  if (GetParam() != weft::pin_policy::none) {
    EXPECT_EQ(used.size(), p.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, PinPolicyTest,
                         testing::Values(weft::pin_policy::none, weft::pin_policy::compact, weft::pin_policy::scatter),
                         [](const auto& info) { return std::string(weft::to_string(info.param)); });

TEST(PinPolicyTest, ExplicitListPinsWorkerIToPusIModN) {
  std::vector<unsigned> pus = allowed_cpus();
  std::reverse(pus.begin(), pus.end());
  log_capture log;
  weft::pool_options o;
  o.pinning = weft::pin_policy::explicit_list;
  o.pus = pus;
  o.workers = static_cast<int>(pus.size()) + 1;  // the last worker wraps around to pus[0]
  o.logger = log.sink();
  weft::pool p(o);
  std::mutex mu;
  std::vector<std::vector<unsigned>> affinity(p.size());
  ASSERT_TRUE(run_on_every_worker(p, [&](int w) {
    std::lock_guard lock(mu);
    affinity.at(static_cast<std::size_t>(w)) = this_thread_cpus();
  })) << "the workers never all ran at once";
  if (log.mentions("unpinned")) return;
  for (unsigned w = 0; w < p.size(); ++w) {
    EXPECT_EQ(affinity[w], std::vector<unsigned>{pus[w % pus.size()]}) << "worker " << w;
  }
}

}  // namespace
