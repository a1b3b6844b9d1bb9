/*
 * Tiny Qwen2 models for the tests: one config builder and one randomizer, shared by the model,
 * engine, generation and split-decoding tests.
 */
#ifndef SR_TESTS_MODEL_FIXTURE_H
#define SR_TESTS_MODEL_FIXTURE_H

#include <stdint.h>

#include "model/model.h"

/* V ids, hidden C, L layers, Hq / Hkv heads of D, intermediate I; max_position_embeddings 512,
 * theta 1e4, eps 1e-6, initializer_range 0.2, untied, no bos/eos, float32 (change fields after) */
Qwen2Config sr_test_qwen2_config(int V, int C, int L, int Hq, int Hkv, int D, int I);
/* HF init, then non-trivial biases and norm weights (so that bugs there would show) */
void sr_test_randomize(Qwen2Model *m, uint64_t seed);

#endif
