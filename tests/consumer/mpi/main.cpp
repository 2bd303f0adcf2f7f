// Uses only the installed public headers and weft::mpi; exits non-zero on a wrong answer.
#include <mpi.h>
#include <weft/mpi.hpp>
#include <weft/parallel.hpp>

#include <cstdio>
#include <functional>

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  long global = 0;
  unsigned workers = 0;
  {
    auto pool = weft::mpi::pool_for_this_rank();
    workers = pool->size();
    const long local = weft::parallel_reduce(*pool, 0L, 100'000L, 0L, [](long i) { return i; }, std::plus<>{});
    MPI_Allreduce(&local, &global, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  }
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  MPI_Finalize();
  const long expected = ranks * (100'000L * 99'999L / 2);
  std::printf("mpi consumer: %d rank(s), %u worker(s) on rank 0's side, sum %ld (expected %ld)\n", ranks, workers,
              global, expected);
  return global == expected && workers >= 1 ? 0 : 1;
}
