/*
 * CUDA backend: device discovery and backend set-up.
 *
 * The bf16 op bodies (kernels, cuBLASLt GEMMs, flash attention) are the next milestone
 * (issue 3); until they land, asking for --device cuda reports that plainly rather than
 * running half a model. Device discovery already works so `splitreason --version` lists GPUs.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "../ops.h"

int sr_cuda_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

void sr_cuda_name(int i, char *buf, size_t n) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
        cudaGetLastError();
        if (n) buf[0] = '\0';
        return;
    }
    snprintf(buf, n, "%s, %.1f GiB, sm_%d%d", p.name, (double)p.totalGlobalMem / (1 << 30),
             p.major, p.minor);
}

int sr_cuda_backend_init(SrBackend *be, int device_index, SrError *err) {
    int n = sr_cuda_count();
    if (n == 0) return sr_fail(err, "--device cuda: no CUDA GPU found at run time");
    if (device_index < 0 || device_index >= n)
        return sr_fail(err, "--device cuda: GPU %d requested but %d found", device_index, n);
    return sr_fail(err, "--device cuda: the CUDA op bodies are not implemented in this version "
                        "(they land with the CUDA backend milestone); use --device cpu");
}

void sr_cuda_backend_free(SrBackend *be) { (void)be; }
}
