/*
 * IEEE binary16 <-> fp32 (see dtype.h). Bit manipulation only, so the result does not depend
 * on the compiler, the FPU rounding mode or _Float16 support.
 *
 * binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
 *   normal    (-1)^s * 2^(e-15) * 1.m     e in 1..30
 *   subnormal (-1)^s * 2^-14    * 0.m     e == 0  (smallest 2^-24)
 *   e == 31: inf (m == 0) or NaN.
 */
#include "dtype.h"

float sr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;
    uint32_t u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13); /* inf, or NaN keeping its payload */
    } else if (e != 0) {
        u = sign | ((e + 112u) << 23) | (m << 13); /* rebias 15 -> 127 */
    } else if (m == 0) {
        u = sign; /* +-0 */
    } else {
        /* subnormal: normalise. value = m * 2^-24; shift the leading 1 up to bit 10. */
        int k = 0;
        while (!(m & 0x400u)) {
            m <<= 1;
            k++;
        }
        /* now value = 1.(m & 0x3ff) * 2^(-14 - k) */
        u = sign | ((uint32_t)(127 - 14 - k) << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t sr_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) /* NaN: quiet it, keep the top payload bits */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    /* 65520 = 0x477ff000 is halfway between the largest half (65504) and 2^16: ties go to the
     * even neighbour, which is infinity. */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) { /* >= 2^-14: a normal half */
        /* round the 13 dropped mantissa bits to nearest, ties to even; a carry into the
         * exponent is the correct result (e.g. 2047.5 ulp -> next binade). */
        uint32_t r = ax + 0x0fffu + ((ax >> 13) & 1u);
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13)); /* rebias 127 -> 15 */
    }
    if (ax <= 0x33000000u) return sign; /* <= 2^-25: halfway to the smallest subnormal ties to 0 */
    /* subnormal half: result = round(|f| * 2^24) with |f| = M * 2^(e - 150). */
    uint32_t e = ax >> 23;
    uint32_t M = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 */
    uint32_t q = M >> shift;
    uint32_t rem = M & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++; /* q == 0x400 is the smallest normal */
    return (uint16_t)(sign | q);
}
