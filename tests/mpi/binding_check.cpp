// tests/mpi/binding_check.cpp: weft::mpi::pool_for_this_rank honours each rank's binding.
// Run under mpirun by tests/mpi/mpirun_check.sh (see tests/mpi/CMakeLists.txt).
//
//   binding_check --workers N|cores --overlap yes|no
//   binding_check --init single     (MPI_Init: the call must throw std::logic_error)
//
// Checks, on every rank (any failure: a "FAIL" line and exit status 1):
//   - before MPI_Init_thread and after MPI_Finalize the call throws std::logic_error;
//   - the binding it reports is the main thread's sched_getaffinity mask (read here
//     without hwloc), and core_pus lies inside it;
//   - the pool has the expected size (N, or "cores": one per bound core);
//   - each worker, asked from inside a task, is pinned to exactly its own PU of core_pus;
//   - overlapping_ranks is empty or not, and the ranks' PUs are disjoint or not, as told.
#include <mpi.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "weft/mpi.hpp"

namespace {

int failures = 0;
int my_rank = -1;

void check(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "binding_check: rank %d: FAIL: %s\n", my_rank, what.c_str());
}

std::set<unsigned> affinity_of_this_thread() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::set<unsigned> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (unsigned c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cpus.insert(c);
  }
  return cpus;
}

std::string list(const std::set<unsigned>& s) {
  std::string out;
  for (unsigned v : s) {
    if (!out.empty()) out += ',';
    out += std::to_string(v);  // appended: a+b chains trip g++ 12's -Wrestrict (PR 105329)
  }
  return "{" + out + "}";
}

void expect_logic_error(const char* when, const char* needle) {
  try {
    weft::mpi::rank_pool_options o;
    o.log = false;
    (void)weft::mpi::pool_for_this_rank(o);
    check(false, std::string(when) + ": no exception");
  } catch (const std::logic_error& e) {
    check(std::strstr(e.what(), needle) != nullptr, std::string(when) + ": message lacks '" + needle + "': " + e.what());
  }
}

// Every worker runs one task; each task waits (bounded) until all have started, so no worker
// runs two, then records which PUs its thread may run on.
std::vector<std::set<unsigned>> worker_affinities(weft::pool& pool) {
  const unsigned n = pool.size();
  std::vector<std::set<unsigned>> seen(n);
  std::atomic<unsigned> started{0};
  std::vector<weft::future<int>> done;
  for (unsigned i = 0; i < n; ++i) {
    done.push_back(pool.submit([&] {
      // relaxed: only a count of arrivals; the results travel through the futures.
      started.fetch_add(1, std::memory_order_relaxed);
      const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (started.load(std::memory_order_relaxed) < n && std::chrono::steady_clock::now() < limit)
        std::this_thread::yield();
      const int w = pool.current_worker_index();
      if (w >= 0) seen[static_cast<unsigned>(w)] = affinity_of_this_thread();
      return w;
    }));
  }
  std::set<int> indices;
  for (auto& f : done) indices.insert(f.get());
  check(indices.size() == n, "the rendezvous did not reach every worker (" + std::to_string(indices.size()) + " of " +
                                 std::to_string(n) + ")");
  return seen;
}

void check_binding(const std::string& workers, const std::string& overlap) {
  const std::set<unsigned> main_mask = affinity_of_this_thread();
  weft::mpi::rank_placement where;
  weft::mpi::rank_pool_options options;
  auto pool = weft::mpi::pool_for_this_rank(options, &where);

  const std::set<unsigned> bound(where.bound_pus.begin(), where.bound_pus.end());
  check(bound == main_mask, "bound_pus " + list(bound) + " is not the affinity mask " + list(main_mask));
  check(!where.core_pus.empty(), "no core_pus");
  for (unsigned pu : where.core_pus) check(bound.count(pu) == 1, "core PU " + std::to_string(pu) + " is not bound");
  // "cores": one worker per bound core (each checked below to be pinned to its own PU).
  const auto cores = static_cast<unsigned>(where.core_pus.size());
  const unsigned expected = workers == "cores" ? cores : static_cast<unsigned>(std::stoul(workers));
  check(pool->size() == expected,
        "pool of " + std::to_string(pool->size()) + " workers, expected " + std::to_string(expected));
  check(where.log_line.find("pool of " + std::to_string(pool->size())) != std::string::npos, "log line: " + where.log_line);

  const auto seen = worker_affinities(*pool);
  for (unsigned w = 0; w < seen.size(); ++w) {
    const unsigned pu = where.core_pus[w % where.core_pus.size()];
    check(seen[w] == std::set<unsigned>{pu}, "worker " + std::to_string(w) + " runs on " + list(seen[w]) +
                                                 ", expected {" + std::to_string(pu) + "}");
  }

  const bool want_overlap = overlap == "yes";
  check(where.overlapping_ranks.empty() != want_overlap,
        std::string("overlapping_ranks ") + (where.overlapping_ranks.empty() ? "empty" : "not empty"));
  if (want_overlap) check(where.whole_machine, "bound to " + list(bound) + ", not the whole machine");
  // Independently of weft: do the ranks' pool PUs intersect?
  const unsigned first = where.core_pus.front();
  std::vector<unsigned> firsts(static_cast<std::size_t>(where.size));
  MPI_Allgather(&first, 1, MPI_UNSIGNED, firsts.data(), 1, MPI_UNSIGNED, MPI_COMM_WORLD);
  const bool distinct = std::set<unsigned>(firsts.begin(), firsts.end()).size() == firsts.size();
  if (!want_overlap) check(distinct, "two ranks' first workers share a PU");
  pool->close();
  std::printf("binding_check: rank %d: pool of %u on PUs %s: %s\n", where.rank, pool->size(),
              list(std::set<unsigned>(where.core_pus.begin(), where.core_pus.end())).c_str(),
              failures == 0 ? "PASS" : "FAIL");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string workers = "cores", overlap = "no", init = "funneled";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--workers") == 0) workers = argv[i + 1];
    if (std::strcmp(argv[i], "--overlap") == 0) overlap = argv[i + 1];
    if (std::strcmp(argv[i], "--init") == 0) init = argv[i + 1];
  }
  expect_logic_error("before MPI_Init", "not initialized");
  if (init == "single") {
    MPI_Init(&argc, &argv);
    int provided = 0;
    MPI_Query_thread(&provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    if (provided == MPI_THREAD_SINGLE) expect_logic_error("MPI_THREAD_SINGLE", "MPI_THREAD_FUNNELED or better");
    std::printf("binding_check: rank %d: thread level %d: %s\n", my_rank, provided, failures == 0 ? "PASS" : "FAIL");
  } else {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    check(provided >= MPI_THREAD_FUNNELED, "MPI does not provide MPI_THREAD_FUNNELED");
    check_binding(workers, overlap);
  }
  MPI_Finalize();
  expect_logic_error("after MPI_Finalize", "finalized");
  return failures == 0 ? 0 : 1;
}
