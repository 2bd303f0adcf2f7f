/* tests/c/c_api_test.c: the C API (weft/weft.h), from C99, compiled with -std=c99 -pedantic
 * -Wall -Wextra -Werror. Exits non-zero on the first wrong answer (with file:line and
 * weft_last_error()); an alarm turns a hang into a failure. Counters shared between threads
 * use the GCC/clang __atomic builtins (C99 has no <stdatomic.h>). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weft/weft.h>

#define CHECK(cond)                                                                                   \
  do {                                                                                                \
    if (!(cond)) {                                                                                    \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; weft_last_error: \"%s\"\n", __FILE__, __LINE__, #cond, \
              weft_last_error());                                                                     \
      exit(1);                                                                                        \
    }                                                                                                 \
  } while (0)
#define CHECK_STATUS(call, want) CHECK((call) == (want))

static long load(const long* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static void add(long* p, long v) { __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static void store(long* p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static void nap(void) {
  struct timespec ts = {0, 100000}; /* 0.1 ms */
  nanosleep(&ts, NULL);
}
static void wait_for(const long* p, long v) {
  while (load(p) != v) nap();
}

static weft_pool* make_pool(int workers) {
  weft_pool_config cfg;
  weft_pool* pool = NULL;
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.workers = workers;
  cfg.pinning = WEFT_PIN_NONE;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_OK);
  CHECK(pool != NULL);
  return pool;
}

/* ---- counting tasks and context destructors ---- */

typedef struct counters {
  long ran;
  long freed;
  long release; /* blockers spin until this is non-zero */
  long started;
} counters;

static void count_run(void* ctx) { add(&((counters*)ctx)->ran, 1); }
static void count_free(void* ctx) { add(&((counters*)ctx)->freed, 1); }
static void block_run(void* ctx) {
  counters* c = (counters*)ctx;
  add(&c->started, 1);
  wait_for(&c->release, 1);
  add(&c->ran, 1);
}
static void fail_run(void* ctx) {
  add(&((counters*)ctx)->ran, 1);
  CHECK_STATUS(weft_task_fail("boom from a C task"), WEFT_OK);
  CHECK_STATUS(weft_task_fail("second call is ignored"), WEFT_OK);
}

static void test_status_strings(void) {
  int s;
  CHECK(strcmp(weft_last_error(), "") == 0);
  for (s = WEFT_OK; s <= WEFT_SYSTEM_ERROR; ++s) {
    int t;
    CHECK(strcmp(weft_status_string((weft_status)s), "unknown status") != 0);
    for (t = WEFT_OK; t < s; ++t) CHECK(strcmp(weft_status_string((weft_status)s), weft_status_string((weft_status)t)) != 0);
  }
  CHECK(strcmp(weft_status_string(WEFT_SHUT_DOWN), "shut down") == 0);
  CHECK(strcmp(weft_status_string((weft_status)99), "unknown status") == 0);
  CHECK_STATUS(weft_task_fail("not in a task"), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "weft_task_fail") != NULL);
}

static void test_config_abi(void) {
  weft_pool_config cfg;
  weft_pool* pool = NULL;
  unsigned char big[sizeof(weft_pool_config) + 32];
  size_t workers_end = offsetof(weft_pool_config, workers) + sizeof cfg.workers;

  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  CHECK(cfg.size == sizeof cfg && cfg.workers == 0 && cfg.pinning == WEFT_PIN_COMPACT && cfg.spin_rounds == 64 &&
        cfg.deque_capacity == 256 && cfg.name == NULL && cfg.pus == NULL && cfg.read_environment == 0);
  CHECK_STATUS(weft_pool_config_init(NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_config_init_size(&cfg, 3), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_config_init_size(&cfg, sizeof(size_t) + 1), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_config_init_size(&cfg, 1u << 20), WEFT_INVALID_ARGUMENT);

  /* An older caller's struct that ends after `workers`: the library reads no further, so
   * the garbage in pinning (outside the caller's size) is never seen. */
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.size = workers_end;
  cfg.workers = 3;
  cfg.pinning = 12345;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_OK);
  CHECK(weft_pool_size(pool) == 3);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  /* init with the older size sets only that prefix. */
  memset(&cfg, 0xAB, sizeof cfg);
  CHECK_STATUS(weft_pool_config_init_size(&cfg, workers_end), WEFT_OK);
  CHECK(cfg.size == workers_end && cfg.workers == 0);
  CHECK(((const unsigned char*)&cfg)[offsetof(weft_pool_config, pinning)] == 0xAB);

  /* Garbage sizes. */
  {
    const size_t bad[] = {0, 1, 7, sizeof(size_t) + 1, sizeof cfg + 4096, (size_t)-1};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
      CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
      cfg.size = bad[i];
      pool = (weft_pool*)&cfg; /* must be reset to NULL on failure */
      CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_INVALID_ARGUMENT);
      CHECK(pool == NULL);
      CHECK(strstr(weft_last_error(), "size") != NULL);
    }
  }
  /* A newer caller's bigger struct: fine while the unknown tail is zero. */
  memset(big, 0, sizeof big);
  CHECK_STATUS(weft_pool_config_init_size((weft_pool_config*)(void*)big, sizeof big), WEFT_OK);
  ((weft_pool_config*)(void*)big)->workers = 2;
  CHECK_STATUS(weft_pool_create((weft_pool_config*)(void*)big, &pool), WEFT_OK);
  CHECK(weft_pool_size(pool) == 2);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  big[sizeof(weft_pool_config) + 5] = 1;
  CHECK_STATUS(weft_pool_create((weft_pool_config*)(void*)big, &pool), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "does not know") != NULL);

  /* Invalid fields: the message names the field. */
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.workers = -1;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "workers") != NULL);
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.deque_capacity = 3;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "deque_capacity") != NULL);
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.pinning = 7;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "pinning") != NULL);
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.pinning = WEFT_PIN_EXPLICIT;
  cfg.pu_count = 2;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "pus") != NULL);
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.spin_rounds = 2000000;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "spin_rounds") != NULL);

  /* Defaults (NULL config) and a name. */
  CHECK_STATUS(weft_pool_create(NULL, &pool), WEFT_OK);
  CHECK(weft_pool_size(pool) >= 1);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.workers = 1;
  cfg.name = "c-test";
  cfg.pinning = WEFT_PIN_SCATTER;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_OK);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
}

static void noop_range(int64_t b, int64_t e, void* ctx) { (void)b, (void)e, (void)ctx; }
static void noop_map(int64_t b, int64_t e, void* acc, void* ctx) { (void)b, (void)e, (void)acc, (void)ctx; }
static void noop_combine(void* l, const void* r, void* ctx) { (void)l, (void)r, (void)ctx; }

static void test_null_handles(void) {
  counters c = {0, 0, 0, 0};
  weft_group* g = (weft_group*)&c;
  weft_pool* pool = make_pool(1);
  long v = 0;
  CHECK_STATUS(weft_pool_create(NULL, NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_close(NULL), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "weft_pool_close") != NULL);
  CHECK_STATUS(weft_pool_close_timeout(NULL, 0), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_destroy(NULL), WEFT_INVALID_ARGUMENT);
  CHECK(weft_pool_size(NULL) == 0);
  CHECK(strstr(weft_last_error(), "weft_pool_size") != NULL);
  /* Rejected submissions still release their context, exactly once. */
  CHECK_STATUS(weft_pool_post(NULL, count_run, &c, count_free), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_try_post(NULL, count_run, &c, count_free), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_post(pool, NULL, &c, count_free), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_try_post(pool, NULL, &c, count_free), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_group_run(NULL, count_run, &c, count_free), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_post(NULL, count_run, &c, NULL), WEFT_INVALID_ARGUMENT); /* no dtor: fine */
  CHECK(c.freed == 5 && c.ran == 0);
  CHECK_STATUS(weft_group_create(NULL, &g), WEFT_INVALID_ARGUMENT);
  CHECK(g == NULL);
  CHECK_STATUS(weft_group_create(pool, NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_group_wait(NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_group_wait_timeout(NULL, 1000), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_group_cancel(NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_group_destroy(NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_group_create(pool, &g), WEFT_OK);
  CHECK_STATUS(weft_group_run(g, NULL, &c, count_free), WEFT_INVALID_ARGUMENT);
  CHECK(c.freed == 6);
  CHECK_STATUS(weft_group_wait(g), WEFT_OK); /* the rejected child left no count behind */
  CHECK_STATUS(weft_group_destroy(g), WEFT_OK);
  CHECK_STATUS(weft_parallel_for(NULL, 0, 10, 0, noop_range, NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_for(pool, 0, 10, 0, NULL, NULL), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_reduce(NULL, 0, 10, 0, sizeof v, &v, noop_map, noop_combine, NULL, &v),
               WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 10, 0, sizeof v, NULL, noop_map, noop_combine, NULL, &v),
               WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 10, 0, sizeof v, &v, noop_map, noop_combine, NULL, NULL),
               WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 10, 0, sizeof v, &v, NULL, noop_combine, NULL, &v),
               WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 10, 0, sizeof v, &v, noop_map, NULL, NULL, &v), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 10, 0, 0, &v, noop_map, noop_combine, NULL, &v), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "value_size") != NULL);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 10, 0, (size_t)-1, &v, noop_map, noop_combine, NULL, &v),
               WEFT_INVALID_ARGUMENT);
  /* WEFT_NO_MEMORY: a value of 2^62 bytes cannot be allocated anywhere (the sanitizers' runs
   * set allocator_may_return_null=1 so that they report it as a failed allocation too). */
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 10, 0, (size_t)1 << 62, &v, noop_map, noop_combine, NULL, &v),
               WEFT_NO_MEMORY);
  CHECK(strstr(weft_last_error(), "out of memory") != NULL);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
}

static void test_post_and_close(void) {
  counters c = {0, 0, 0, 0};
  weft_pool* pool = make_pool(2);
  weft_group* g = NULL;
  const long n = 10000;
  long i;
  for (i = 0; i < n; ++i) {
    CHECK_STATUS((i % 2 ? weft_pool_post : weft_pool_try_post)(pool, count_run, &c, count_free), WEFT_OK);
  }
  CHECK_STATUS(weft_group_create(pool, &g), WEFT_OK);
  CHECK_STATUS(weft_pool_close(pool), WEFT_OK); /* drains */
  CHECK(load(&c.ran) == n && load(&c.freed) == n);
  CHECK_STATUS(weft_pool_close(pool), WEFT_OK); /* idempotent */
  CHECK(weft_pool_size(pool) == 2);
  /* After close: every submission is refused and its context released once. */
  CHECK_STATUS(weft_pool_post(pool, count_run, &c, count_free), WEFT_SHUT_DOWN);
  CHECK(strstr(weft_last_error(), "closed") != NULL);
  CHECK_STATUS(weft_pool_try_post(pool, count_run, &c, count_free), WEFT_SHUT_DOWN);
  CHECK_STATUS(weft_group_run(g, count_run, &c, count_free), WEFT_SHUT_DOWN);
  CHECK_STATUS(weft_parallel_for(pool, 0, 100, 0, noop_range, NULL), WEFT_SHUT_DOWN);
  CHECK_STATUS(weft_parallel_for(pool, 5, 5, 0, noop_range, NULL), WEFT_OK); /* nothing to run */
  CHECK(c.ran == n && c.freed == n + 3);
  CHECK_STATUS(weft_group_wait(g), WEFT_OK);
  CHECK_STATUS(weft_group_destroy(g), WEFT_OK);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
}

static void test_close_timeout_cancels_queued(void) {
  counters c = {0, 0, 0, 0};
  weft_pool* pool = make_pool(1);
  const long queued = 50;
  long i;
  CHECK_STATUS(weft_pool_post(pool, block_run, &c, count_free), WEFT_OK);
  wait_for(&c.started, 1);
  for (i = 0; i < queued; ++i) CHECK_STATUS(weft_pool_post(pool, count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_pool_close_timeout(pool, 10 * 1000 * 1000), WEFT_TIMED_OUT);
  CHECK(strstr(weft_last_error(), "limit") != NULL);
  store(&c.release, 1);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  CHECK(c.ran == 1 && c.freed == queued + 1); /* the queued ones were cancelled, not run */

  pool = make_pool(2);
  memset(&c, 0, sizeof c);
  for (i = 0; i < queued; ++i) CHECK_STATUS(weft_pool_post(pool, count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_pool_close_timeout(pool, INT64_MAX), WEFT_OK);
  CHECK(c.ran == queued && c.freed == queued);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
}

/* A bounded pool: try_post reports WEFT_QUEUE_FULL; post follows the policy; every context
 * is released exactly once whatever happened to its task. */
static void test_bounded_pool(void) {
  counters c = {0, 0, 0, 0};
  weft_pool_config cfg;
  weft_pool* pool = NULL;
  long i;
  CHECK_STATUS(weft_pool_config_init(&cfg), WEFT_OK);
  cfg.workers = 1;
  cfg.pinning = WEFT_PIN_NONE;
  cfg.capacity = 4;
  cfg.when_full = 99;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "when_full") != NULL);
  cfg.when_full = WEFT_FULL_REJECT;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_OK);
  CHECK_STATUS(weft_pool_post(pool, block_run, &c, count_free), WEFT_OK);
  wait_for(&c.started, 1);
  for (i = 0; i < 4; ++i) CHECK_STATUS(weft_pool_try_post(pool, count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_pool_try_post(pool, count_run, &c, count_free), WEFT_QUEUE_FULL);
  CHECK_STATUS(weft_pool_post(pool, count_run, &c, count_free), WEFT_QUEUE_FULL);
  CHECK(strstr(weft_last_error(), "capacity") != NULL);
  CHECK(load(&c.freed) == 2);
  store(&c.release, 1);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  CHECK(c.ran == 5 && c.freed == 7);

  memset(&c, 0, sizeof c);
  cfg.when_full = WEFT_FULL_CALLER_RUNS;
  CHECK_STATUS(weft_pool_create(&cfg, &pool), WEFT_OK);
  CHECK_STATUS(weft_pool_post(pool, block_run, &c, count_free), WEFT_OK);
  wait_for(&c.started, 1);
  for (i = 0; i < 4; ++i) CHECK_STATUS(weft_pool_post(pool, count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_pool_post(pool, count_run, &c, count_free), WEFT_OK); /* runs here */
  CHECK(load(&c.ran) == 1);
  store(&c.release, 1);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  CHECK(c.ran == 6 && c.freed == 6);
}

static void test_group_cancel_releases_contexts(void) {
  counters c = {0, 0, 0, 0};
  weft_pool* pool = make_pool(1);
  weft_group* g = NULL;
  const long k = 100;
  long i;
  CHECK_STATUS(weft_group_create(pool, &g), WEFT_OK);
  CHECK_STATUS(weft_group_run(g, block_run, &c, count_free), WEFT_OK);
  wait_for(&c.started, 1); /* the only worker is busy: the next k stay queued */
  for (i = 0; i < k; ++i) CHECK_STATUS(weft_group_run(g, count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_group_cancel(g), WEFT_OK);
  store(&c.release, 1);
  CHECK_STATUS(weft_group_wait(g), WEFT_CANCELLED);
  CHECK(strstr(weft_last_error(), "cancelled") != NULL);
  CHECK(c.ran == 1 && c.freed == k + 1);
  /* Reset by the wait: usable again. */
  CHECK_STATUS(weft_group_run(g, count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_group_wait(g), WEFT_OK);
  CHECK(c.ran == 2 && c.freed == k + 2);
  /* Destroy with children pending runs them (and frees their contexts). */
  store(&c.release, 0);
  store(&c.started, 0);
  CHECK_STATUS(weft_group_run(g, block_run, &c, count_free), WEFT_OK);
  for (i = 0; i < k; ++i) CHECK_STATUS(weft_group_run(g, count_run, &c, count_free), WEFT_OK);
  wait_for(&c.started, 1);
  store(&c.release, 1);
  CHECK_STATUS(weft_group_destroy(g), WEFT_OK);
  CHECK(c.ran == k + 3 && c.freed == 2 * k + 3);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
}

static void test_group_timeout_and_failure(void) {
  counters c = {0, 0, 0, 0};
  weft_pool* pool = make_pool(2);
  weft_group* g = NULL;
  long i;
  CHECK_STATUS(weft_group_create(pool, &g), WEFT_OK);
  CHECK_STATUS(weft_group_wait_timeout(g, 0), WEFT_OK); /* empty: done at once */
  CHECK_STATUS(weft_group_run(g, block_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_group_wait_timeout(g, 20 * 1000 * 1000), WEFT_TIMED_OUT);
  CHECK(strstr(weft_last_error(), "weft_group_wait_timeout") != NULL);
  CHECK_STATUS(weft_group_wait_timeout(g, -5), WEFT_TIMED_OUT);
  CHECK(c.freed == 0);
  store(&c.release, 1);
  CHECK_STATUS(weft_group_wait_timeout(g, INT64_MAX), WEFT_OK);
  CHECK(c.ran == 1 && c.freed == 1);

  /* A failing child: WEFT_TASK_FAILED with its message; the group is reusable after. */
  memset(&c, 0, sizeof c);
  for (i = 0; i < 20; ++i) CHECK_STATUS(weft_group_run(g, i == 10 ? fail_run : count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_group_wait(g), WEFT_TASK_FAILED);
  CHECK(strstr(weft_last_error(), "boom from a C task") != NULL);
  CHECK(strstr(weft_last_error(), "second call") == NULL);
  CHECK(c.freed == 20 && c.ran >= 1 && c.ran <= 20); /* the failure may cancel children not started */
  CHECK_STATUS(weft_group_run(g, count_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_group_wait(g), WEFT_OK);
  /* A failure nobody waits for goes to the logger when the group is destroyed. */
  CHECK_STATUS(weft_group_run(g, fail_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_group_destroy(g), WEFT_OK);
  CHECK(c.freed == 22);
  /* And a failing posted task to the logger, too; the pool keeps working. */
  CHECK_STATUS(weft_pool_post(pool, fail_run, &c, count_free), WEFT_OK);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  CHECK(c.freed == 23);
}

/* ---- waiting inside a task of the same pool (a pool of ONE worker: the wait must run the
 * children itself, or it would deadlock) ---- */

typedef struct nested {
  weft_pool* pool;
  counters c;
  weft_status wait_status, timed_status, failed_status, for_status, close_status, destroy_status;
  long sum;
  weft_group* inner; /* created inside a task, kept for the wrong-thread checks */
} nested;

static void sum_range(int64_t b, int64_t e, void* ctx) {
  int64_t i, s = 0;
  for (i = b; i < e; ++i) s += i;
  add(&((nested*)ctx)->sum, (long)s);
}

static void nested_task(void* ctx) {
  nested* t = (nested*)ctx;
  weft_group* g = NULL;
  int i;
  CHECK_STATUS(weft_group_create(t->pool, &g), WEFT_OK);
  for (i = 0; i < 100; ++i) CHECK_STATUS(weft_group_run(g, count_run, &t->c, count_free), WEFT_OK);
  t->wait_status = weft_group_wait(g);
  for (i = 0; i < 100; ++i) CHECK_STATUS(weft_group_run(g, count_run, &t->c, count_free), WEFT_OK);
  t->timed_status = weft_group_wait_timeout(g, INT64_MAX);
  CHECK_STATUS(weft_group_run(g, fail_run, &t->c, count_free), WEFT_OK);
  t->failed_status = weft_group_wait(g);
  t->for_status = weft_parallel_for(t->pool, 0, 10000, 7, sum_range, t);
  t->close_status = weft_pool_close(t->pool);     /* a pool cannot wait for itself */
  t->destroy_status = weft_pool_destroy(t->pool); /* nor free itself */
  CHECK_STATUS(weft_group_run(g, count_run, &t->c, count_free), WEFT_OK);
  t->inner = g; /* destroyed later, by another task on the same (only) worker */
}

static void destroy_inner(void* ctx) {
  nested* t = (nested*)ctx;
  CHECK_STATUS(weft_group_destroy(t->inner), WEFT_OK);
}

static void test_wait_inside_task(void) {
  nested t;
  weft_group* outer = NULL;
  memset(&t, 0, sizeof t);
  t.pool = make_pool(1);
  CHECK_STATUS(weft_group_create(t.pool, &outer), WEFT_OK);
  CHECK_STATUS(weft_group_run(outer, nested_task, &t, NULL), WEFT_OK);
  CHECK_STATUS(weft_group_wait(outer), WEFT_OK);
  CHECK(t.wait_status == WEFT_OK && t.timed_status == WEFT_OK && t.failed_status == WEFT_TASK_FAILED);
  CHECK(t.for_status == WEFT_OK && t.sum == 10000L * 9999 / 2);
  CHECK(t.close_status == WEFT_INVALID_ARGUMENT && t.destroy_status == WEFT_INVALID_ARGUMENT);
  /* The inner group belongs to the task that created it: not waitable from here. */
  CHECK_STATUS(weft_group_wait(t.inner), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "inside a task") != NULL);
  CHECK_STATUS(weft_group_destroy(t.inner), WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_group_run(outer, destroy_inner, &t, NULL), WEFT_OK);
  CHECK_STATUS(weft_group_wait(outer), WEFT_OK);
  CHECK(t.c.ran == 202 && t.c.freed == 202);
  CHECK_STATUS(weft_group_destroy(outer), WEFT_OK);
  CHECK_STATUS(weft_pool_destroy(t.pool), WEFT_OK);
}

/* Two pools of one worker each, waiting on each other: a task on A waits for a group on B
 * whose children each run a parallel_for on A. A's only worker is the one waiting: its wait
 * must run A's loop pieces, or nothing would. */
typedef struct cross {
  weft_pool* a;
  weft_pool* b;
  long sum;
  weft_status inner_status[8];
  weft_status wait_status;
} cross;

static void cross_sum(int64_t lo, int64_t hi, void* ctx) {
  int64_t i, s = 0;
  for (i = lo; i < hi; ++i) s += i;
  add(&((cross*)ctx)->sum, (long)s);
}

typedef struct cross_child {
  cross* x;
  int index;
} cross_child;

static void cross_on_b(void* ctx) {
  cross_child* c = (cross_child*)ctx;
  c->x->inner_status[c->index] = weft_parallel_for(c->x->a, 0, 1000, 10, cross_sum, c->x);
}

static void cross_on_a(void* ctx) {
  cross* x = (cross*)ctx;
  cross_child children[8];
  weft_group* g = NULL;
  int i;
  CHECK_STATUS(weft_group_create(x->b, &g), WEFT_OK);
  for (i = 0; i < 8; ++i) {
    children[i].x = x;
    children[i].index = i;
    CHECK_STATUS(weft_group_run(g, cross_on_b, &children[i], NULL), WEFT_OK);
  }
  x->wait_status = weft_group_wait(g);
  CHECK_STATUS(weft_group_destroy(g), WEFT_OK);
}

static void test_pools_waiting_on_each_other(void) {
  cross x;
  weft_group* g = NULL;
  int i;
  memset(&x, 0, sizeof x);
  x.a = make_pool(1);
  x.b = make_pool(1);
  CHECK_STATUS(weft_group_create(x.a, &g), WEFT_OK);
  CHECK_STATUS(weft_group_run(g, cross_on_a, &x, NULL), WEFT_OK);
  CHECK_STATUS(weft_group_wait(g), WEFT_OK);
  CHECK_STATUS(weft_group_destroy(g), WEFT_OK);
  CHECK(x.wait_status == WEFT_OK);
  for (i = 0; i < 8; ++i) CHECK(x.inner_status[i] == WEFT_OK);
  CHECK(x.sum == 8L * (999L * 1000 / 2));
  CHECK_STATUS(weft_pool_destroy(x.b), WEFT_OK);
  CHECK_STATUS(weft_pool_destroy(x.a), WEFT_OK);
}

/* Submitters racing a close: every submission either is accepted (and then runs, or is
 * cancelled by a close with a limit) or is refused with WEFT_SHUT_DOWN; in every case its
 * context destructor runs exactly once. Nothing is lost, nothing is released twice. */
typedef struct racer {
  weft_pool* pool;
  counters* c;
  long accepted, refused, other;
  int use_try;
} racer;

static void* race_submit(void* arg) {
  racer* r = (racer*)arg;
  long i;
  for (i = 0; i < 20000; ++i) {
    weft_status s = (r->use_try ? weft_pool_try_post : weft_pool_post)(r->pool, count_run, r->c, count_free);
    if (s == WEFT_OK) {
      ++r->accepted;
    } else if (s == WEFT_SHUT_DOWN) {
      ++r->refused;
    } else {
      ++r->other;
    }
  }
  return NULL;
}

static void race_close(int with_limit) {
  enum { kThreads = 4 };
  pthread_t threads[kThreads];
  racer r[kThreads];
  counters c = {0, 0, 0, 0};
  weft_pool* pool = make_pool(2);
  long accepted = 0, total = 0;
  int i;
  for (i = 0; i < kThreads; ++i) {
    memset(&r[i], 0, sizeof r[i]);
    r[i].pool = pool;
    r[i].c = &c;
    r[i].use_try = i % 2;
    CHECK(pthread_create(&threads[i], NULL, race_submit, &r[i]) == 0);
  }
  while (load(&c.freed) < 5000) nap(); /* close in the middle of the submissions */
  if (with_limit) {
    weft_status s = weft_pool_close_timeout(pool, 0);
    CHECK(s == WEFT_OK || s == WEFT_TIMED_OUT);
  } else {
    CHECK_STATUS(weft_pool_close(pool), WEFT_OK);
  }
  for (i = 0; i < kThreads; ++i) {
    CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(r[i].other == 0);
    accepted += r[i].accepted;
    total += r[i].accepted + r[i].refused;
  }
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
  CHECK(total == kThreads * 20000L);
  CHECK(c.freed == total); /* every context released exactly once */
  if (with_limit) {
    CHECK(c.ran <= accepted); /* the rest were cancelled by the limit */
  } else {
    CHECK(c.ran == accepted); /* a drain runs everything accepted */
  }
}

static void test_submitters_race_close(void) {
  race_close(0);
  race_close(1);
}

/* A loop called from outside a pool that is stopped (a close whose limit passes) before the
 * loop's first piece starts: WEFT_CANCELLED. If the close happens to come before the loop
 * was submitted, the loop gets WEFT_SHUT_DOWN instead; then try again. */
typedef struct stopped_loop {
  weft_pool* pool;
  weft_status status;
} stopped_loop;

static void* run_loop(void* arg) {
  stopped_loop* s = (stopped_loop*)arg;
  s->status = weft_parallel_for(s->pool, 0, 1000, 0, noop_range, NULL);
  return NULL;
}

static void test_loop_on_stopped_pool(void) {
  int attempt, cancelled = 0;
  for (attempt = 0; attempt < 20 && !cancelled; ++attempt) {
    counters c = {0, 0, 0, 0};
    stopped_loop s;
    pthread_t t;
    struct timespec ts = {0, 20 * 1000 * 1000};
    s.pool = make_pool(1);
    s.status = WEFT_OK;
    CHECK_STATUS(weft_pool_post(s.pool, block_run, &c, NULL), WEFT_OK);
    wait_for(&c.started, 1); /* the only worker is busy: the loop's root stays queued */
    CHECK(pthread_create(&t, NULL, run_loop, &s) == 0);
    nanosleep(&ts, NULL);
    CHECK_STATUS(weft_pool_close_timeout(s.pool, 0), WEFT_TIMED_OUT);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(s.status == WEFT_CANCELLED || s.status == WEFT_SHUT_DOWN);
    cancelled = s.status == WEFT_CANCELLED;
    store(&c.release, 1);
    CHECK_STATUS(weft_pool_destroy(s.pool), WEFT_OK);
  }
  CHECK(cancelled);
}

/* ---- parallel_for: every index exactly once ---- */

typedef struct coverage {
  int64_t begin, end, grain;
  long* hits; /* hits[i - begin] */
  long bad_chunks;
  int64_t fail_at; /* a chunk holding this index fails (when begin <= fail_at < end) */
} coverage;

static void cover(int64_t b, int64_t e, void* ctx) {
  coverage* c = (coverage*)ctx;
  int64_t i;
  if (!(c->begin <= b && b < e && e <= c->end) || (c->grain > 0 && (uint64_t)e - (uint64_t)b > (uint64_t)c->grain)) {
    add(&c->bad_chunks, 1);
    return;
  }
  for (i = b; i < e; ++i) add(&c->hits[(uint64_t)i - (uint64_t)c->begin], 1);
  if (c->begin <= c->fail_at && b <= c->fail_at && c->fail_at < e) weft_task_fail("chunk with the poisoned index");
}

static void run_coverage(weft_pool* pool, int64_t begin, int64_t end, int64_t grain) {
  coverage c;
  uint64_t n = (uint64_t)end - (uint64_t)begin, i;
  c.begin = begin;
  c.end = end;
  c.grain = grain;
  c.bad_chunks = 0;
  c.fail_at = INT64_MIN; /* never (begin > fail_at unless begin == INT64_MIN: see cover) */
  c.hits = (long*)calloc(n + 1, sizeof(long));
  CHECK(c.hits != NULL);
  if (begin == INT64_MIN) c.fail_at = INT64_MAX;
  CHECK_STATUS(weft_parallel_for(pool, begin, end, grain, cover, &c), WEFT_OK);
  CHECK(c.bad_chunks == 0);
  for (i = 0; i < n; ++i) {
    if (c.hits[i] != 1) {
      fprintf(stderr, "[%lld, %lld) grain %lld: index %lld hit %ld times\n", (long long)begin, (long long)end,
              (long long)grain, (long long)((uint64_t)begin + i), c.hits[i]);
      exit(1);
    }
  }
  free(c.hits);
}

static void test_parallel_for(void) {
  const int64_t begins[] = {-1000, -7, 0, 5};
  const int64_t lengths[] = {0, 1, 2, 3, 17, 1000, 10007};
  const int64_t grains[] = {0, 1, 2, 7, 64, INT64_MAX};
  size_t b, l, g;
  weft_pool* pool = make_pool(3);
  coverage c;
  for (b = 0; b < sizeof begins / sizeof begins[0]; ++b)
    for (l = 0; l < sizeof lengths / sizeof lengths[0]; ++l)
      for (g = 0; g < sizeof grains / sizeof grains[0]; ++g)
        run_coverage(pool, begins[b], begins[b] + lengths[l], grains[g]);
  /* The edges of int64_t. */
  run_coverage(pool, INT64_MAX - 1000, INT64_MAX, 3);
  run_coverage(pool, INT64_MIN, INT64_MIN + 1000, 0);
  /* Invalid arguments: nothing runs. */
  memset(&c, 0, sizeof c);
  CHECK_STATUS(weft_parallel_for(pool, 10, 5, 1, cover, &c), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "begin is greater than end") != NULL);
  CHECK_STATUS(weft_parallel_for(pool, 0, 5, -1, cover, &c), WEFT_INVALID_ARGUMENT);
  CHECK(strstr(weft_last_error(), "grain") != NULL);
  CHECK_STATUS(weft_parallel_for(pool, 0, 5, INT64_MIN, cover, &c), WEFT_INVALID_ARGUMENT);
  /* A failing chunk: the call reports it; no index ran twice. */
  c.begin = 0;
  c.end = 100000;
  c.grain = 10;
  c.fail_at = 5000;
  c.hits = (long*)calloc(100000, sizeof(long));
  CHECK(c.hits != NULL);
  CHECK_STATUS(weft_parallel_for(pool, 0, 100000, 10, cover, &c), WEFT_TASK_FAILED);
  CHECK(strstr(weft_last_error(), "poisoned") != NULL);
  for (b = 0; b < 100000; ++b) CHECK(c.hits[b] <= 1);
  CHECK(c.hits[5000] == 1);
  free(c.hits);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
}

/* ---- parallel_reduce ---- */

typedef struct span {
  int64_t first, last; /* indices folded, in order; first > last: empty */
  int64_t sum;
  int64_t ok; /* 0 once two non-adjacent spans were combined */
} span;

static void span_map(int64_t b, int64_t e, void* acc, void* ctx) {
  span* s = (span*)acc;
  int64_t i;
  (void)ctx;
  CHECK(s->first > s->last); /* every chunk starts from identity */
  s->first = b;
  s->last = e - 1;
  for (i = b; i < e; ++i) s->sum += i;
}
static void span_combine(void* left, const void* right, void* ctx) {
  span* l = (span*)left;
  const span* r = (const span*)right;
  (void)ctx;
  if (r->first > r->last) return;
  if (l->first > l->last) {
    *l = *r;
    return;
  }
  l->ok = l->ok && r->ok && l->last + 1 == r->first; /* index order, adjacent */
  l->last = r->last;
  l->sum += r->sum;
}

/* A value bigger than the inline buffer: a histogram of i mod 16. */
typedef struct histogram {
  int64_t bucket[16];
  char pad[40];
} histogram;
static void hist_map(int64_t b, int64_t e, void* acc, void* ctx) {
  histogram* h = (histogram*)acc;
  int64_t i;
  (void)ctx;
  for (i = b; i < e; ++i) h->bucket[((i % 16) + 16) % 16] += 1;
}
static void hist_combine(void* left, const void* right, void* ctx) {
  int k;
  (void)ctx;
  for (k = 0; k < 16; ++k) ((histogram*)left)->bucket[k] += ((const histogram*)right)->bucket[k];
}

static void harmonic_map(int64_t b, int64_t e, void* acc, void* ctx) {
  int64_t i;
  (void)ctx;
  for (i = b; i < e; ++i) *(double*)acc += 1.0 / (double)(i + 1);
  if (b <= 777 && 777 < e && ctx != NULL) weft_task_fail("map failed at 777");
}
static void add_doubles(void* left, const void* right, void* ctx) {
  (void)ctx;
  *(double*)left += *(const double*)right;
}

static void test_parallel_reduce(void) {
  weft_pool* pool = make_pool(3);
  const span identity = {1, 0, 0, 1};
  const int64_t grains[] = {0, 1, 3, 64, 100000};
  size_t g;
  span r;
  histogram hid, hr;
  double d1 = 0.0, d2 = 0.0, zero = 0.0;
  int k;
  for (g = 0; g < sizeof grains / sizeof grains[0]; ++g) {
    const int64_t b = -5000, e = 123457;
    CHECK_STATUS(weft_parallel_reduce(pool, b, e, grains[g], sizeof(span), &identity, span_map, span_combine, NULL, &r),
                 WEFT_OK);
    CHECK(r.ok == 1 && r.first == b && r.last == e - 1);
    CHECK(r.sum == (e - 1) * e / 2 - (b - 1) * b / 2); /* sum of [b, e) in closed form */
  }
  /* Empty range: identity. result aliasing identity is allowed. */
  CHECK_STATUS(weft_parallel_reduce(pool, 42, 42, 0, sizeof(span), &identity, span_map, span_combine, NULL, &r),
               WEFT_OK);
  CHECK(memcmp(&r, &identity, sizeof r) == 0);
  r = identity;
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 1000, 7, sizeof(span), &r, span_map, span_combine, NULL, &r), WEFT_OK);
  CHECK(r.sum == 999 * 1000 / 2 && r.ok == 1);
  /* A value on the heap path. */
  memset(&hid, 0, sizeof hid);
  CHECK_STATUS(weft_parallel_reduce(pool, -37, 100003, 0, sizeof hid, &hid, hist_map, hist_combine, NULL, &hr), WEFT_OK);
  {
    int64_t total = 0;
    for (k = 0; k < 16; ++k) total += hr.bucket[k];
    CHECK(total == 100003 + 37);
    for (k = 0; k < 16; ++k) {
      /* count of i in [-37, 100003) with i = k mod 16 */
      int64_t cnt = 0, i;
      for (i = -37; i < -37 + 16; ++i)
        if (((i % 16) + 16) % 16 == k) cnt = ((100003 - 1 - i) / 16) + 1;
      CHECK(hr.bucket[k] == cnt);
    }
  }
  /* Deterministic: the same grain gives the same bits. */
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 1000000, 1000, sizeof(double), &zero, harmonic_map, add_doubles, NULL, &d1),
               WEFT_OK);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 1000000, 1000, sizeof(double), &zero, harmonic_map, add_doubles, NULL, &d2),
               WEFT_OK);
  CHECK(memcmp(&d1, &d2, sizeof d1) == 0 && d1 > 14.39 && d1 < 14.40);
  /* A failing map; invalid ranges. */
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 100000, 10, sizeof(double), &zero, harmonic_map, add_doubles, &d1, &d2),
               WEFT_TASK_FAILED);
  CHECK(strstr(weft_last_error(), "map failed at 777") != NULL);
  CHECK_STATUS(weft_parallel_reduce(pool, 5, 4, 0, sizeof(double), &zero, harmonic_map, add_doubles, NULL, &d2),
               WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_parallel_reduce(pool, 0, 4, -2, sizeof(double), &zero, harmonic_map, add_doubles, NULL, &d2),
               WEFT_INVALID_ARGUMENT);
  CHECK_STATUS(weft_pool_destroy(pool), WEFT_OK);
}

int main(void) {
  alarm(240); /* a hang fails the test (SIGALRM) instead of blocking CI */
  test_status_strings();
  test_config_abi();
  test_null_handles();
  test_post_and_close();
  test_close_timeout_cancels_queued();
  test_bounded_pool();
  test_group_cancel_releases_contexts();
  test_group_timeout_and_failure();
  test_wait_inside_task();
  test_pools_waiting_on_each_other();
  test_submitters_race_close();
  test_loop_on_stopped_pool();
  test_parallel_for();
  test_parallel_reduce();
  printf("c_api_test: all checks passed\n");
  return 0;
}
