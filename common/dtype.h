/*
 * Scalar conversions between fp32 and the 16-bit float formats stored in safetensors.
 * bf16: round-to-nearest-even (as torch's .to(torch.bfloat16)); NaN stays NaN.
 * f16:  IEEE binary16, round-to-nearest-even, with subnormals, inf and NaN.
 */
#ifndef SR_COMMON_DTYPE_H
#define SR_COMMON_DTYPE_H

#include <stdint.h>
#include <string.h>

static inline float sr_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t sr_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float sr_f16_to_f32(uint16_t h);
uint16_t sr_f32_to_f16(float f);

#endif
