/* The one argument record of the multi-step LIF / PLIF neuron's CPU kernel (lif.c): what
   lif_forward and lif_backward read and write, which snn/cpu_kernel.py's ctypes Structure
   (LifArgs) mirrors field by field. One record serves both passes; each field says which pass
   reads it (a field the pass does not read may be anything, pointers NULL).

   Tensors are float32, contiguous, [steps, n] unless said otherwise: time first, the n neurons
   of one step after each other. Optional pointers are NULL where the tensor is absent. */

#ifndef SPIKEQUANT_LIF_ARGS_H
#define SPIKEQUANT_LIF_ARGS_H

#include <stdint.h>

typedef struct {
    const float *x;      /* the input current; backward: only read for the decay gradient with
                            decay_input (NULL otherwise) */
    const float *v0;     /* [n] the potential before the first step; NULL: at rest (0) */
    float *h;            /* the charged potentials: forward writes them, backward reads them */
    float *s;            /* forward: the spikes (0 or 1) */
    float *v_out;        /* forward: the potential after reset, [steps, n] with store_v, else
                            [n] (after the last step) */
    const float *grad_s; /* backward: dL/ds; NULL: no gradient through the spikes */
    const float *grad_v; /* backward: dL/dv_out ([steps, n] with store_v, else [n]); NULL:
                            none */
    float *grad_x;       /* backward: dL/dx */
    float *grad_v0;      /* backward: [n] dL/dv0; NULL: not wanted */
    double *sum_k;       /* backward: [parts] one slot a part, each gets its part's sum of
                            dL/dk (with want_k), added in order by the caller */
    int64_t n;           /* neurons a step */
    int steps;           /* time steps */
    float k;             /* the decay 1 / tau */
    float threshold;     /* a spike where h >= threshold */
    float rest;          /* the reset and resting potential (0 for a soft reset) */
    float alpha;         /* backward: the surrogate's sharpness */
    int kind;            /* backward: the surrogate (enum surrogate_kind, surrogate_kinds.h) */
    int decay_input;     /* 1: h = v + k (x - (v - rest)); 0: h = v - k (v - rest) + x */
    int soft_reset;      /* 1: v = h - threshold after a spike; 0: v = rest */
    int detach_reset;    /* backward 1: the spike is a constant in the reset's gradient */
    int store_v;         /* 1: v_out (forward) and grad_v (backward) hold every step */
    int want_k;          /* backward 1: sum the decay gradient into sum_k */
    int parts;           /* the neurons are cut into this many equal ranges, one an OpenMP
                            thread */
} lif_args;

#endif
