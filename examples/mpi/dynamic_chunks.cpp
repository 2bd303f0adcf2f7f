// examples/mpi/dynamic_chunks.cpp: dynamic work distribution across MPI ranks, with weft
// balancing each chunk inside a rank.
//
// Across ranks: one global chunk counter in an MPI window on rank 0. Every rank, inside one
// passive-target epoch (MPI_Win_lock_all), takes the next `grab` chunks with
// MPI_Fetch_and_op(MPI_SUM) until the counter passes the number of chunks: a rank that is
// faster (or less disturbed) simply takes more chunks; no rank waits for another.
// Inside a rank: each chunk is one weft::parallel_reduce on the rank's pool (work stealing
// among its workers), run as a task so that the main thread fetches the next chunk from the
// counter while the workers compute the current one (one chunk of lookahead).
//
// The chunks are deliberately uneven: chunk c covers [b(c), b(c+1)) with b(c) = len c^2 /
// chunks, so later chunks are longer (from almost nothing to about 2 len). The value is
// the sum of i*i modulo 2^64 over [0, len chunks), checked exactly against its closed form.
// That every chunk ran exactly once is checked by summing, over the ranks, a per-chunk
// count (each must be 1), the chunk ids and the per-rank chunk counts.
//
// Run: mpirun -np 2 ./dynamic_chunks [chunks] [len] [grab]
//      (defaults 1000 chunks, len 100000, grab 1 chunk per fetch)
// Output (rank 0, one line): "dynamic_chunks: ranks 2, chunks 1000, grab 1, each chunk
// once: PASS, chunks per rank 503,497, sum ... == closed form: PASS, T s, F us per counter
// fetch (slowest rank's mean)". Exit status 0 only if both checks pass.
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

#include "weft/future.hpp"
#include "weft/mpi.hpp"
#include "weft/parallel.hpp"

namespace {

using u64 = std::uint64_t;

u64 closed_form(u64 n) {  // sum of i*i over [0, n), modulo 2^64
  if (n == 0) return 0;
  const unsigned __int128 m = n;
  return static_cast<u64>((m - 1) * m * (2 * m - 1) / 6);  // exact for n < 2^42
}

u64 parse(const char* text, const char* what) {
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || v == 0) throw std::invalid_argument(std::string(what) + ": not a positive number: " + text);
  return v;
}

struct job {
  u64 chunks, len, grab;
  u64 bound(u64 c) const {  // b(c) = len c^2 / chunks, b(chunks) = len * chunks
    return static_cast<u64>(static_cast<unsigned __int128>(len) * c * c / chunks);
  }
};

// The global counter: one u64 on rank 0, read and advanced with MPI_Fetch_and_op.
class chunk_counter {
 public:
  chunk_counter() {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const MPI_Aint bytes = rank == 0 ? sizeof(u64) : 0;
    MPI_Win_allocate(bytes, sizeof(u64), MPI_INFO_NULL, MPI_COMM_WORLD, &base_, &win_);
    if (rank == 0) {  // local store to the window inside an exclusive epoch on it
      MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, win_);
      *static_cast<u64*>(base_) = 0;
      MPI_Win_unlock(0, win_);
    }
    MPI_Barrier(MPI_COMM_WORLD);  // nobody fetches before the counter is 0
    MPI_Win_lock_all(MPI_MODE_NOCHECK, win_);
  }
  ~chunk_counter() {
    MPI_Win_unlock_all(win_);
    MPI_Win_free(&win_);
  }
  chunk_counter(const chunk_counter&) = delete;
  chunk_counter& operator=(const chunk_counter&) = delete;

  // Atomically counter += n; returns the value before.
  u64 take(u64 n) {
    const double start = MPI_Wtime();
    u64 before = 0;
    MPI_Fetch_and_op(&n, &before, MPI_UINT64_T, 0, 0, MPI_SUM, win_);
    MPI_Win_flush(0, win_);
    seconds_ += MPI_Wtime() - start;
    ++fetches_;
    return before;
  }
  u64 fetches() const noexcept { return fetches_; }
  double seconds() const noexcept { return seconds_; }  // spent in take()

 private:
  void* base_ = nullptr;
  MPI_Win win_ = MPI_WIN_NULL;
  u64 fetches_ = 0;
  double seconds_ = 0;
};

struct tally {
  std::vector<int> runs;  // per chunk: how often this rank ran it
  u64 chunks_done = 0, id_sum = 0, value = 0;
  double fetch_us = 0;  // mean time of one fetch from the counter, microseconds
};

int run(int argc, char** argv) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const job j{argc > 1 ? parse(argv[1], "chunks") : 1000, argc > 2 ? parse(argv[2], "len") : 100'000,
              argc > 3 ? parse(argv[3], "grab") : 1};
  if (j.chunks > (1u << 24) || j.len > (u64{1} << 42) / j.chunks)
    throw std::invalid_argument("chunks at most 2^24, chunks * len below 2^42");

  auto pool = weft::mpi::pool_for_this_rank();
  tally mine;
  mine.runs.assign(j.chunks, 0);
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = MPI_Wtime();
  {
    chunk_counter counter;
    // Runs chunks [first, last) on the pool, each one parallel_reduce; returns their sum.
    auto run_chunks = [&](u64 first, u64 last) {
      return pool->submit([&j, &pool, first, last] {
        u64 sum = 0;
        for (u64 c = first; c < last; ++c)
          sum += weft::parallel_reduce(*pool, j.bound(c), j.bound(c + 1), u64{0}, [](u64 i) { return i * i; },
                                       std::plus<>{});
        return sum;
      });
    };
    auto account = [&](u64 first, u64 last, weft::future<u64>& done) {
      mine.value += done.get();
      for (u64 c = first; c < last; ++c) {
        ++mine.runs[c];
        ++mine.chunks_done;
        mine.id_sum += c;
      }
    };
    u64 first = counter.take(j.grab);
    while (first < j.chunks) {
      const u64 last = std::min(first + j.grab, j.chunks);
      weft::future<u64> done = run_chunks(first, last);
      const u64 next = counter.take(j.grab);  // overlaps the workers' computing
      account(first, last, done);
      first = next;
    }
    mine.fetch_us = 1e6 * counter.seconds() / static_cast<double>(counter.fetches());
  }  // unlock_all + free: collective, every rank has finished taking
  const double seconds = MPI_Wtime() - start;
  pool->close();

  // Exactly once, globally: per-chunk run counts summed over the ranks must all be 1.
  std::vector<int> runs(rank == 0 ? j.chunks : 0);
  MPI_Reduce(mine.runs.data(), runs.data(), static_cast<int>(j.chunks), MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  u64 totals[3] = {0, 0, 0};
  const u64 local[3] = {mine.chunks_done, mine.id_sum, mine.value};
  MPI_Allreduce(local, totals, 3, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  std::vector<u64> per_rank(static_cast<std::size_t>(ranks));
  MPI_Gather(&mine.chunks_done, 1, MPI_UINT64_T, per_rank.data(), 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);

  double slowest_fetch_us = 0;
  MPI_Reduce(&mine.fetch_us, &slowest_fetch_us, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  const bool value_ok = totals[2] == closed_form(j.bound(j.chunks));
  int once_ok = 1;
  if (rank == 0) {
    const bool each_once = std::all_of(runs.begin(), runs.end(), [](int r) { return r == 1; });
    once_ok = each_once && totals[0] == j.chunks && totals[1] == j.chunks * (j.chunks - 1) / 2;
    std::string counts;
    for (u64 c : per_rank) {
      if (!counts.empty()) counts += ',';
      counts += std::to_string(c);  // appended: a+b chains trip g++ 12's -Wrestrict (PR 105329)
    }
    std::printf("dynamic_chunks: ranks %d, chunks %llu, grab %llu, each chunk once: %s, chunks per rank %s, "
                "sum %llu %s closed form: %s, %.4f s, %.1f us per counter fetch (slowest rank's mean)\n",
                ranks, static_cast<unsigned long long>(j.chunks), static_cast<unsigned long long>(j.grab),
                once_ok ? "PASS" : "FAIL", counts.c_str(), static_cast<unsigned long long>(totals[2]),
                value_ok ? "==" : "!=", value_ok ? "PASS" : "FAIL", seconds, slowest_fetch_us);
    std::fflush(stdout);
  }
  MPI_Bcast(&once_ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return value_ok && once_ok != 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int status = 1;
  try {
    status = run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dynamic_chunks: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);  // the other ranks may be waiting in a collective
  }
  MPI_Finalize();
  return status;
}
