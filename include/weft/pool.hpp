// weft/pool.hpp: the fixed pool of work-stealing workers.
//
// Overview. A pool owns N worker threads, each with its own Chase-Lev deque, plus one
// injection queue for tasks that come from threads outside the pool. A task posted from
// one of the pool's own workers goes to that worker's deque (no lock, no allocation in
// steady state); idle workers steal from their nearest neighbours first, then further
// away; workers with nothing to do spin briefly and then sleep (an idle pool uses next to
// no CPU). Workers are pinned according to pool_options::pinning (see options.hpp).
//
// Lifecycle:
// | state    | post/submit from outside | post/submit from a worker | close()                 |
// |----------|--------------------------|---------------------------|-------------------------|
// | open     | accepted                 | accepted                  | -> draining             |
// | draining | throws pool_closed       | accepted (part of drain)  | waits for the drain     |
// | closed   | throws pool_closed       | (no workers run)          | returns at once         |
// Closing stops external submission, runs every task already queued (and every task those
// tasks spawn), then joins the workers. The destructor calls close().
//
// Calling close() or destroying the pool from one of its own workers cannot work (it would
// wait for itself): close() throws std::logic_error, the destructor reports through the
// logger and calls std::terminate.
//
// Exceptions. A task run through submit() delivers its exception to its future. A task run
// through post() delivers it to pool_options::on_task_exception (default: the logger). No
// exception is dropped silently, and none escapes into a worker thread.
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "weft/detail/task.hpp"
#include "weft/errors.hpp"
#include "weft/future.hpp"
#include "weft/metrics.hpp"
#include "weft/options.hpp"

namespace weft {

namespace detail {
class pool_impl;
}

class pool {
 public:
  // Throws std::invalid_argument (naming the option) for invalid options.
  explicit pool(pool_options options = {});
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // Runs f() on the pool. Fire-and-forget: f's exception goes to on_task_exception.
  // Throws pool_closed after close() (from outside the pool), std::bad_alloc if memory runs
  // out; in both cases f has been destroyed without running.
  template <class F>
  void post(F&& f) {
    static_assert(std::is_invocable_v<std::decay_t<F>&>, "post(f) needs f() to be callable");
    enqueue(detail::make_task([fn = std::forward<F>(f)]() mutable { std::invoke(fn); }));
  }

  // As post, but reports a closed pool as a status instead of an exception.
  template <class F>
  submit_status try_post(F&& f) {
    return try_enqueue(detail::make_task([fn = std::forward<F>(f)]() mutable { std::invoke(fn); }));
  }

  // Runs f() on the pool; the future holds its result or exception.
  template <class F>
  auto submit(F&& f) -> future<std::invoke_result_t<std::decay_t<F>&>> {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    auto state = std::make_shared<detail::future_state<R>>();
    enqueue(detail::make_task([s = state, fn = std::forward<F>(f)]() mutable -> bool { return detail::fulfil(*s, fn); }));
    return future<R>(std::move(state));
  }

  // Stops external submission, runs everything queued, joins the workers. Idempotent and
  // safe to call from several threads. Throws std::logic_error on one of this pool's workers.
  void close();
  bool closed() const noexcept;

  unsigned size() const noexcept;  // number of workers
  metrics stats() const noexcept;

  // Index of the calling thread among this pool's workers, or -1 if it is not one of them.
  int current_worker_index() const noexcept;

  // A one-line description of the machine and of where each worker is pinned.
  const std::string& placement() const noexcept;

  // Low-level entry points used by the templates above and by weft's other layers. The
  // task block is always consumed: queued, or discarded before the call returns/throws.
  void enqueue(detail::task* t);
  submit_status try_enqueue(detail::task* t);
  // Hands an exception that no future or wait() will deliver to on_task_exception.
  void report_unobserved(std::exception_ptr e) noexcept;

 private:
  std::unique_ptr<detail::pool_impl> impl_;
};

}  // namespace weft
