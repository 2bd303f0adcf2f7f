// perf/keyed.cpp: keyed serializers (weft/keyed.hpp) against their peers.
//
// keyed (keys:K, K = 1, 16, 10,000): one outside thread posts 1,000,000 empty jobs, job i
//   on key i % K, and sleeps until all have run. Figure: tasks/s.
// keyed_hol (slow:S): the head-of-line case. With slow:1, key 0 first gets one 200 ms job
//   (a sleep); then 100 other keys get 1,000 tiny jobs each, and the figure is the time
//   until those 100,000 have run (the slow job's end is waited for outside the timed
//   region). slow:0 is the same without the slow job: the yardstick.
// Each job decrements a shared countdown (harness.hpp), the same code for every runtime.
//
// Runtimes, each with the threads:N argument as its number of threads running jobs:
// - weft: weft::keyed<std::uint64_t> over a weft::pool of N workers (default options).
// - asio: one boost::asio::strand per key over a boost::asio::thread_pool(N), created on
//   first use in a std::unordered_map (the producer is one thread: no lock), kept for the
//   benchmark's lifetime (strands are never freed; weft's per-key queues are, when idle).
// - fnv: the seed's design (fnv_taskpool.hpp): N threads with a bounded queue each, keys
//   hashed onto them with FNV-1a.
#include <chrono>
#include <cstdint>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fnv_taskpool.hpp"
#include "harness.hpp"
#include "peers.hpp"
#include "weft/keyed.hpp"

#ifdef WEFT_HAVE_ASIO
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#endif

namespace weft_perf {
namespace {

constexpr std::int64_t kJobs = 1000000;
const std::vector<std::int64_t> kKeyCounts = {1, 16, 10000};
constexpr int kHolKeys = 100;
constexpr std::int64_t kHolJobsPerKey = 1000;
constexpr auto kSlowJob = std::chrono::milliseconds(200);

std::uint64_t leftover(const countdown& c) { return static_cast<std::uint64_t>(c.left()); }

// One round of the throughput family through post(key, job).
template <class Post>
std::uint64_t keyed_round(std::int64_t keys, countdown& c, Post& post) {
  c.reset(kJobs);
  for (std::int64_t i = 0; i < kJobs; ++i) post(static_cast<std::uint64_t>(i % keys), [&c] { c.arrive(); });
  c.wait();
  return leftover(c);
}

template <class Post>
void measure_keyed(benchmark::State& state, countdown& c, Post post) {
  const std::int64_t keys = state.range(1);
  measure(state, [&] { return keyed_round(keys, c, post); }, 0, static_cast<double>(kJobs), metric::tasks_per_second);
}

// One round of the head-of-line family; the timed part ends when the 100,000 have run.
// done: set by the slow job when it ends (waited for untimed, before the next round).
template <class Post>
std::uint64_t hol_round(benchmark::State& state, bool slow, countdown& c, std::atomic<bool>& done, Post& post) {
  if (slow) {
    done.store(false);
    post(0, [&done] {
      std::this_thread::sleep_for(kSlowJob);
      done.store(true);
    });
  }
  c.reset(kHolKeys * kHolJobsPerKey);
  for (std::int64_t j = 0; j < kHolJobsPerKey; ++j) {
    for (int key = 1; key <= kHolKeys; ++key) post(static_cast<std::uint64_t>(key), [&c] { c.arrive(); });
  }
  c.wait();
  state.PauseTiming();
  while (slow && !done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  state.ResumeTiming();
  return leftover(c);
}

template <class Post>
void measure_hol(benchmark::State& state, countdown& c, Post post) {
  const bool slow = state.range(1) != 0;
  std::atomic<bool> done{true};
  result_check check(0);
  {  // warm-up, untimed (the benchmark's timer is not running yet)
    c.reset(kHolKeys * kHolJobsPerKey);
    for (std::int64_t j = 0; j < kHolJobsPerKey; ++j) {
      for (int key = 1; key <= kHolKeys; ++key) post(static_cast<std::uint64_t>(key), [&c] { c.arrive(); });
    }
    c.wait();
  }
  for (auto _ : state) check.record(hol_round(state, slow, c, done, post));
  report_tasks(state, static_cast<double>(kHolKeys * kHolJobsPerKey), metric::tasks_per_second);
  check.report(state);
}

void keyed_weft_bench(benchmark::State& state) {
  countdown c;
  weft_runtime rt(threads(state));
  weft::keyed<std::uint64_t> k(rt.pool());
  measure_keyed(state, c, [&k](std::uint64_t key, auto&& job) { k.post(key, job); });
  k.wait_idle();
  rt.report_stats(state);
  state.counters["active_keys_after"] = benchmark::Counter(static_cast<double>(k.active_keys()));
}

void keyed_hol_weft_bench(benchmark::State& state) {
  countdown c;
  weft_runtime rt(threads(state));
  weft::keyed<std::uint64_t> k(rt.pool());
  measure_hol(state, c, [&k](std::uint64_t key, auto&& job) { k.post(key, job); });
}

#ifdef WEFT_HAVE_ASIO
// One strand per key, made on first use (single producer thread: the map needs no lock).
class asio_strands {
 public:
  explicit asio_strands(int threads) : pool_(static_cast<std::size_t>(threads)) {}
  ~asio_strands() { pool_.join(); }
  asio_strands(const asio_strands&) = delete;
  asio_strands& operator=(const asio_strands&) = delete;

  template <class F>
  void post(std::uint64_t key, F&& f) {
    auto it = strands_.find(key);
    if (it == strands_.end()) it = strands_.emplace(key, boost::asio::make_strand(pool_.get_executor())).first;
    boost::asio::post(it->second, std::forward<F>(f));
  }

 private:
  boost::asio::thread_pool pool_;
  std::unordered_map<std::uint64_t, boost::asio::strand<boost::asio::thread_pool::executor_type>> strands_;
};

void keyed_asio_bench(benchmark::State& state) {
  countdown c;  // declared first: outlives the runtime's threads (a late notify_one)
  asio_strands rt(threads(state));
  measure_keyed(state, c, [&rt](std::uint64_t key, auto&& job) { rt.post(key, job); });
}

void keyed_hol_asio_bench(benchmark::State& state) {
  countdown c;
  asio_strands rt(threads(state));
  measure_hol(state, c, [&rt](std::uint64_t key, auto&& job) { rt.post(key, job); });
}
#endif

void keyed_fnv_bench(benchmark::State& state) {
  countdown c;  // declared first: outlives the runtime's threads (a late notify_one)
  fnv_taskpool rt(threads(state));
  measure_keyed(state, c, [&rt](std::uint64_t key, auto&& job) { rt.submit(key, job); });
}

void keyed_hol_fnv_bench(benchmark::State& state) {
  countdown c;
  fnv_taskpool rt(threads(state));
  measure_hol(state, c, [&rt](std::uint64_t key, auto&& job) { rt.submit(key, job); });
}

}  // namespace

void register_keyed() {
  register_runtime("keyed", "weft", keyed_weft_bench, "keys", kKeyCounts);
#ifdef WEFT_HAVE_ASIO
  register_runtime("keyed", "asio", keyed_asio_bench, "keys", kKeyCounts);
#endif
  register_runtime("keyed", "fnv", keyed_fnv_bench, "keys", kKeyCounts);
  register_runtime("keyed_hol", "weft", keyed_hol_weft_bench, "slow", {0, 1});
#ifdef WEFT_HAVE_ASIO
  register_runtime("keyed_hol", "asio", keyed_hol_asio_bench, "slow", {0, 1});
#endif
  register_runtime("keyed_hol", "fnv", keyed_hol_fnv_bench, "slow", {0, 1});
}

}  // namespace weft_perf
