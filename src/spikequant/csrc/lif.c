/* The multi-step LIF / PLIF neuron on the CPU: the forward pass over all T steps and the
   backward pass through time, each reading and writing every [T, N] tensor once.

   The same dynamics, options and saved state as functional._LIFMultiStep (the reference) and
   kernels_triton.py (the CUDA kernels): the forward keeps the charged potentials h [T, N],
   the backward recomputes spikes, surrogate gradients and reset slopes from them. Neurons are
   processed in chunks of CHUNK whose membrane potential (forward) or carried gradient
   (backward) stays in a small array while the loop walks the time axis, and the inner loop
   over a chunk is vectorised. The N neurons are cut into `parts` equal ranges shared out
   among OpenMP threads (torch's own pool: torch loaded libgomp first); each part sums the
   decay gradient in its own slot, added in order by the caller. exp is exp_poly.h's. Both
   entry points take one argument record (lif_args.h).

   Built and loaded by spikequant/_cpu_kernels.py; called by snn/cpu_kernel.py. */

#include <stdint.h>
#include <string.h>

#include "exp_poly.h"
#include "lif_args.h"
#include "surrogate_kinds.h"

#define CHUNK 512

/* d/dx of the built-in surrogates (surrogate_kinds.h) */
static inline float surrogate_grad(float x, float alpha, int kind) {
    if (kind == SURROGATE_ATAN) {
        float z = 1.5707963267948966f * alpha * x;
        return (alpha * 0.5f) / (1.0f + z * z);
    }
    if (kind == SURROGATE_SIGMOID) {
        float s = 1.0f / (1.0f + exp_poly(-alpha * x));
        return alpha * s * (1.0f - s);
    }
    if (kind == SURROGATE_FAST_SIGMOID) {
        float d = 1.0f + alpha * __builtin_fabsf(x);
        return (alpha * 0.5f) / (d * d);
    }
    float tri = 1.0f - alpha * __builtin_fabsf(x); /* SURROGATE_TRIANGLE */
    return alpha * (tri > 0.0f ? tri : 0.0f);
}

/* the forward pass over neurons [lo, hi) (lif_args.h says what each field holds); the record's
   tensors become restrict locals and its options plain values, fixed across the loops */
static void forward_range(const lif_args *a, int64_t lo, int64_t hi) {
    const float *restrict x = a->x, *restrict v0 = a->v0;
    float *restrict h = a->h, *restrict s = a->s, *restrict v_out = a->v_out;
    const int64_t n = a->n;
    const int steps = a->steps, decay_input = a->decay_input, soft_reset = a->soft_reset,
              store_v = a->store_v;
    const float k = a->k, threshold = a->threshold, rest = a->rest;
    const float retain = 1.0f - k;
    float v[CHUNK];
    for (int64_t c0 = lo; c0 < hi; c0 += CHUNK) {
        const int m = (int)(hi - c0 < CHUNK ? hi - c0 : CHUNK);
        for (int j = 0; j < m; j++) v[j] = v0 ? v0[c0 + j] : 0.0f;
        for (int t = 0; t < steps; t++) {
            const int64_t at = (int64_t)t * n + c0;
#pragma omp simd
            for (int j = 0; j < m; j++) {
                float drive = decay_input ? (x[at + j] + rest) * k : x[at + j] + rest * k;
                float hh = drive + v[j] * retain;
                int fired = hh >= threshold;
                h[at + j] = hh;
                s[at + j] = fired ? 1.0f : 0.0f;
                v[j] = fired ? (soft_reset ? hh - threshold : rest) : hh;
                if (store_v) v_out[at + j] = v[j];
            }
        }
        if (!store_v) memcpy(v_out + c0, v, (size_t)m * sizeof(float));
    }
}

void lif_forward(const lif_args *a) {
    const int parts = a->parts;
#pragma omp parallel for schedule(static, 1) num_threads(parts) if (parts > 1)
    for (int part = 0; part < parts; part++)
        forward_range(a, part_edge(a->n, part, parts), part_edge(a->n, part + 1, parts));
}

/* sg[j] = the surrogate's derivative at h[j] - threshold, for one chunk: a loop per surrogate,
   so that each vectorises on its own */
static void surrogate_chunk(float *restrict sg, const float *restrict h, int m, float threshold,
                            float alpha, int kind) {
    switch (kind) {
    case SURROGATE_ATAN:
#pragma omp simd
        for (int j = 0; j < m; j++)
            sg[j] = surrogate_grad(h[j] - threshold, alpha, SURROGATE_ATAN);
        break;
    case SURROGATE_SIGMOID:
#pragma omp simd
        for (int j = 0; j < m; j++)
            sg[j] = surrogate_grad(h[j] - threshold, alpha, SURROGATE_SIGMOID);
        break;
    case SURROGATE_FAST_SIGMOID:
#pragma omp simd
        for (int j = 0; j < m; j++)
            sg[j] = surrogate_grad(h[j] - threshold, alpha, SURROGATE_FAST_SIGMOID);
        break;
    default:
#pragma omp simd
        for (int j = 0; j < m; j++)
            sg[j] = surrogate_grad(h[j] - threshold, alpha, SURROGATE_TRIANGLE);
    }
}

/* the backward pass over neurons [lo, hi), its decay-gradient sum into *sum_k (this part's
   slot). Each time step of a chunk is three simple loops (surrogate, gradient, decay-gradient
   sum) whose options are fixed across the loop. */
static void backward_range(const lif_args *a, int64_t lo, int64_t hi, double *sum_k) {
    const float *restrict grad_s = a->grad_s, *restrict grad_v = a->grad_v,
                *restrict h = a->h, *restrict x = a->x, *restrict v0 = a->v0;
    float *restrict grad_x = a->grad_x, *restrict grad_v0 = a->grad_v0;
    const int64_t n = a->n;
    const int steps = a->steps, kind = a->kind, decay_input = a->decay_input,
              soft_reset = a->soft_reset, detach_reset = a->detach_reset,
              store_v = a->store_v, want_k = a->want_k;
    const float k = a->k, threshold = a->threshold, rest = a->rest, alpha = a->alpha;
    const float retain = 1.0f - k;
    float carry[CHUNK], sg[CHUNK], gh[CHUNK], vp[CHUNK];
    double acc_k = 0.0;
    for (int64_t c0 = lo; c0 < hi; c0 += CHUNK) {
        const int m = (int)(hi - c0 < CHUNK ? hi - c0 : CHUNK);
        for (int j = 0; j < m; j++)
            carry[j] = (grad_v && !store_v) ? grad_v[c0 + j] : 0.0f;
        float chunk_k = 0.0f;
        for (int t = steps - 1; t >= 0; t--) {
            const int64_t at = (int64_t)t * n + c0;
            const float *restrict ht = h + at;
            surrogate_chunk(sg, ht, m, threshold, alpha, kind);
            if (grad_s) {
#pragma omp simd
                for (int j = 0; j < m; j++) gh[j] = sg[j] * grad_s[at + j];
            } else {
                for (int j = 0; j < m; j++) gh[j] = 0.0f;
            }
            if (grad_v && store_v) {
#pragma omp simd
                for (int j = 0; j < m; j++) carry[j] += grad_v[at + j];
            }
            if (!detach_reset && soft_reset) {
#pragma omp simd
                for (int j = 0; j < m; j++) gh[j] += carry[j] * (1.0f - threshold * sg[j]);
            } else if (!detach_reset) {
#pragma omp simd
                for (int j = 0; j < m; j++) {
                    float kept = ht[j] >= threshold ? 0.0f : 1.0f; /* dv/dh where no spike */
                    gh[j] += carry[j] * ((rest - ht[j]) * sg[j] + kept);
                }
            } else if (soft_reset) {
#pragma omp simd
                for (int j = 0; j < m; j++) gh[j] += carry[j];
            } else {
#pragma omp simd
                for (int j = 0; j < m; j++) gh[j] += ht[j] >= threshold ? 0.0f : carry[j];
            }
            if (want_k) {
                /* dh[t]/dk = (x[t] +) r - v[t-1]; v[t-1] from h[t-1] (v0 or rest at t = 0) */
                if (t > 0) {
                    const float *restrict hp = h + at - n;
#pragma omp simd
                    for (int j = 0; j < m; j++) {
                        float reset_to = soft_reset ? hp[j] - threshold : rest;
                        vp[j] = hp[j] >= threshold ? reset_to : hp[j];
                    }
                } else if (v0) {
                    for (int j = 0; j < m; j++) vp[j] = v0[c0 + j];
                } else {
                    for (int j = 0; j < m; j++) vp[j] = 0.0f;
                }
                if (decay_input) {
#pragma omp simd reduction(+ : chunk_k)
                    for (int j = 0; j < m; j++) chunk_k += gh[j] * (rest - vp[j] + x[at + j]);
                } else {
#pragma omp simd reduction(+ : chunk_k)
                    for (int j = 0; j < m; j++) chunk_k += gh[j] * (rest - vp[j]);
                }
            }
            float *restrict gx = grad_x + at;
            if (decay_input) {
#pragma omp simd
                for (int j = 0; j < m; j++) gx[j] = gh[j] * k;
            } else {
                memcpy(gx, gh, (size_t)m * sizeof(float));
            }
#pragma omp simd
            for (int j = 0; j < m; j++) carry[j] = gh[j] * retain;
        }
        if (grad_v0) memcpy(grad_v0 + c0, carry, (size_t)m * sizeof(float));
        acc_k += chunk_k;
    }
    *sum_k = acc_k;
}

void lif_backward(const lif_args *a) {
    const int parts = a->parts;
#pragma omp parallel for schedule(static, 1) num_threads(parts) if (parts > 1)
    for (int part = 0; part < parts; part++)
        backward_range(a, part_edge(a->n, part, parts), part_edge(a->n, part + 1, parts),
                       a->sum_k + part);
}
