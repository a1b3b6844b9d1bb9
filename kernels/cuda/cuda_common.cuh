/*
 * Shared by the CUDA backend's .cu files: error checks, the backend-private
 * state (CudaImpl), bf16 helpers, warp/block reductions and launch helpers.
 *
 * Every CUDA / cuBLAS call goes through cudaCheck / cublasCheck: a failure there is an
 * internal invariant (or a dead GPU), so it prints file, line, the call and a hint, and aborts.
 * Kernel launches are followed by cudaCheckLaunch() (cudaGetLastError: bad launch
 * configurations show up at once; faults inside a kernel show up at the next synchronising
 * call, so set CUDA_LAUNCH_BLOCKING=1 to pin them down).
 *
 * Reductions are deterministic: a block reduces in a fixed tree (warp shuffles, then one warp
 * over the warp results), grids write per-block partials that a second pass adds in order.
 * No floating-point atomics anywhere in the backend.
 */
#ifndef SR_KERNELS_CUDA_COMMON_CUH
#define SR_KERNELS_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "../ops.h"
}

typedef __nv_bfloat16 bf16;

/* ---- error checks ------------------------------------------------------------------------- */

void cuda_check_fail(cudaError_t e, const char *call, const char *file, int line);
void cublas_check_fail(int status, const char *call, const char *file, int line);

#define cudaCheck(call)                                                        \
    do {                                                                       \
        cudaError_t e_ = (call);                                               \
        if (e_ != cudaSuccess) cuda_check_fail(e_, #call, __FILE__, __LINE__); \
    } while (0)

#define cudaCheckLaunch() cudaCheck(cudaGetLastError())

#define cublasCheck(call)                                                                \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) cublas_check_fail((int)s_, #call, __FILE__, __LINE__); \
    } while (0)

/* ---- backend state ------------------------------------------------------------------------ */

/* one cached cuBLASLt heuristic result, keyed by the problem and the operand alignments */
typedef struct GemmAlgo {
    int key[14];
    int valid;   /* 1: algo usable; 0: cuBLASLt found none (use cublasGemmEx) */
    cublasLtMatmulAlgo_t algo;
} GemmAlgo;

#define SR_CUDA_GEMM_CACHE 128

typedef struct CudaImpl {
    int device;
    int sm_count;
    cudaStream_t stream;          /* every op runs on this one stream, in order */
    cublasLtHandle_t lt;
    cublasHandle_t blas;          /* fallback for shapes cuBLASLt declines */
    void *lt_ws;                  /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    void *scratch;                /* growable scratch shared by ops (stream-ordered reuse) */
    size_t scratch_bytes;
    GemmAlgo gemm_cache[SR_CUDA_GEMM_CACHE];
    int gemm_n;
    int attn_simple;              /* 1: reference attention kernels (SR_CUDA_ATTN=simple) */
} CudaImpl;

/* the impl of a CUDA backend, with its device made current */
static inline CudaImpl *cuda_impl(SrBackend *be) {
    CudaImpl *im = (CudaImpl *)be->impl;
    if (!im) {
        fprintf(stderr, "splitreason: internal error: CUDA op called on a backend without state\n");
        abort();
    }
    cudaCheck(cudaSetDevice(im->device));
    return im;
}

/* scratch of at least `bytes` on the device; valid until the next cuda_scratch call. Growing
 * waits for the stream so no queued kernel still reads the old block. */
void *cuda_scratch(CudaImpl *im, size_t bytes);

/* ---- small helpers ------------------------------------------------------------------------ */

static inline unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

/* a grid-stride launch size for n elements (capped: the kernels loop) */
static inline unsigned grid_for(size_t n, int threads) {
    size_t g = (n + threads - 1) / threads;
    if (g > 65536u * 8u) g = 65536u * 8u;
    return g == 0 ? 1u : (unsigned)g;
}

__device__ __forceinline__ float bf2f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 f2bf(float x) { return __float2bfloat16_rn(x); }
/* round a float through bf16 (the "to_act" of the contract) */
__device__ __forceinline__ float round_bf16(float x) { return bf2f(f2bf(x)); }

/* ---- reductions (blockDim.x must be a multiple of 32) --------------------------------------- */

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* block-wide sum, returned to every thread; safe to call repeatedly */
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* the previous call's readers are done with sh */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = lane < nw ? sh[lane] : (T)0;
    return warp_sum(r);
}

/* block-wide max of floats, returned to every thread */
__device__ inline float block_max(float v) {
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(r);
}

/* ---- column sums (deterministic, two passes) ---------------------------------------------
 * partial[rb, c] = sum over rows i of block rb of  g[i,c] * (x ? x[i,c] * rstd[i] : 1)
 * then dst[c] = to_act(dst[c] + sum_rb partial[rb, c]). Used by RMSNorm dw and matmul dbias. */
void cuda_colsum_accumulate(CudaImpl *im, bf16 *dst, const bf16 *g, const bf16 *x,
                            const float *rstd, int N, int C);

#endif
