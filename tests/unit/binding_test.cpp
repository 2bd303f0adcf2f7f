// tests/unit/binding_test.cpp: the process's CPU binding as weft::mpi reads it
// (detail::binding_within on synthetic machines, detail::process_cpu_binding on this one,
// also after narrowing the process's affinity in a child). No MPI needed.
#include <gtest/gtest.h>
#include <sched.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "platform/topology.hpp"
#include "watchdog.hpp"

namespace weft::detail {
namespace {

// 2 cores x 2 SMT, OS numbering as on x86 Linux (siblings far apart): core 0 = {0, 2},
// core 1 = {1, 3}; topology order 0, 2, 1, 3.
topology smt_machine() {
  topology t;
  t.pus = {pu_info{0, 0, 0, 0, 0}, pu_info{2, 0, 0, 0, 0}, pu_info{1, 1, 0, 0, 0}, pu_info{3, 1, 0, 0, 0}};
  t.cores = 2;
  t.l3_groups = t.numa_nodes = t.packages = 1;
  t.from_hwloc = true;
  return t;
}

TEST(BindingWithin, WholeMachineGivesOnePuPerCoreInTopologyOrder) {
  const cpu_binding b = binding_within(smt_machine(), {3, 2, 1, 0});
  EXPECT_EQ(b.pus, (std::vector<unsigned>{0, 2, 1, 3}));
  EXPECT_EQ(b.core_pus, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(b.allowed, (std::vector<unsigned>{0, 2, 1, 3}));
  EXPECT_TRUE(b.whole_machine());
  EXPECT_TRUE(b.from_hwloc);
}

TEST(BindingWithin, SecondSiblingStandsForItsCoreWhenTheFirstIsNotBound) {
  // Bound to PU 2 (core 0's second sibling) and both PUs of core 1.
  const cpu_binding b = binding_within(smt_machine(), {2, 1, 3});
  EXPECT_EQ(b.pus, (std::vector<unsigned>{2, 1, 3}));
  EXPECT_EQ(b.core_pus, (std::vector<unsigned>{2, 1}));
  EXPECT_FALSE(b.whole_machine());
}

TEST(BindingWithin, PusOutsideTheMachineAndDuplicatesAreDropped) {
  const cpu_binding b = binding_within(smt_machine(), {1, 1, 7, 64});
  EXPECT_EQ(b.pus, (std::vector<unsigned>{1}));
  EXPECT_EQ(b.core_pus, (std::vector<unsigned>{1}));
  EXPECT_FALSE(b.whole_machine());
}

TEST(BindingWithin, NothingBoundGivesNothing) {
  const cpu_binding b = binding_within(smt_machine(), {});
  EXPECT_TRUE(b.pus.empty());
  EXPECT_TRUE(b.core_pus.empty());
  EXPECT_EQ(b.allowed.size(), 4u);
}

std::set<unsigned> affinity_mask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::set<unsigned> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (unsigned c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.insert(c);
    }
  }
  return cpus;
}

TEST(ProcessCpuBinding, IsTheAffinityMaskOfThisSingleThreadedProcess) {
  const cpu_binding b = process_cpu_binding();
  EXPECT_EQ(std::set<unsigned>(b.pus.begin(), b.pus.end()), affinity_mask());
  ASSERT_FALSE(b.core_pus.empty());
  EXPECT_LE(b.core_pus.size(), b.pus.size());
  EXPECT_TRUE(b.from_hwloc) << b.error;
}

// As mpirun --bind-to core would: the whole process narrowed to one CPU (in a child, so the
// test binary keeps its mask). The binding must be exactly that CPU, and no longer the
// whole machine when there was more than one.
TEST(ProcessCpuBinding, FollowsANarrowedAffinity) {
  const std::set<unsigned> all = affinity_mask();
  ASSERT_FALSE(all.empty());
  const unsigned last = *all.rbegin();
  const auto r = weft_test::run_in_child(
      [&] {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(last, &one);
        // Every thread: the binding is the process's (the union over its threads), and a
        // sanitizer runtime may have a thread of its own here.
        for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
          const pid_t tid = static_cast<pid_t>(std::stol(task.path().filename().string()));
          WEFT_CHILD_CHECK(sched_setaffinity(tid, sizeof(one), &one) == 0);
        }
        const cpu_binding b = process_cpu_binding();
        WEFT_CHILD_CHECK(b.pus == std::vector<unsigned>{last});
        WEFT_CHILD_CHECK(b.core_pus == std::vector<unsigned>{last});
        WEFT_CHILD_CHECK(b.allowed.size() >= all.size());  // allowed: also PUs outside the test's mask
        WEFT_CHILD_CHECK(b.whole_machine() == (b.allowed.size() == 1));
      },
      std::chrono::seconds(30));
  EXPECT_TRUE(r.passed()) << r.describe();
}

}  // namespace
}  // namespace weft::detail
