/*
 * CUDA ops, output family: the fused log-softmax / cross-entropy / token log-prob op, and
 * sampling. One block per row of logits in both; rows are independent, so the model can call
 * them on chunks of tokens.
 *
 * cross_entropy (row i of logits [N, V], bf16):
 *   m = max_j x_j;  sum = sum_j exp(x_j - m) (exp in fp32, the sum in fp64, fixed tree);
 *   logprob[i] = x_t - (m + log sum)   (0 when t = targets[i] < 0);
 *   entropy[i] = log sum - (sum_j exp(x_j - m) (x_j - m)) / sum  (fp64 sums; 0 when t < 0);
 *   if grad_scale != 0: x_j <- bf16(grad_scale * w_i * (softmax_j - [j == t])), rows t < 0 -> 0.
 *
 * sample: the CPU rule (kernels/cpu/cpu_loss.c), reproduced without sorting the vocabulary,
 *   with each row's own parameters (an array of B SampleParams copied to the device with the
 *   RNG states, so greedy and sampled rows share one launch): every step below is a fixed
 *   number of passes over the row, whatever top-k / top-p keep;
 *   only the first n_valid columns of a row are read; z = x / T with NaN read as -inf; a row
 *   whose max z is not finite gives its argmax and log-prob NaN (a sampling row still draws);
 *   greedy = argmax with the lowest id on ties (RNG not advanced);
 *   top-k: the k-th largest z is found by bisection on the order-preserving 32-bit key of z
 *     (32 counting passes); tokens with z >= it are kept (ties at the edge kept, as HF);
 *   top-p: in the (z desc, id asc) order the kept set is a prefix; its last group of equal z
 *     is found by bisection on the key of "mass strictly above" (M(u) < p * mass), and the
 *     number kept inside that group (equal z, ids ascending) from the group's mass; its last id
 *     by bisection on ids;
 *   draw: u = splitmix64 uniform (common/rng.h, ported below, one draw per row), then the first
 *     kept token in ascending id order whose running sum of exp(z - max z) exceeds u * total:
 *     each thread owns a contiguous id range, an exclusive scan gives the mass before it.
 *   The sums are fp64 in a fixed order (the CPU sums sequentially): ids can differ from the
 *   CPU's only when u * total falls within rounding (~1e-16 relative) of a boundary.
 *   rng may be a host array (copied in and back) or a device buffer (advanced in place).
 */
#include "ops_cuda.h"

/* ---- reductions used here ------------------------------------------------------------------- */

struct OpMax {
    template <typename T>
    __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};
struct OpMin {
    template <typename T>
    __device__ T operator()(T a, T b) const { return a < b ? a : b; }
};

template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity) {
    __shared__ T sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = lane < nw ? sh[lane] : identity;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) r = op(r, __shfl_xor_sync(0xffffffffu, r, o));
    return r;
}

/* exclusive prefix sum over the threads of the block, in thread order */
__device__ double block_exclusive_scan(double v) {
    __shared__ double warp_tot[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    double incl = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        double t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    double excl = __shfl_up_sync(0xffffffffu, incl, 1);
    if (lane == 0) excl = 0.0;
    __syncthreads();
    if (lane == 31) warp_tot[wid] = incl;
    __syncthreads();
    double before = 0.0;
    for (int w = 0; w < nw && w < wid; w++) before += warp_tot[w];
    return before + excl;
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

#define CE_THREADS 512

__global__ void __launch_bounds__(CE_THREADS)
    cross_entropy_kernel(float *logprob, float *entropy, bf16 *logits, const int32_t *targets,
                         const float *weights, float grad_scale, int V) {
    int i = blockIdx.x;
    bf16 *x = logits + (size_t)i * V;
    int t = targets[i];
    if (t >= V) __trap(); /* the model validates targets */
    if (t < 0) {
        if (logprob && threadIdx.x == 0) logprob[i] = 0.0f;
        if (entropy && threadIdx.x == 0) entropy[i] = 0.0f;
        if (grad_scale != 0.0f)
            for (int j = threadIdx.x; j < V; j += blockDim.x) x[j] = f2bf(0.0f);
        return;
    }
    float xt = bf2f(x[t]); /* read before the reductions' barriers; x is overwritten after */
    float m = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, bf2f(x[j]));
    m = block_max(m);
    double sum = 0.0, ex = 0.0; /* ex: sum_j exp(x_j - m) (x_j - m), for the entropy */
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float d = bf2f(x[j]) - m, e = expf(d);
        sum += (double)e;
        ex += (double)e * d;
    }
    sum = block_sum(sum);
    if (entropy) ex = block_sum(ex); /* uniform branch: every thread or none */
    double lse = (double)m + log(sum);
    if (logprob && threadIdx.x == 0) logprob[i] = (float)((double)xt - lse);
    if (entropy && threadIdx.x == 0) entropy[i] = (float)(log(sum) - ex / sum);
    if (grad_scale != 0.0f) {
        float coef = grad_scale * (weights ? weights[i] : 1.0f);
        float inv = (float)(1.0 / sum);
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float p = expf(bf2f(x[j]) - m) * inv;
            x[j] = f2bf(coef * (j == t ? p - 1.0f : p));
        }
    }
}

void cuda_cross_entropy(SrBackend *be, float *logprob, float *entropy, void *logits,
                        const int32_t *targets, const float *weights, float grad_scale, int N,
                        int V) {
    CudaImpl *im = cuda_impl(be);
    SR_ASSERT(V > 0);
    if (N <= 0) return;
    cross_entropy_kernel<<<N, CE_THREADS, 0, im->stream>>>(logprob, entropy, (bf16 *)logits,
                                                           targets, weights, grad_scale, V);
    cudaCheckLaunch();
}

/* ---- sampling -------------------------------------------------------------------------------- */

/* common/rng.h, the same arithmetic on the device */
__device__ __forceinline__ uint64_t dev_rng_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ float dev_rng_uniform(uint64_t *state) {
    return (float)(dev_rng_u64(state) >> 40) * (1.0f / 16777216.0f);
}

/* order-preserving key of a float (-0 folded into +0, as == compares them) */
__device__ __forceinline__ uint32_t f2key(float f) {
    if (f == 0.0f) f = 0.0f;
    uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float key2f(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

struct SampleParams {
    float temperature;
    int top_k;
    float top_p;
    int greedy;
};

/* the CPU's keep test: z > zthr, or z == zthr and j <= jthr */
__device__ __forceinline__ bool kept(float z, int j, float zthr, int jthr) {
    return z > zthr || (z == zthr && j <= jthr);
}

#define SAMPLE_THREADS 1024

/* z of one logit: x (greedy) or x / T, NaN read as -inf */
__device__ __forceinline__ float zval(bf16 x, float T, bool greedy) {
    float v = greedy ? bf2f(x) : bf2f(x) / T;
    return isnan(v) ? -INFINITY : v;
}

/* one block per row b of logits [B, stride]; only ids < V are read (V = n_valid).
 * ids, lp: device [B]; params: device [B]; rng: device [B] (unused by greedy rows) */
__global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_kernel(int32_t *ids, float *lp, const bf16 *logits, int V, int stride,
                  const SampleParams *params, uint64_t *rng) {
    __shared__ double r_sh;
    int b = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    const bf16 *x = logits + (size_t)b * stride;
    const SampleParams sp = params[b];
    const float T = sp.temperature;
    const bool greedy = sp.greedy != 0;
#define ZV(j) zval(x[(j)], T, greedy)

    /* argmax (lowest id on ties): max of (key(z), ~j) */
    unsigned long long best = 0ull;
    for (int j = tid; j < V; j += nt) {
        unsigned long long kk = ((unsigned long long)f2key(ZV(j)) << 32) | (uint32_t)~(uint32_t)j;
        best = best > kk ? best : kk;
    }
    best = block_reduce(best, OpMax(), 0ull);
    int amax = (int)~(uint32_t)(best & 0xffffffffull);
    float m = key2f((uint32_t)(best >> 32));
    if (!isfinite(m)) { /* the CPU rule: argmax, log-prob NaN, a sampling row takes its draw */
        if (tid == 0) {
            if (!greedy) {
                uint64_t st = rng[b];
                (void)dev_rng_uniform(&st);
                rng[b] = st;
            }
            ids[b] = amax;
            if (lp) lp[b] = __int_as_float(0x7fc00000);
        }
        return;
    }
    double full = 0.0;
    for (int j = tid; j < V; j += nt) full += (double)expf(ZV(j) - m);
    full = block_sum(full);

    int id = amax;
    if (!greedy) {
        float zthr = -INFINITY;
        int jthr = V; /* keep everything */
        if (sp.top_k > 0 && sp.top_k < V) {
            /* largest key u with count(key >= u) >= k: the k-th largest z */
            uint32_t u = 0;
            for (int bit = 31; bit >= 0; bit--) {
                uint32_t cand = u | (1u << bit);
                int cnt = 0;
                for (int j = tid; j < V; j += nt) cnt += f2key(ZV(j)) >= cand;
                cnt = block_sum(cnt);
                if (cnt >= sp.top_k) u = cand;
            }
            zthr = key2f(u);
        }
        if (sp.top_p < 1.0f) {
            double mass = 0.0;
            for (int j = tid; j < V; j += nt) {
                float z = ZV(j);
                if (kept(z, j, zthr, jthr)) mass += (double)expf(z - m);
            }
            mass = block_sum(mass);
            double target = (double)sp.top_p * mass;
            if (!(target > 0.0)) { /* p = 0: only the first token in (z desc, id asc) order */
                zthr = m;
                jthr = amax;
            } else {
                /* M(u) = kept mass with key > u (non-increasing). Largest u with M(u) >= target;
                 * M(0xffffffff) = 0 < target, so u < 0xffffffff and u0 = u + 1. */
                uint32_t u = 0;
                for (int bit = 31; bit >= 0; bit--) {
                    uint32_t cand = u | (1u << bit);
                    double M = 0.0;
                    for (int j = tid; j < V; j += nt) {
                        float z = ZV(j);
                        if (kept(z, j, zthr, jthr) && f2key(z) > cand) M += (double)expf(z - m);
                    }
                    M = block_sum(M);
                    if (M >= target) u = cand;
                }
                uint32_t u0 = u + 1;
                /* the last kept group: the smallest kept key >= u0 (the max z has M = 0, so
                 * one exists) */
                uint32_t gkey = 0xffffffffu;
                for (int j = tid; j < V; j += nt) {
                    float z = ZV(j);
                    uint32_t kz = f2key(z);
                    if (kept(z, j, zthr, jthr) && kz >= u0 && kz < gkey) gkey = kz;
                }
                gkey = block_reduce(gkey, OpMin(), 0xffffffffu);
                double Ms = 0.0; /* mass strictly before the group */
                int cnt = 0;     /* group size */
                for (int j = tid; j < V; j += nt) {
                    float z = ZV(j);
                    if (!kept(z, j, zthr, jthr)) continue;
                    uint32_t kz = f2key(z);
                    if (kz > gkey) Ms += (double)expf(z - m);
                    else if (kz == gkey) cnt++;
                }
                Ms = block_sum(Ms);
                cnt = block_sum(cnt);
                float zs = key2f(gkey);
                double es = (double)expf(zs - m);
                /* member r (ids ascending) is kept iff r == 0 or Ms + r * es < target */
                long n_in = cnt;
                if (es > 0.0) {
                    double xx = ceil((target - Ms) / es);
                    n_in = xx < 1.0 ? 1 : xx > (double)cnt ? cnt : (long)xx;
                    while (n_in < cnt && Ms + (double)n_in * es < target) n_in++;
                    while (n_in > 1 && !(Ms + (double)(n_in - 1) * es < target)) n_in--;
                }
                /* jthr = the n_in-th smallest id of the group: smallest J with
                 * count(member, j <= J) >= n_in */
                int lo = -1, hi = V - 1;
                while (hi - lo > 1) {
                    int mid = lo + (hi - lo) / 2;
                    int c = 0;
                    for (int j = tid; j <= mid; j += nt) {
                        float z = ZV(j);
                        c += kept(z, j, zthr, jthr) && f2key(z) == gkey;
                    }
                    c = block_sum(c);
                    if (c >= n_in) hi = mid;
                    else lo = mid;
                }
                zthr = zs;
                jthr = hi;
            }
        }
        /* the draw */
        int chunk = (V + nt - 1) / nt;
        int c0 = min(V, tid * chunk), c1 = min(V, c0 + chunk);
        double cs = 0.0;
        int lastk = -1; /* last kept id with a nonzero weight */
        for (int j = c0; j < c1; j++) {
            float z = ZV(j);
            if (!kept(z, j, zthr, jthr)) continue;
            float e = expf(z - m);
            cs += (double)e;
            if (e > 0.0f) lastk = j;
        }
        double before = block_exclusive_scan(cs);
        double total = block_sum(cs);
        lastk = block_reduce(lastk, OpMax(), -1);
        if (tid == 0) {
            uint64_t st = rng[b];
            float uni = dev_rng_uniform(&st);
            rng[b] = st;
            r_sh = (double)uni * total;
        }
        __syncthreads();
        double r = r_sh;
        int found = V;
        if (before + cs > r || tid == nt - 1) { /* only threads whose range may cross r scan */
            double cum = before;
            for (int j = c0; j < c1; j++) {
                float z = ZV(j);
                if (!kept(z, j, zthr, jthr)) continue;
                cum += (double)expf(z - m);
                if (cum > r) {
                    found = j;
                    break;
                }
            }
        }
        found = block_reduce(found, OpMin(), V);
        id = found < V ? found : (lastk >= 0 ? lastk : amax);
    }
    if (tid == 0) {
        ids[b] = id;
        if (lp) lp[b] = (float)((double)ZV(id) - (double)m - log(full));
    }
#undef ZV
}

void cuda_sample(SrBackend *be, int32_t *out_ids, float *out_logprob, const void *logits, int B,
                 int V, int n_valid, const SrSampling *s, uint64_t *rng) {
    CudaImpl *im = cuda_impl(be);
    SR_ASSERT(V > 0 && n_valid >= 1 && n_valid <= V);
    if (B <= 0) return;
    /* the rows' parameters, staged on the host and copied in with one transfer */
    SampleParams *hp = (SampleParams *)malloc((size_t)B * sizeof(SampleParams));
    SR_ASSERT(hp);
    bool any_sampled = false;
    for (int b = 0; b < B; b++) {
        hp[b].greedy = !s || s[b].temperature <= 0.0f;
        hp[b].temperature = s ? s[b].temperature : 0.0f;
        hp[b].top_k = s ? s[b].top_k : 0;
        hp[b].top_p = s ? s[b].top_p : 1.0f;
        any_sampled |= !hp[b].greedy;
    }
    /* scratch: rng [B] u64, ids [B] i32, lp [B] f32, params [B] */
    char *sc = (char *)cuda_scratch(im, (size_t)B * (16 + sizeof(SampleParams)));
    uint64_t *d_rng = (uint64_t *)sc;
    int32_t *d_ids = (int32_t *)(sc + (size_t)B * 8);
    float *d_lp = (float *)(sc + (size_t)B * 12);
    SampleParams *d_params = (SampleParams *)(sc + (size_t)B * 16);
    cudaCheck(cudaMemcpyAsync(d_params, hp, (size_t)B * sizeof(SampleParams),
                              cudaMemcpyHostToDevice, im->stream));
    bool rng_on_host = false;
    if (any_sampled) {
        SR_ASSERT(rng);
        cudaPointerAttributes at;
        cudaCheck(cudaPointerGetAttributes(&at, rng));
        if (at.type == cudaMemoryTypeDevice) {
            d_rng = rng;
        } else {
            rng_on_host = true;
            cudaCheck(cudaMemcpyAsync(d_rng, rng, (size_t)B * 8, cudaMemcpyHostToDevice,
                                      im->stream));
        }
    }
    sample_kernel<<<B, SAMPLE_THREADS, 0, im->stream>>>(d_ids, d_lp, (const bf16 *)logits, n_valid,
                                                        V, d_params, d_rng);
    cudaCheckLaunch();
    cudaCheck(cudaMemcpyAsync(out_ids, d_ids, (size_t)B * 4, cudaMemcpyDeviceToHost, im->stream));
    if (out_logprob)
        cudaCheck(cudaMemcpyAsync(out_logprob, d_lp, (size_t)B * 4, cudaMemcpyDeviceToHost,
                                  im->stream));
    if (rng_on_host)
        cudaCheck(cudaMemcpyAsync(rng, d_rng, (size_t)B * 8, cudaMemcpyDeviceToHost, im->stream));
    cudaCheck(cudaStreamSynchronize(im->stream));
    free(hp); /* after the sync: the copy from it was asynchronous */
}
