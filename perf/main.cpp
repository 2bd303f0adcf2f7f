// perf/main.cpp: weft-perf, every benchmark family in one binary.
//
// Usual Google Benchmark flags apply (--benchmark_filter=fib/, --benchmark_repetitions=5,
// --benchmark_out=run.json). tools/weft-bench builds, runs and tabulates it.
// Environment: WEFT_PERF_THREADS=1,2,4 (thread counts), WEFT_PERF_PIN=none|compact|scatter
// (weft's pinning), WEFT_PERF_SPIN=N (weft's spin_rounds), WEFT_PERF_QUICK=1 (smaller
// inputs, see harness.hpp).
#include <string>

#include "harness.hpp"
#include "peers.hpp"

#ifdef WEFT_HAVE_TBB
#include <oneapi/tbb/version.h>
#endif
#ifdef WEFT_HAVE_ASIO
#include <boost/version.hpp>
#endif

namespace {

// Recorded in the JSON context, so that a saved result says what it measured.
void add_context() {
  std::string peers;
#ifdef WEFT_HAVE_TBB
  peers += "tbb ";
  benchmark::AddCustomContext("tbb_version", TBB_VERSION_STRING);
#endif
#ifdef WEFT_HAVE_OPENMP
  peers += "omp ";
  benchmark::AddCustomContext("openmp_version", std::to_string(_OPENMP));
#endif
#ifdef WEFT_HAVE_ASIO
  peers += "asio ";
  benchmark::AddCustomContext("boost_version", std::to_string(BOOST_VERSION / 100000) + "." +
                                                   std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                                                   std::to_string(BOOST_VERSION % 100));
#endif
#ifdef WEFT_HAVE_LIBFORK
  peers += "libfork ";
#endif
#ifdef WEFT_HAVE_TASKFLOW
  peers += "taskflow ";
#endif
  peers += "mutex";
  benchmark::AddCustomContext("peers", peers);
  benchmark::AddCustomContext("quick", weft_perf::quick() ? "yes" : "no");
  std::string counts;
  for (int t : weft_perf::thread_counts()) {
    if (!counts.empty()) counts += ',';
    counts += std::to_string(t);
  }
  benchmark::AddCustomContext("thread_counts", counts);
  weft_perf::weft_runtime probe(weft_perf::thread_counts().back());
  benchmark::AddCustomContext("weft_placement", probe.pool().placement());
  // The local checkouts of the header-only peers (perf/CMakeLists.txt): version, then
  // "git describe" and the full commit hash, or "unknown" outside a git checkout.
#ifdef WEFT_PERF_LIBFORK_COMMIT
  benchmark::AddCustomContext("libfork_version", WEFT_PERF_LIBFORK_VERSION);
  benchmark::AddCustomContext("libfork_commit", WEFT_PERF_LIBFORK_COMMIT);
#endif
#ifdef WEFT_PERF_TASKFLOW_COMMIT
  benchmark::AddCustomContext("taskflow_version", WEFT_PERF_TASKFLOW_VERSION);
  benchmark::AddCustomContext("taskflow_commit", WEFT_PERF_TASKFLOW_COMMIT);
#endif
#ifdef WEFT_PERF_COMPILER
  benchmark::AddCustomContext("compiler", WEFT_PERF_COMPILER);
#endif
#ifdef WEFT_PERF_FLAGS
  benchmark::AddCustomContext("cxx_flags", WEFT_PERF_FLAGS);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  weft_perf::register_fib();
  weft_perf::register_skynet();
  weft_perf::register_nqueens();
  weft_perf::register_uts();
  weft_perf::register_spawner();
  weft_perf::register_matmul();
#ifdef WEFT_PERF_HAVE_PARALLEL
  weft_perf::register_parallel();
#endif
  weft_perf::register_external();
  weft_perf::register_latency();
  weft_perf::register_idle();
  weft_perf::register_keyed();
  weft_perf::register_memory();
  add_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
