// runtime/platform/cgroup.cpp: the cgroup v2 CPU quota (cpu.max), which caps the default worker
// count. A container given "--cpus=2" on a 64-core host sees all 64 cores in its cpuset
// but is throttled to 2 CPUs of time; 64 workers there would mostly wait for the quota.
//
// Only cgroup v2 is read (the "0::" line of /proc/self/cgroup); a v1-only or hybrid
// machine without a v2 quota reports no quota. Nothing here throws: any file that is
// missing or unreadable just contributes no limit.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

#include "platform/topology.hpp"

namespace weft::detail {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> read_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

std::optional<std::uint64_t> parse_u64(const std::string& token) {
  std::uint64_t value = 0;
  const char* end = token.data() + token.size();
  const auto [ptr, ec] = std::from_chars(token.data(), end, value);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// The cgroup v2 path of this process ("/user.slice/..."), from the "0::" line.
std::optional<std::string> own_cgroup(const std::string& proc_self_cgroup) {
  const std::optional<std::string> text = read_file(proc_self_cgroup);
  if (!text) return std::nullopt;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return std::nullopt;
}

}  // namespace

std::optional<unsigned> parse_cpu_max(const std::string& contents) {
  // "$MAX $PERIOD": quota and period in microseconds, or "max" for no limit.
  std::istringstream in(contents);
  std::string quota_text, period_text, extra;
  if (!(in >> quota_text >> period_text) || (in >> extra)) return std::nullopt;
  const std::optional<std::uint64_t> period = parse_u64(period_text);
  if (!period || *period == 0 || quota_text == "max") return std::nullopt;
  const std::optional<std::uint64_t> quota = parse_u64(quota_text);
  if (!quota) return std::nullopt;
  // Rounded up: 1.5 CPUs of time can keep two workers partly busy, and a quota below one
  // CPU still needs one worker.
  const std::uint64_t cpus = std::max<std::uint64_t>(1, *quota / *period + (*quota % *period != 0));
  return static_cast<unsigned>(std::min<std::uint64_t>(cpus, std::numeric_limits<unsigned>::max()));
}

std::optional<unsigned> cgroup_cpu_quota(const std::string& cgroup_root, const std::string& proc_self_cgroup) {
  try {
    const std::optional<std::string> own = own_cgroup(proc_self_cgroup);
    if (!own) return std::nullopt;
    // A cgroup outside our cgroup namespace shows as "/../x"; its files are not visible
    // to us (and lexically_normal would turn "/../x" into "/x", someone else's cgroup).
    for (const fs::path& part : fs::path(*own)) {
      if (part == "..") return std::nullopt;
    }
    fs::path relative = fs::path(*own).relative_path();
    // A parent's cpu.max throttles all its descendants, so the effective quota is the
    // smallest on the way from our cgroup up to the root.
    std::optional<unsigned> quota;
    for (;;) {
      if (const std::optional<std::string> text = read_file(fs::path(cgroup_root) / relative / "cpu.max")) {
        if (const std::optional<unsigned> here = parse_cpu_max(*text)) quota = std::min(quota.value_or(*here), *here);
      }
      if (relative.empty()) break;
      relative = relative.parent_path();
    }
    return quota;
  } catch (...) {  // bad_alloc or a filesystem error: report no quota rather than fail
    return std::nullopt;
  }
}

}  // namespace weft::detail
