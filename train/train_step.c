/*
 * One optimizer step over a global batch (see train_step.h).
 *
 * Every rank makes the same collective calls in the same order whatever happens locally (a
 * bad micro-batch, a NaN): failures are agreed on through the host allreduces before anyone
 * branches, so no rank is left waiting in a collective.
 */
#include "train_step.h"

#include <math.h>
#include <string.h>

int sr_train_step(SrOptimizer *o, const SrLrSchedule *sched, const SrMicroBatch *mb, int n_micro,
                  SrStepStats *st, SrError *err) {
    Qwen2Model *m = o->m;
    SrComm *comm = o->comm;
    memset(st, 0, sizeof *st);

    /* 1. the global batch's token counts */
    double counts[2] = {0, 0}; /* tokens, targets */
    for (int k = 0; k < n_micro; k++) {
        counts[0] += mb[k].N;
        if (mb[k].targets)
            for (int i = 0; i < mb[k].N; i++) counts[1] += mb[k].targets[i] >= 0;
    }
    sr_comm_allreduce_host(comm, counts, 2);
    st->n_tokens = counts[0];
    st->n_targets = counts[1];
    /* with no target anywhere the loss is 0 and so is every gradient; any positive
     * normaliser gives that */
    double norm = counts[1] > 0 ? counts[1] : 1.0;

    /* 2. forward + backward of each micro-batch */
    qwen2_zero_grad(m);
    double sums[2] = {0, 0}; /* loss (already divided by the global count), failures */
    for (int k = 0; k < n_micro; k++) {
        float loss = 0;
        if (!mb[k].targets) {
            sr_fail(err, "micro-batch %d: no targets", k);
            sums[1] = 1;
            break;
        }
        if (qwen2_forward_backward_norm(m, mb[k].ids, mb[k].pos, mb[k].targets, mb[k].weights,
                                        mb[k].N, norm, &loss, NULL, err)) {
            sr_fail_prefix(err, "micro-batch %d of rank %d", k, comm->rank);
            sums[1] = 1;
            break;
        }
        sums[0] += loss;
    }
    int failed_here = sums[1] > 0;
    sr_comm_allreduce_host(comm, sums, 2);
    if (sums[1] > 0) { /* the failing rank has its own message; the others say so */
        if (!failed_here) sr_fail(err, "train step: a micro-batch on another rank failed");
        return -1;
    }
    st->loss = sums[0];

    return sr_train_step_apply(o, sched, st);
}

int sr_train_step_apply(SrOptimizer *o, const SrLrSchedule *sched, SrStepStats *st) {
    /* 3. gradients summed, each rank keeping its slice */
    sr_optim_reduce_grads(o);

    /* 4. global norm, clip */
    st->grad_norm = sr_optim_grad_norm(o);
    st->lr = sr_lr_at(sched, o->step);
    if (!isfinite(st->loss) || !isfinite(st->grad_norm)) {
        st->nonfinite = 1;
        sr_optim_find_nonfinite(o, 0, st->bad_param, sizeof st->bad_param);
        sr_optim_find_nonfinite(o, 1, st->bad_grad, sizeof st->bad_grad);
        return 0;
    }
    float clip = sr_optim_clip_coef(&o->cfg, st->grad_norm);
    st->clip_coef = clip;

    /* 5. AdamW on the slice; 6. everyone gets everyone's slice */
    sr_optim_update(o, (float)st->lr, clip);
    sr_optim_gather_params(o);
    return 0;
}
