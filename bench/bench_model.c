/*
 * CPU training throughput of the Qwen2 model: forward + backward tokens/s on a small
 * config (compare: scripts/bench_model_torch.py, the same model in PyTorch fp32 on the CPU).
 *
 *   config: 4 layers, hidden 256, 4 heads, 2 KV heads (head_dim 64), intermediate 1024,
 *           vocab 32000 (not Qwen2's 151936: keeps the lm_head from dominating), untied
 *   batch:  one document of N tokens (default 1024), every token a target
 *
 * Prints wall-clock tokens/s and tokens per CPU-second (the latter is steadier when other
 * work shares the machine).
 * Usage: bench_model [N] [iters]     threads: OMP_NUM_THREADS (default: all cores)
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "model/model.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 1024;
    int iters = argc > 2 ? atoi(argv[2]) : 5;
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    Qwen2Config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 32000;
    c.hidden_size = 256;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 64;
    c.intermediate_size = 1024;
    c.max_position_embeddings = 4096;
    c.rope_theta = 10000.0f;
    c.rms_norm_eps = 1e-6f;
    c.initializer_range = 0.02f;
    c.tie_word_embeddings = 0;
    Qwen2Model m;
    if (qwen2_build(&m, &c, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    qwen2_init_random(&m, 1);

    int32_t *ids = malloc((size_t)N * 4), *pos = malloc((size_t)N * 4), *tg = malloc((size_t)N * 4);
    uint64_t rng = 3;
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)(sr_rng_u64(&rng) % (uint64_t)c.vocab_size);
        pos[i] = i;
    }
    for (int i = 0; i < N; i++) tg[i] = i + 1 < N ? ids[i + 1] : -1;

    float loss = 0;
    double t_fwd = 0, t_all = 0, cpu_all = 0;
    for (int it = -1; it < iters; it++) { /* it = -1: warm-up */
        double t0 = now();
        clock_t c0 = clock();
        qwen2_zero_grad(&m);
        if (qwen2_forward(&m, ids, pos, tg, NULL, N, &loss, NULL, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t1 = now();
        if (qwen2_backward(&m, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t2 = now();
        if (it >= 0) {
            t_fwd += t1 - t0;
            t_all += t2 - t0;
            cpu_all += (double)(clock() - c0) / CLOCKS_PER_SEC;
        }
    }
    /* the fused training step (lm_head backward inside the forward: logits computed once) */
    double t_fused = 0;
    for (int it = -1; it < iters; it++) {
        double t0 = now();
        qwen2_zero_grad(&m);
        if (qwen2_forward_backward(&m, ids, pos, tg, NULL, N, &loss, NULL, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (it >= 0) t_fused += now() - t0;
    }
    long long np = qwen2_config_num_params(&c);
    printf("bench_model (C, cpu ops, %d threads): L=%d C=%d Hq=%d Hkv=%d D=%d I=%d V=%d "
           "params=%.2fM N=%d iters=%d\n", omp_get_max_threads(), c.num_hidden_layers,
           c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
           c.intermediate_size, c.vocab_size, np / 1e6, N, iters);
    printf("  loss %.4f  forward %.1f ms  forward+backward %.1f ms  ->  %.0f tokens/s "
           "(forward only %.0f tokens/s)\n", loss, 1e3 * t_fwd / iters, 1e3 * t_all / iters,
           N * iters / t_all, N * iters / t_fwd);
    printf("  fused forward_backward %.1f ms  ->  %.0f tokens/s\n", 1e3 * t_fused / iters,
           N * iters / t_fused);
    /* CPU seconds (all threads): steadier than wall time on a shared machine */
    printf("  forward+backward CPU time %.1f ms  ->  %.0f tokens per CPU-second\n",
           1e3 * cpu_all / iters, N * iters / cpu_all);
    free(ids);
    free(pos);
    free(tg);
    qwen2_free(&m);
    sr_backend_free(&be);
    return 0;
}
