/* Uses only the installed C header (weft/weft.h), from C; exits non-zero on any wrong answer. */
#include <stdint.h>
#include <stdio.h>

#include <weft/weft.h>

static void add_range(int64_t b, int64_t e, void* ctx) {
  int64_t s = 0, i;
  for (i = b; i < e; ++i) s += i;
  __atomic_fetch_add((int64_t*)ctx, s, __ATOMIC_RELAXED);
}

int main(void) {
  weft_pool_config cfg;
  weft_pool* pool = NULL;
  int64_t sum = 0;
  weft_status s;
  weft_pool_config_init(&cfg);
  cfg.workers = 2;
  if (weft_pool_create(&cfg, &pool) != WEFT_OK) {
    fprintf(stderr, "weft_pool_create: %s\n", weft_last_error());
    return 1;
  }
  s = weft_parallel_for(pool, 1, 100001, 0, add_range, &sum);
  weft_pool_destroy(pool);
  printf("C: sum of 1..100000 = %lld (%s)\n", (long long)sum, weft_status_string(s));
  return (s == WEFT_OK && sum == 5000050000LL) ? 0 : 1;
}
