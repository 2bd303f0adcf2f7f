// runtime/platform/pin_plan.cpp: where workers are pinned and whom they steal from. Pure functions
// of a `topology`, so they are tested on synthetic machines.
//
// compact and scatter both build one order of all PUs and give worker i the PU at
// i % size, which makes oversubscription wrap around the same order. Both orders take the
// first PU of every core before any core's second SMT sibling ("rounds" below): an idle
// core beats a busy core's sibling whatever the policy.
#include <algorithm>
#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "platform/topology.hpp"

namespace weft::detail {
namespace {

using pu_list = std::vector<const pu_info*>;

constexpr unsigned kFar = 4;  // distance of unrelated or unknown PUs

// Splits `pus` into groups of equal key, groups in order of first appearance, members in
// their original order.
template <class Key>
std::vector<pu_list> group_by(const pu_list& pus, Key key) {
  std::vector<pu_list> groups;
  std::unordered_map<unsigned, std::size_t> index;
  for (const pu_info* p : pus) {
    const auto [it, added] = index.try_emplace(key(*p), groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(p);
  }
  return groups;
}

// a0 b0 c0 a1 b1 c1 ...; a list that runs out is skipped.
pu_list interleave(const std::vector<pu_list>& lists) {
  std::size_t longest = 0;
  for (const pu_list& l : lists) longest = std::max(longest, l.size());
  pu_list out;
  for (std::size_t i = 0; i < longest; ++i) {
    for (const pu_list& l : lists) {
      if (i < l.size()) out.push_back(l[i]);
    }
  }
  return out;
}

// rounds[r] = the r-th PU of every core that has one, cores in topology order.
std::vector<pu_list> smt_rounds(const topology& topo) {
  pu_list all;
  for (const pu_info& p : topo.pus) all.push_back(&p);
  std::vector<pu_list> rounds;
  for (const pu_list& core : group_by(all, [](const pu_info& p) { return p.core; })) {
    if (rounds.size() < core.size()) rounds.resize(core.size());
    for (std::size_t r = 0; r < core.size(); ++r) rounds[r].push_back(core[r]);
  }
  return rounds;
}

pu_list compact_order(const topology& topo) {
  pu_list order;
  for (const pu_list& round : smt_rounds(topo)) order.insert(order.end(), round.begin(), round.end());
  return order;
}

// Within each round: round-robin over packages; inside a package's turn, round-robin over
// its L3 groups; inside an L3 group's turn, its cores in order.
pu_list scatter_order(const topology& topo) {
  pu_list order;
  for (const pu_list& round : smt_rounds(topo)) {
    std::vector<pu_list> per_package;
    for (const pu_list& package : group_by(round, [](const pu_info& p) { return p.package; }))
      per_package.push_back(interleave(group_by(package, [](const pu_info& p) { return p.l3; })));
    const pu_list spread = interleave(per_package);
    order.insert(order.end(), spread.begin(), spread.end());
  }
  return order;
}

const pu_info* find_pu(const topology& topo, unsigned os_index) {
  const auto it = std::find_if(topo.pus.begin(), topo.pus.end(),
                               [os_index](const pu_info& p) { return p.os_index == os_index; });
  return it == topo.pus.end() ? nullptr : &*it;
}

unsigned distance(const pu_info* a, const pu_info* b) {
  if (a == nullptr || b == nullptr) return kFar;
  if (a->core == b->core) return 0;
  if (a->l3 == b->l3) return 1;
  if (a->numa == b->numa) return 2;
  if (a->package == b->package) return 3;
  return kFar;
}

// The same prefix as every other option error (options.cpp): the message names the field.
[[noreturn]] void invalid_pus(const std::string& why) {
  throw std::invalid_argument("weft::pool_options::pus: " + why);
}

void validate_explicit(const topology& topo, const std::vector<unsigned>& pus) {
  if (pus.empty()) invalid_pus("empty, but pin_policy::explicit_list needs at least one PU");
  std::unordered_set<unsigned> seen;
  for (unsigned pu : pus) {
    if (!seen.insert(pu).second) invalid_pus("PU " + std::to_string(pu) + " is listed twice");
    if (find_pu(topo, pu) == nullptr) {
      std::string allowed;
      for (const pu_info& p : topo.pus) {
        if (!allowed.empty()) allowed += ',';
        allowed += std::to_string(p.os_index);  // appended: a+b chains trip g++ 12's -Wrestrict (PR 105329)
      }
      invalid_pus("PU " + std::to_string(pu) + " is not in the allowed cpuset {" + allowed + "}");
    }
  }
}

}  // namespace

std::vector<std::optional<unsigned>> plan_pins(const topology& topo, pin_policy policy, unsigned workers,
                                               const std::vector<unsigned>& explicit_pus) {
  std::vector<std::optional<unsigned>> plan(workers);
  if (policy == pin_policy::explicit_list) {
    validate_explicit(topo, explicit_pus);
    for (unsigned w = 0; w < workers; ++w) plan[w] = explicit_pus[w % explicit_pus.size()];
    return plan;
  }
  if (policy != pin_policy::compact && policy != pin_policy::scatter) return plan;  // none: all unpinned
  const pu_list order = policy == pin_policy::compact ? compact_order(topo) : scatter_order(topo);
  if (order.empty()) return plan;  // nothing known to pin to
  for (unsigned w = 0; w < workers; ++w) plan[w] = order[w % order.size()]->os_index;
  return plan;
}

unsigned pu_distance(const topology& topo, unsigned os_a, unsigned os_b) {
  return distance(find_pu(topo, os_a), find_pu(topo, os_b));
}

std::vector<std::vector<std::vector<unsigned>>> victim_buckets(const topology& topo,
                                                               const std::vector<std::optional<unsigned>>& plan) {
  // Look every worker's PU up once; unpinned workers and unknown PUs stay null (kFar).
  std::vector<const pu_info*> where(plan.size(), nullptr);
  for (std::size_t w = 0; w < plan.size(); ++w) {
    if (plan[w]) where[w] = find_pu(topo, *plan[w]);
  }
  std::vector<std::vector<std::vector<unsigned>>> groups(plan.size());
  for (std::size_t w = 0; w < plan.size(); ++w) {
    std::array<std::vector<unsigned>, kFar + 1> by_distance;
    for (std::size_t v = 0; v < plan.size(); ++v) {
      if (v != w) by_distance[distance(where[w], where[v])].push_back(static_cast<unsigned>(v));
    }
    for (auto& bucket : by_distance) {
      if (!bucket.empty()) groups[w].push_back(std::move(bucket));
    }
  }
  return groups;
}

// Not pure like the rest of this file: it reads the cgroup's cpu.max.
unsigned usable_cores(const topology& topo) {
  unsigned cores = topo.cores;
  if (const std::optional<unsigned> quota = cgroup_cpu_quota()) cores = std::min(cores, *quota);
  return std::max(cores, 1u);
}

}  // namespace weft::detail
