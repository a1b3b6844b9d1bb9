/* The memory this process may use (see sysmem.h). */
#include "sysmem.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static void take(uint64_t v, const char *name, uint64_t *best, const char **what) {
    if (v > 0 && v < *best) {
        *best = v;
        *what = name;
    }
}

uint64_t sr_memory_limit(const char **what) {
    uint64_t best = UINT64_MAX;
    const char *w = "no known limit";
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && psize > 0) take((uint64_t)pages * (uint64_t)psize, "this machine's memory", &best, &w);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        take((uint64_t)rl.rlim_cur, "the address-space limit (ulimit -v)", &best, &w);
    if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        take((uint64_t)rl.rlim_cur, "the data-segment limit (ulimit -d)", &best, &w);
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r"); /* cgroup v2; "max" when unlimited */
    if (f) {
        unsigned long long v = 0;
        if (fscanf(f, "%llu", &v) == 1) take((uint64_t)v, "the container's memory limit (cgroup memory.max)", &best, &w);
        fclose(f);
    }
    if (what) *what = w;
    return best;
}

int sr_memory_check(uint64_t need, const char *what, SrError *err) {
    const char *bound;
    uint64_t limit = sr_memory_limit(&bound);
    if (need <= limit) return 0;
    return sr_fail(err, "%s: %llu bytes (%.1f GiB) needed, more than %s (%llu bytes)", what,
                   (unsigned long long)need, (double)need / (1ull << 30), bound, (unsigned long long)limit);
}
