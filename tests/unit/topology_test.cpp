// tests/unit/topology_test.cpp: the topology layer. Pin plans, distances and victim order
// on synthetic machines; cpu.max parsing and the cgroup walk on a temporary tree; policy
// names; discovery and binding on the real machine.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "platform/topology.hpp"
#include "weft/options.hpp"

namespace weft::detail {
namespace {

using plan_t = std::vector<std::optional<unsigned>>;

// ---- synthetic machines ----

struct shape {
  unsigned packages, numa_per_package, l3_per_numa, cores_per_l3, smt;
};

// How OS CPU numbers are given out. x86_linux: the k-th hardware thread of core c is OS
// CPU c + k * cores (siblings far apart); adjacent: it is c * smt + k (most ARM and some
// AMD firmware). Plans are checked under both, so one that follows OS numbers instead of
// the topology shows.
enum class numbering { x86_linux, adjacent };

topology make_topology(shape s, numbering order = numbering::x86_linux) {
  topology t;
  const unsigned cores = s.packages * s.numa_per_package * s.l3_per_numa * s.cores_per_l3;
  unsigned core = 0, l3 = 0, numa = 0;
  for (unsigned p = 0; p < s.packages; ++p) {
    for (unsigned n = 0; n < s.numa_per_package; ++n, ++numa) {
      for (unsigned l = 0; l < s.l3_per_numa; ++l, ++l3) {
        for (unsigned c = 0; c < s.cores_per_l3; ++c, ++core) {
          for (unsigned k = 0; k < s.smt; ++k) {
            const unsigned os = order == numbering::x86_linux ? core + k * cores : core * s.smt + k;
            t.pus.push_back(pu_info{os, core, l3, numa, p});
          }
        }
      }
    }
  }
  t.cores = core;
  t.l3_groups = l3;
  t.numa_nodes = numa;
  t.packages = s.packages;
  t.description = "synthetic";
  return t;
}

const shape kTwoByTwo{2, 1, 2, 2, 2};  // 2 packages x 2 L3 x 2 cores x 2 SMT: 8 cores, 16 PUs
const shape kNumaSplit{2, 2, 1, 2, 2};  // like kTwoByTwo, but each L3 is its own NUMA node
const shape kOneCore{1, 1, 1, 1, 1};
const shape kOneCoreSmt{1, 1, 1, 1, 2};
const shape kFlat4{1, 1, 1, 4, 1};

// Package 0 has cores 0-2; package 1 has one core with two threads (OS 3 and 4).
topology make_uneven() {
  topology t;
  t.pus = {{0, 0, 0, 0, 0}, {1, 1, 0, 0, 0}, {2, 2, 0, 0, 0}, {3, 3, 1, 1, 1}, {4, 3, 1, 1, 1}};
  t.cores = 4;
  t.l3_groups = t.numa_nodes = t.packages = 2;
  return t;
}

// ---- plan_pins: exact plans ----

struct plan_case {
  const char* name;
  topology topo;
  pin_policy policy;
  unsigned workers;
  std::vector<unsigned> pus;  // explicit list
  plan_t expected;
};

class PlanPins : public ::testing::TestWithParam<plan_case> {};

TEST_P(PlanPins, GivesTheExpectedPus) {
  const plan_case& c = GetParam();
  EXPECT_EQ(plan_pins(c.topo, c.policy, c.workers, c.pus), c.expected);
}

const plan_t kCompact18{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1};
// Round 0 spreads first threads: package 0 (L3 0, L3 1), package 1, ...; round 1 the same
// for second threads.
const plan_t kScatter17{0, 4, 2, 6, 1, 5, 3, 7, 8, 12, 10, 14, 9, 13, 11, 15, 0};

INSTANTIATE_TEST_SUITE_P(
    Topologies, PlanPins,
    ::testing::Values(
        plan_case{"compact_fills_cores_before_siblings", make_topology(kTwoByTwo), pin_policy::compact, 10, {},
                  plan_t(kCompact18.begin(), kCompact18.begin() + 10)},
        plan_case{"compact_wraps_when_oversubscribed", make_topology(kTwoByTwo), pin_policy::compact, 18, {}, kCompact18},
        plan_case{"scatter_alternates_packages_then_l3", make_topology(kTwoByTwo), pin_policy::scatter, 17, {}, kScatter17},
        plan_case{"compact_adjacent_numbering", make_topology(kTwoByTwo, numbering::adjacent), pin_policy::compact, 10,
                  {}, {0, 2, 4, 6, 8, 10, 12, 14, 1, 3}},
        plan_case{"scatter_adjacent_numbering", make_topology(kTwoByTwo, numbering::adjacent), pin_policy::scatter, 10,
                  {}, {0, 8, 4, 12, 2, 10, 6, 14, 1, 9}},
        plan_case{"scatter_ignores_numa_level", make_topology(kNumaSplit), pin_policy::scatter, 4, {}, {0, 4, 2, 6}},
        plan_case{"scatter_uneven_packages_cores_first", make_uneven(), pin_policy::scatter, 6, {}, {0, 3, 1, 2, 4, 0}},
        plan_case{"compact_uneven", make_uneven(), pin_policy::compact, 5, {}, {0, 1, 2, 3, 4}},
        plan_case{"none_is_unpinned", make_topology(kTwoByTwo), pin_policy::none, 3, {}, plan_t(3)},
        plan_case{"one_core_oversubscribed", make_topology(kOneCore), pin_policy::compact, 3, {}, {0, 0, 0}},
        plan_case{"one_core_smt_scatter", make_topology(kOneCoreSmt), pin_policy::scatter, 3, {}, {0, 1, 0}},
        plan_case{"zero_workers", make_topology(kFlat4), pin_policy::compact, 0, {}, {}},
        plan_case{"empty_topology_is_unpinned", topology{}, pin_policy::compact, 2, {}, plan_t(2)},
        plan_case{"explicit_repeats_list", make_topology(kTwoByTwo), pin_policy::explicit_list, 5, {3, 12},
                  {3, 12, 3, 12, 3}},
        plan_case{"explicit_list_ignored_otherwise", make_topology(kFlat4), pin_policy::compact, 2, {99}, {0, 1}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- plan_pins: properties on every shape ----

class PlanProperties : public ::testing::TestWithParam<std::tuple<shape, numbering, pin_policy>> {};

TEST_P(PlanProperties, OneWorkerPerCoreThenEveryPuThenWrap) {
  const auto [s, order, policy] = GetParam();
  const topology topo = make_topology(s, order);
  const auto n = static_cast<unsigned>(topo.pus.size());
  const plan_t plan = plan_pins(topo, policy, 2 * n + 1, {});
  std::map<unsigned, const pu_info*> by_os;
  for (const pu_info& p : topo.pus) by_os[p.os_index] = &p;

  std::set<unsigned> cores, pus;
  for (unsigned w = 0; w < 2 * n + 1; ++w) {
    ASSERT_TRUE(plan[w].has_value()) << "worker " << w;
    ASSERT_TRUE(by_os.count(*plan[w])) << "worker " << w << " on unknown PU " << *plan[w];
    if (w < topo.cores) {
      EXPECT_TRUE(cores.insert(by_os[*plan[w]]->core).second) << "worker " << w << " shares a core";
    }
    if (w < n) {
      EXPECT_TRUE(pus.insert(*plan[w]).second) << "worker " << w << " shares a PU";
    } else {
      EXPECT_EQ(plan[w], plan[w % n]) << "worker " << w << " does not wrap";
    }
  }
  if (policy == pin_policy::scatter && topo.packages > 1) {
    EXPECT_NE(by_os[*plan[0]]->package, by_os[*plan[1]]->package);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PlanProperties,
                         ::testing::Combine(::testing::Values(kTwoByTwo, kNumaSplit, kOneCore, kOneCoreSmt, kFlat4),
                                            ::testing::Values(numbering::x86_linux, numbering::adjacent),
                                            ::testing::Values(pin_policy::compact, pin_policy::scatter)));

// ---- explicit list validation ----

struct bad_list {
  const char* name;
  std::vector<unsigned> pus;
  const char* mentions;  // the offending value, as the message should show it
};

class ExplicitValidation : public ::testing::TestWithParam<bad_list> {};

TEST_P(ExplicitValidation, ThrowsNamingPus) {
  const topology topo = make_topology(kFlat4);  // PUs 0..3
  try {
    plan_pins(topo, pin_policy::explicit_list, 4, GetParam().pus);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("pus"), std::string::npos) << what;
    EXPECT_NE(what.find(GetParam().mentions), std::string::npos) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Lists, ExplicitValidation,
                         ::testing::Values(bad_list{"empty", {}, "empty"}, bad_list{"duplicate", {1, 2, 1}, "PU 1 "},
                                           bad_list{"outside_set", {0, 7}, "PU 7 "}),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- pu_distance ----

struct distance_case {
  shape s;
  unsigned a, b, expected;
};

class PuDistance : public ::testing::TestWithParam<distance_case> {};

TEST_P(PuDistance, IsSymmetricAndMatches) {
  const distance_case& c = GetParam();
  const topology topo = make_topology(c.s);
  EXPECT_EQ(pu_distance(topo, c.a, c.b), c.expected);
  EXPECT_EQ(pu_distance(topo, c.b, c.a), c.expected);
}

// In kTwoByTwo/kNumaSplit core c holds OS CPUs c and c + 8; cores 2k, 2k+1 share an L3.
INSTANTIATE_TEST_SUITE_P(Pairs, PuDistance,
                         ::testing::Values(distance_case{kTwoByTwo, 0, 0, 0}, distance_case{kTwoByTwo, 0, 8, 0},
                                           distance_case{kTwoByTwo, 0, 9, 1}, distance_case{kTwoByTwo, 0, 2, 2},
                                           distance_case{kNumaSplit, 0, 2, 3}, distance_case{kNumaSplit, 3, 12, 4},
                                           distance_case{kTwoByTwo, 0, 99, 4}, distance_case{kTwoByTwo, 99, 99, 4}));

// ---- victim_buckets ----

using buckets_t = std::vector<std::vector<unsigned>>;

TEST(VictimBuckets, NearestFirstEmptyBucketsOmitted) {
  const topology topo = make_topology(kNumaSplit);
  const auto groups = victim_buckets(topo, plan_pins(topo, pin_policy::compact, 16, {}));
  ASSERT_EQ(groups.size(), 16u);
  // Worker 0 is on core 0: its sibling (8), its L3 (core 1), its package's other NUMA node
  // (cores 2, 3), the other package. No bucket at distance 2: L3 and NUMA coincide here.
  EXPECT_EQ(groups[0], (buckets_t{{8}, {1, 9}, {2, 3, 10, 11}, {4, 5, 6, 7, 12, 13, 14, 15}}));
  EXPECT_EQ(groups[13], (buckets_t{{5}, {4, 12}, {6, 7, 14, 15}, {0, 1, 2, 3, 8, 9, 10, 11}}));
}

TEST(VictimBuckets, UnpinnedWorkersAreOneFarBucket) {
  const topology topo = make_topology(kTwoByTwo);
  const auto groups = victim_buckets(topo, plan_t(3));
  EXPECT_EQ(groups, (std::vector<buckets_t>{{{1, 2}}, {{0, 2}}, {{0, 1}}}));
  EXPECT_EQ(victim_buckets(topo, plan_t(1)), (std::vector<buckets_t>{{}}));
}

TEST(VictimBuckets, SharedPuIsNearest) {
  const topology topo = make_topology(kOneCore);
  EXPECT_EQ(victim_buckets(topo, plan_t{0, 0}), (std::vector<buckets_t>{{{1}}, {{0}}}));
}

// ---- cgroup ----

struct cpu_max_case {
  const char* text;
  std::optional<unsigned> expected;
};

class ParseCpuMax : public ::testing::TestWithParam<cpu_max_case> {};

TEST_P(ParseCpuMax, Parses) { EXPECT_EQ(parse_cpu_max(GetParam().text), GetParam().expected) << GetParam().text; }

INSTANTIATE_TEST_SUITE_P(
    Texts, ParseCpuMax,
    ::testing::Values(cpu_max_case{"max 100000", std::nullopt}, cpu_max_case{"max 100000\n", std::nullopt},
                      cpu_max_case{"150000 100000", 2u}, cpu_max_case{"100000 100000\n", 1u},
                      cpu_max_case{"50000 100000", 1u}, cpu_max_case{"250000 100000", 3u},
                      cpu_max_case{"  400000   100000 \n", 4u}, cpu_max_case{"18446744073709551615 1", 4294967295u},
                      cpu_max_case{"", std::nullopt}, cpu_max_case{"garbage", std::nullopt},
                      cpu_max_case{"100000", std::nullopt}, cpu_max_case{"100000 0", std::nullopt},
                      cpu_max_case{"-100000 100000", std::nullopt}, cpu_max_case{"1e5 100000", std::nullopt},
                      cpu_max_case{"100000 100000 7", std::nullopt}));

struct quota_case {
  const char* name;
  std::optional<std::string> proc_self_cgroup;     // nullopt: the file is missing
  std::map<std::string, std::string> cpu_max;      // directory under the root -> cpu.max
  std::optional<unsigned> expected;
};

class CgroupQuota : public ::testing::TestWithParam<quota_case> {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "weft_cgroup_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  static void write(const std::filesystem::path& file, const std::string& text) {
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }
  std::filesystem::path dir_;
};

TEST_P(CgroupQuota, TakesTheSmallestOnThePathToTheRoot) {
  const quota_case& c = GetParam();
  const std::filesystem::path root = dir_ / "cgroup", proc = dir_ / "proc_self_cgroup";
  std::filesystem::create_directories(root);
  if (c.proc_self_cgroup) write(proc, *c.proc_self_cgroup);
  for (const auto& [where, text] : c.cpu_max) write(root / where / "cpu.max", text);
  EXPECT_EQ(cgroup_cpu_quota(root.string(), proc.string()), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Trees, CgroupQuota,
    ::testing::Values(
        quota_case{"leaf_only", "0::/a/b\n", {{"a/b", "150000 100000"}}, 2u},
        quota_case{"parent_smaller", "0::/a/b\n", {{"a", "100000 100000"}, {"a/b", "400000 100000"}}, 1u},
        quota_case{"child_smaller", "0::/a/b\n", {{"a", "400000 100000"}, {"a/b", "200000 100000"}}, 2u},
        quota_case{"leaf_max_parent_limited", "0::/a/b\n", {{"a", "300000 100000"}, {"a/b", "max 100000"}}, 3u},
        quota_case{"root_limited", "0::/a/b\n", {{".", "200000 100000"}}, 2u},
        quota_case{"max_everywhere", "0::/a/b\n", {{"a", "max 100000"}, {"a/b", "max 100000"}}, std::nullopt},
        quota_case{"garbage_leaf_ignored", "0::/a/b\n", {{"a", "200000 100000"}, {"a/b", "junk"}}, 2u},
        quota_case{"v1_lines_ignored", "4:cpu,cpuacct:/x\n0::/a\n", {{"x", "100000 100000"}, {"a", "300000 100000"}}, 3u},
        quota_case{"sibling_not_read", "0::/a/b\n", {{"a/c", "100000 100000"}}, std::nullopt},
        quota_case{"no_v2_line", "4:memory:/a\n", {{"a", "100000 100000"}}, std::nullopt},
        // "/../a" must not be read as root/../a (nor, normalised, as root/a).
        quota_case{"outside_namespace", "0::/../a\n", {{"../a", "100000 100000"}, {"a", "100000 100000"}}, std::nullopt},
        quota_case{"missing_cgroup_dir", "0::/gone\n", {}, std::nullopt},
        quota_case{"missing_proc_file", std::nullopt, {{"a", "100000 100000"}}, std::nullopt}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(UsableCores, CappedByQuotaAndAtLeastOne) {
  const std::optional<unsigned> quota = cgroup_cpu_quota();  // of the machine running the test
  EXPECT_EQ(usable_cores(make_topology(kTwoByTwo)), quota ? std::clamp(*quota, 1u, 8u) : 8u);
  EXPECT_EQ(usable_cores(topology{}), 1u);
}

// ---- policy names ----

class PolicyNames : public ::testing::TestWithParam<pin_policy> {};

TEST_P(PolicyNames, RoundTripIgnoringCase) {
  const std::string name(to_string(GetParam()));
  EXPECT_EQ(parse_pin_policy(name), GetParam());
  std::string upper = name;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  EXPECT_EQ(parse_pin_policy(upper), GetParam());
}

INSTANTIATE_TEST_SUITE_P(All, PolicyNames,
                         ::testing::Values(pin_policy::none, pin_policy::compact, pin_policy::scatter,
                                           pin_policy::explicit_list));

TEST(PolicyNameParsing, AliasesAndErrors) {
  EXPECT_EQ(to_string(pin_policy::explicit_list), "explicit");
  EXPECT_EQ(parse_pin_policy("Explicit_List"), pin_policy::explicit_list);
  for (const char* bad : {"", "fast", "compact ", "explicitlist"}) {
    try {
      parse_pin_policy(bad, "WEFT_PIN");
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("WEFT_PIN", 0), 0u) << what;
      for (const char* valid : {"none", "compact", "scatter", "explicit"}) EXPECT_NE(what.find(valid), std::string::npos);
    }
  }
  EXPECT_THROW(
      try { parse_pin_policy("fast"); } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()).rfind("pinning", 0), 0u) << e.what();
        throw;
      },
      std::invalid_argument);
}

// ---- the real machine ----

std::set<unsigned> affinity_of_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {};
  std::set<unsigned> cpus;
  for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.insert(cpu);
  }
  return cpus;
}

TEST(DiscoverTopology, ConsistentAndInsideTheAffinityMask) {
  const topology topo = discover_topology();
  const std::set<unsigned> allowed = affinity_of_this_thread();
  ASSERT_FALSE(topo.pus.empty()) << topo.description;
  EXPECT_NE(topo.description.find("PU"), std::string::npos) << topo.description;
  EXPECT_EQ(topo.pus.size(), allowed.size()) << topo.description;
  std::set<unsigned> seen, cores, l3s, numas, packages;
  for (std::size_t i = 0; i < topo.pus.size(); ++i) {
    const pu_info& p = topo.pus[i];
    EXPECT_TRUE(allowed.count(p.os_index)) << "PU " << p.os_index << " outside the affinity mask";
    EXPECT_TRUE(seen.insert(p.os_index).second) << "PU " << p.os_index << " twice";
    EXPECT_LT(p.core, topo.cores);
    EXPECT_LT(p.l3, topo.l3_groups);
    EXPECT_LT(p.numa, topo.numa_nodes);
    EXPECT_LT(p.package, topo.packages);
    cores.insert(p.core), l3s.insert(p.l3), numas.insert(p.numa), packages.insert(p.package);
    if (i > 0) {  // topology order: a core's PUs are adjacent and ids grow
      const pu_info& q = topo.pus[i - 1];
      EXPECT_GE(p.core, q.core);
      EXPECT_GE(p.package, q.package);
      if (p.core == q.core) {
        EXPECT_TRUE(p.l3 == q.l3 && p.numa == q.numa && p.package == q.package);
      }
    }
  }
  // Dense ids: every id below the count is used.
  EXPECT_EQ(cores.size(), topo.cores);
  EXPECT_EQ(l3s.size(), topo.l3_groups);
  EXPECT_EQ(numas.size(), topo.numa_nodes);
  EXPECT_EQ(packages.size(), topo.packages);
}

// Runs in a child process (a death test): narrows the affinity to one CPU, as
// `taskset -c <cpu>` would, and exits 0 iff discovery sees exactly that CPU.
[[noreturn]] void discover_restricted_to(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::_Exit(3);
  const topology topo = discover_topology();
  const bool ok = topo.pus.size() == 1 && topo.pus[0].os_index == cpu && topo.cores == 1;
  std::fprintf(stderr, "%s\n", topo.description.c_str());
  std::_Exit(ok ? 0 : 1);
}

TEST(DiscoverTopology, RespectsANarrowedAffinityMask) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child re-runs only this test
  const std::set<unsigned> allowed = affinity_of_this_thread();
  ASSERT_FALSE(allowed.empty());
  // The last allowed CPU: on most machines not CPU 0, so OS index and position differ.
  EXPECT_EXIT(discover_restricted_to(*allowed.rbegin()), ::testing::ExitedWithCode(0), "");
}

// Runs in a child process: hwloc told to load nothing, so discovery must fall back to the
// affinity mask (narrowed to one CPU here) and binding must refuse with a reason.
[[noreturn]] void discover_without_hwloc(unsigned cpu) {
  setenv("HWLOC_COMPONENTS", "stop", 1);  // hwloc's own switch: no discovery component at all
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::_Exit(3);
  const topology topo = discover_topology();
  std::string why;
  const bool bound = bind_this_thread(cpu, &why);
  const bool ok = !topo.from_hwloc && !topo.can_bind && topo.pus.size() == 1 && topo.pus[0].os_index == cpu &&
                  topo.cores == 1 && topo.l3_groups == 1 && topo.numa_nodes == 1 && topo.packages == 1 &&
                  topo.description.find("fallback") != std::string::npos && !bound && !why.empty();
  std::fprintf(stderr, "%s / bind: %s\n", topo.description.c_str(), why.c_str());
  std::_Exit(ok ? 0 : 1);
}

TEST(DiscoverTopology, FallsBackToTheAffinityMaskWithoutHwloc) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::set<unsigned> allowed = affinity_of_this_thread();
  ASSERT_FALSE(allowed.empty());
  EXPECT_EXIT(discover_without_hwloc(*allowed.rbegin()), ::testing::ExitedWithCode(0), "");
}

// Several threads bind at once; the first calls race to create the process-wide hwloc
// handle (run under TSan in the sanitize tier).
TEST(BindThisThread, ConcurrentBindsEachPinTheirOwnThread) {
  const topology topo = discover_topology();
  if (!topo.can_bind) GTEST_SKIP() << "no thread binding here: " << topo.description;
  std::vector<std::set<unsigned>> got(4);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      std::string why;
      if (bind_this_thread(topo.pus[i % topo.pus.size()].os_index, &why)) got[i] = affinity_of_this_thread();
    });
  }
  for (std::thread& t : threads) t.join();
  for (unsigned i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], std::set<unsigned>{topo.pus[i % topo.pus.size()].os_index});
}

TEST(BindThisThread, PinsToOnePuAndRejectsAnUnknownOne) {
  const topology topo = discover_topology();
  if (!topo.can_bind) GTEST_SKIP() << "no thread binding here: " << topo.description;
  const unsigned target = topo.pus.front().os_index;
  // Beyond Linux's largest NR_CPUS (8192). Not merely "outside our mask": a taskset mask
  // is no limit, a thread may widen its own affinity.
  const unsigned outside = 1u << 20;
  // On a thread of its own, so the test runner's main thread keeps its affinity.
  const std::set<unsigned> main_before = affinity_of_this_thread();
  std::thread([&] {
    std::string why;
    EXPECT_TRUE(bind_this_thread(target, &why)) << why;
    EXPECT_EQ(affinity_of_this_thread(), std::set<unsigned>{target});
    why.clear();
    EXPECT_FALSE(bind_this_thread(outside, &why));
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(affinity_of_this_thread(), std::set<unsigned>{target}) << "a failed bind changed the mask";
  }).join();
  EXPECT_EQ(affinity_of_this_thread(), main_before) << "binding one thread moved another";
}

}  // namespace
}  // namespace weft::detail
