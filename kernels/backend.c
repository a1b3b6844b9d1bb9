/*
 * Backend registry: picks the op table for --device cpu|cuda at run time. One binary holds
 * both when it was built with nvcc present (SR_WITH_CUDA).
 */
#include "ops.h"
#include "cpu/ops_cpu.h" /* sr_cpu_backend_init, sr_cpu_backend_free */
#include "../common/sysmem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef SR_WITH_CUDA
/* kernels/cuda/backend_cuda.cu */
int sr_cuda_backend_init(SrBackend *be, int device_index, SrError *err);
void sr_cuda_backend_free(SrBackend *be);
int sr_cuda_count(void);
void sr_cuda_name(int i, char *buf, size_t n);
size_t sr_cuda_free_bytes(SrBackend *be);
#endif

int sr_backend_init(SrBackend *be, const char *name, int device_index, SrError *err) {
    memset(be, 0, sizeof *be);
    if (!name || strcmp(name, "cpu") == 0) {
        be->ops = &sr_cpu_ops;
        be->device = SR_DEVICE_CPU;
        be->act_dtype = SR_F32;
        sr_cpu_backend_init(be);
        return 0;
    }
    if (strcmp(name, "cuda") == 0) {
#ifdef SR_WITH_CUDA
        return sr_cuda_backend_init(be, device_index, err);
#else
        return sr_fail(err, "--device cuda: this splitreason was built without CUDA (no nvcc "
                            "at build time); rebuild on a machine with the CUDA toolkit");
#endif
    }
    return sr_fail(err, "--device %s: unknown device (expected cpu or cuda)", name);
}

void sr_backend_free(SrBackend *be) {
    if (be->device == SR_DEVICE_CPU) sr_cpu_backend_free(be);
#ifdef SR_WITH_CUDA
    if (be->device == SR_DEVICE_CUDA) sr_cuda_backend_free(be);
#endif
    memset(be, 0, sizeof *be);
}

size_t sr_act_size(const SrBackend *be) {
    return be->act_dtype == SR_F32 ? 4 : 2;
}

const char *sr_backends_compiled(void) {
#ifdef SR_WITH_CUDA
    return "cpu cuda";
#else
    return "cpu";
#endif
}

int sr_cuda_device_count(void) {
#ifdef SR_WITH_CUDA
    return sr_cuda_count();
#else
    return 0;
#endif
}

void sr_cuda_device_name(int i, char *buf, size_t n) {
    if (n) buf[0] = '\0';
#ifdef SR_WITH_CUDA
    sr_cuda_name(i, buf, n);
#else
    (void)i;
#endif
}

size_t sr_host_memory_limit(const char **what) {
    uint64_t lim = sr_memory_limit(what); /* common/sysmem: one place that knows the limits */
    return lim > SIZE_MAX ? SIZE_MAX : (size_t)lim;
}

size_t sr_backend_memory_limit(SrBackend *be, const char **what) {
#ifdef SR_WITH_CUDA
    if (be->device == SR_DEVICE_CUDA) {
        if (what) *what = "the free GPU memory";
        return sr_cuda_free_bytes(be);
    }
#endif
    (void)be;
    return sr_host_memory_limit(what);
}
