/* weft/weft.h: the C99 API of weft (also usable from C++, and from Fortran through
 * weft/weft.f90, installed next to this header).
 *
 * Overview. The same runtime as the C++ API (weft/pool.hpp, weft/task_group.hpp,
 * weft/parallel.hpp), behind opaque handles and status codes:
 *
 *   weft_pool* pool;
 *   if (weft_pool_create(NULL, &pool) != WEFT_OK) { fprintf(stderr, "%s\n", weft_last_error()); ... }
 *   weft_parallel_for(pool, 0, n, 0, body, &data);      // body(begin, end, ctx) per chunk
 *   weft_pool_destroy(pool);                            // drains, joins the workers
 *
 * Linking. libweft is a C++ library: a C program links it with the C++ runtime, e.g.
 * `cc prog.c $(pkg-config --cflags --libs weft-c)` (weft-c.pc adds -lstdc++ -lm), or from
 * CMake `target_link_libraries(prog weft::weft)` in a project that enables CXX as well as C
 * (CMake then links with the C++ driver).
 *
 * Errors. Every function returning weft_status returns WEFT_OK or a failure code; on failure
 * it also stores a message for weft_last_error() on the calling thread (like errno, the
 * message is not cleared by later successful calls). No C++ exception ever leaves this API:
 * every entry point catches everything. A NULL handle or a NULL required pointer is
 * WEFT_INVALID_ARGUMENT, never a crash. Besides the statuses listed per function, any call
 * that does work may return WEFT_SYSTEM_ERROR for a failure the runtime did not foresee
 * (an exception of an unexpected type); the message says what it was.
 *
 * Callbacks and contexts. A task is a function `void fn(void* ctx)` with a context pointer
 * and an optional context destructor `void dtor(void* ctx)`. The destructor (when not NULL)
 * is called EXACTLY ONCE for every call of weft_pool_post, weft_pool_try_post and
 * weft_group_run, whatever that call returns: after fn ran, or after the task was
 * cancelled before it started, or (for a rejected submission: closed pool, no memory,
 * invalid argument) before the submitting call returns. It runs on the thread that ran or
 * dropped the task. Neither fn nor dtor may longjmp out of the runtime, and dtor must not
 * throw (it runs inside a destructor: the program would terminate); an exception from fn
 * is a failure (below).
 *
 * Failing tasks. A task reports failure by calling weft_task_fail(message) before it
 * returns (it may keep running; the failure takes effect when fn returns). The first
 * failure of a group's task cancels the rest of the group and makes weft_group_wait return
 * WEFT_TASK_FAILED with that message; in weft_parallel_for/_reduce it stops the loop and the
 * call returns WEFT_TASK_FAILED; in a posted task it is reported through the pool's logger
 * (stderr). A C++ exception thrown by a callback compiled as C++ counts as a failure too.
 *
 * Threads. Every function may be called from any thread, including from inside a task of
 * the same pool (nested parallelism): waits there run other tasks of the pool instead of
 * blocking, so a task may wait for a group or a loop it started without deadlock, even on
 * a pool of one worker. The exceptions are the lifecycle calls (close, destroy) made from
 * one of the pool's own workers: they return WEFT_INVALID_ARGUMENT (a pool cannot wait for
 * itself), and the group rule of weft_group_create.
 */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------------------- */

typedef enum weft_status {
  WEFT_OK = 0,
  WEFT_INVALID_ARGUMENT = 1, /* a NULL handle, a bad option or range, a call from the wrong thread */
  WEFT_NO_MEMORY = 2,        /* allocation failed; nothing was submitted */
  WEFT_QUEUE_FULL = 3,       /* a bounded pool (config.capacity) is full */
  WEFT_SHUT_DOWN = 4,        /* the pool is closed and accepts no new tasks */
  WEFT_CANCELLED = 5,        /* the group was cancelled (weft_group_cancel or a stop) */
  WEFT_TIMED_OUT = 6,        /* the limit passed before the wait or the drain completed */
  WEFT_TASK_FAILED = 7,      /* a task called weft_task_fail (or its C++ code threw) */
  WEFT_SYSTEM_ERROR = 8      /* the system refused a resource (threads, topology), or any other failure */
} weft_status;

/* A static, human-readable name of a status ("ok", "invalid argument", ...); "unknown status"
 * for a value outside the enum. Never NULL. */
const char* weft_status_string(weft_status status);

/* The message of the last failing call on the calling thread ("" if none yet). Valid until
 * the next failing call on this thread. Never NULL. */
const char* weft_last_error(void);

/* ---- callbacks ---------------------------------------------------------------------- */

typedef void (*weft_task_fn)(void* ctx);
typedef void (*weft_ctx_dtor)(void* ctx);
/* Called with a non-empty chunk [begin, end) of a parallel_for range. */
typedef void (*weft_range_fn)(int64_t begin, int64_t end, void* ctx);
/* Folds the chunk [begin, end) into *acc, a value of value_size bytes that holds a fresh
 * copy of the identity when the call starts (each chunk is mapped exactly once). */
typedef void (*weft_reduce_map_fn)(int64_t begin, int64_t end, void* acc, void* ctx);
/* *left = *left (+) *right, where (+) is the reduction's associative operation. */
typedef void (*weft_reduce_combine_fn)(void* left, const void* right, void* ctx);

/* Marks the task running on the calling thread as failed, with `message` (copied; NULL
 * means "task failed"; at most 255 bytes are kept). Callable from inside fn of a task, a
 * parallel_for chunk or a reduce callback; the first call of a task wins. Returns WEFT_OK,
 * or WEFT_INVALID_ARGUMENT when the calling thread is not running such a callback. */
weft_status weft_task_fail(const char* message);

/* ---- pools -------------------------------------------------------------------------- */

typedef struct weft_pool weft_pool;

/* Values of weft_pool_config.pinning (weft::pin_policy, weft/options.hpp). */
typedef enum weft_pin_policy {
  WEFT_PIN_NONE = 0,     /* workers float; the OS places them */
  WEFT_PIN_COMPACT = 1,  /* one worker per core, cores in topology order before SMT siblings */
  WEFT_PIN_SCATTER = 2,  /* spread round-robin across packages, L3 groups, then cores */
  WEFT_PIN_EXPLICIT = 3  /* worker i on pus[i % pu_count] (needs pus) */
} weft_pin_policy;

/* Pool configuration. ABI-extensible: `size` is sizeof(weft_pool_config) as the CALLER was
 * compiled, and the library reads only the fields that lie wholly inside it (the others keep
 * their defaults), so a program built against an older, smaller struct keeps working. New
 * fields are only ever appended. Always fill it with weft_pool_config_init first. */
typedef struct weft_pool_config {
  size_t size;             /* set by weft_pool_config_init */
  int workers;             /* >= 0; 0 (default): one per usable core (cpuset, cgroup quota) */
  int pinning;             /* a weft_pin_policy; default WEFT_PIN_COMPACT */
  const unsigned* pus;     /* WEFT_PIN_EXPLICIT: OS indices of the PUs (copied); default NULL */
  size_t pu_count;         /* number of entries of pus */
  const char* name;        /* thread names "<name>:<i>", at most 10 chars kept (copied); NULL: "weft" */
  unsigned spin_rounds;    /* 0 .. 1000000; idle spinning before a worker parks; default 64 */
  int read_environment;    /* non-zero: WEFT_WORKERS / WEFT_PIN override workers / pinning; default 0 */
  size_t deque_capacity;   /* power of two in [2, 2^20]: initial slots per worker; default 256 */
  size_t capacity;         /* most posted tasks waiting in the queue at once; 0 (default): unbounded */
  int when_full;           /* a weft_full_policy: what weft_pool_post does at capacity; default REJECT */
} weft_pool_config;

/* What weft_pool_post does when a bounded pool (config.capacity) is full. weft_pool_try_post
 * always returns WEFT_QUEUE_FULL instead. Tasks posted from inside a task of the same pool
 * are never counted and never refused. */
typedef enum weft_full_policy {
  WEFT_FULL_REJECT = 0,         /* return WEFT_QUEUE_FULL (the context destructor still runs) */
  WEFT_FULL_BLOCK = 1,          /* wait for room; WEFT_SHUT_DOWN if the pool closes meanwhile */
  WEFT_FULL_CALLER_RUNS = 2,    /* run the task on the calling thread before returning */
  WEFT_FULL_DISCARD_OLDEST = 3  /* the oldest queued task is cancelled (its destructor runs) */
} weft_full_policy;

/* Fills the fields of *config that lie inside `size` bytes with their defaults (bytes past
 * this library's struct, from a newer header, with zero) and sets config->size = size.
 * Returns WEFT_INVALID_ARGUMENT for a NULL config or a size weft_pool_create would reject
 * as garbage (see there). Use weft_pool_config_init, which passes the right size. */
weft_status weft_pool_config_init_size(weft_pool_config* config, size_t size);

static inline weft_status weft_pool_config_init(weft_pool_config* config) {
  return weft_pool_config_init_size(config, sizeof *config);
}

/* Creates a pool and starts its workers; *out receives the handle (NULL on failure).
 * config NULL: every default. Returns
 *   WEFT_OK;
 *   WEFT_INVALID_ARGUMENT: out is NULL; config->size is smaller than sizeof(size_t), not the
 *     end of a field, or larger than this library's struct with a non-zero byte past it
 *     (a field this library does not know was set); an invalid field (the message names it);
 *   WEFT_NO_MEMORY; WEFT_SYSTEM_ERROR: threads could not be started, hwloc failed. */
weft_status weft_pool_create(const weft_pool_config* config, weft_pool** out);

/* Stops accepting tasks from outside the pool, runs everything queued (and what those tasks
 * spawn), and joins the workers. Idempotent. The handle stays valid (for weft_pool_size and
 * to see WEFT_SHUT_DOWN from later posts) until weft_pool_destroy. Returns
 *   WEFT_OK; WEFT_INVALID_ARGUMENT: pool NULL, or called from one of the pool's workers. */
weft_status weft_pool_close(weft_pool* pool);

/* As weft_pool_close, but waits at most timeout_ns nanoseconds (<= 0: stop at once;
 * INT64_MAX: no limit). When the limit passes, every task still queued is cancelled (its
 * context destructor runs, groups count it as cancelled) and the call returns
 * WEFT_TIMED_OUT without waiting for tasks that are running (a later close or destroy waits
 * for them). Returns WEFT_OK (everything ran, workers joined), WEFT_TIMED_OUT,
 * WEFT_INVALID_ARGUMENT as weft_pool_close. */
weft_status weft_pool_close_timeout(weft_pool* pool, int64_t timeout_ns);

/* Closes the pool (as weft_pool_close: drains) and frees it; the handle is invalid after
 * WEFT_OK. Destroy the pool's groups first. Returns WEFT_OK, or WEFT_INVALID_ARGUMENT (pool
 * NULL, or called from one of the pool's workers: nothing is freed). */
weft_status weft_pool_destroy(weft_pool* pool);

/* Number of worker threads (>= 1); 0 for a NULL pool (and WEFT_INVALID_ARGUMENT is stored
 * for weft_last_error). */
size_t weft_pool_size(const weft_pool* pool);

/* Runs fn(ctx) on the pool, fire-and-forget. dtor(ctx), if not NULL, is called exactly once
 * (see the top). A failure (weft_task_fail) goes to the pool's logger. Returns
 *   WEFT_OK: the task will run (or be cancelled by a close with a timeout);
 *   WEFT_SHUT_DOWN: the pool is closed (called from outside it); WEFT_NO_MEMORY;
 *   WEFT_INVALID_ARGUMENT: pool or fn NULL.
 *   WEFT_QUEUE_FULL: a bounded pool is full and its policy is WEFT_FULL_REJECT.
 * A bounded pool with WEFT_FULL_BLOCK waits for room here. */
weft_status weft_pool_post(weft_pool* pool, weft_task_fn fn, void* ctx, weft_ctx_dtor dtor);

/* As weft_pool_post but never blocks: returns WEFT_QUEUE_FULL when a bounded pool is full
 * (whatever its policy), WEFT_SHUT_DOWN when the pool is closed. */
weft_status weft_pool_try_post(weft_pool* pool, weft_task_fn fn, void* ctx, weft_ctx_dtor dtor);

/* ---- groups (fork-join) ------------------------------------------------------------- */

typedef struct weft_group weft_group;

/* Creates an empty group of tasks on `pool`. A group created inside a task (on one of the
 * pool's workers) belongs to that task: wait for it and destroy it in the same task (other
 * threads get WEFT_INVALID_ARGUMENT). A group created outside the pool may be waited on by
 * any one thread at a time. Returns WEFT_OK, WEFT_INVALID_ARGUMENT (pool or out NULL),
 * WEFT_NO_MEMORY. */
weft_status weft_group_create(weft_pool* pool, weft_group** out);

/* Runs fn(ctx) as a child of the group; callable from any thread, children included (they
 * may run more children). dtor: see the top.
 * A child that has not started when the group is cancelled never runs (dtor still runs).
 * Returns WEFT_OK, WEFT_SHUT_DOWN (pool closed, called from outside it), WEFT_NO_MEMORY,
 * WEFT_INVALID_ARGUMENT (group or fn NULL). */
weft_status weft_group_run(weft_group* group, weft_task_fn fn, void* ctx, weft_ctx_dtor dtor);

/* Waits until every child run so far has finished or was cancelled (and its context
 * destructor has run). From a worker it runs other tasks while it waits. Afterwards the
 * group is reset (not cancelled, no failure) and may be reused. Returns
 *   WEFT_OK: all children ran;
 *   WEFT_TASK_FAILED: a child failed (weft_last_error: its message); the first failure
 *     cancelled the children that had not started;
 *   WEFT_CANCELLED: the group was cancelled (and no child failed);
 *   WEFT_INVALID_ARGUMENT: group NULL, or the wrong thread (see weft_group_create). */
weft_status weft_group_wait(weft_group* group);

/* As weft_group_wait, but returns WEFT_TIMED_OUT if children are still pending after
 * timeout_ns nanoseconds (<= 0: just a check; INT64_MAX: no limit); the group is then
 * unchanged and may be waited on again, cancelled or destroyed. On a worker, a task the
 * wait runs meanwhile is finished first, so the call may return later than the limit. */
weft_status weft_group_wait_timeout(weft_group* group, int64_t timeout_ns);

/* Children that have not started will not run (they count as finished); running children
 * finish normally. Returns WEFT_OK, WEFT_INVALID_ARGUMENT (group NULL). */
weft_status weft_group_cancel(weft_group* group);

/* Waits for every pending child (running them, as weft_group_wait; cancel first to skip
 * them) and frees the group. A failure nobody waited for goes to the pool's logger. Returns
 * WEFT_OK, or WEFT_INVALID_ARGUMENT (group NULL, or the wrong thread: nothing is freed). */
weft_status weft_group_destroy(weft_group* group);

/* ---- parallel loops ----------------------------------------------------------------- */

/* Calls fn(lo, hi, ctx) on disjoint, non-empty chunks [lo, hi) that together cover
 * [begin, end) exactly once, each of at most `grain` indices, in parallel on `pool`, and
 * returns when all have run. Negative indices are fine; begin == end runs nothing.
 * grain 0 picks the default (about 1/8 of an equal share per worker); a larger grain suits
 * very cheap bodies. Called from a task of the pool, the caller takes part in the loop.
 * Called inside a child of a group that is cancelled meanwhile, chunks not started are
 * skipped and the call still returns WEFT_OK (the group's wait reports WEFT_CANCELLED).
 * Returns
 *   WEFT_OK;
 *   WEFT_TASK_FAILED: a chunk failed (weft_task_fail); chunks not started were skipped;
 *   WEFT_INVALID_ARGUMENT: pool or fn NULL, begin > end, grain < 0 (nothing ran);
 *   WEFT_SHUT_DOWN: the pool is closed (called from outside it; nothing ran);
 *   WEFT_CANCELLED: called from outside the pool, which was stopped (a close whose limit
 *     passed) before the loop's first piece started;
 *   WEFT_NO_MEMORY. */
weft_status weft_parallel_for(weft_pool* pool, int64_t begin, int64_t end, int64_t grain, weft_range_fn fn,
                              void* ctx);

/* Reduces [begin, end) in parallel over values of value_size bytes (plain bytes, copied
 * with memcpy; any size >= 1). Each chunk of at most `grain` indices (0: default) starts
 * from a copy of *identity and is folded by map(lo, hi, acc, ctx); partial results of
 * adjacent chunks are combined in index order with combine(left, right, ctx), in a tree
 * that depends only on end - begin and the grain (so for the same inputs the result is
 * bit-identical run to run: combine must be associative, need not be commutative).
 * identity must be an identity of combine. The result is written to *result (identity for
 * an empty range); result may alias identity. Returns as weft_parallel_for, plus
 * WEFT_INVALID_ARGUMENT for value_size 0 or NULL identity, result, map or combine. */
weft_status weft_parallel_reduce(weft_pool* pool, int64_t begin, int64_t end, int64_t grain, size_t value_size,
                                 const void* identity, weft_reduce_map_fn map, weft_reduce_combine_fn combine,
                                 void* ctx, void* result);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_WEFT_H */
