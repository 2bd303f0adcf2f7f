// weft/mpi.hpp: one weft pool per MPI rank, on exactly the cores the launcher bound the rank
// to (library weft_mpi, CMake target weft::mpi; built only where CMake finds MPI).
//
// Overview. The hybrid layout for a cluster is one MPI rank per node (or per socket) and a
// weft pool on that rank's cores: MPI moves data between ranks, weft balances the work
// inside one by stealing. The launcher decides which cores a rank owns (`mpirun --bind-to
// core --map-by ppr:1:socket:pe=8`, Slurm's --cpus-per-task with --cpu-bind); this call
// reads that binding and builds a pool with one worker pinned to each of its cores:
//
//   int provided = 0;
//   MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
//   {
//     auto pool = weft::mpi::pool_for_this_rank();   // collective over MPI_COMM_WORLD
//     double local = weft::parallel_reduce(*pool, lo, hi, 0.0, f, std::plus<>{});
//     MPI_Allreduce(&local, &global, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
//   }                                                  // pool closed before MPI_Finalize
//   MPI_Finalize();
//
// This header does not include <mpi.h> (nor does any other weft header): weft::mpi talks to
// MPI_COMM_WORLD only, inside the library, so the header is the same for every MPI.
//
// Requirements (checked; each violation throws std::logic_error saying which):
//   - MPI is initialised and not yet finalised, with MPI_Init_thread and a provided level of
//     MPI_THREAD_FUNNELED or better (weft's workers are threads; under FUNNELED they must
//     not call MPI, which weft never does: only your code on the main thread does).
//   - Under MPI_THREAD_FUNNELED, the call is made on the main thread (MPI_Is_thread_main).
//   - With check_node (the default) the call is collective over MPI_COMM_WORLD: every rank
//     must make it (else the ranks that do wait for the others, as in any collective).
//     With check_node false it is local and may be made by any subset of ranks.
//
// The binding. It is the process's CPU binding as hwloc reports it (the union of its
// threads' affinity masks) intersected with the allowed cpuset (cgroup cpuset), read once
// at the call. The pool gets pin_policy::explicit_list with the first bound PU of each
// bound core, and by default one worker per such core (SMT siblings are left alone, as in
// weft's default pool). A cgroup CPU quota (cpu.max) is not applied here: the launcher's
// binding is taken as the rank's share. Where hwloc cannot report a binding, the calling
// thread's affinity mask is used, each CPU its own core.
//
// The log line. With log (the default) each rank writes exactly one line to stderr, in one
// write, so lines of different ranks never interleave mid-line:
//   weft::mpi: rank 1/2 on node7: bound to PUs {1} of {0,1}, pool of 1 worker on PUs {1}
// The warning. With check_node, ranks on the same node (MPI_Comm_split_type with
// MPI_COMM_TYPE_SHARED) exchange their bindings; where two of them share a PU their pools
// fight over it (each rank's workers spin and steal on cores another rank's workers also
// use). The lowest such rank on the node then writes one more line, starting
// "weft::mpi: warning:", naming the ranks, and saying so when each got the whole machine:
// the usual cause is a launcher that did not bind: `--bind-to none`, `--oversubscribe`
// (under which Open MPI may leave ranks unbound, open-mpi/ompi#11541), or a launcher's or
// resource manager's default (open-mpi/ompi#13009). The warning is written whether or not
// log is set; set check_node false to drop the check, the warning and the collective.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "weft/options.hpp"
#include "weft/pool.hpp"

namespace weft::mpi {

struct rank_pool_options {
  // The pool's options. `workers` 0 means one per bound core; more than the bound cores
  // wrap around them (worker i on core_pus[i % size]). `pinning` and `pus` are replaced
  // (explicit_list over the bound cores); every other field is passed on as given.
  pool_options pool;
  // One line per rank on stderr (to pool.logger instead, when one is set).
  bool log = true;
  // Exchange bindings within each node and warn when two ranks share a PU. Collective.
  bool check_node = true;
};

// Where this rank runs, as pool_for_this_rank found it.
struct rank_placement {
  int rank = 0;                       // in MPI_COMM_WORLD
  int size = 1;                       // of MPI_COMM_WORLD
  std::string host;                   // MPI_Get_processor_name
  std::vector<unsigned> bound_pus;    // the rank's binding ∩ the allowed cpuset (OS indices)
  std::vector<unsigned> allowed_pus;  // every PU the process may use
  std::vector<unsigned> core_pus;     // the first bound PU of each bound core
  bool whole_machine = false;         // bound_pus == allowed_pus: the launcher did not bind
  // Other ranks on this node whose binding shares a PU with this one (empty without
  // check_node, or where no other rank does).
  std::vector<int> overlapping_ranks;
  std::string warning;                // the node's warning line, on the rank that wrote it
  std::string log_line;               // the line written for this rank (also when log is off)
};

// Reads this rank's binding and, with check_node, exchanges bindings within the node
// (collective over MPI_COMM_WORLD). Writes nothing. Throws std::logic_error (see the top).
rank_placement this_rank_placement(bool check_node = true);

// Builds this rank's pool (see the top), writes the log line and the warning, and returns
// the pool. Throws std::logic_error for an MPI that is not set up as required, and what
// weft::pool's constructor throws (std::invalid_argument naming the option).
// If `placement` is not null it receives what was found.
std::unique_ptr<pool> pool_for_this_rank(const rank_pool_options& options = {}, rank_placement* placement = nullptr);

}  // namespace weft::mpi
