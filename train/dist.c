/*
 * SrComm: single-process, MPI and NCCL communicators (see dist.h), and the ZeRO-1 layout.
 *
 * Every collective returns at once when size == 1, whatever the kind, so single-process
 * runs never touch MPI or NCCL and never copy.
 *
 * MPI (CPU buffers): the reduce-scatter receives into a host temporary and copies it to the
 * rank's own slice (MPI_IN_PLACE would leave the result at offset 0); the all-gather uses
 * MPI_IN_PLACE (each rank's contribution is already at its slice). MPI counts are ints, so
 * allreduce and broadcast go in chunks of 2^30 elements and a shard must fit in an int.
 *
 * NCCL (CUDA buffers): runs on its own stream. Before a collective the backend's stream is
 * synchronised (the kernels that wrote the buffer are done), after it the NCCL stream is (so
 * the backend's next kernels see the result). A few host syncs per optimizer step cost
 * nothing next to the step, and keep the backend's stream private to kernels/cuda.
 * The in-place forms are NCCL's own: reduce-scatter with recvbuff = sendbuff + rank*count,
 * all-gather with sendbuff = recvbuff + rank*count.
 */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SR_WITH_MPI
#include <mpi.h>
#endif
#ifdef SR_WITH_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

static int env_int(const char *name) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : 0;
}

int sr_comm_launched(void) {
    const char *force = getenv("SR_COMM");
    if (force && strcmp(force, "single") == 0) return 0;
    if (force && strcmp(force, "mpi") == 0) return 1;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_RANK") || getenv("PMIX_RANK") ||
           env_int("SLURM_STEP_NUM_TASKS") > 1;
}

void sr_comm_init_single(SrComm *c) {
    memset(c, 0, sizeof *c);
    c->kind = SR_COMM_SINGLE;
    c->rank = 0;
    c->size = 1;
    c->local_rank = 0;
    c->local_size = 1;
}

const char *sr_comm_kind_name(const SrComm *c) {
    return c->kind == SR_COMM_NCCL ? "nccl" : c->kind == SR_COMM_MPI ? "mpi" : "single";
}

/* ---- MPI -------------------------------------------------------------------------------- */

#ifdef SR_WITH_MPI
#define MPI_CHUNK ((size_t)1 << 30)

static MPI_Comm mpi_comm(const SrComm *c) { return *(MPI_Comm *)c->mpi; }

static MPI_Datatype mpi_type(SrDType dt) {
    if (dt == SR_F32) return MPI_FLOAT;
    if (dt == SR_I32) return MPI_INT32_T;
    fprintf(stderr, "splitreason: internal error: MPI collectives take f32/i32 buffers (dtype %d)"
            "; bf16 buffers live on the GPU and go through NCCL\n", (int)dt);
    abort();
}

static int mpi_start(SrComm *c, SrError *err) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        /* OpenMP threads never call MPI: only the main thread does */
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return sr_fail(err, "MPI_Init failed (launched by mpirun/srun but MPI cannot start)");
        c->owns_mpi = 1;
    }
    MPI_Comm *w = sr_malloc(sizeof(MPI_Comm));
    MPI_Comm_dup(MPI_COMM_WORLD, w);
    c->mpi = w;
    MPI_Comm_rank(*w, &c->rank);
    MPI_Comm_size(*w, &c->size);
    MPI_Comm local;
    MPI_Comm_split_type(*w, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    MPI_Comm_free(&local);
    c->kind = SR_COMM_MPI;
    return 0;
}
#endif

int sr_comm_init(SrComm *c, SrError *err) {
    sr_comm_init_single(c);
    if (!sr_comm_launched()) return 0;
#ifdef SR_WITH_MPI
    return mpi_start(c, err);
#else
    /* processes the launcher says it started */
    int n = env_int("OMPI_COMM_WORLD_SIZE");
    if (n <= 0) n = env_int("PMI_SIZE");
    if (n <= 0) n = env_int("SLURM_STEP_NUM_TASKS");
    if (n > 1)
        return sr_fail(err, "launched as %d processes (mpirun/srun), but this splitreason was "
                       "built without MPI: install libopenmpi-dev and rebuild", n);
    return 0;
#endif
}

/* ---- NCCL ------------------------------------------------------------------------------- */

#ifdef SR_WITH_NCCL
typedef struct NcclState {
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
} NcclState;

#define NCCL_CHECK(call)                                                                    \
    do {                                                                                    \
        ncclResult_t r_ = (call);                                                           \
        if (r_ != ncclSuccess) {                                                            \
            fprintf(stderr, "splitreason: NCCL error at %s:%d: %s: %s\n", __FILE__, __LINE__,  \
                    #call, ncclGetErrorString(r_));                                         \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

#define CUDA_CHECK(call)                                                                    \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) {                                                            \
            fprintf(stderr, "splitreason: CUDA error at %s:%d: %s: %s\n", __FILE__, __LINE__,  \
                    #call, cudaGetErrorString(e_));                                         \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static ncclDataType_t nccl_type(SrDType dt) {
    switch (dt) {
    case SR_F32: return ncclFloat32;
    case SR_BF16: return ncclBfloat16;
    case SR_F16: return ncclFloat16;
    case SR_I32: return ncclInt32;
    }
    abort();
}

static int nccl_start(SrComm *c, SrBackend *be, SrError *err) {
    /* rank 0 makes the id; a failure there is broadcast too, so no rank waits forever */
    struct {
        int ok;
        ncclUniqueId id;
    } boot;
    memset(&boot, 0, sizeof boot);
    if (c->rank == 0) boot.ok = ncclGetUniqueId(&boot.id) == ncclSuccess;
    MPI_Bcast(&boot, (int)sizeof boot, MPI_BYTE, 0, mpi_comm(c));
    if (!boot.ok) return sr_fail(err, "NCCL: rank 0 could not create the communicator id");
    NcclState *st = sr_calloc(1, sizeof(NcclState));
    st->device = be->device_index;
    CUDA_CHECK(cudaSetDevice(st->device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    ncclResult_t r = ncclCommInitRank(&st->comm, c->size, boot.id, c->rank);
    int ok = r == ncclSuccess, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, mpi_comm(c));
    if (!all_ok) {
        if (ok) ncclCommDestroy(st->comm);
        cudaStreamDestroy(st->stream);
        free(st);
        return sr_fail(err, "NCCL: ncclCommInitRank failed on %s (rank %d of %d, GPU %d)%s%s",
                       ok ? "another rank" : "this rank", c->rank, c->size, be->device_index,
                       ok ? "" : ": ", ok ? "" : ncclGetErrorString(r));
    }
    c->nccl = st;
    c->kind = SR_COMM_NCCL;
    return 0;
}

static NcclState *nccl_begin(SrComm *c) {
    NcclState *st = c->nccl;
    c->be->ops->synchronize(c->be);
    CUDA_CHECK(cudaSetDevice(st->device));
    return st;
}

static void nccl_end(NcclState *st) { CUDA_CHECK(cudaStreamSynchronize(st->stream)); }
#endif

int sr_comm_attach(SrComm *c, SrBackend *be, SrError *err) {
    c->be = be;
    if (c->size == 1 || be->device == SR_DEVICE_CPU) return 0;
#ifdef SR_WITH_NCCL
    if (c->kind == SR_COMM_NCCL) return 0;
    return nccl_start(c, be, err);
#else
    return sr_fail(err, "data parallel on CUDA needs NCCL, and this splitreason was built "
                   "without it (no nccl.h/libnccl in the CUDA toolkit, or no MPI)");
#endif
}

void sr_comm_free(SrComm *c) {
#ifdef SR_WITH_NCCL
    if (c->nccl) {
        NcclState *st = c->nccl;
        cudaSetDevice(st->device);
        ncclCommDestroy(st->comm);
        cudaStreamDestroy(st->stream);
        free(st);
    }
#endif
#ifdef SR_WITH_MPI
    if (c->mpi) {
        MPI_Comm_free((MPI_Comm *)c->mpi);
        free(c->mpi);
        if (c->owns_mpi) MPI_Finalize();
    }
#endif
    memset(c, 0, sizeof *c);
}

/* ---- collectives ------------------------------------------------------------------------ */

static size_t dtype_size(SrDType dt) { return dt == SR_BF16 || dt == SR_F16 ? 2 : 4; }

static void check_buffers(const SrComm *c) {
    if (!c->be) {
        fprintf(stderr, "splitreason: internal error: SrComm collective before sr_comm_attach\n");
        abort();
    }
}

void sr_comm_allreduce_sum(SrComm *c, void *buf, size_t n, SrDType dt) {
    if (c->size == 1 || n == 0) return;
    check_buffers(c);
#ifdef SR_WITH_NCCL
    if (c->kind == SR_COMM_NCCL) {
        NcclState *st = nccl_begin(c);
        NCCL_CHECK(ncclAllReduce(buf, buf, n, nccl_type(dt), ncclSum, st->comm, st->stream));
        nccl_end(st);
        return;
    }
#endif
#ifdef SR_WITH_MPI
    for (size_t i = 0; i < n; i += MPI_CHUNK) {
        size_t k = n - i < MPI_CHUNK ? n - i : MPI_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * dtype_size(dt), (int)k, mpi_type(dt),
                      MPI_SUM, mpi_comm(c));
    }
#endif
}

void sr_comm_reduce_scatter_sum(SrComm *c, void *buf, size_t shard_n, SrDType dt) {
    if (c->size == 1 || shard_n == 0) return;
    check_buffers(c);
    size_t esz = dtype_size(dt);
    char *mine = (char *)buf + (size_t)c->rank * shard_n * esz;
#ifdef SR_WITH_NCCL
    if (c->kind == SR_COMM_NCCL) {
        NcclState *st = nccl_begin(c);
        NCCL_CHECK(ncclReduceScatter(buf, mine, shard_n, nccl_type(dt), ncclSum, st->comm,
                                     st->stream));
        nccl_end(st);
        return;
    }
#endif
#ifdef SR_WITH_MPI
    SR_ASSERT(shard_n <= (size_t)0x7fffffff);
    void *tmp = sr_malloc(shard_n * esz);
    MPI_Reduce_scatter_block(buf, tmp, (int)shard_n, mpi_type(dt), MPI_SUM, mpi_comm(c));
    memcpy(mine, tmp, shard_n * esz);
    free(tmp);
#else
    (void)mine;
#endif
}

void sr_comm_all_gather(SrComm *c, void *buf, size_t shard_n, SrDType dt) {
    if (c->size == 1 || shard_n == 0) return;
    check_buffers(c);
#ifdef SR_WITH_NCCL
    if (c->kind == SR_COMM_NCCL) {
        size_t esz = dtype_size(dt);
        NcclState *st = nccl_begin(c);
        NCCL_CHECK(ncclAllGather((char *)buf + (size_t)c->rank * shard_n * esz, buf, shard_n,
                                 nccl_type(dt), st->comm, st->stream));
        nccl_end(st);
        return;
    }
#endif
#ifdef SR_WITH_MPI
    SR_ASSERT(shard_n <= (size_t)0x7fffffff);
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)shard_n, mpi_type(dt),
                  mpi_comm(c));
#endif
}

void sr_comm_broadcast(SrComm *c, void *buf, size_t bytes, int root) {
    if (c->size == 1 || bytes == 0) return;
    check_buffers(c);
#ifdef SR_WITH_NCCL
    if (c->kind == SR_COMM_NCCL) {
        NcclState *st = nccl_begin(c);
        NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, st->comm, st->stream));
        nccl_end(st);
        return;
    }
#endif
#ifdef SR_WITH_MPI
    for (size_t i = 0; i < bytes; i += MPI_CHUNK)
        MPI_Bcast((char *)buf + i, (int)(bytes - i < MPI_CHUNK ? bytes - i : MPI_CHUNK),
                  MPI_BYTE, root, mpi_comm(c));
#endif
}

void sr_comm_allreduce_host(SrComm *c, double *x, int n) {
    if (c->size == 1 || n <= 0) return;
#ifdef SR_WITH_MPI
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, mpi_comm(c));
#endif
}

void sr_comm_allmax_host(SrComm *c, double *x, int n) {
    if (c->size == 1 || n <= 0) return;
#ifdef SR_WITH_MPI
    MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_MAX, mpi_comm(c));
#endif
}

void sr_comm_barrier(SrComm *c) {
    if (c->size == 1) return;
#ifdef SR_WITH_MPI
    MPI_Barrier(mpi_comm(c));
#endif
}

/* ---- ZeRO-1 layout ---------------------------------------------------------------------- */

void sr_shard_layout(SrShard *s, size_t n, int size, int rank, size_t align) {
    SR_ASSERT(size >= 1 && rank >= 0 && rank < size && align >= 1);
    size_t per = (n + (size_t)size - 1) / (size_t)size;
    s->n = n;
    s->shard_n = (per + align - 1) / align * align;
    s->padded = s->shard_n * (size_t)size;
    s->lo = s->shard_n * (size_t)rank;
}
