/*
 * TensorBoard event files: CRC-32C against the standard check values, and a written file
 * read back record by record (lengths, both masked CRCs, the Event fields). That TensorBoard's
 * own EventFileLoader reads these files was checked with tensorboard 2.20.0
 * (scripts/check_tensorboard.py).
 */
#include <string.h>

#include "common/tensorboard.h"
#include "harness.h"

static uint64_t rd_varint(const unsigned char *p, size_t *i) {
    uint64_t v = 0;
    int s = 0;
    while (p[*i] & 0x80) v |= (uint64_t)(p[(*i)++] & 0x7f) << s, s += 7;
    v |= (uint64_t)p[(*i)++] << s;
    return v;
}

int main(void) {
    /* CRC-32C check values (RFC 3720 appendix B.4 and the usual "123456789") */
    CHECK(sr_crc32c("123456789", 9) == 0xE3069283u);
    unsigned char zeros[32] = {0}, ones[32];
    memset(ones, 0xff, 32);
    CHECK(sr_crc32c(zeros, 32) == 0x8A9136AAu);
    CHECK(sr_crc32c(ones, 32) == 0x62A8AB43u);

    const char *dir = sr_test_tmpdir("tensorboard");
    SrTBWriter w;
    SrError err;
    CHECK(sr_tb_open(&w, dir, &err) == 0);
    char path[4096];
    snprintf(path, sizeof path, "%s", w.path);
    CHECK(sr_tb_scalar(&w, "train/loss", 7, 2.5f, &err) == 0);
    CHECK(sr_tb_scalar(&w, "train/lr", 8, 1e-4f, &err) == 0);
    sr_tb_close(&w);

    size_t n = 0;
    unsigned char *d = (unsigned char *)sr_test_read_file(path, &n);
    CHECK(d != NULL);
    size_t off = 0;
    int records = 0, scalars = 0;
    while (d && off + 12 <= n) {
        uint64_t len;
        uint32_t lcrc, dcrc;
        memcpy(&len, d + off, 8);
        memcpy(&lcrc, d + off + 8, 4);
        CHECK(lcrc == sr_tb_masked_crc(sr_crc32c(d + off, 8)));
        CHECK(off + 12 + len + 4 <= n);
        if (off + 12 + len + 4 > n) break;
        const unsigned char *ev = d + off + 12;
        memcpy(&dcrc, ev + len, 4);
        CHECK(dcrc == sr_tb_masked_crc(sr_crc32c(ev, len)));
        CHECK(ev[0] == (1 << 3 | 1)); /* wall_time, fixed64 */
        if (records == 0) {
            CHECK(ev[9] == (3 << 3 | 2) && ev[10] == 13 && memcmp(ev + 11, "brain.Event:2", 13) == 0);
        } else {
            size_t i = 9;
            CHECK(ev[i++] == (2 << 3 | 0));
            int64_t step = (int64_t)rd_varint(ev, &i);
            CHECK(step == (records == 1 ? 7 : 8));
            CHECK(ev[i++] == (5 << 3 | 2));
            rd_varint(ev, &i);                  /* summary length */
            CHECK(ev[i++] == (1 << 3 | 2));     /* value */
            rd_varint(ev, &i);
            CHECK(ev[i++] == (1 << 3 | 2));     /* tag */
            uint64_t tl = rd_varint(ev, &i);
            const char *want = records == 1 ? "train/loss" : "train/lr";
            CHECK(tl == strlen(want) && memcmp(ev + i, want, tl) == 0);
            i += tl;
            CHECK(ev[i++] == (2 << 3 | 5));     /* simple_value, fixed32 */
            float v;
            memcpy(&v, ev + i, 4);
            CHECK(v == (records == 1 ? 2.5f : 1e-4f));
            scalars++;
        }
        off += 12 + len + 4;
        records++;
    }
    CHECK(off == n);
    CHECK(records == 3 && scalars == 2);
    free(d);
    return sr_test_done();
}
