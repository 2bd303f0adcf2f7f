// weft/detail/pool_access.hpp: weft's own way past pool's public contract. NOT part of the
// contract: no user code may include or call this; it changes with the runtime.
//
// pool.hpp is the contract: post, submit, task_group, close... The task-block entry points
// under them (queue a detail::task, a submission with its tokens and deadline, a batch of
// blocks; hand an exception to on_task_exception) and the implementation object are private
// members of pool. Two kinds of code need them:
//   - weft's public templates that build their own task blocks (task_group::run, the
//     coroutine and std::execution schedulers), which must be inline;
//   - the runtime's layers and the C API (runtime/layers, runtime/capi), and tests of the
//     runtime's internals, which also reach the implementation (impl()).
// They all go through this one struct, which pool befriends: one place to audit, and nothing
// a user can reach by accident. Every function is an inline forwarder, so a call costs what
// the member call it forwards to costs.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <stop_token>
#include <utility>

#include "weft/detail/submission.hpp"
#include "weft/detail/task.hpp"
#include "weft/pool.hpp"
#include "weft/task_options.hpp"

namespace weft::detail {

struct pool_access {
  // The task block is always consumed: queued, or destroyed before the call returns/throws.
  // Throws pool_closed (from outside the pool, after close), queue_full, lane_full or
  // std::bad_alloc.
  static void enqueue(pool& p, task* t) { p.enqueue(t); }
  // As enqueue, without the exceptions for a closed or full pool (never applies full_policy).
  static submit_status try_enqueue(pool& p, task* t) { return p.try_enqueue(t); }
  // As try_enqueue, waiting for room until `deadline` or `stop`.
  static submit_status enqueue_until(pool& p, task* t, std::chrono::steady_clock::time_point deadline,
                                     const std::stop_token& stop) {
    return p.enqueue_until(t, deadline, stop);
  }
  // Queues n tasks; every block is consumed. Throws like enqueue (the blocks not queued
  // destroyed and counted as rejected).
  static void enqueue_bulk(pool& p, task* const* tasks, std::size_t n) { p.enqueue_bulk(tasks, n); }
  // Queues a submission task, arming its tokens and deadline. Throws like enqueue.
  static void enqueue_submission(pool& p, task* t, const std::shared_ptr<submission_base>& s,
                                 const task_options& options) {
    p.enqueue_submission(t, s, options);
  }
  // Hands an exception that no future or wait() will deliver to on_task_exception.
  static void report_unobserved(pool& p, std::exception_ptr e) noexcept { p.report_unobserved(std::move(e)); }
  // The implementation behind a pool (runtime/core/pool_impl.hpp; incomplete here).
  static pool_impl& impl(pool& p) noexcept { return *p.impl_.get(); }
};

}  // namespace weft::detail
