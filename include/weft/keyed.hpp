// weft/keyed.hpp: a keyed serializer: jobs with the same key run one at a time, in
// submission order; jobs with different keys run in parallel on a weft::pool.
//
//   weft::keyed<std::string> users(pool);
//   users.post("user-123", [] { notify(); });                  // serial per user
//   auto f = users.submit("user-456", [](std::stop_token) { return load(); });
//
// Overview. Each key with work has its own queue (created on its first job, freed when it
// empties: memory is O(keys with queued or running jobs), never O(keys ever seen)) and one
// drain task on the pool that runs the queue's jobs. Keys are never hashed onto a fixed set
// of queues, so a key stuck in a long job delays only its own later jobs. A drain runs at
// most keyed_options::batch jobs (and batch_time) per turn, then queues itself behind the
// pool's other work, so a hot key cannot hold a worker. The protocol (and why a job queued
// while its key's drain is finishing is never stranded) is at the top of
// runtime/layers/keyed.cpp. Ordering is per key and per submitting thread: two threads that
// submit to one key concurrently are ordered by whoever takes the key's shard lock first.
//
// | call                      | open                      | stopped (stop(), pool closed)     | key at capacity |
// |---------------------------|---------------------------|-----------------------------------|-----------------|
// | post(key, f[, options])   | queued                    | throws pool_closed                | when_full (below) |
// | submit(key, f[, options]) | queued; future            | throws pool_closed                | when_full (below) |
// | try_post(key, f)          | keyed_status::ok          | keyed_status::closed              | keyed_status::full |
// | flush(key)                | waits for the key's jobs queued before the call (helps on a worker)            |
// | wait_idle(key) / ()       | waits until the key (every key) has nothing queued or running                  |
// | post_until(key, f, d[, stop]), post_for, submit_until, submit_for: as try_post, waiting for room in the key      |
// |                           until the deadline or the stop token (then keyed_status::full)                         |
// In every refused case the callable is destroyed without running and counted as rejected.
//
// A full key (keyed_options::capacity, when_full). post/submit on a key that already holds
// `capacity` queued jobs (the running one not counted) apply keyed_options::when_full:
// | when_full       | post/submit                                                                              |
// |-----------------|------------------------------------------------------------------------------------------|
// | reject          | throw queue_full (the default)                                                           |
// | block           | wait until the key has room (one of its jobs starts or is cancelled); stop(), the pool's |
// |                 | stop_now or its base token wake the caller with pool_closed. On a worker the wait runs   |
// |                 | other tasks meanwhile. From a job of the same key: queue_full at once (it would wait for |
// |                 | itself; post_until likewise returns full at once)                                        |
// | discard_oldest  | the key's oldest queued job completes as cancelled (future: task_cancelled; on_done: a   |
// |                 | cancelled outcome; counted in stats().cancelled and .discarded), and this one is queued  |
// | caller_runs     | not allowed: the constructor throws std::invalid_argument naming                         |
// |                 | weft::keyed_options::when_full (it would run the job ahead of its key's queue)           |
// try_post always returns keyed_status::full instead. The pool's close() keeps draining the
// keys, so a producer blocked then gets room (its job queued and run as part of the drain)
// or, if its key went idle meanwhile, pool_closed. Like any bounded queues, two keys whose
// jobs block on each other's full queue wait for ever: use post_until there.
//
// Callables are f() or f(std::stop_token), as everywhere in weft. The token fires when the
// serializer stops (stop(), its destructor) or the pool's token fires (stop_now, a close
// deadline, pool_options::stop_token), and, with task_options, when the submission's own
// stop_token fires. task_options are checked when the job's turn comes: a token that has
// fired or a deadline that has passed by then cancels the job (future: task_cancelled)
// without delaying its key. Unlike pool::submit, a deadline does not fire the token of a job
// that is already running (the serializer keeps no timer), and a cancellation is delivered
// when the job reaches the front of its key's queue, not at the moment the token fires.
//
// Exceptions. submit: to the future. post: to the pool's on_task_exception, like pool::post.
// Either way the key's later jobs run (on_error::continue_key), unless the serializer was
// built with on_error::cancel_key_queue: then the jobs queued for that key at that moment
// complete as cancelled.
//
// Stopping. stop() refuses new jobs, fires the jobs' token, and cancels every queued job
// (futures get task_cancelled, counted in stats().cancelled); it does not wait for running
// jobs: wait_idle() does. The destructor stops and then waits for running jobs to return.
// The pool's stop_now() (or a passed close deadline, or its base token) stops the serializer
// the same way. The pool's close() runs the jobs already queued, as it does with its own
// tasks; new ones are refused (pool_closed).
//
// Waiting from a job. flush/wait_idle/the destructor called from a job of this serializer on
// the same key (wait_idle(): any key) would wait for themselves: they throw std::logic_error
// (the destructor terminates). Elsewhere on a worker they help (run other tasks) while
// waiting, as future::wait does.
//
// Lifetimes. The pool must outlive the serializer. A serializer created before fork() is
// unusable in the child, like its pool (submissions are refused there; do not wait on it).
//
// Costs. Per job: one task block from weft's per-thread cache (callables up to 96 bytes
// inline), one lock of the key's shard (one of `shards`) with a hash lookup; a future adds a
// shared state (make_shared), task_options a little more. Per activation of an idle key: a
// map node. Per turn of a drain: one pool task and one lock of the shard.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "weft/detail/deadline.hpp"
#include "weft/detail/keyed_core.hpp"
#include "weft/detail/submission.hpp"
#include "weft/detail/sync.hpp"
#include "weft/detail/task.hpp"
#include "weft/errors.hpp"
#include "weft/future.hpp"
#include "weft/keyed_options.hpp"
#include "weft/pool.hpp"
#include "weft/task_options.hpp"

namespace weft {

// What keyed::submit_until returns: a status, and the future when it was accepted.
template <class R>
struct keyed_attempt {
  keyed_status status;
  future<R> result;  // valid() only when status == keyed_status::ok
  explicit operator bool() const noexcept { return status == keyed_status::ok; }
};

template <class Key, class Hash = std::hash<Key>, class Eq = std::equal_to<Key>>
class keyed {
 public:
  using key_type = Key;

  // Throws std::invalid_argument naming the option for invalid options. If the pool's stop
  // token has already fired, the serializer starts stopped.
  explicit keyed(pool& p, keyed_options options = {}, Hash hash = Hash(), Eq eq = Eq())
      : impl_(p, options, std::move(hash), std::move(eq)) {}
  // stop(), then waits for every running job to return (see the top).
  ~keyed() = default;
  keyed(const keyed&) = delete;
  keyed& operator=(const keyed&) = delete;

  // ---- submitting (see the table at the top) ----
  template <class F>
  void post(const Key& key, F&& f) {
    throw_if_refused(push(key, make_job(post_body<std::decay_t<F>>{&impl_, std::forward<F>(f)}), true));
  }

  template <class F>
  void post(const Key& key, F&& f, const task_options& options) {
    using R = detail::task_result_t<F>;
    throw_if_refused(push(key, guarded<R>(std::forward<F>(f), detail::keyed_to_handler<R>{&impl_}, options), true));
  }

  template <class F>
  keyed_status try_post(const Key& key, F&& f) {
    return push(key, make_job(post_body<std::decay_t<F>>{&impl_, std::forward<F>(f)}), true, on_full::refuse);
  }

  // As try_post, waiting for room in the key until `deadline` or `stop` (a deadline already
  // past is one attempt). ok, closed, or full.
  template <class F>
  keyed_status post_until(const Key& key, F&& f, std::chrono::steady_clock::time_point deadline,
                          const std::stop_token& stop = {}) {
    return push(key, make_job(post_body<std::decay_t<F>>{&impl_, std::forward<F>(f)}), true, on_full::wait, deadline,
                stop);
  }
  template <class F, class Rep, class Period>
  keyed_status post_for(const Key& key, F&& f, std::chrono::duration<Rep, Period> timeout,
                        const std::stop_token& stop = {}) {
    return post_until(key, std::forward<F>(f), detail::saturating_deadline(std::chrono::steady_clock::now(), timeout),
                      stop);
  }
  // As submit, with a status instead of an exception, waiting for room as post_until.
  template <class F>
  auto submit_until(const Key& key, F&& f, std::chrono::steady_clock::time_point deadline,
                    const std::stop_token& stop = {}) -> keyed_attempt<detail::task_result_t<F>> {
    using R = detail::task_result_t<F>;
    auto state = std::make_shared<detail::future_state<R>>();
    const keyed_status st = push(key, make_job(future_body<R, std::decay_t<F>>{&impl_, state, std::forward<F>(f)}),
                                 true, on_full::wait, deadline, stop);
    if (st != keyed_status::ok) return {st, future<R>()};
    return {st, promise_access<R>::make(std::move(state))};
  }
  template <class F, class Rep, class Period>
  auto submit_for(const Key& key, F&& f, std::chrono::duration<Rep, Period> timeout, const std::stop_token& stop = {})
      -> keyed_attempt<detail::task_result_t<F>> {
    return submit_until(key, std::forward<F>(f),
                        detail::saturating_deadline(std::chrono::steady_clock::now(), timeout), stop);
  }

  template <class F>
  auto submit(const Key& key, F&& f) -> future<detail::task_result_t<F>> {
    using R = detail::task_result_t<F>;
    auto state = std::make_shared<detail::future_state<R>>();
    throw_if_refused(push(key, make_job(future_body<R, std::decay_t<F>>{&impl_, state, std::forward<F>(f)}), true));
    return promise_access<R>::make(std::move(state));
  }

  template <class F>
  auto submit(const Key& key, F&& f, const task_options& options) -> future<detail::task_result_t<F>> {
    using R = detail::task_result_t<F>;
    auto state = std::make_shared<detail::future_state<R>>();
    throw_if_refused(push(key, guarded<R>(std::forward<F>(f), detail::to_future<R>{state}, options), true));
    return promise_access<R>::make(std::move(state));
  }

  // ---- waiting ----
  // Returns once every job submitted for `key` before the call has ended (ran or was
  // cancelled). Queues a marker behind them (not counted, never refused for capacity); on a
  // stopped serializer it waits for the key to become idle instead.
  void flush(const Key& key) {
    check_not_inside(key, "flush");
    auto state = std::make_shared<detail::future_state<void>>();
    detail::task* t = make_job(future_body<void, noop>{&impl_, state, noop{}});
    t->stamp = detail::keyed_marker_stamp;
    if (push(key, t, false) == keyed_status::ok) {
      promise_access<void>::make(std::move(state)).wait();
    } else {
      wait_idle(key);
    }
  }
  // Until `key` has nothing queued or running (under a steady stream that may be never).
  void wait_idle(const Key& key) { (void)wait_idle_until(key, std::chrono::steady_clock::time_point::max()); }
  bool wait_idle_until(const Key& key, std::chrono::steady_clock::time_point deadline) {
    check_not_inside(key, "wait_idle");
    const key_probe probe{&impl_, &key};
    return impl_.wait_until(&key_probe::idle, &probe, deadline);
  }
  // Until no key has anything queued or running.
  void wait_idle() { (void)wait_idle_until(std::chrono::steady_clock::time_point::max()); }
  bool wait_idle_until(std::chrono::steady_clock::time_point deadline) {
    if (impl_.in_job_of(nullptr)) {
      throw std::logic_error("weft::keyed::wait_idle() called from one of the serializer's own jobs: it would wait "
                             "for itself");
    }
    return impl_.wait_all_until(deadline);
  }
  // Limits saturate (weft/detail/deadline.hpp), as for future::wait_for.
  template <class Rep, class Period>
  bool wait_idle_for(std::chrono::duration<Rep, Period> d) {
    return wait_idle_until(detail::saturating_deadline(std::chrono::steady_clock::now(), d));
  }

  // ---- lifecycle ----
  // Refuses new jobs, fires the jobs' token, cancels every queued job. Does not wait.
  // Idempotent, thread-safe, callable from a job.
  void stop() noexcept { impl_.stop(); }
  bool stopped() const noexcept { return impl_.stopped(); }
  std::stop_token get_stop_token() const noexcept { return impl_.token(); }

  // ---- introspection ----
  std::size_t active_keys() const noexcept { return impl_.active(); }
  keyed_stats stats() const noexcept { return impl_.stats(); }
  const keyed_options& options() const noexcept { return impl_.options(); }
  pool& get_pool() const noexcept { return impl_.owner(); }

 private:
  template <class F>
  using post_body = detail::keyed_post_job<F>;
  template <class R, class F>
  using future_body = detail::keyed_future_job<R, F>;
  struct noop {
    void operator()() const noexcept {}
  };

  // The key map: one hash map and one mutex per shard; each entry is the queue of an active key.
  class impl final : public detail::keyed_core {
   public:
    impl(pool& p, const keyed_options& o, Hash hash, Eq eq)
        : keyed_core(p, o), hash_(std::move(hash)), shards_(std::make_unique<shard[]>(options().shards)) {
      for (std::size_t i = 0; i < options().shards; ++i) {
        shards_[i].map = map_type(0, hash_, eq);
      }
      arm();
    }
    ~impl() override { shutdown(); }

    // One attempt. full: t is left untouched (the caller applies the policy); closed: t
    // was rejected. `may_discard`: a full key under discard_oldest drops its oldest job.
    keyed_status offer(const Key& key, detail::task* t, bool bounded, bool may_discard) {
      const std::size_t s = shard_of(hash_(key));
      shard& sh = shards_[s];
      const bool counted = t->stamp != detail::keyed_marker_stamp;
      detail::keyed_entry* fresh = nullptr;
      detail::task* victim = nullptr;
      keyed_status refused = keyed_status::ok;
      try {
        std::lock_guard lock(sh.mu);
        if (stopped_locked()) {
          refused = keyed_status::closed;
        } else {
          auto [it, inserted] = sh.map.try_emplace(key);
          detail::keyed_entry& e = it->second;
          if (inserted) {
            e.key = &it->first;
            e.shard = s;
            fresh = &e;
          }
          if (bounded && counted && !admit_locked(e, may_discard, victim)) {
            refused = keyed_status::full;  // an entry with a full queue is never a new one
          } else {
            queue_of(e, inserted).push(t);  // a new entry's first job: K1 (K7)
            accepted_locked(inserted, counted);
          }
        }
      } catch (...) {  // std::bad_alloc from the map: nothing was queued
        reject(t, keyed_status::closed);
        throw;
      }
      // Refused callables are destroyed outside the lock: their destructors may submit.
      if (victim != nullptr) discarded(victim);
      if (refused == keyed_status::full) return refused;
      if (refused != keyed_status::ok) return reject(t, refused);
      return fresh != nullptr ? schedule(*fresh, t) : keyed_status::ok;
    }

    // K7: room for one more job in `key` (or the serializer stopped).
    bool room_for(const Key& key) noexcept {
      if (stopped_for_wait()) return true;
      shard& sh = shards_[shard_of(hash_(key))];
      std::lock_guard lock(sh.mu);
      auto it = sh.map.find(key);
      return it == sh.map.end() || room_locked(it->second);
    }

    bool idle(const Key& key) noexcept {
      shard& sh = shards_[shard_of(hash_(key))];
      std::lock_guard lock(sh.mu);
      return sh.map.find(key) == sh.map.end();
    }
    const detail::keyed_entry* find(const Key& key) noexcept {
      shard& sh = shards_[shard_of(hash_(key))];
      std::lock_guard lock(sh.mu);
      auto it = sh.map.find(key);
      return it == sh.map.end() ? nullptr : &it->second;
    }

   private:
    // The entry lives in the map node: its address is stable until it is erased.
    using map_type = std::unordered_map<Key, detail::keyed_entry, Hash, Eq>;
    struct alignas(detail::destructive_interference) shard {
      std::mutex mu;
      map_type map;
    };

    std::mutex& shard_mutex(std::size_t s) noexcept override { return shards_[s].mu; }
    void erase_locked(detail::keyed_entry& e) noexcept override {
      map_type& m = shards_[e.shard].map;
      m.erase(m.find(*static_cast<const Key*>(e.key)));
    }
    void take_all_locked(std::size_t s, detail::job_list& out) noexcept override {
      for (auto& [k, e] : shards_[s].map) take_shared_locked(e, out);
    }

    Hash hash_;
    std::unique_ptr<shard[]> shards_;
  };

  struct room_probe {
    impl* self;
    const Key* key;
    const std::stop_token* stop;
    static bool ready(const void* ctx) noexcept {
      auto* p = static_cast<const room_probe*>(ctx);
      return p->stop->stop_requested() || p->self->room_for(*p->key);
    }
  };

  struct key_probe {
    impl* self;
    const Key* key;
    static bool idle(const void* ctx) noexcept {
      auto* p = static_cast<const key_probe*>(ctx);
      return p->self->idle(*p->key);
    }
  };

  template <class Body>
  static detail::task* make_job(Body&& body) {
    return detail::make_task(std::forward<Body>(body));
  }

  template <class R, class F, class Done>
  detail::task* guarded(F&& f, Done&& done, const task_options& options) {
    using steady = std::chrono::steady_clock;
    auto deadline = options.deadline;
    if (options.timeout != steady::duration::zero()) {  // zero: none; negative: already expired
      deadline = std::min(deadline, detail::saturating_deadline(steady::now(), options.timeout));
    }
    return make_job(detail::keyed_guarded_job<R, std::decay_t<F>, std::decay_t<Done>>{
        &impl_, std::forward<F>(f), std::forward<Done>(done), options.stop_token, deadline});
  }

  // What push does with a full key (see the top, "A full key").
  enum class on_full {
    refuse,  // full (try_post)
    policy,  // keyed_options::when_full (post/submit)
    wait,    // wait for room until the deadline or the stop token (post_until), then full
  };
  // Consumes t: queued (ok), or destroyed and counted as rejected (full, closed). Throws
  // std::bad_alloc, and queue_full for a job that would block on its own full key.
  keyed_status push(const Key& key, detail::task* t, bool bounded, on_full mode = on_full::policy,
                    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max(),
                    const std::stop_token& stop = {}) {
    const bool blocks = mode == on_full::wait || (mode == on_full::policy && options().when_full == full_policy::block);
    for (;;) {
      const keyed_status st = impl_.offer(key, t, bounded, mode == on_full::policy);
      if (st != keyed_status::full) return st;
      if (!blocks || stop.stop_requested()) return impl_.reject(t, st);
      if (const detail::keyed_entry* e = impl_.find(key); e != nullptr && impl_.in_job_of(e)) {
        impl_.reject(t, st);  // K7: it would wait for itself
        if (mode == on_full::wait) return st;
        throw queue_full("weft: the key's queue is at capacity (keyed_options::capacity) and the caller is one of "
                         "that key's own jobs: full_policy::block would wait for itself");
      }
      const room_probe probe{&impl_, &key, &stop};
      if (!impl_.wait_for_room(&room_probe::ready, &probe, deadline, stop)) return impl_.reject(t, st);
    }
  }

  static void throw_if_refused(keyed_status s) {
    if (s == keyed_status::full) throw queue_full("weft: the key's queue is at capacity (keyed_options::capacity)");
    if (s == keyed_status::closed) throw pool_closed("weft: the keyed serializer is stopped or its pool closed");
  }

  void check_not_inside(const Key& key, const char* call) {
    const detail::keyed_entry* e = impl_.find(key);
    if (e != nullptr && impl_.in_job_of(e)) {
      throw std::logic_error(std::string("weft::keyed::") + call +
                             " called from a job of the same key: it would wait for itself");
    }
  }

  impl impl_;
};

}  // namespace weft
