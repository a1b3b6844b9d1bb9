/*
 * CUDA ops, linear layers: y = x W^T + b and its backward, through cuBLASLt
 * (bf16 operands, fp32 compute and scaling, bf16 results).
 *
 * Row-major [R, K] is column-major [K, R] with leading dimension K, so the products become
 * column-major GEMMs D(m x n) = op(A) op(B) (+ beta D) (+ bias[m] over columns):
 *   forward   out^T[OC, N]  = W[C, OC]^T . inp^T[C, N]           m=OC, n=N,  k=C   (A=W, T)
 *   dinp      dinp^T[C, N] += W[C, OC]   . dout^T[OC, N]         m=C,  n=N,  k=OC  (beta 1)
 *   dW        dW^T[C, OC]  += inp^T[C, N] . (dout^T[OC, N])^T    m=C,  n=OC, k=N   (beta 1)
 *   dbias     column sums of dout over tokens (cuda_colsum_accumulate, deterministic)
 * The accumulating GEMMs read the bf16 gradient, add in fp32 and round once.
 *
 * The bias rides in the cuBLASLt epilogue when its pointer is 16-byte aligned (the epilogue
 * needs that), otherwise a small kernel adds it. cuBLASLt's heuristic answer is cached per
 * (shape, transposes, leading dims, operand alignments); when cuBLASLt offers no algorithm
 * (odd leading dimensions, small alignments) the GEMM goes to cublasGemmEx, which takes any
 * shape. Both are deterministic for a fixed shape.
 */
#include <string.h>

#include "ops_cuda.h"

/* largest power of two (<= 256) dividing the address */
static int ptr_alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 1;
    while (al < 256 && (a & (uintptr_t)(2 * al - 1)) == 0) al *= 2;
    return al;
}

/* out[i, o] += bias[o] over an [N, OC] row-major bf16 matrix */
__global__ void add_bias_kernel(bf16 *out, const bf16 *bias, int N, int OC) {
    size_t total = (size_t)N * OC;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x)
        out[t] = f2bf(bf2f(out[t]) + bf2f(bias[t % OC]));
}

static GemmAlgo *gemm_lookup(CudaImpl *im, const int *key, int nkey, cublasLtMatmulDesc_t desc,
                             cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                             cublasLtMatrixLayout_t ld, const int *align) {
    for (int e = 0; e < im->gemm_n; e++)
        if (memcmp(im->gemm_cache[e].key, key, nkey * sizeof(int)) == 0) return &im->gemm_cache[e];
    /* not cached: ask the heuristic (dropping the oldest entry once the cache is full) */
    GemmAlgo *g;
    if (im->gemm_n < SR_CUDA_GEMM_CACHE) {
        g = &im->gemm_cache[im->gemm_n++];
    } else {
        memmove(&im->gemm_cache[0], &im->gemm_cache[1],
                (SR_CUDA_GEMM_CACHE - 1) * sizeof(GemmAlgo));
        g = &im->gemm_cache[SR_CUDA_GEMM_CACHE - 1];
    }
    memset(g, 0, sizeof *g);
    memcpy(g->key, key, nkey * sizeof(int));
    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = im->lt_ws_bytes;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &ws, sizeof ws));
    const cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int a = 0; a < 4; a++) {
        uint32_t v = (uint32_t)align[a];
        cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, al_attr[a], &v, sizeof v));
    }
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(im->lt, desc, la, lb, ld, ld, pref, 1, &res, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        g->valid = 1;
        g->algo = res.algo;
    }
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    return g;
}

/* D(m x n, ld ldd) = op(A) op(B) + beta * D (+ bias[m] broadcast over the n columns);
 * all column-major bf16, fp32 compute. */
static void gemm_bf16(CudaImpl *im, bool ta, bool tb, int m, int n, int k, const bf16 *A, int lda,
                      const bf16 *B, int ldb, bf16 *D, int ldd, float beta, const bf16 *bias) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* empty product: D = beta D (+ bias) */
        if (beta == 0.0f)
            cudaCheck(cudaMemsetAsync(D, 0, (size_t)n * ldd * sizeof(bf16), im->stream));
        if (bias) {
            SR_ASSERT(ldd == m);
            add_bias_kernel<<<grid_for((size_t)m * n, 256), 256, 0, im->stream>>>(D, bias, n, m);
            cudaCheckLaunch();
        }
        return;
    }
    float alpha = 1.0f;
    int fuse_bias = bias && ptr_alignment(bias) >= 16;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;

    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasCheck(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (fuse_bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = CUDA_R_16BF;
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                   sizeof bias));
        cublasCheck(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                                   sizeof bt));
    }
    cublasCheck(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta ? k : m, ta ? m : k, lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb ? n : k, tb ? k : n, ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, ldd));

    int align[4] = {ptr_alignment(A), ptr_alignment(B), ptr_alignment(D), ptr_alignment(D)};
    int key[14] = {ta, tb, m, n, k, lda, ldb, ldd, beta != 0.0f, fuse_bias,
                   align[0], align[1], align[2], 0};
    GemmAlgo *g = gemm_lookup(im, key, 14, desc, la, lb, ld, align);

    if (g->valid) {
        cublasCheck(cublasLtMatmul(im->lt, desc, &alpha, A, la, B, lb, &beta, D, ld, D, ld,
                                   &g->algo, im->lt_ws, im->lt_ws_bytes, im->stream));
    } else {
        cublasCheck(cublasGemmEx(im->blas, opa, opb, m, n, k, &alpha, A, CUDA_R_16BF, lda, B,
                                 CUDA_R_16BF, ldb, &beta, D, CUDA_R_16BF, ldd, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
    }
    if (bias && (!fuse_bias || !g->valid)) {
        SR_ASSERT(ldd == m);
        add_bias_kernel<<<grid_for((size_t)m * n, 256), 256, 0, im->stream>>>(D, bias, n, m);
        cudaCheckLaunch();
    }
    cublasCheck(cublasLtMatrixLayoutDestroy(ld));
    cublasCheck(cublasLtMatrixLayoutDestroy(lb));
    cublasCheck(cublasLtMatrixLayoutDestroy(la));
    cublasCheck(cublasLtMatmulDescDestroy(desc));
}

/* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] */
void cuda_matmul_forward(SrBackend *be, void *out, const void *inp, const void *w,
                         const void *bias, int N, int C, int OC) {
    CudaImpl *im = cuda_impl(be);
    gemm_bf16(im, true, false, OC, N, C, (const bf16 *)w, C, (const bf16 *)inp, C, (bf16 *)out, OC,
              0.0f, (const bf16 *)bias);
}

/* dinp += dout @ w;  dw += dout^T @ inp;  dbias += colsum(dout) */
void cuda_matmul_backward(SrBackend *be, void *dinp, void *dw, void *dbias, const void *dout,
                          const void *inp, const void *w, int N, int C, int OC) {
    CudaImpl *im = cuda_impl(be);
    if (N <= 0 || OC <= 0) return;
    if (dinp && C > 0)
        gemm_bf16(im, false, false, C, N, OC, (const bf16 *)w, C, (const bf16 *)dout, OC,
                  (bf16 *)dinp, C, 1.0f, NULL);
    if (dw && C > 0)
        gemm_bf16(im, false, true, C, OC, N, (const bf16 *)inp, C, (const bf16 *)dout, OC,
                  (bf16 *)dw, C, 1.0f, NULL);
    if (dbias)
        cuda_colsum_accumulate(im, (bf16 *)dbias, (const bf16 *)dout, NULL, NULL, N, OC);
}
