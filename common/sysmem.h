/*
 * How much memory this process may use, so that a model that cannot fit is refused with a
 * message (naming the file and the bytes) before anything is allocated, instead of an abort
 * in the middle of an allocation.
 */
#ifndef SR_COMMON_SYSMEM_H
#define SR_COMMON_SYSMEM_H

#include <stdint.h>

#include "error.h"

/* The smallest of: the machine's physical memory, the address-space and data-segment limits
 * (ulimit -v / -d) and the cgroup's memory.max; *what (may be NULL) names the one that bounds
 * it, e.g. "this machine's memory" or "the address-space limit (ulimit -v)". */
uint64_t sr_memory_limit(const char **what);

/* 0 if need bytes fit sr_memory_limit(), else -1 with err:
 *   "<what>: 549756160768 bytes (512.0 GiB) needed, more than this machine's memory (...)" */
int sr_memory_check(uint64_t need, const char *what, SrError *err);

#endif
