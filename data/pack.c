/*
 * Best-fit-decreasing packing (see pack.h).
 */
#define _GNU_SOURCE /* qsort_r */
#include "pack.h"

#include <stdlib.h>

#include "../common/error.h"

static int by_len_desc(const void *a_, const void *b_, void *ctx) {
    const int *len = ctx;
    int a = *(const int *)a_, b = *(const int *)b_;
    if (len[a] != len[b]) return len[a] > len[b] ? -1 : 1;
    return (a > b) - (a < b);
}

/* segment tree over room values 0..cap: cnt[node] = bins with room in the node's range */
typedef struct {
    int size; /* leaves (power of two >= cap + 1) */
    int *cnt;
} RoomTree;

static void tree_add(RoomTree *t, int room, int delta) {
    for (int i = room + t->size; i >= 1; i >>= 1) t->cnt[i] += delta;
}

/* smallest room >= need with a bin, or -1 */
static int tree_find(const RoomTree *t, int need) {
    /* depth-first, left child first; a subtree is skipped when it is empty or lies wholly
     * below need, so the first leaf reached is the answer */
    int node = 1, lo = 0, hi = t->size - 1;
    int stack_node[64], stack_lo[64], stack_hi[64], sp = 0;
    for (;;) {
        if (hi < need || t->cnt[node] == 0) {
            if (sp == 0) return -1;
            sp--;
            node = stack_node[sp];
            lo = stack_lo[sp];
            hi = stack_hi[sp];
            continue;
        }
        if (lo == hi) return lo;
        int mid = (lo + hi) / 2;
        stack_node[sp] = 2 * node + 1;
        stack_lo[sp] = mid + 1;
        stack_hi[sp] = hi;
        sp++;
        node = 2 * node;
        hi = mid;
    }
}

int pack_bfd(const int *len, int n, int cap, int *bin_of, int *order) {
    int *idx = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) {
        SR_ASSERT(len[i] >= 1 && len[i] <= cap);
        idx[i] = i;
    }
    qsort_r(idx, (size_t)n, sizeof(int), by_len_desc, (void *)len);
    RoomTree t;
    t.size = 1;
    while (t.size < cap + 1) t.size <<= 1;
    t.cnt = sr_calloc((size_t)(2 * t.size), sizeof(int));
    int *head = sr_malloc((size_t)(cap + 1) * sizeof(int)); /* room -> bin that got it last */
    for (int r = 0; r <= cap; r++) head[r] = -1;
    int *next = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int)); /* stack link per bin */
    int *room = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    int n_bins = 0;
    for (int k = 0; k < n; k++) {
        int d = idx[k], need = len[d];
        int r = tree_find(&t, need);
        int b;
        if (r < 0) {
            b = n_bins++;
            room[b] = cap;
        } else {
            b = head[r]; /* unlink the bin from bucket r */
            head[r] = next[b];
            tree_add(&t, r, -1);
        }
        room[b] -= need;
        bin_of[d] = b;
        if (order) order[k] = d;
        /* push into its new bucket */
        next[b] = head[room[b]];
        head[room[b]] = b;
        tree_add(&t, room[b], +1);
    }
    free(room);
    free(next);
    free(head);
    free(t.cnt);
    free(idx);
    return n_bins;
}
