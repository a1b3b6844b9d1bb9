/*
 * TensorBoard event files, written directly: the format TensorBoard's EventFileLoader reads.
 *
 * A file "events.out.tfevents.<secs>.<host>" is a sequence of records
 *   uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)
 * (little-endian; masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8), each data an
 * Event protobuf: wall_time (1, double), step (2, int64), file_version (3, string, first
 * record "brain.Event:2") or summary (5) { value (1) { tag (1, string), simple_value (2, float) } }.
 * Records are flushed as they are written so a crashed run keeps what it logged.
 */
#ifndef SR_COMMON_TENSORBOARD_H
#define SR_COMMON_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

typedef struct SrTBWriter {
    FILE *f;
    char *path;
} SrTBWriter;

/* Creates dir/events.out.tfevents.<time>.<host> and writes the file_version record. */
int sr_tb_open(SrTBWriter *w, const char *dir, SrError *err);
/* One scalar summary record: tag (e.g. "train/loss") at step. */
int sr_tb_scalar(SrTBWriter *w, const char *tag, int64_t step, float value, SrError *err);
void sr_tb_close(SrTBWriter *w);

/* CRC-32C (Castagnoli), as TFRecord uses it; exposed for tests. */
uint32_t sr_crc32c(const void *data, size_t n);
uint32_t sr_tb_masked_crc(uint32_t crc);

#endif
