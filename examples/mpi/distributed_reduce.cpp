// examples/mpi/distributed_reduce.cpp: a reduction over [0, n) across MPI ranks, each rank's
// block reduced by its own weft pool (weft/mpi.hpp), the partial results combined with
// MPI_Allreduce.
//
// The sum is of i*i modulo 2^64 (unsigned arithmetic wraps, and wrapping addition is
// associative and commutative, so any split and any order give the same bits); it is
// checked exactly against the closed form (n-1) n (2n-1) / 6, computed in 128 bits.
//
// Build: with weft (cmake target weft_mpi_distributed_reduce), or against an installed weft:
//   mpicxx -std=c++20 -O2 distributed_reduce.cpp -lweft_mpi $(pkg-config --cflags --libs weft)
// Run:   mpirun -np 2 --bind-to core ./distributed_reduce [n] [repeats]
//        (n default 1,000,000,000; repeats default 1: with more, rank 0 prints the best
//        and the median time of the repeats, each between two barriers)
//
// Output: each rank's weft::mpi placement line on stderr, then one line from rank 0:
// "distributed_reduce: ranks 2, workers 2, n 1000000000, sum S == closed form S: PASS,
// best T s (R elements/s), median T s of K" (workers: summed over the ranks; each time is
// the local reduce, the MPI_Allreduce and a barrier). Exit status 0 only if the sum is
// right in every repeat.
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "weft/mpi.hpp"
#include "weft/parallel.hpp"

namespace {

std::uint64_t closed_form(std::uint64_t n) {
  if (n == 0) return 0;
  const unsigned __int128 m = n;
  return static_cast<std::uint64_t>((m - 1) * m * (2 * m - 1) / 6);  // exact for n < 2^42
}

// Block partition: rank r of p gets [n*r/p, n*(r+1)/p), computed in 128 bits.
std::uint64_t block_start(std::uint64_t n, int rank, int ranks) {
  return static_cast<std::uint64_t>(static_cast<unsigned __int128>(n) * static_cast<unsigned>(rank) /
                                    static_cast<unsigned>(ranks));
}

std::uint64_t parse(const char* text, const char* what) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') throw std::invalid_argument(std::string(what) + ": not a number: " + text);
  return v;
}

int run(int argc, char** argv) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const std::uint64_t n = argc > 1 ? parse(argv[1], "n") : 1'000'000'000;
  const std::uint64_t repeats = std::max<std::uint64_t>(1, argc > 2 ? parse(argv[2], "repeats") : 1);
  if (n >= (std::uint64_t{1} << 42)) throw std::invalid_argument("n: at most 2^42 (the closed form's 128 bits)");

  auto pool = weft::mpi::pool_for_this_rank();
  const std::uint64_t lo = block_start(n, rank, ranks), hi = block_start(n, rank + 1, ranks);

  std::vector<double> seconds;
  std::uint64_t sum = 0;
  bool all_ok = true;
  for (std::uint64_t r = 0; r < repeats; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double start = MPI_Wtime();
    const std::uint64_t local = weft::parallel_reduce(
        *pool, lo, hi, std::uint64_t{0}, [](std::uint64_t i) { return i * i; }, std::plus<>{});
    MPI_Allreduce(&local, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    seconds.push_back(MPI_Wtime() - start);
    all_ok = all_ok && sum == closed_form(n);
  }

  // Total workers over all ranks, for the report line.
  int workers = static_cast<int>(pool->size()), total_workers = 0;
  MPI_Reduce(&workers, &total_workers, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  pool->close();
  if (rank == 0) {
    std::sort(seconds.begin(), seconds.end());
    const double best = seconds.front(), median = seconds[seconds.size() / 2];
    std::printf("distributed_reduce: ranks %d, workers %d, n %llu, sum %llu %s closed form %llu: %s, "
                "best %.6f s (%.3g elements/s), median %.6f s of %llu\n",
                ranks, total_workers, static_cast<unsigned long long>(n), static_cast<unsigned long long>(sum),
                all_ok ? "==" : "!=", static_cast<unsigned long long>(closed_form(n)), all_ok ? "PASS" : "FAIL", best,
                static_cast<double>(n) / best, median, static_cast<unsigned long long>(repeats));
    std::fflush(stdout);
  }
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int status = 1;
  try {
    status = run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "distributed_reduce: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);  // the other ranks may be waiting in a collective
  }
  MPI_Finalize();
  return status;
}
