// runtime/platform/topology.cpp: discover_topology and bind_this_thread. The only translation unit
// that includes <hwloc.h>.
//
// Discovery loads a private hwloc topology restricted to the process's CPU binding, so a
// taskset mask, an MPI launcher's binding and a cgroup cpuset (which hwloc drops as
// "disallowed" by default) all shrink the machine the pool sees. It is loaded, read into
// plain data and destroyed again; binding uses a separate process-wide handle.
// process_cpu_binding (for the MPI layer) loads one more, unrestricted, to set the
// process's binding against the whole machine.
//
// Where hwloc cannot be used (library mismatch, load failure, no PUs) discovery returns a
// flat machine built from the calling thread's affinity mask (or, if even that fails, from
// std::thread::hardware_concurrency): every PU its own core, one L3/NUMA node/package,
// from_hwloc false and can_bind false, so the pool runs unpinned.
#include "platform/topology.hpp"

#include <hwloc.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#if HWLOC_API_VERSION < 0x00020000
#error "weft needs hwloc 2.x"
#endif

namespace weft::detail {
namespace {

struct bitmap_free {
  void operator()(hwloc_bitmap_t b) const noexcept { hwloc_bitmap_free(b); }
};
using bitmap_ptr = std::unique_ptr<hwloc_bitmap_s, bitmap_free>;

struct topology_destroy {
  void operator()(hwloc_topology_t t) const noexcept { hwloc_topology_destroy(t); }
};
using topology_ptr = std::unique_ptr<hwloc_topology, topology_destroy>;

// Loads the topology of this machine; on failure returns null and says why in *why.
// `restrict_to_binding` drops the PUs outside the process's CPU binding.
topology_ptr load_topology(bool restrict_to_binding, std::string* why) {
  // A library of another major version than the headers has a different ABI (hwloc FAQ).
  if ((hwloc_get_api_version() >> 16) != (HWLOC_API_VERSION >> 16)) {
    *why = "hwloc library and headers differ in major version";
    return nullptr;
  }
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) {
    *why = "hwloc_topology_init failed";
    return nullptr;
  }
  topology_ptr topo(raw);
  unsigned long flags = HWLOC_TOPOLOGY_FLAG_IS_THISSYSTEM;
#if HWLOC_API_VERSION >= 0x00020500
  // DONT_CHANGE_BINDING: discovery may run while the application has other threads, and
  // must never move the calling thread, even temporarily (the x86 backend would).
  if (restrict_to_binding)
    flags |= HWLOC_TOPOLOGY_FLAG_RESTRICT_TO_CPUBINDING | HWLOC_TOPOLOGY_FLAG_DONT_CHANGE_BINDING;
#endif
  if (hwloc_topology_set_flags(topo.get(), flags) != 0 || hwloc_topology_load(topo.get()) != 0) {
    *why = "hwloc_topology_load failed";
    return nullptr;
  }
#if HWLOC_API_VERSION < 0x00020500
  // Older hwloc has no RESTRICT_TO_CPUBINDING flag: restrict by hand, to the same effect.
  if (restrict_to_binding) {
    bitmap_ptr bound(hwloc_bitmap_alloc());
    if (bound && hwloc_get_cpubind(topo.get(), bound.get(), HWLOC_CPUBIND_PROCESS) == 0 &&
        !hwloc_bitmap_iszero(bound.get()) && hwloc_topology_restrict(topo.get(), bound.get(), 0) != 0) {
      *why = "hwloc_topology_restrict failed";
      return nullptr;
    }
  }
#endif
  return topo;
}

// Numbers objects 0, 1, 2, ... in order of first appearance (topology order).
class dense_ids {
 public:
  unsigned id(const void* key) { return ids_.try_emplace(key, static_cast<unsigned>(ids_.size())).first->second; }
  unsigned count() const noexcept { return static_cast<unsigned>(ids_.size()); }

 private:
  std::unordered_map<const void*, unsigned> ids_;
};

// The outermost data or unified cache above `pu`; `core` where there is none.
hwloc_obj_t last_level_cache(hwloc_obj_t pu, hwloc_obj_t core) {
  hwloc_obj_t llc = core;
  for (hwloc_obj_t o = pu->parent; o != nullptr; o = o->parent) {
    if (hwloc_obj_type_is_dcache(o->type)) llc = o;
  }
  return llc;
}

// In hwloc 2 NUMA nodes hang beside the CPU tree (memory children), so a PU has no NUMA
// ancestor. Map each PU to the first NUMA node whose cpuset covers it. CPU-less nodes
// (HBM, CXL memory) cover nothing; where two nodes cover a PU (KNL's DDR and MCDRAM) the
// first in logical order, normally the ordinary DRAM, wins.
std::unordered_map<unsigned, hwloc_obj_t> numa_of_pu(hwloc_topology_t topo) {
  std::unordered_map<unsigned, hwloc_obj_t> map;
  for (hwloc_obj_t node = nullptr; (node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)) != nullptr;) {
    if (node->cpuset == nullptr) continue;
    unsigned cpu = 0;
    hwloc_bitmap_foreach_begin(cpu, node->cpuset) { map.try_emplace(cpu, node); }
    hwloc_bitmap_foreach_end();
  }
  return map;
}

std::string counted(unsigned n, const char* one, const char* many) {
  return std::to_string(n) + ' ' + (n == 1 ? one : many);
}

void describe(topology& t, const std::string& source) {
  t.description = counted(t.packages, "package", "packages") + ", " + counted(t.numa_nodes, "NUMA node", "NUMA nodes") +
                  ", " + counted(t.l3_groups, "L3 group", "L3 groups") + ", " + counted(t.cores, "core", "cores") +
                  ", " + counted(static_cast<unsigned>(t.pus.size()), "PU", "PUs") + " (" + source + ")";
}

// Reads the PUs of a loaded topology, in logical (topology) order, into plain data.
topology read_topology(hwloc_topology_t topo) {
  topology t;
  dense_ids cores, l3s, numas, packages;
  const auto numa = numa_of_pu(topo);
  // Belt and braces: hwloc already drops disallowed PUs unless told otherwise.
  hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo);
  for (hwloc_obj_t pu = nullptr; (pu = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, pu)) != nullptr;) {
    if (pu->os_index == HWLOC_UNKNOWN_INDEX || (allowed != nullptr && !hwloc_bitmap_isset(allowed, pu->os_index)))
      continue;
    hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
    if (core == nullptr) core = pu;  // some platforms report PUs without cores
    const auto node = numa.find(pu->os_index);
    pu_info info;
    info.os_index = pu->os_index;
    info.core = cores.id(core);
    info.l3 = l3s.id(last_level_cache(pu, core));
    info.numa = numas.id(node == numa.end() ? nullptr : node->second);
    info.package = packages.id(hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pu));
    t.pus.push_back(info);
  }
  t.cores = cores.count();
  t.l3_groups = l3s.count();
  t.numa_nodes = numas.count();
  t.packages = packages.count();
  t.from_hwloc = true;
  const hwloc_topology_support* support = hwloc_topology_get_support(topo);
  t.can_bind = support != nullptr && support->cpubind != nullptr && support->cpubind->set_thisthread_cpubind != 0;
#ifdef HWLOC_VERSION
  std::string source = "hwloc " HWLOC_VERSION;
#else
  std::string source = "hwloc";
#endif
  // HWLOC_SYNTHETIC or HWLOC_XMLFILE in the environment describe some other machine (handy
  // for trying weft-topo on a big one); hwloc then reports no binding support.
  if (!hwloc_topology_is_thissystem(topo)) source += ", not this system";
  describe(t, source);
  return t;
}

// The CPUs in the calling thread's affinity mask, or empty if it cannot be read.
std::vector<unsigned> affinity_cpus() {
  // Grow the mask until the kernel's fits (EINVAL means ours is smaller than its mask).
  for (int n = CPU_SETSIZE; n <= (1 << 22); n *= 2) {
    cpu_set_t* set = CPU_ALLOC(n);
    if (set == nullptr) break;
    const std::size_t size = CPU_ALLOC_SIZE(n);
    const int rc = sched_getaffinity(0, size, set);
    const int err = errno;
    std::vector<unsigned> cpus;
    for (int cpu = 0; rc == 0 && cpu < n; ++cpu) {
      if (CPU_ISSET_S(cpu, size, set)) cpus.push_back(static_cast<unsigned>(cpu));
    }
    CPU_FREE(set);
    if (rc == 0 || err != EINVAL) return cpus;
  }
  return {};
}

topology flat_fallback(const std::string& why) {
  topology t;
  std::vector<unsigned> cpus = affinity_cpus();
  if (cpus.empty()) {  // not even an affinity mask: assume CPUs 0..n-1
    const unsigned n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) cpus.push_back(i);
  }
  for (unsigned i = 0; i < cpus.size(); ++i) t.pus.push_back(pu_info{cpus[i], i, 0, 0, 0});
  t.cores = static_cast<unsigned>(t.pus.size());
  t.l3_groups = t.numa_nodes = t.packages = 1;
  describe(t, "flat fallback, no hwloc topology: " + why);
  return t;
}

// The hwloc topology bind_this_thread uses: one for the whole process, unrestricted,
// loaded on first use. Not a function-local static: its initialisation guard would be held
// while hwloc loads (milliseconds), and a fork() at that moment, with a worker of a fresh
// pool loading it, left the guard held for ever in the child, whose own pools' workers
// then hung in __cxa_guard_acquire. Here two threads that race may both load a topology;
// one publishes it, the other destroys its own. Pools also load it before starting their
// workers (prepare_thread_binding), so in practice workers only read it.
struct binder {
  hwloc_topology_t topo = nullptr;
  std::string error;
};

// Never destroyed, on purpose: a pool thread may still bind itself while static
// destructors run at exit. The pointer stays reachable, so leak checkers stay quiet.
std::atomic<const binder*> the_binder{nullptr};

const binder& process_binder() {
  // acquire: pairs with the compare_exchange below, so the winner's fields are visible.
  if (const binder* b = the_binder.load(std::memory_order_acquire)) return *b;
  auto fresh = std::make_unique<binder>();
  fresh->topo = load_topology(/*restrict_to_binding=*/false, &fresh->error).release();
  const binder* expected = nullptr;
  // acq_rel on success: release publishes our binder. acquire on failure: pairs with the
  // winner's release, so its fields are visible.
  if (the_binder.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
    return *fresh.release();
  }
  if (fresh->topo != nullptr) hwloc_topology_destroy(fresh->topo);
  return *expected;
}

}  // namespace

topology discover_topology() {
  std::string why;
  topology_ptr topo = load_topology(/*restrict_to_binding=*/true, &why);
  if (topo == nullptr) return flat_fallback(why);
  topology t = read_topology(topo.get());
  if (t.pus.empty()) return flat_fallback("hwloc reported no usable PU");
  return t;
}

void prepare_thread_binding() { (void)process_binder(); }

bool bind_this_thread(unsigned os_index, std::string* why) {
  std::string ignored;
  if (why == nullptr) why = &ignored;
  const binder& b = process_binder();
  if (b.topo == nullptr) {
    *why = "no hwloc topology: " + b.error;
    return false;
  }
  const hwloc_topology_support* support = hwloc_topology_get_support(b.topo);
  if (support == nullptr || support->cpubind == nullptr || support->cpubind->set_thisthread_cpubind == 0) {
    *why = "hwloc reports no thread binding support here";
    return false;
  }
  bitmap_ptr set(hwloc_bitmap_alloc());
  if (set == nullptr || hwloc_bitmap_only(set.get(), os_index) != 0) {
    *why = "out of memory";
    return false;
  }
  if (hwloc_set_cpubind(b.topo, set.get(), HWLOC_CPUBIND_THREAD) != 0) {
    const int err = errno;
    *why = "cannot bind to PU " + std::to_string(os_index) + ": " + std::generic_category().message(err);
    return false;
  }
  return true;
}

cpu_binding binding_within(const topology& machine, const std::vector<unsigned>& bound) {
  std::vector<unsigned> sorted = bound;
  std::sort(sorted.begin(), sorted.end());
  cpu_binding b;
  b.from_hwloc = machine.from_hwloc;
  std::vector<bool> core_taken;
  for (const pu_info& p : machine.pus) {
    b.allowed.push_back(p.os_index);
    if (!std::binary_search(sorted.begin(), sorted.end(), p.os_index)) continue;
    b.pus.push_back(p.os_index);
    if (p.core >= core_taken.size()) core_taken.resize(p.core + 1, false);
    if (!core_taken[p.core]) {
      core_taken[p.core] = true;
      b.core_pus.push_back(p.os_index);
    }
  }
  return b;
}

cpu_binding process_cpu_binding() {
  std::string why;
  // Unrestricted (but for disallowed PUs): the binding is compared with the whole machine.
  topology_ptr topo = load_topology(/*restrict_to_binding=*/false, &why);
  if (topo != nullptr) {
    const topology machine = read_topology(topo.get());
    std::vector<unsigned> bound;
    bitmap_ptr set(hwloc_bitmap_alloc());
    if (set != nullptr && hwloc_get_cpubind(topo.get(), set.get(), HWLOC_CPUBIND_PROCESS) == 0) {
      unsigned cpu = 0;
      hwloc_bitmap_foreach_begin(cpu, set.get()) { bound.push_back(cpu); }
      hwloc_bitmap_foreach_end();
    } else {
      bound = affinity_cpus();  // no process binding support: the calling thread's mask
    }
    cpu_binding b = binding_within(machine, bound);
    if (!b.pus.empty()) return b;
    why = machine.pus.empty() ? "hwloc reported no usable PU" : "the binding holds no allowed PU";
  }
  // flat_fallback's PUs are the calling thread's affinity mask (or CPUs 0..n-1).
  const topology flat = flat_fallback(why);
  std::vector<unsigned> all;
  for (const pu_info& p : flat.pus) all.push_back(p.os_index);
  cpu_binding b = binding_within(flat, all);
  b.error = why;
  return b;
}

}  // namespace weft::detail
