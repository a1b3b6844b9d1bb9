/*
 * Deterministic random numbers: splitmix64. One uint64_t of state per stream, so a stream
 * per sequence (sampling) or per tensor (init) is reproducible and cheap to carry in a
 * checkpoint. The same arithmetic runs on the GPU (kernels/cuda) for device-side sampling.
 */
#ifndef SR_COMMON_RNG_H
#define SR_COMMON_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t sr_rng_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 24 bits, exactly representable as float */
static inline float sr_rng_uniform(uint64_t *state) {
    return (float)(sr_rng_u64(state) >> 40) * (1.0f / 16777216.0f);
}

/* standard normal (Box-Muller, one value per call; uses two uniforms) */
static inline float sr_rng_normal(uint64_t *state) {
    double u1 = ((double)(sr_rng_u64(state) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(sr_rng_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* derive an independent stream from a seed and a stream index */
static inline uint64_t sr_rng_stream(uint64_t seed, uint64_t index) {
    uint64_t s = seed ^ (0xD1B54A32D192ED03ULL * (index + 1));
    return sr_rng_u64(&s);
}

#endif
