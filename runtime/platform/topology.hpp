// runtime/platform/topology.hpp: the machine as the pool needs it, and the pinning plan.
//
// Only runtime/platform/topology.cpp includes hwloc. Everything here is plain data so the plan and
// the victim order can be unit-tested on synthetic machines.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "weft/options.hpp"

namespace weft::detail {

// One processing unit (hardware thread) inside the process's allowed cpuset.
struct pu_info {
  unsigned os_index = 0;  // the OS's CPU number (what taskset and sched_setaffinity use)
  unsigned core = 0;      // dense ids, 0..n-1, in hwloc's logical (topology) order
  unsigned l3 = 0;        // last-level cache group (core id when there is no shared cache)
  unsigned numa = 0;
  unsigned package = 0;
};

struct topology {
  std::vector<pu_info> pus;  // allowed PUs in topology order (package, numa, l3, core, smt)
  unsigned cores = 0, l3_groups = 0, numa_nodes = 0, packages = 0;
  bool from_hwloc = false;   // false: a flat fallback built from hardware_concurrency
  bool can_bind = false;     // hwloc reports thread binding support
  std::string description;   // one line, e.g. "1 package, 1 NUMA node, 1 L3, 2 cores, 2 PUs"
};

// Discovers the machine within the allowed cpuset. Never throws for lack of hwloc
// information: falls back to a flat machine of hardware_concurrency PUs (from_hwloc false).
topology discover_topology();

// Cores the pool may use by default: cores in the allowed set, capped by the cgroup v2
// cpu.max quota (rounded up), at least 1.
unsigned usable_cores(const topology& topo);

// cgroup v2 quota in CPUs (quota/period, rounded up), or nullopt for "max" / no cgroup v2.
// `cgroup_root` is "/sys/fs/cgroup" in production; tests pass a directory of their own.
std::optional<unsigned> cgroup_cpu_quota(const std::string& cgroup_root = "/sys/fs/cgroup",
                                         const std::string& proc_self_cgroup = "/proc/self/cgroup");

// Parses the contents of a cpu.max file ("max 100000", "200000 100000"): CPUs rounded up.
std::optional<unsigned> parse_cpu_max(const std::string& contents);

// The PU (OS index) each worker is pinned to; nullopt = unpinned. Pure function.
// policy none -> all nullopt. compact -> worker i on the first PU of core i (all cores'
// first PUs before any second SMT sibling), wrapping around. scatter -> round-robin over
// packages, then L3 groups inside them, then cores. explicit_list -> pus[i % pus.size()].
// Throws std::invalid_argument naming "pus" for an explicit list that is empty, has
// duplicates or names PUs outside topo.pus.
std::vector<std::optional<unsigned>> plan_pins(const topology& topo, pin_policy policy, unsigned workers,
                                               const std::vector<unsigned>& explicit_pus);

// Distance between two PUs given by OS index: 0 same core, 1 same L3, 2 same NUMA node,
// 3 same package, 4 otherwise (also when either is unknown).
unsigned pu_distance(const topology& topo, unsigned os_a, unsigned os_b);

// Victim groups for each worker: groups[w] lists the other workers bucketed by distance
// (nearest bucket first); the pool picks randomly inside a bucket, nearest bucket first.
// Unpinned workers are all at distance 4 from each other.
std::vector<std::vector<std::vector<unsigned>>> victim_buckets(const topology& topo,
                                                               const std::vector<std::optional<unsigned>>& plan);

// Binds the calling thread to one PU. Returns false (and a reason in *why) when it cannot.
bool bind_this_thread(unsigned os_index, std::string* why);
// Loads what bind_this_thread needs now, on the calling thread (a pool calls it before
// starting workers that will bind themselves). Idempotent and thread-safe.
void prepare_thread_binding();

}  // namespace weft::detail

namespace weft::detail {

// The process's CPU binding: what `mpirun --bind-to`, taskset or numactl left it, as hwloc's
// hwloc_get_cpubind(HWLOC_CPUBIND_PROCESS) reports it (the union over the process's
// threads), intersected with the allowed cpuset. weft's MPI layer (runtime/layers/mpi.cpp)
// builds a rank's pool from it without ever including hwloc.
struct cpu_binding {
  std::vector<unsigned> pus;       // every bound PU, OS indices, in topology order
  std::vector<unsigned> core_pus;  // the first bound PU of each core that has one: one worker per core
  std::vector<unsigned> allowed;   // every PU the process may use at all (the whole machine, for it)
  bool from_hwloc = false;         // false: pus read from sched_getaffinity, allowed = pus
  std::string error;               // why hwloc was not used, when from_hwloc is false
  bool whole_machine() const noexcept { return pus.size() == allowed.size(); }
};

// Reads the calling process's binding. Never throws for lack of hwloc information: falls
// back to the calling thread's affinity mask, every PU its own core (from_hwloc false).
cpu_binding process_cpu_binding();

// Pure: `bound` (OS indices, any order, duplicates allowed) within `machine`: PUs outside
// machine.pus are dropped, the rest listed in topology order, core_pus takes the first
// bound PU of each core, allowed lists all of machine.pus. from_hwloc is machine.from_hwloc.
cpu_binding binding_within(const topology& machine, const std::vector<unsigned>& bound);

}  // namespace weft::detail
