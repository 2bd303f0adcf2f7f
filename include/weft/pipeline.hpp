// weft/pipeline.hpp: a chain of stages over a stream of items, with a limit on the items
// in flight (oneTBB's parallel_pipeline, with weft's types).
//
//   std::ifstream in("log.txt");
//   auto status = weft::make_pipeline([&]() -> std::optional<std::string> {   // source: serial
//                   std::string line;
//                   if (std::getline(in, line)) return line;
//                   return std::nullopt;                                      // end of input
//                 })
//                 .then(weft::stage_mode::parallel, [](std::string line) { return parse(line); })
//                 .then(weft::stage_mode::serial_in_order, [&](record r) { out << r; })
//                 .run(pool, {.max_tokens = 16});
//
// Stages. The source is called as f() or f(std::stop_token), one call at a time, and returns
// std::optional<T> (nullopt: no more items). Each next stage is called as f(T&&) or
// f(T&&, std::stop_token) and returns the next stage's input (the last stage returns void).
//   parallel          calls for different items run concurrently (f must allow that)
//   serial_any_order  one call at a time, items in whatever order they arrive
//   serial_in_order   one call at a time, items in the order the source produced them
// Tokens. At most max_tokens items (0: 2 * pool.size()) are alive at once, between the
// source producing them and the last stage returning: the source is not called while all
// tokens are out. So a slow stage holds everything upstream of it (bounded memory), and the
// buffers in front of serial stages hold at most max_tokens - 1 items.
// Errors. The first exception a stage throws (first in time) cancels the pipeline: the
// source is not called again, items waiting in front of serial stages are dropped
// (destroyed unprocessed), items between stages are dropped before their next stage, and
// running calls see their stop_token fire. run() rethrows it once every call has returned.
// Cancelling (the options' stop_token): the same, and run() returns pipeline_status::cancelled.
// Threads. Every stage call runs as a task of the pool; nothing blocks a worker (an item
// that cannot enter a serial stage waits in that stage's buffer, not on a thread). run()
// waits like future::get: on a worker it runs other tasks meanwhile, elsewhere it sleeps.
// Costs. One pool task per item per serial stage it had to wait for, plus one per source
// call; items move between stages in one heap box per stage (type erasure), and the
// stage calls are virtual. Worth it when a stage costs microseconds or more, as with TBB.
// Throws (from run()): std::invalid_argument naming max_tokens when 0 resolves to 0 (a pool
// of no workers cannot exist, so never), pool_closed from outside a closed pool, and the
// first stage exception.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>
#include <vector>

#include "weft/pool.hpp"

namespace weft {

enum class stage_mode { serial_in_order, serial_any_order, parallel };

struct pipeline_options {
  std::size_t max_tokens = 0;  // items alive at once; 0: 2 * pool.size()
  std::stop_token stop_token{};
};

enum class pipeline_status { completed, cancelled };

namespace detail {

// An item between two stages (type-erased; null: none).
using pipeline_box = std::unique_ptr<void, void (*)(void*)>;

template <class T, class... A>
pipeline_box make_box(A&&... a) {
  return pipeline_box(new T(std::forward<A>(a)...), [](void* p) { delete static_cast<T*>(p); });
}
inline pipeline_box empty_box() noexcept {
  return pipeline_box(nullptr, [](void*) {});
}

struct pipeline_stage {
  virtual ~pipeline_stage() = default;
  // Source: `in` is empty; an empty result ends the input. Other stages: `in` holds the item.
  virtual pipeline_box call(pipeline_box in, const std::stop_token& token) = 0;
};

struct stage_spec {
  stage_mode mode;
  std::unique_ptr<pipeline_stage> fn;
};

// The engine (runtime/layers/pipeline.cpp): runs the stages, stage 0 the source.
pipeline_status run_pipeline(pool& p, std::vector<stage_spec> stages, std::size_t max_tokens,
                             const std::stop_token& token);

template <class F, class... A>
decltype(auto) call_stage(F& f, const std::stop_token& token, A&&... a) {
  if constexpr (std::is_invocable_v<F&, A&&..., std::stop_token>) {
    return std::invoke(f, std::forward<A>(a)..., token);
  } else {
    return std::invoke(f, std::forward<A>(a)...);
  }
}

template <class F, class... A>
auto stage_probe() {
  if constexpr (std::is_invocable_v<F&, A&&..., std::stop_token>) {
    return std::type_identity<std::invoke_result_t<F&, A&&..., std::stop_token>>{};
  } else if constexpr (std::is_invocable_v<F&, A&&...>) {
    return std::type_identity<std::invoke_result_t<F&, A&&...>>{};
  } else {
    return std::type_identity<void*>{};  // reported by the static_asserts below
  }
}
template <class F, class... A>
using stage_result_t = typename decltype(stage_probe<F, A...>())::type;

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class Out, class F>
struct source_stage final : pipeline_stage {
  explicit source_stage(F f) : fn(std::move(f)) {}
  pipeline_box call(pipeline_box, const std::stop_token& token) override {
    std::optional<Out> item = call_stage(fn, token);
    return item ? make_box<Out>(std::move(*item)) : empty_box();
  }
  F fn;
};

template <class In, class Out, class F>
struct middle_stage final : pipeline_stage {
  explicit middle_stage(F f) : fn(std::move(f)) {}
  pipeline_box call(pipeline_box in, const std::stop_token& token) override {
    In& item = *static_cast<In*>(in.get());
    if constexpr (std::is_void_v<Out>) {
      call_stage(fn, token, std::move(item));
      return empty_box();
    } else {
      return make_box<Out>(call_stage(fn, token, std::move(item)));
    }
  }
  F fn;
};

}  // namespace detail

// A pipeline under construction whose last stage yields T (void: complete, ready to run).
template <class T>
class pipeline {
 public:
  // Adds a stage f(T&&) or f(T&&, std::stop_token) -> R (R = void: the last stage).
  template <class F>
  auto then(stage_mode mode, F f) && -> pipeline<detail::stage_result_t<F, T>> {
    static_assert(!std::is_void_v<T>, "weft::pipeline: the last stage returned void; nothing can follow it");
    using R = detail::stage_result_t<F, T>;
    static_assert(std::is_invocable_v<F&, T&&> || std::is_invocable_v<F&, T&&, std::stop_token>,
                  "weft::pipeline: a stage must be callable as f(T&&) or f(T&&, std::stop_token), T the "
                  "previous stage's result");
    static_assert(std::is_void_v<R> || (std::is_object_v<R> && std::is_move_constructible_v<R>),
                  "weft::pipeline: a stage returns void or a movable object type, not a reference");
    stages_.push_back({mode, std::make_unique<detail::middle_stage<T, R, F>>(std::move(f))});
    return pipeline<R>(std::move(stages_));
  }

  // Runs the pipeline on p and waits until it has finished (see the top of the file).
  pipeline_status run(pool& p, const pipeline_options& options = {}) && {
    static_assert(std::is_void_v<T>, "weft::pipeline: add a last stage that returns void before run()");
    return detail::run_pipeline(p, std::move(stages_), options.max_tokens, options.stop_token);
  }

 private:
  template <class>
  friend class pipeline;
  template <class F>
  friend auto make_pipeline(F source);
  explicit pipeline(std::vector<detail::stage_spec> stages) noexcept : stages_(std::move(stages)) {}

  std::vector<detail::stage_spec> stages_;
};

// Starts a pipeline with its source: f() or f(std::stop_token) -> std::optional<T>.
template <class F>
auto make_pipeline(F source) {
  using O = detail::stage_result_t<F>;
  static_assert(detail::is_optional<O>::value,
                "weft::make_pipeline: the source must be callable as f() or f(std::stop_token) and return "
                "std::optional<T> (std::nullopt ends the input)");
  using T = typename O::value_type;
  std::vector<detail::stage_spec> stages;
  stages.push_back({stage_mode::serial_in_order, std::make_unique<detail::source_stage<T, F>>(std::move(source))});
  return pipeline<T>(std::move(stages));
}

}  // namespace weft
