// runtime/layers/observe.cpp: pool_options' observation fields (weft/observer.hpp) as
// scheduler hooks (runtime/core/scheduler.hpp). A layer: it uses the hook points only.
//
// Per worker it keeps a small stack of start times (helping nests tasks on one worker), so
// that the observer gets run times; beyond kMaxDepth levels of nesting the run time is
// reported as 0 rather than allocating on the task path. Each per-worker record is written
// only by its worker (the hooks run on it), so nothing here is shared between threads
// except the tracer's external ring (a mutex) and the user's callables (theirs to make
// thread-safe, as documented).
#include <algorithm>
#include <array>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "layers/trace.hpp"
#include "core/pool_impl.hpp"
#include "core/worker.hpp"

namespace weft::detail {
namespace {

constexpr std::size_t kMaxDepth = 64;

struct per_worker {
  std::array<std::uint64_t, kMaxDepth> start{};
  std::array<std::uint64_t, kMaxDepth> stamp{};
  unsigned depth = 0;
};

struct observation final : scheduler_hooks {
  std::function<void(unsigned, int)> on_thread_start;
  std::function<void(unsigned)> on_thread_stop;
  task_wrapper wrap;
  std::shared_ptr<weft::observer> watcher;
  std::optional<tracer> trace;
  std::function<void(std::string_view)> logger;
  std::vector<per_worker> workers;

  void log(const std::string& line) const noexcept {
    try {
      if (logger) {
        logger(line);
        return;
      }
    } catch (...) {
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  void hook_threw(const char* which) const noexcept {
    std::string what = "unknown exception";
    try {
      throw;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log(std::string("weft: pool_options::") + which + " threw (" + what + "); ignored");
  }
};

observation& self(void* ctx) noexcept { return *static_cast<observation*>(ctx); }

void thread_start(void* ctx, unsigned w, int pu) {
  observation& o = self(ctx);
  if (o.trace) o.trace->set_pu(w, pu);
  if (o.on_thread_start) {
    try {
      o.on_thread_start(w, pu);
    } catch (...) {
      o.hook_threw("on_thread_start");
    }
  }
}

void thread_stop(void* ctx, unsigned w) {
  observation& o = self(ctx);
  if (o.on_thread_stop) {
    try {
      o.on_thread_stop(w);
    } catch (...) {
      o.hook_threw("on_thread_stop");
    }
  }
}

void submitted(void* ctx, int w, const task* t) {
  observation& o = self(ctx);
  if (o.trace) {
    if (w >= 0) o.trace->add(static_cast<unsigned>(w), tracer::kind::submit, t);
    else o.trace->add_external(t);
  }
  if (o.watcher) o.watcher->on_submit(w);
}

void task_start(void* ctx, unsigned w, const task* t) {
  observation& o = self(ctx);
  per_worker& p = o.workers[w];
  const std::uint64_t now = now_ns();
  if (p.depth < kMaxDepth) {
    p.start[p.depth] = now;
    p.stamp[p.depth] = t->stamp;
  }
  ++p.depth;
  if (o.trace) {
    const std::uint64_t wait = (t->stamp != 0 && now > t->stamp) ? (now - t->stamp) / 1000 : 0;
    o.trace->add(w, tracer::kind::begin, t, static_cast<std::uint32_t>(std::min<std::uint64_t>(wait, UINT32_MAX)));
  }
  if (o.watcher) o.watcher->on_start(w);
}

void task_finish(void* ctx, unsigned w, const task*, task_result r) {
  observation& o = self(ctx);
  per_worker& p = o.workers[w];
  const std::uint64_t now = now_ns();
  --p.depth;
  if (o.trace) o.trace->add(w, tracer::kind::end, nullptr);
  if (o.watcher) {
    task_event e;
    e.worker = w;
    if (p.depth < kMaxDepth) {
      const std::uint64_t start = p.start[p.depth], stamp = p.stamp[p.depth];
      e.run_ns = now - start;
      e.wait_ns = (stamp != 0 && start > stamp) ? start - stamp : 0;
    }
    e.result = r == task_result::ok       ? task_event::outcome::ok
               : r == task_result::failed ? task_event::outcome::failed
                                          : task_event::outcome::cancelled;
    o.watcher->on_finish(e);
  }
}

struct wrapped_call {
  pool_impl* pool;
  task* t;
  task_result result = task_result::ok;
  bool done = false;
};

void run_wrapped(void* arg) {
  auto& c = *static_cast<wrapped_call*>(arg);
  c.result = run_task(*c.pool, c.t);  // the task's own exception goes to its future/handler here
  c.done = true;
}

task_result run(void* ctx, unsigned w, pool_impl& pool, task* t) {
  observation& o = self(ctx);
  wrapped_call c{&pool, t};
  task_invocation inv(&run_wrapped, &c, w);
  try {
    o.wrap(inv);
  } catch (...) {
    pool.report_exception(std::current_exception());  // the wrapper's, never the task's
  }
  if (!c.done) run_wrapped(&c);  // a wrapper that did not call it does not lose the task
  return c.result;
}

void park(void* ctx, unsigned w) { self(ctx).trace->add(w, tracer::kind::park, nullptr); }
void unpark(void* ctx, unsigned w) { self(ctx).trace->add(w, tracer::kind::unpark, nullptr); }
void search(void* ctx, unsigned w, bool on) {
  self(ctx).trace->add(w, on ? tracer::kind::search_on : tracer::kind::search_off, nullptr);
}

void closed(void* ctx) {
  observation& o = self(ctx);
  if (!o.trace) return;
  std::string error;
  if (!o.trace->write(&error)) o.log(error);
}

}  // namespace

std::shared_ptr<const scheduler_hooks> make_observation_hooks(const pool_options& options) {
  const bool tracing = !options.trace_path.empty();
  if (!options.on_thread_start && !options.on_thread_stop && !options.wrap_tasks && !options.task_observer &&
      !tracing) {
    return nullptr;
  }
  auto o = std::make_shared<observation>();
  const unsigned n = static_cast<unsigned>(options.workers);
  o->ctx = o.get();
  o->on_thread_start = options.on_thread_start;
  o->on_thread_stop = options.on_thread_stop;
  o->wrap = options.wrap_tasks;
  o->watcher = options.task_observer;
  o->logger = options.logger;
  o->workers.resize(n);
  if (tracing) o->trace.emplace(options.trace_path, n);
  o->thread_start = &thread_start;
  o->thread_stop = &thread_stop;
  if (tracing || o->watcher) {
    o->submitted = &submitted;
    o->task_start = &task_start;
    o->task_finish = &task_finish;
    o->stamp_all = true;
  }
  if (o->wrap) o->run = &run;
  if (tracing) {
    o->park = &park;
    o->unpark = &unpark;
    o->search = &search;
    o->closed = &closed;
  }
  return o;
}

}  // namespace weft::detail
