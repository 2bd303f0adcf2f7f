// perf/external.cpp: submission from threads outside the runtime.
//
// P producer threads (P = 1, 2, 4; the "producers" argument), none of them a worker, post
// 1,000,000 empty tasks between them (1,000,000 / P each), and the benchmark thread sleeps
// until all have run. This measures the injection path (a shared queue, waking idle
// workers) rather than a worker's own deque. The producers are started inside the timed
// region (a few tens of microseconds). Each task decrements a shared countdown
// (harness.hpp), the same code for every runtime; the last one wakes the benchmark thread.
// The figure to read is tasks/s.
//
// How each runtime is fed, the idiomatic fire-and-forget call from outside:
// - weft: pool::post (the injection queue; workers take it in batches).
// - weft_bulk: pool::post_bulk, 1024 tasks a call (one enqueue_bulk through the producer's
//   token); the same tasks, so the column reads as "what batching the submissions buys".
// - oneTBB: task_arena::enqueue (the arena's FIFO task stream; nobody joins the arena).
//   The alternative, arena.execute + task_group::run, would make the submitter a member
//   of the arena pushing onto its own deque: fork-join, not external submission.
// - Boost.Asio: boost::asio::post to a thread_pool (one mutex-protected queue, a
//   thread-local recycling allocator for the handlers).
// - mutex: the std::mutex + std::condition_variable + std::deque pool (mutex_pool.hpp).
#include <algorithm>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

#include "harness.hpp"
#include "mutex_pool.hpp"
#include "peers.hpp"

namespace weft_perf {
namespace {

constexpr std::int64_t kTasks = 1000000;
const std::vector<std::int64_t> kProducers = {1, 2, 4};

int producers(const benchmark::State& state) { return static_cast<int>(state.range(1)); }

// The countdown's value once the round has been waited for: 0 unless a task ran twice.
std::uint64_t leftover(const countdown& c) { return static_cast<std::uint64_t>(c.left()); }

// One round: `n` producer threads each run produce(share), which must submit `share` tasks
// that arrive at `c`, then wait for all kTasks.
template <class Produce>
std::uint64_t round_with(int n, countdown& c, const Produce& produce) {
  c.reset(kTasks);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(n));
  for (int t = 0; t < n; ++t) {
    const std::int64_t share = kTasks / n + (t < kTasks % n ? 1 : 0);
    threads.emplace_back([&produce, share] { produce(share); });
  }
  for (auto& t : threads) t.join();
  c.wait();
  return leftover(c);
}

// One round: `n` producer threads post kTasks tasks through post(task), then wait.
template <class Post>
std::uint64_t round(int n, countdown& c, const Post& post) {
  return round_with(n, c, [&post, &c](std::int64_t share) {
    for (std::int64_t i = 0; i < share; ++i) post([&c] { c.arrive(); });
  });
}

template <class Post>
void measure_external(benchmark::State& state, countdown& c, const Post& post) {
  measure(state, [&] { return round(producers(state), c, post); }, 0, static_cast<double>(kTasks),
          metric::tasks_per_second);
}

void external_weft_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  countdown c;
  measure_external(state, c, [&rt](auto&& task) { rt.pool().post(task); });
  rt.report_stats(state);
  // A task run twice after the countdown reached zero shows up once the pool has drained.
  rt.pool().close();
  result_check drained(0);
  drained.record(leftover(c));
  drained.report(state);
}

// As round, but each producer submits its share in post_bulk calls of kBulk tasks.
constexpr std::int64_t kBulk = 1024;

void external_weft_bulk_bench(benchmark::State& state) {
  weft_runtime rt(threads(state));
  countdown c;
  const auto task = [&c] { c.arrive(); };
  const auto produce = [&rt, &task](std::int64_t share) {
    // post_bulk moves from its range; the lambda is a reference capture, so moving leaves
    // every element as it was and one array serves every call.
    std::vector<std::decay_t<decltype(task)>> chunk(static_cast<std::size_t>(kBulk), task);
    for (std::int64_t done = 0; done < share;) {
      const std::int64_t k = std::min(kBulk, share - done);
      rt.pool().post_bulk(chunk.begin(), chunk.begin() + k);
      done += k;
    }
  };
  measure(state, [&] { return round_with(producers(state), c, produce); }, 0, static_cast<double>(kTasks),
          metric::tasks_per_second);
  rt.report_stats(state);
}

#ifdef WEFT_HAVE_TBB
void external_tbb_bench(benchmark::State& state) {
  countdown c;  // declared first: outlives the runtime's threads (a late notify_one)
  tbb_runtime rt(threads(state), tbb_runtime::caller::stays_outside);
  measure_external(state, c, [&rt](auto&& task) { rt.post(task); });
}
#endif

#ifdef WEFT_HAVE_ASIO
void external_asio_bench(benchmark::State& state) {
  countdown c;  // declared first: outlives the runtime's threads (a late notify_one)
  asio_runtime rt(threads(state));
  measure_external(state, c, [&rt](auto&& task) { rt.post(task); });
}
#endif

void external_mutex_bench(benchmark::State& state) {
  countdown c;  // declared first: outlives the runtime's threads (a late notify_one)
  mutex_pool rt(threads(state));
  measure_external(state, c, [&rt](auto&& task) { rt.post(task); });
}

}  // namespace

void register_external() {
  register_runtime("external", "weft", external_weft_bench, "producers", kProducers);
  register_runtime("external", "weft_bulk", external_weft_bulk_bench, "producers", kProducers);
#ifdef WEFT_HAVE_TBB
  register_runtime("external", "tbb", external_tbb_bench, "producers", kProducers);
#endif
#ifdef WEFT_HAVE_ASIO
  register_runtime("external", "asio", external_asio_bench, "producers", kProducers);
#endif
  register_runtime("external", "mutex", external_mutex_bench, "producers", kProducers);
}

}  // namespace weft_perf
