// weft/isolated.hpp: waits that run only the work of the code that waits.
//
//   std::lock_guard lock(table_mutex);
//   weft::isolated([&] {
//     weft::task_group g(pool);
//     for (auto& part : parts) g.run([&] { fill(part); });
//     g.wait();  // runs only tasks spawned inside this call: never an unrelated task
//   });          // that might try to take table_mutex
//
// isolated(f) calls f() on the calling thread and returns what it returns (or rethrows what
// it throws). While f runs, every wait on that thread (task_group::wait, future::get/wait,
// batches, parallel loops) runs only tasks that were spawned inside f, directly or by such
// tasks on this thread; when none is left it sleeps until the awaited object completes.
// Without isolated, a worker's waits help with any task of its pool (task_group.hpp).
//
// | called on                | effect                                                     |
// |--------------------------|------------------------------------------------------------|
// | a worker of any pool     | as above, for that worker's waits                          |
// | any other thread         | none needed: such threads never run tasks while they wait  |
// | inside another isolated  | the inner region is stricter: only tasks spawned inside it |
//
// A task of the region that another worker steals is isolated there too while it runs: its
// waits run only tasks of the region.
// What isolation costs: an isolated wait takes no external work and steals only its own
// region's tasks, so while it waits its worker does not help the rest of the pool; with
// nothing of its region to run it rescans in naps of up to 1 ms. The protocol and why it
// cannot deadlock or livelock are at the top of runtime/core/isolation.cpp; nothing is ever moved
// from one queue to another.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace weft {

namespace detail {
// Sets the calling worker's isolation floor for its lifetime (runtime/core/isolation.cpp).
class isolation_scope {
 public:
  isolation_scope() noexcept;
  ~isolation_scope();
  isolation_scope(const isolation_scope&) = delete;
  isolation_scope& operator=(const isolation_scope&) = delete;

 private:
  void* worker_ = nullptr;
  std::uintptr_t previous_tag_ = 0;
  std::int64_t previous_floor_ = -1;
};
}  // namespace detail

template <class F>
decltype(auto) isolated(F&& f) {
  detail::isolation_scope scope;
  return std::invoke(std::forward<F>(f));
}

}  // namespace weft
