/* TensorBoard event-file writer: see tensorboard.h. */
#include "tensorboard.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"

/* reflected CRC-32C, polynomial 0x82F63B78; the table is built once (pthread_once) */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[i] = c;
    }
}

uint32_t sr_crc32c(const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t sr_tb_masked_crc(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/* ---- a minimal protobuf encoder ---------------------------------------------------------- */
typedef struct Buf {
    unsigned char b[512];
    size_t n;
} Buf;

static void put_varint(Buf *b, uint64_t v) {
    while (v >= 0x80) {
        b->b[b->n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    b->b[b->n++] = (unsigned char)v;
}

static void put_tag(Buf *b, int field, int wire) { put_varint(b, (uint64_t)(field << 3 | wire)); }

static void put_bytes(Buf *b, int field, const void *data, size_t n) {
    put_tag(b, field, 2);
    put_varint(b, n);
    memcpy(b->b + b->n, data, n);
    b->n += n;
}

static void put_fixed64(Buf *b, int field, double v) {
    put_tag(b, field, 1);
    memcpy(b->b + b->n, &v, 8); /* x86-64 and aarch64 are little-endian, as the format is */
    b->n += 8;
}

static void put_fixed32(Buf *b, int field, float v) {
    put_tag(b, field, 5);
    memcpy(b->b + b->n, &v, 4);
    b->n += 4;
}

static double wall_time(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static int write_record(SrTBWriter *w, const Buf *ev, SrError *err) {
    uint64_t len = ev->n;
    uint32_t lcrc = sr_tb_masked_crc(sr_crc32c(&len, 8));
    uint32_t dcrc = sr_tb_masked_crc(sr_crc32c(ev->b, ev->n));
    if (fwrite(&len, 8, 1, w->f) != 1 || fwrite(&lcrc, 4, 1, w->f) != 1 ||
        fwrite(ev->b, 1, ev->n, w->f) != ev->n || fwrite(&dcrc, 4, 1, w->f) != 1 ||
        fflush(w->f) != 0)
        return sr_fail(err, "%s: write failed (%s)", w->path, strerror(errno));
    return 0;
}

int sr_tb_open(SrTBWriter *w, const char *dir, SrError *err) {
    memset(w, 0, sizeof *w);
    if (sr_mkdir_p(dir, err)) return -1;
    char host[128] = "localhost", name[256];
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "events.out.tfevents.%ld.%s", (long)time(NULL), host);
    w->path = sr_path_join(dir, name);
    w->f = fopen(w->path, "ab");
    if (!w->f) {
        sr_fail(err, "%s: cannot create (%s)", w->path, strerror(errno));
        free(w->path);
        w->path = NULL;
        return -1;
    }
    Buf ev = {.n = 0};
    put_fixed64(&ev, 1, wall_time());
    put_bytes(&ev, 3, "brain.Event:2", 13);
    if (write_record(w, &ev, err)) {
        sr_tb_close(w);
        return -1;
    }
    return 0;
}

int sr_tb_scalar(SrTBWriter *w, const char *tag, int64_t step, float value, SrError *err) {
    size_t tl = strlen(tag);
    if (tl > 200) return sr_fail(err, "tensorboard tag '%.40s...' is too long", tag);
    Buf val = {.n = 0}, sum = {.n = 0}, ev = {.n = 0};
    put_bytes(&val, 1, tag, tl);
    put_fixed32(&val, 2, value);
    put_bytes(&sum, 1, val.b, val.n);
    put_fixed64(&ev, 1, wall_time());
    put_tag(&ev, 2, 0);
    put_varint(&ev, (uint64_t)step);
    put_bytes(&ev, 5, sum.b, sum.n);
    return write_record(w, &ev, err);
}

void sr_tb_close(SrTBWriter *w) {
    if (w->f) fclose(w->f);
    free(w->path);
    memset(w, 0, sizeof *w);
}
