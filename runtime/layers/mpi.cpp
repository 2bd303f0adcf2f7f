// runtime/layers/mpi.cpp: weft::mpi (weft/mpi.hpp), a pool per MPI rank on the rank's binding.
//
// A layer over the public pool: it reads the process's binding through
// detail::process_cpu_binding (runtime/platform/topology.hpp; hwloc stays in topology.cpp), hands the
// pool an explicit PU list, and uses MPI only on the calling thread, only here.
//
// The node check is one collective over MPI_COMM_WORLD: split by shared-memory node, then
// two allgathers within the node (each rank's PU count, then the PU lists). Every rank of
// the node computes the same overlap from the same data, so they agree on who warns (the
// lowest node rank among those that overlap) without another message.
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "platform/topology.hpp"
#include "weft/mpi.hpp"

namespace weft::mpi {
namespace {

[[noreturn]] void misuse(const std::string& why) { throw std::logic_error("weft::mpi: " + why); }

// Throws std::logic_error for an MPI that weft cannot be used with (weft/mpi.hpp).
void require_mpi_ready() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized != 0) misuse("MPI is already finalized (create and close the pool between MPI_Init_thread and MPI_Finalize)");
  if (initialized == 0)
    misuse("MPI is not initialized: call MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) first");
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  if (provided < MPI_THREAD_FUNNELED)
    misuse("MPI provides MPI_THREAD_SINGLE, but a weft pool runs threads: initialize MPI with MPI_Init_thread and "
           "MPI_THREAD_FUNNELED or better");
  if (provided == MPI_THREAD_FUNNELED) {
    int is_main = 0;
    MPI_Is_thread_main(&is_main);
    if (is_main == 0) misuse("under MPI_THREAD_FUNNELED it must be called on the thread that initialized MPI");
  }
}

// "{0-3,8,10-11}": PU lists of big nodes stay one readable line.
std::string pu_set(std::vector<unsigned> pus) {
  std::sort(pus.begin(), pus.end());
  std::string out = "{";
  for (std::size_t i = 0; i < pus.size();) {
    std::size_t j = i;
    while (j + 1 < pus.size() && pus[j + 1] == pus[j] + 1) ++j;
    if (i != 0) out += ',';
    out += std::to_string(pus[i]);
    if (j > i) {
      out += j == i + 1 ? ',' : '-';
      out += std::to_string(pus[j]);
    }
    i = j + 1;
  }
  return out + '}';
}

// What one node's ranks told each other.
struct node_view {
  std::vector<int> world_rank;                // per node rank
  std::vector<std::vector<unsigned>> pus;     // per node rank, its bound PUs
  std::vector<char> whole;                    // per node rank, bound to the whole machine
};

node_view exchange_within_node(const rank_placement& me) {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, me.rank, MPI_INFO_NULL, &node);
  int node_size = 1;
  MPI_Comm_size(node, &node_size);
  const auto n = static_cast<std::size_t>(node_size);
  // Per rank: world rank, number of PUs, whole-machine flag.
  const int mine[3] = {me.rank, static_cast<int>(me.bound_pus.size()), me.whole_machine ? 1 : 0};
  std::vector<int> heads(3 * n);
  MPI_Allgather(mine, 3, MPI_INT, heads.data(), 3, MPI_INT, node);
  std::vector<int> counts(n), displs(n);
  int total = 0;
  for (std::size_t r = 0; r < n; ++r) {
    counts[r] = heads[3 * r + 1];
    displs[r] = total;
    total += counts[r];
  }
  std::vector<unsigned> all(static_cast<std::size_t>(total));
  std::vector<unsigned> own = me.bound_pus;
  MPI_Allgatherv(own.data(), static_cast<int>(own.size()), MPI_UNSIGNED, all.data(), counts.data(), displs.data(),
                 MPI_UNSIGNED, node);
  MPI_Comm_free(&node);
  node_view v;
  for (std::size_t r = 0; r < n; ++r) {
    v.world_rank.push_back(heads[3 * r]);
    v.whole.push_back(static_cast<char>(heads[3 * r + 2]));
    const auto* first = all.data() + displs[r];
    v.pus.emplace_back(first, first + counts[r]);
  }
  return v;
}

// Fills me.overlapping_ranks and, on the rank that writes it, me.warning. Linear in the
// node's PUs times its ranks (a node of 128 unbound ranks on 256 PUs is 32K entries).
void check_overlap(rank_placement& me, const node_view& v) {
  const std::size_t n = v.world_rank.size();
  // holders[pu]: the node ranks bound to PU pu.
  std::vector<std::vector<std::size_t>> holders;
  for (std::size_t r = 0; r < n; ++r) {
    for (unsigned pu : v.pus[r]) {
      if (pu >= holders.size()) holders.resize(pu + 1);
      holders[pu].push_back(r);
    }
  }
  std::vector<bool> involved(n, false), shares_with_me(n, false);
  for (const std::vector<std::size_t>& h : holders) {
    if (h.size() < 2) continue;
    const bool mine = std::any_of(h.begin(), h.end(), [&](std::size_t r) { return v.world_rank[r] == me.rank; });
    for (std::size_t r : h) {
      involved[r] = true;
      if (mine && v.world_rank[r] != me.rank) shares_with_me[r] = true;
    }
  }
  for (std::size_t r = 0; r < n; ++r) {
    if (shares_with_me[r]) me.overlapping_ranks.push_back(v.world_rank[r]);
  }
  std::sort(me.overlapping_ranks.begin(), me.overlapping_ranks.end());
  bool all_whole = true;
  std::string ranks;
  bool first_involved_is_me = false;
  for (std::size_t r = 0; r < n; ++r) {
    if (!involved[r]) continue;
    if (ranks.empty()) first_involved_is_me = v.world_rank[r] == me.rank;
    all_whole = all_whole && v.whole[r] != 0;
    if (!ranks.empty()) ranks += ',';
    ranks += std::to_string(v.world_rank[r]);
  }
  if (ranks.empty() || !first_involved_is_me) return;
  me.warning = "weft::mpi: warning: ranks " + ranks + " on " + me.host + " share PUs";
  if (all_whole) me.warning += " (each got the whole machine, " + pu_set(me.allowed_pus) + ": the launcher did not bind them)";
  me.warning +=
      ", so their pools' workers compete for the same cores; bind each rank to its own cores (Open MPI: "
      "--bind-to core --map-by ppr:<ranks per node>:node:pe=<cores per rank>; Slurm: --cpus-per-task with "
      "--cpu-bind=cores) or give each rank fewer workers";
}

void write_line(const pool_options& pool, const std::string& line) {
  if (pool.logger) {
    pool.logger(line);
    return;
  }
  const std::string with_newline = line + '\n';
  // One write(2) of the whole line (a pipe takes up to PIPE_BUF bytes atomically), so
  // ranks sharing the launcher's stderr never interleave mid-line. Flush what stdio holds
  // first, to keep the order of this rank's own output.
  std::fflush(stderr);
  const char* data = with_newline.data();
  std::size_t left = with_newline.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr closed or broken: the log line is best effort
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

rank_placement this_rank_placement(bool check_node) {
  require_mpi_ready();
  rank_placement me;
  MPI_Comm_rank(MPI_COMM_WORLD, &me.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &me.size);
  char host[MPI_MAX_PROCESSOR_NAME] = {};
  int host_length = 0;
  MPI_Get_processor_name(host, &host_length);
  me.host.assign(host, static_cast<std::size_t>(std::max(host_length, 0)));
  detail::cpu_binding binding = detail::process_cpu_binding();
  me.whole_machine = binding.whole_machine();
  me.bound_pus = std::move(binding.pus);
  me.allowed_pus = std::move(binding.allowed);
  me.core_pus = std::move(binding.core_pus);
  if (check_node) check_overlap(me, exchange_within_node(me));
  return me;
}

std::unique_ptr<pool> pool_for_this_rank(const rank_pool_options& options, rank_placement* placement) {
  if (options.pool.workers < 0)
    throw std::invalid_argument("weft::pool_options::workers: must be >= 0, got " + std::to_string(options.pool.workers));
  rank_placement me = this_rank_placement(options.check_node);
  pool_options po = options.pool;
  po.pinning = pin_policy::explicit_list;
  po.pus = me.core_pus;
  if (po.workers == 0) po.workers = static_cast<int>(me.core_pus.size());
  auto p = std::make_unique<pool>(std::move(po));
  const unsigned workers = p->size();
  std::vector<unsigned> used(me.core_pus.begin(), me.core_pus.begin() + std::min<std::size_t>(workers, me.core_pus.size()));
  me.log_line = "weft::mpi: rank " + std::to_string(me.rank) + "/" + std::to_string(me.size) + " on " + me.host +
                ": bound to PUs " + pu_set(me.bound_pus) + " of " + pu_set(me.allowed_pus) + ", pool of " +
                std::to_string(workers) + (workers == 1 ? " worker" : " workers") + " on PUs " + pu_set(used);
  if (options.log) write_line(options.pool, me.log_line);
  if (!me.warning.empty()) write_line(options.pool, me.warning);
  if (placement != nullptr) *placement = std::move(me);
  return p;
}

}  // namespace weft::mpi
