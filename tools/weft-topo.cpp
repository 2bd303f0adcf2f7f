// tools/weft-topo.cpp: prints the machine as weft sees it (inside this process's allowed
// cpuset) and where each pin policy would put the workers.
//
//   weft-topo [--workers N] [--policy none|compact|scatter|explicit] [--pus 0,2,4]
//
// Exit status: 0 on success, 2 on a bad command line (including an invalid --pus list).
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "platform/topology.hpp"
#include "weft/options.hpp"

namespace {

using weft::pin_policy;
using weft::detail::topology;

constexpr std::string_view kSynopsis =
    "usage: weft-topo [--workers N] [--policy none|compact|scatter|explicit] [--pus 0,2,4]\n";
constexpr std::string_view kDetails =
    "\n"
    "Prints the machine weft sees (within this process's allowed cpuset), the usable cores,\n"
    "and the pin plan for N workers (default: usable cores) under each policy, or only\n"
    "under --policy. --pus is a comma-separated list of OS CPU numbers; it implies\n"
    "--policy explicit.\n";

constexpr unsigned kMaxWorkers = 65536;

struct arguments {
  unsigned workers = 0;  // 0: usable cores
  std::optional<pin_policy> policy;
  std::optional<std::vector<unsigned>> pus;
  bool help = false;
};

unsigned parse_unsigned(const std::string& text, const std::string& option, unsigned max) {
  unsigned value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);  // no sign, no spaces
  if (text.empty() || ec != std::errc{} || ptr != end || value > max)
    throw std::invalid_argument(option + ": expected a number from 0 to " + std::to_string(max) + ", got \"" + text + "\"");
  return value;
}

std::vector<unsigned> parse_pus(const std::string& text) {
  std::vector<unsigned> pus;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    pus.push_back(parse_unsigned(text.substr(start, comma - start), "--pus", 1u << 20));
    if (comma == std::string::npos) return pus;
    start = comma + 1;
  }
}

arguments parse_arguments(int argc, char** argv) {
  arguments args;
  for (int i = 1; i < argc; ++i) {
    std::string option = argv[i], value;
    if (option == "--help" || option == "-h") {
      args.help = true;
      continue;
    }
    if (const std::size_t eq = option.find('='); eq != std::string::npos) {  // --option=value
      value = option.substr(eq + 1);
      option.resize(eq);
    } else if (option == "--workers" || option == "--policy" || option == "--pus") {
      if (i + 1 == argc) throw std::invalid_argument(option + ": missing value");
      value = argv[++i];
    }
    if (option == "--workers") {
      args.workers = parse_unsigned(value, option, kMaxWorkers);
    } else if (option == "--policy") {
      args.policy = weft::parse_pin_policy(value, option);
    } else if (option == "--pus") {
      args.pus = parse_pus(value);
    } else {
      throw std::invalid_argument("unknown argument \"" + std::string(argv[i]) + "\"");
    }
  }
  if (args.pus && !args.policy) args.policy = pin_policy::explicit_list;
  if (args.pus && args.policy != pin_policy::explicit_list)
    throw std::invalid_argument("--pus: only valid with --policy explicit");
  if (args.policy == pin_policy::explicit_list && !args.pus)
    throw std::invalid_argument("--policy explicit: needs --pus");
  return args;
}

void print_machine(const topology& topo) {
  std::printf("machine: %s\n", topo.description.c_str());
  std::printf("thread binding: %s\n", topo.can_bind ? "supported" : "not supported (workers would run unpinned)");
  std::printf("allowed PUs:\n  %6s %6s %6s %6s %8s\n", "PU", "core", "L3", "NUMA", "package");
  for (const weft::detail::pu_info& pu : topo.pus)
    std::printf("  %6u %6u %6u %6u %8u\n", pu.os_index, pu.core, pu.l3, pu.numa, pu.package);
  const std::optional<unsigned> quota = weft::detail::cgroup_cpu_quota();
  std::printf("usable cores: %u (cgroup cpu.max quota: %s)\n", weft::detail::usable_cores(topo),
              quota ? (std::to_string(*quota) + " CPUs").c_str() : "none");
}

void print_plan(const topology& topo, pin_policy policy, unsigned workers, const std::vector<unsigned>& pus) {
  const auto plan = weft::detail::plan_pins(topo, policy, workers, pus);
  const std::string name(weft::to_string(policy));
  std::printf("\n%s, %u worker%s:\n", name.c_str(), workers, workers == 1 ? "" : "s");
  for (unsigned w = 0; w < plan.size(); ++w) {
    const auto pu = std::find_if(topo.pus.begin(), topo.pus.end(),
                                 [&](const weft::detail::pu_info& p) { return plan[w] == p.os_index; });
    if (pu == topo.pus.end()) {
      std::printf("  worker %u -> unpinned\n", w);
    } else {
      std::printf("  worker %u -> PU %u (core %u, L3 %u, NUMA %u, package %u)\n", w, pu->os_index, pu->core, pu->l3,
                  pu->numa, pu->package);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  arguments args;
  try {
    args = parse_arguments(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << "weft-topo: " << e.what() << "\n" << kSynopsis;
    return 2;
  }
  if (args.help) {
    std::cout << kSynopsis << kDetails;
    return 0;
  }
  const topology topo = weft::detail::discover_topology();
  const unsigned workers = args.workers != 0 ? args.workers : weft::detail::usable_cores(topo);
  try {
    // Validate an explicit list before printing anything, so an error is not buried.
    if (args.pus) weft::detail::plan_pins(topo, pin_policy::explicit_list, 1, *args.pus);
  } catch (const std::invalid_argument& e) {
    std::cerr << "weft-topo: " << e.what() << "\n";
    return 2;
  }
  print_machine(topo);
  if (args.policy) {
    print_plan(topo, *args.policy, workers, args.pus.value_or(std::vector<unsigned>{}));
  } else {
    for (pin_policy p : {pin_policy::none, pin_policy::compact, pin_policy::scatter}) print_plan(topo, p, workers, {});
  }
  return 0;
}
