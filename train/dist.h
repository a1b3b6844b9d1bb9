/*
 * Communicators for data-parallel training (SrComm) and the ZeRO-1 shard layout.
 *
 * One SrComm per process. Three implementations behind one interface:
 *   single  one process (launched without mpirun/srun): every collective is a no-op.
 *   mpi     CPU processes: collectives on host buffers through MPI (Open MPI / MPICH).
 *   nccl    one process per GPU: collectives on device buffers through NCCL, which is
 *           bootstrapped through MPI (rank 0 makes the ncclUniqueId and MPI_Bcast's it).
 *           Host scalars (token counts, loss sums, norms) and the barrier still go over MPI.
 * Build switches: SR_WITH_MPI (CMake found MPI) and SR_WITH_NCCL (CUDA + nccl.h + MPI).
 *
 * Life cycle:
 *   sr_comm_init(&c, &err)            single or MPI, decided by the environment (mpirun and
 *                                     srun set OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK /
 *                                     SLURM_STEP_NUM_TASKS; SR_COMM=single|mpi overrides)
 *   ... pick the GPU: c.local_rank ...
 *   sr_comm_attach(&c, &be, &err)     tells the communicator where buffers live; with a CUDA
 *                                     backend and size > 1 this creates the NCCL communicator
 *   collectives ...
 *   sr_comm_free(&c)                  (MPI_Finalize if we called MPI_Init: once per process)
 *
 * Collectives are called by every rank in the same order with the same sizes. Buffers are
 * backend buffers of dtype dt (SR_F32, or SR_BF16 on CUDA/NCCL); they work in place. A
 * collective that fails (a dead peer, a broken network) is not a recoverable user error:
 * it prints what failed and aborts, as MPI itself does by default.
 */
#ifndef SR_TRAIN_DIST_H
#define SR_TRAIN_DIST_H

#include <stddef.h>

#include "../common/error.h"
#include "../kernels/ops.h"

typedef enum { SR_COMM_SINGLE = 0, SR_COMM_MPI = 1, SR_COMM_NCCL = 2 } SrCommKind;

typedef struct SrComm {
    SrCommKind kind;       /* what moves the backend buffers */
    int rank, size;        /* in the world */
    int local_rank, local_size; /* among the processes of this node (pick GPU local_rank) */
    SrBackend *be;         /* where collective buffers live (NULL before sr_comm_attach) */
    void *mpi;             /* MPI_Comm * (a dup of MPI_COMM_WORLD); NULL when single */
    int owns_mpi;          /* we called MPI_Init, so sr_comm_free calls MPI_Finalize */
    void *nccl;            /* NCCL state when kind == SR_COMM_NCCL */
} SrComm;

/* 1 if this process was started by a parallel launcher (mpirun, srun, hydra). */
int sr_comm_launched(void);
/* A single-process communicator (never fails, touches no MPI). */
void sr_comm_init_single(SrComm *c);
/* MPI when launched by a parallel launcher (and built with MPI), else single. Fails when
 * launched with several processes but built without MPI. */
int sr_comm_init(SrComm *c, SrError *err);
/* Sets the backend whose buffers the collectives take. For a CUDA backend with size > 1 it
 * creates the NCCL communicator on be's GPU (fails if built without NCCL). */
int sr_comm_attach(SrComm *c, SrBackend *be, SrError *err);
void sr_comm_free(SrComm *c);
/* "single", "mpi", "nccl" */
const char *sr_comm_kind_name(const SrComm *c);

/* ---- collectives on backend buffers ---------------------------------------------------- */
/* buf[0..n) = sum over ranks of buf[0..n) */
void sr_comm_allreduce_sum(SrComm *c, void *buf, size_t n, SrDType dt);
/* buf holds size * shard_n elements on every rank. On return buf[rank*shard_n ..
 * (rank+1)*shard_n) holds the sum over ranks of that slice; the rest of buf is undefined. */
void sr_comm_reduce_scatter_sum(SrComm *c, void *buf, size_t shard_n, SrDType dt);
/* buf holds size * shard_n elements; rank r's slice [r*shard_n, (r+1)*shard_n) is sent to
 * every rank, so on return every rank holds every slice. */
void sr_comm_all_gather(SrComm *c, void *buf, size_t shard_n, SrDType dt);
/* bytes of buf from rank root to every rank */
void sr_comm_broadcast(SrComm *c, void *buf, size_t bytes, int root);

/* ---- host scalars ----------------------------------------------------------------------- */
/* x[0..n) = sum over ranks, in double (exact for counts below 2^53) */
void sr_comm_allreduce_host(SrComm *c, double *x, int n);
/* x[0..n) = max over ranks */
void sr_comm_allmax_host(SrComm *c, double *x, int n);
void sr_comm_barrier(SrComm *c);

/* ---- ZeRO-1 layout ------------------------------------------------------------------------
 * A flat vector of n elements (the model's parameters / gradients) split over `size` ranks
 * into equal contiguous shards of shard_n elements, shard_n a multiple of `align`; the flat
 * vector is padded with zeros to padded = size * shard_n. Rank r owns [lo, lo + shard_n),
 * lo = r * shard_n (the last shards may lie partly or wholly in the padding). */
typedef struct SrShard {
    size_t n, padded, shard_n, lo;
} SrShard;

void sr_shard_layout(SrShard *s, size_t n, int size, int rank, size_t align);

#endif
