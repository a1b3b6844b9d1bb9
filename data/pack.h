/*
 * Best-fit-decreasing packing of documents into sequences of at most `cap` tokens.
 * Documents are taken longest first (ties: lower index first); each goes into the open bin
 * with the least room that still fits it (ties: the bin whose room changed last), or opens a
 * new bin.
 * O(n log n + n log cap): bins are kept in buckets by remaining room, found with a segment
 * tree over the room values.
 */
#ifndef SR_DATA_PACK_H
#define SR_DATA_PACK_H

/* len[i] in [1, cap]. Writes the bin of each document into bin_of[i] and returns the number
 * of bins. order (may be NULL) receives the documents in placement order (a permutation),
 * which is the order they sit in inside each bin. */
int pack_bfd(const int *len, int n, int cap, int *bin_of, int *order);

#endif
