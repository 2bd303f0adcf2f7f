// The C API's boundary, from C++: exceptions thrown by callbacks compiled as C++ never cross
// weft.h (they become WEFT_TASK_FAILED with their message), and weft_task_fail marks only
// the callback it is called from (nested callbacks each have their own frame). The rest of
// the C API is tested from C, in tests/c/c_api_test.c.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "weft/weft.h"

namespace {

struct pool_handle {
  weft_pool* p = nullptr;
  explicit pool_handle(int workers) {
    weft_pool_config cfg;
    weft_pool_config_init(&cfg);
    cfg.workers = workers;
    cfg.pinning = WEFT_PIN_NONE;
    EXPECT_EQ(weft_pool_create(&cfg, &p), WEFT_OK);
  }
  ~pool_handle() { EXPECT_EQ(weft_pool_destroy(p), WEFT_OK); }
};

bool last_error_has(const char* text) { return std::string(weft_last_error()).find(text) != std::string::npos; }

TEST(CApiExceptions, ThrowingChunkIsTaskFailed) {
  pool_handle pool(2);
  const auto throw_runtime = [](int64_t lo, int64_t hi, void*) {
    if (lo <= 500 && 500 < hi) throw std::runtime_error("chunk 500 threw");
  };
  EXPECT_EQ(weft_parallel_for(pool.p, 0, 1000, 10, throw_runtime, nullptr), WEFT_TASK_FAILED);
  EXPECT_TRUE(last_error_has("chunk 500 threw")) << weft_last_error();

  const auto throw_int = [](int64_t, int64_t, void*) { throw 42; };
  EXPECT_EQ(weft_parallel_for(pool.p, 0, 1000, 10, throw_int, nullptr), WEFT_TASK_FAILED);
  EXPECT_TRUE(last_error_has("not derived from std::exception")) << weft_last_error();

  // bad_alloc from the user's code is the task's failure, not the runtime's WEFT_NO_MEMORY.
  const auto throw_oom = [](int64_t, int64_t, void*) { throw std::bad_alloc(); };
  EXPECT_EQ(weft_parallel_for(pool.p, 0, 1000, 10, throw_oom, nullptr), WEFT_TASK_FAILED);
}

TEST(CApiExceptions, ThrowingGroupChildAndReduceCallbacks) {
  pool_handle pool(2);
  weft_group* g = nullptr;
  ASSERT_EQ(weft_group_create(pool.p, &g), WEFT_OK);
  std::atomic<int> freed{0};
  const auto thrower = [](void*) { throw std::logic_error("child threw"); };
  const auto count = [](void* ctx) { static_cast<std::atomic<int>*>(ctx)->fetch_add(1); };
  ASSERT_EQ(weft_group_run(g, thrower, &freed, count), WEFT_OK);
  EXPECT_EQ(weft_group_wait(g), WEFT_TASK_FAILED);
  EXPECT_TRUE(last_error_has("child threw")) << weft_last_error();
  EXPECT_EQ(freed.load(), 1);
  EXPECT_EQ(weft_group_destroy(g), WEFT_OK);

  const std::int64_t zero = 0;
  std::int64_t out = 0;
  const auto map = [](int64_t lo, int64_t hi, void* acc, void*) { *static_cast<std::int64_t*>(acc) += hi - lo; };
  const auto bad_combine = [](void*, const void*, void*) { throw std::runtime_error("combine threw"); };
  EXPECT_EQ(weft_parallel_reduce(pool.p, 0, 1000, 10, sizeof zero, &zero, map, bad_combine, nullptr, &out),
            WEFT_TASK_FAILED);
  EXPECT_TRUE(last_error_has("combine threw")) << weft_last_error();
}

// A task whose nested loop fails sees the loop's WEFT_TASK_FAILED, and is not failed itself:
// the failure belongs to the chunk's frame, not to the task's.
TEST(CApiExceptions, FailureFramesNest) {
  pool_handle pool(1);
  struct state {
    weft_pool* p;
    weft_status inner = WEFT_OK;
  } s{pool.p};
  weft_group* g = nullptr;
  ASSERT_EQ(weft_group_create(pool.p, &g), WEFT_OK);
  const auto outer = [](void* ctx) {
    auto* st = static_cast<state*>(ctx);
    const auto chunk = [](int64_t lo, int64_t, void*) {
      if (lo == 0) weft_task_fail("inner chunk");
    };
    st->inner = weft_parallel_for(st->p, 0, 100, 10, chunk, nullptr);
  };
  ASSERT_EQ(weft_group_run(g, outer, &s, nullptr), WEFT_OK);
  EXPECT_EQ(weft_group_wait(g), WEFT_OK);
  EXPECT_EQ(s.inner, WEFT_TASK_FAILED);
  EXPECT_EQ(weft_group_destroy(g), WEFT_OK);
}

}  // namespace
