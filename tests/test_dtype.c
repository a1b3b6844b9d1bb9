/*
 * fp32 <-> f16 / bf16 conversions (common/dtype.h, common/dtype.c).
 *   1. f16 -> f32 for all 65536 halves against a formula in double (ldexp), NaN kept NaN.
 *   2. f32 -> f16 -> f32 is the identity on every non-NaN half (both zeros included).
 *   3. f32 -> f16 against an independent reference (scale, nearbyint = ties-to-even) on every
 *      tie between neighbouring halves, one fp32 ulp either side of it, and 2M random fp32.
 *   4. Golden: torch's .to(float16) and .to(bfloat16) of tests/fixtures/formats/conv.safetensors'
 *      conv_src (made by scripts/make_formats_golden.py) must match bit for bit.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/dtype.h"
#include "common/safetensors.h"
#include "harness.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* the value of a half, by its definition */
static double ref_f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    if (e == 31) v = INFINITY;
    return s ? -v : v;
}

/* fp32 -> half by arithmetic in double (exact: scaling by powers of two), rounding with
 * nearbyint in the default ties-to-even mode. Not for NaN. */
static uint16_t ref_f32_to_f16(float f) {
    uint16_t s = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return s | 0x7c00;
    if (a < 0x1p-14) return s | (uint16_t)nearbyint(a * 0x1p24); /* 1024 = smallest normal */
    int e;
    frexp(a, &e); /* a in [2^(e-1), 2^e) */
    int E = e - 1;
    double q = nearbyint(ldexp(a, 10 - E)); /* in [1024, 2048] */
    if (q == 2048) {
        q = 1024;
        E++;
    }
    if (E > 15) return s | 0x7c00;
    return s | (uint16_t)((E + 15) << 10) | (uint16_t)(q - 1024);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

int main(void) {
    /* 1 + 2: every half */
    int bad_value = 0, bad_nan = 0, bad_trip = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sr_f16_to_f32((uint16_t)h);
        int is_nan = ((h >> 10) & 31) == 31 && (h & 1023);
        if (is_nan) {
            if (!isnan(f) || !!signbit(f) != (int)(h >> 15)) bad_nan++;
            /* NaN -> f16 stays NaN with the same sign (and quiet) */
            uint16_t back = sr_f32_to_f16(f);
            if (((back >> 10) & 31) != 31 || !(back & 0x200) || (back >> 15) != (h >> 15)) bad_nan++;
            continue;
        }
        double want = ref_f16_value((uint16_t)h);
        if ((double)f != want || !!signbit(f) != !!signbit(want)) bad_value++;
        if (sr_f32_to_f16(f) != h) bad_trip++;
    }
    CHECKF(bad_value == 0, "%d halves convert to the wrong fp32", bad_value);
    CHECKF(bad_nan == 0, "%d NaN halves mishandled", bad_nan);
    CHECKF(bad_trip == 0, "%d halves do not survive f16 -> f32 -> f16", bad_trip);
    CHECK(sr_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(sr_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    CHECK(sr_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(sr_f16_to_f32(0x3555) == (float)ref_f16_value(0x3555));

    /* 3a: ties and their neighbours, for every pair of adjacent finite halves */
    int bad_tie = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double lo = ref_f16_value((uint16_t)h), hi = ref_f16_value((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2); /* exact: a half has 11 significant bits */
        float cases[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int k = 0; k < 3; k++)
            for (int sgn = 0; sgn < 2; sgn++) {
                float x = sgn ? -cases[k] : cases[k];
                if (sr_f32_to_f16(x) != ref_f32_to_f16(x)) bad_tie++;
            }
        /* a tie goes to the even one */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (sr_f32_to_f16(mid) != even) bad_tie++;
    }
    CHECKF(bad_tie == 0, "%d tie cases round wrongly", bad_tie);
    CHECK(sr_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(sr_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(sr_f32_to_f16(-1e10f) == 0xfc00);
    CHECK(sr_f32_to_f16(INFINITY) == 0x7c00);
    CHECK(sr_f32_to_f16(0x1p-25f) == 0x0000);                  /* tie with 0 -> 0 (even) */
    CHECK(sr_f32_to_f16(nextafterf(0x1p-25f, 1)) == 0x0001);   /* just above the tie */
    CHECK(sr_f32_to_f16(1.5f * 0x1p-24f) == 0x0002);           /* tie 1|2 -> 2 */
    CHECK(sr_f32_to_f16(2.5f * 0x1p-24f) == 0x0002);           /* tie 2|3 -> 2 */
    CHECK(sr_f32_to_f16(-0.0f) == 0x8000);
    CHECK(sr_f32_to_f16(1e-45f) == 0x0000);

    /* 3b: random fp32 bit patterns (finite) */
    int bad_rand = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rng_next() ^ (rng_next() << 16);
        float x = bits_f32(u);
        if (isnan(x)) continue;
        if (sr_f32_to_f16(x) != ref_f32_to_f16(x)) bad_rand++;
    }
    CHECKF(bad_rand == 0, "%d random fp32 convert differently from the reference", bad_rand);

    /* 4: torch's conversions */
    SafeTensors st;
    SrError err;
    int rc = safetensors_open(&st, sr_test_fixture("formats/conv.safetensors"), &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        const StTensor *src = safetensors_find(&st, "conv_src");
        const StTensor *h16 = safetensors_find(&st, "conv_f16");
        const StTensor *b16 = safetensors_find(&st, "conv_bf16");
        CHECK(src && h16 && b16);
        if (src && h16 && b16) {
            CHECK(src->dtype == ST_F32 && h16->dtype == ST_F16 && b16->dtype == ST_BF16);
            CHECK(src->numel > 5000 && h16->numel == src->numel && b16->numel == src->numel);
            int bad16 = 0, badbf = 0, bad_back = 0;
            for (size_t i = 0; i < src->numel; i++) {
                float x;
                uint16_t want16, wantbf;
                memcpy(&x, (const char *)src->data + 4 * i, 4);
                memcpy(&want16, (const char *)h16->data + 2 * i, 2);
                memcpy(&wantbf, (const char *)b16->data + 2 * i, 2);
                if (sr_f32_to_f16(x) != want16) {
                    if (bad16++ < 5) fprintf(stderr, "  f16: x=%a (0x%08x) got 0x%04x torch 0x%04x\n", x, f32_bits(x), sr_f32_to_f16(x), want16);
                }
                /* torch's vectorised bf16 cast writes NaN as 0xffff; any NaN is a NaN */
                int both_nan = isnan(x) && (wantbf & 0x7f80) == 0x7f80 && (wantbf & 0x7f) &&
                               (sr_f32_to_bf16(x) & 0x7f80) == 0x7f80 && (sr_f32_to_bf16(x) & 0x7f);
                if (sr_f32_to_bf16(x) != wantbf && !both_nan) {
                    if (badbf++ < 5) fprintf(stderr, "  bf16: x=%a got 0x%04x torch 0x%04x\n", x, sr_f32_to_bf16(x), wantbf);
                }
                /* the converted value read back is what torch's .float() gives: the half's value */
                float back = sr_f16_to_f32(want16);
                if (!isnan(x) && (double)back != ref_f16_value(want16)) bad_back++;
            }
            CHECKF(bad16 == 0, "%d of %zu fp32 -> f16 differ from torch", bad16, src->numel);
            CHECKF(badbf == 0, "%d of %zu fp32 -> bf16 differ from torch", badbf, src->numel);
            CHECK(bad_back == 0);
        }
        safetensors_close(&st);
    }
    return sr_test_done();
}
