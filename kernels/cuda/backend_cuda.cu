/*
 * CUDA backend: device discovery, backend set-up and tear-down, the memory ops, and the op
 * table. The ops themselves live by family in the other files of kernels/cuda/ (ops_cuda.h).
 *
 * State (all in CudaImpl, hung off SrBackend.impl; nothing global): the device ordinal, one
 * non-blocking stream on which every op is queued in order, a cuBLASLt handle and its 32 MiB
 * workspace, a cuBLAS handle (fallback GEMMs), a growable scratch block, a cache of GEMM
 * heuristics. Memory is plain cudaMalloc (never managed memory). Ops that hand results to the
 * host (download, download_act, sum_squares, sample) synchronise the stream; the others only
 * queue work.
 *
 * "act" buffers hold bf16. upload_act / download_act convert on the host with the exact
 * round-to-nearest-even of common/dtype.h (the same bits torch's .to(bfloat16) gives).
 *
 * Environment: SR_CUDA_ATTN=simple selects the reference attention kernels instead of the
 * tiled tensor-core ones (read once, at backend init).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_cuda.h"

extern "C" {
#include "../../common/dtype.h"
}

/* ---- error reporting ---------------------------------------------------------------------- */

static const char *cuda_hint(cudaError_t e) {
    switch (e) {
    case cudaErrorMemoryAllocation:
        return "out of GPU memory: lower the batch size / sequence length, or free other jobs "
               "on this GPU (nvidia-smi)";
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
        return "no usable GPU: check nvidia-smi, the driver version and CUDA_VISIBLE_DEVICES";
    case cudaErrorInvalidDevice:
        return "GPU ordinal out of range: check --device-index and CUDA_VISIBLE_DEVICES";
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
    case cudaErrorAssert:
        return "a kernel faulted (a bug, or bad ids/positions reaching the GPU); rerun with "
               "CUDA_LAUNCH_BLOCKING=1 or under compute-sanitizer to find which";
    case cudaErrorInvalidConfiguration:
    case cudaErrorInvalidValue:
        return "bad launch configuration or argument (an internal bug: shapes out of range?)";
    case cudaErrorNoKernelImageForDevice:
        return "this binary has no code for this GPU: rebuild with CMAKE_CUDA_ARCHITECTURES "
               "set to the GPU's compute capability";
    default:
        return "unexpected CUDA failure";
    }
}

void cuda_check_fail(cudaError_t e, const char *call, const char *file, int line) {
    fprintf(stderr, "splitreason: CUDA error at %s:%d: %s: %s (%s)\n  hint: %s\n", file, line,
            call, cudaGetErrorString(e), cudaGetErrorName(e), cuda_hint(e));
    abort();
}

void cublas_check_fail(int status, const char *call, const char *file, int line) {
    const char *hint = status == CUBLAS_STATUS_ALLOC_FAILED
                           ? "out of GPU memory"
                           : status == CUBLAS_STATUS_NOT_SUPPORTED
                                 ? "this GEMM shape/alignment is not supported (internal bug)"
                                 : "unexpected cuBLAS failure (an earlier kernel may have faulted)";
    fprintf(stderr, "splitreason: cuBLAS error at %s:%d: %s: status %d (%s)\n  hint: %s\n", file,
            line, call, status, cublasGetStatusString((cublasStatus_t)status), hint);
    abort();
}

/* ---- scratch ------------------------------------------------------------------------------ */

void *cuda_scratch(CudaImpl *im, size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes > im->scratch_bytes) {
        size_t want = bytes + bytes / 2;
        if (want < ((size_t)1 << 20)) want = (size_t)1 << 20;
        if (im->scratch) {
            cudaCheck(cudaStreamSynchronize(im->stream));
            cudaCheck(cudaFree(im->scratch));
        }
        im->scratch = NULL;
        cudaCheck(cudaMalloc(&im->scratch, want));
        im->scratch_bytes = want;
    }
    return im->scratch;
}

/* ---- discovery ---------------------------------------------------------------------------- */

extern "C" int sr_cuda_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

extern "C" void sr_cuda_name(int i, char *buf, size_t n) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
        cudaGetLastError();
        if (n) buf[0] = '\0';
        return;
    }
    snprintf(buf, n, "%s, %.1f GiB, sm_%d%d", p.name, (double)p.totalGlobalMem / (1 << 30),
             p.major, p.minor);
}

/* bytes free on the backend's GPU now (SIZE_MAX when the driver cannot say) */
extern "C" size_t sr_cuda_free_bytes(SrBackend *be) {
    CudaImpl *im = cuda_impl(be);
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(im->device) != cudaSuccess || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return SIZE_MAX;
    }
    return free_b;
}

/* ---- memory ops --------------------------------------------------------------------------- */

static void *cuda_alloc(SrBackend *be, size_t bytes) {
    CudaImpl *im = cuda_impl(be);
    void *p = NULL;
    size_t n = bytes ? bytes : 1;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        fprintf(stderr,
                "splitreason: out of GPU memory allocating %zu bytes on GPU %d (%.2f GiB free of "
                "%.2f GiB): %s\n  hint: lower the batch size / sequence length\n",
                bytes, im->device, (double)free_b / (1 << 30), (double)total_b / (1 << 30),
                cudaGetErrorString(e));
        abort();
    }
    cudaCheck(cudaMemsetAsync(p, 0, n, im->stream));
    cudaCheck(cudaStreamSynchronize(im->stream));
    return p;
}

static void cuda_free(SrBackend *be, void *p) {
    CudaImpl *im = cuda_impl(be);
    if (!p) return;
    cudaCheck(cudaStreamSynchronize(im->stream)); /* queued kernels may still use it */
    cudaCheck(cudaFree(p));
}

static void cuda_zero(SrBackend *be, void *p, size_t bytes) {
    CudaImpl *im = cuda_impl(be);
    if (bytes) cudaCheck(cudaMemsetAsync(p, 0, bytes, im->stream));
}

static void cuda_copy(SrBackend *be, void *dst, const void *src, size_t bytes) {
    CudaImpl *im = cuda_impl(be);
    if (bytes && dst != src)
        cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, im->stream));
}

static void cuda_upload(SrBackend *be, void *dst, const void *src, size_t bytes) {
    CudaImpl *im = cuda_impl(be);
    if (!bytes) return;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, im->stream));
    cudaCheck(cudaStreamSynchronize(im->stream)); /* src may be freed on return */
}

static void cuda_download(SrBackend *be, void *dst, const void *src, size_t bytes) {
    CudaImpl *im = cuda_impl(be);
    if (!bytes) return;
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, im->stream));
    cudaCheck(cudaStreamSynchronize(im->stream));
}

#define ACT_STAGE (1u << 20) /* elements converted per host staging round */

static void cuda_upload_act(SrBackend *be, void *dst, const float *src, size_t n) {
    CudaImpl *im = cuda_impl(be);
    if (!n) return;
    size_t cap = n < ACT_STAGE ? n : ACT_STAGE;
    uint16_t *stage = (uint16_t *)malloc(cap * sizeof(uint16_t));
    SR_ASSERT(stage);
    for (size_t off = 0; off < n; off += cap) {
        size_t m = n - off < cap ? n - off : cap;
        for (size_t i = 0; i < m; i++) stage[i] = sr_f32_to_bf16(src[off + i]);
        cudaCheck(cudaMemcpyAsync((uint16_t *)dst + off, stage, m * sizeof(uint16_t),
                                  cudaMemcpyHostToDevice, im->stream));
        cudaCheck(cudaStreamSynchronize(im->stream)); /* before the stage is reused */
    }
    free(stage);
}

static void cuda_download_act(SrBackend *be, float *dst, const void *src, size_t n) {
    CudaImpl *im = cuda_impl(be);
    if (!n) return;
    size_t cap = n < ACT_STAGE ? n : ACT_STAGE;
    uint16_t *stage = (uint16_t *)malloc(cap * sizeof(uint16_t));
    SR_ASSERT(stage);
    for (size_t off = 0; off < n; off += cap) {
        size_t m = n - off < cap ? n - off : cap;
        cudaCheck(cudaMemcpyAsync(stage, (const uint16_t *)src + off, m * sizeof(uint16_t),
                                  cudaMemcpyDeviceToHost, im->stream));
        cudaCheck(cudaStreamSynchronize(im->stream));
        for (size_t i = 0; i < m; i++) dst[off + i] = sr_bf16_to_f32(stage[i]);
    }
    free(stage);
}

static void cuda_synchronize(SrBackend *be) {
    CudaImpl *im = cuda_impl(be);
    cudaCheck(cudaStreamSynchronize(im->stream));
}

/* ---- the op table ------------------------------------------------------------------------- */

static SrOps cuda_ops_table(void) {
    SrOps o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.alloc = cuda_alloc;
    o.free = cuda_free;
    o.zero = cuda_zero;
    o.copy = cuda_copy;
    o.upload_act = cuda_upload_act;
    o.download_act = cuda_download_act;
    o.upload = cuda_upload;
    o.download = cuda_download;
    o.synchronize = cuda_synchronize;
    o.embedding_forward = cuda_embedding_forward;
    o.embedding_backward = cuda_embedding_backward;
    o.rmsnorm_forward = cuda_rmsnorm_forward;
    o.rmsnorm_backward = cuda_rmsnorm_backward;
    o.matmul_forward = cuda_matmul_forward;
    o.matmul_backward = cuda_matmul_backward;
    o.rope_forward = cuda_rope_forward;
    o.rope_backward = cuda_rope_backward;
    o.attention_forward = cuda_attention_forward;
    o.attention_backward = cuda_attention_backward;
    o.kv_store = cuda_kv_store;
    o.attention_paged = cuda_attention_paged;
    o.swiglu_forward = cuda_swiglu_forward;
    o.swiglu_backward = cuda_swiglu_backward;
    o.add = cuda_add;
    o.cross_entropy = cuda_cross_entropy;
    o.sample = cuda_sample;
    o.adamw = cuda_adamw;
    o.sum_squares = cuda_sum_squares;
    return o;
}

static const SrOps sr_cuda_ops = cuda_ops_table();

/* ---- init / free -------------------------------------------------------------------------- */

#define LT_WORKSPACE_BYTES ((size_t)32 << 20) /* 32 MiB: what cuBLASLt wants on Hopper */

extern "C" void sr_cuda_backend_free(SrBackend *be);

extern "C" int sr_cuda_backend_init(SrBackend *be, int device_index, SrError *err) {
    int n = sr_cuda_count();
    if (n == 0) return sr_fail(err, "--device cuda: no CUDA GPU found at run time");
    if (device_index < 0 || device_index >= n)
        return sr_fail(err, "--device cuda: GPU %d requested but %d found", device_index, n);
    cudaError_t e = cudaSetDevice(device_index);
    if (e == cudaSuccess) e = cudaFree(0); /* create the context now, so failures land here */
    if (e != cudaSuccess) {
        cudaGetLastError();
        return sr_fail(err, "--device cuda: cannot use GPU %d: %s", device_index,
                       cudaGetErrorString(e));
    }
    cudaDeviceProp p;
    cudaCheck(cudaGetDeviceProperties(&p, device_index));
    if (p.major < 8)
        return sr_fail(err, "--device cuda: GPU %d (%s, sm_%d%d) has no bf16 tensor cores; "
                            "splitreason needs compute capability 8.0 or newer",
                       device_index, p.name, p.major, p.minor);

    CudaImpl *im = (CudaImpl *)calloc(1, sizeof(CudaImpl));
    SR_ASSERT(im);
    im->device = device_index;
    im->sm_count = p.multiProcessorCount;
    cudaCheck(cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking));
    cublasCheck(cublasLtCreate(&im->lt));
    cublasCheck(cublasCreate(&im->blas));
    cublasCheck(cublasSetStream(im->blas, im->stream));
    im->lt_ws_bytes = LT_WORKSPACE_BYTES;
    cudaCheck(cudaMalloc(&im->lt_ws, im->lt_ws_bytes));
    const char *attn = getenv("SR_CUDA_ATTN");
    im->attn_simple = attn && strcmp(attn, "simple") == 0;

    be->ops = &sr_cuda_ops;
    be->device = SR_DEVICE_CUDA;
    be->act_dtype = SR_BF16;
    be->device_index = device_index;
    be->impl = im;
    return 0;
}

extern "C" void sr_cuda_backend_free(SrBackend *be) {
    CudaImpl *im = (CudaImpl *)be->impl;
    if (!im) return;
    cudaCheck(cudaSetDevice(im->device));
    cudaCheck(cudaStreamSynchronize(im->stream));
    if (im->scratch) cudaCheck(cudaFree(im->scratch));
    if (im->lt_ws) cudaCheck(cudaFree(im->lt_ws));
    cublasCheck(cublasDestroy(im->blas));
    cublasCheck(cublasLtDestroy(im->lt));
    cudaCheck(cudaStreamDestroy(im->stream));
    free(im);
    be->impl = NULL;
}
