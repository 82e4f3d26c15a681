/* The multi-step LIF / PLIF neuron on the CPU: the forward pass over all T steps and the
   backward pass through time, each reading and writing every [T, N] tensor once.

   The same dynamics, options and saved state as functional._LIFMultiStep (the reference) and
   kernels_triton.py (the CUDA kernels): the forward keeps the charged potentials h [T, N],
   the backward recomputes spikes, surrogate gradients and reset slopes from them. Neurons are
   processed in chunks of CHUNK whose membrane potential (forward) or carried gradient
   (backward) stays in a small array while the loop walks the time axis, and the inner loop
   over a chunk is vectorised. The N neurons are cut into `parts` equal ranges shared out
   among OpenMP threads (torch's own pool: torch loaded libgomp first); each part sums the
   decay gradient in its own slot, added in order by the caller. exp is exp_poly.h's.

   Built and loaded by spikequant/_cpu_kernels.py; called by snn/cpu_kernel.py. */

#include <stdint.h>
#include <string.h>

#include "exp_poly.h"

#define CHUNK 512

/* d/dx of the built-in surrogates, numbered as spikequant.snn.surrogate.BUILTIN_SURROGATES */
static inline float surrogate_grad(float x, float alpha, int kind) {
    if (kind == 0) { /* atan */
        float z = 1.5707963267948966f * alpha * x;
        return (alpha * 0.5f) / (1.0f + z * z);
    }
    if (kind == 1) { /* sigmoid */
        float s = 1.0f / (1.0f + exp_poly(-alpha * x));
        return alpha * s * (1.0f - s);
    }
    if (kind == 2) { /* fast sigmoid */
        float d = 1.0f + alpha * __builtin_fabsf(x);
        return (alpha * 0.5f) / (d * d);
    }
    float tri = 1.0f - alpha * __builtin_fabsf(x); /* triangle */
    return alpha * (tri > 0.0f ? tri : 0.0f);
}

/* x, h, s: [steps, n]; v0: [n] or NULL; v_out: [steps, n] (store_v) or [n] */
static void forward_range(const float *restrict x, const float *restrict v0, float *restrict h,
                          float *restrict s, float *restrict v_out, int64_t lo, int64_t hi,
                          int64_t n, int steps, float k, float threshold, float rest,
                          int decay_input, int soft_reset, int store_v) {
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

void lif_forward(const float *x, const float *v0, float *h, float *s, float *v_out, int64_t n,
                 int steps, float k, float threshold, float rest, int decay_input,
                 int soft_reset, int store_v, int parts) {
#pragma omp parallel for schedule(static, 1) num_threads(parts) if (parts > 1)
    for (int part = 0; part < parts; part++)
        forward_range(x, v0, h, s, v_out, part_edge(n, part, parts),
                      part_edge(n, part + 1, parts), n, steps, k, threshold, rest, decay_input,
                      soft_reset, store_v);
}

/* grad_s, h, grad_x: [steps, n]; grad_v: [steps, n] (store_v), [n] or NULL; x: [steps, n] or
   NULL (only read for the decay gradient with decay_input); v0: [n] or NULL; grad_v0: [n] or
   NULL; sum_k: this part's slot */
static void backward_range(const float *restrict grad_s, const float *restrict grad_v,
                           const float *restrict h, const float *restrict x,
                           const float *restrict v0, float *restrict grad_x,
                           float *restrict grad_v0, int64_t lo, int64_t hi, int64_t n,
                           int steps, float k, float threshold, float rest, float alpha,
                           int kind, int decay_input, int soft_reset, int detach_reset,
                           int store_v, int want_k, double *sum_k) {
    const float retain = 1.0f - k;
    float carry[CHUNK];
    double acc_k = 0.0;
    for (int64_t c0 = lo; c0 < hi; c0 += CHUNK) {
        const int m = (int)(hi - c0 < CHUNK ? hi - c0 : CHUNK);
        for (int j = 0; j < m; j++)
            carry[j] = (grad_v && !store_v) ? grad_v[c0 + j] : 0.0f;
        float chunk_k = 0.0f;
        for (int t = steps - 1; t >= 0; t--) {
            const int64_t at = (int64_t)t * n + c0;
            const int64_t prev = (int64_t)(t > 0 ? t - 1 : 0) * n + c0;
            const int first = t == 0;
#pragma omp simd reduction(+ : chunk_k)
            for (int j = 0; j < m; j++) {
                float hh = h[at + j];
                int fired = hh >= threshold;
                float sg = surrogate_grad(hh - threshold, alpha, kind);
                float gs = grad_s ? grad_s[at + j] : 0.0f;
                float gh = sg * gs;
                float c = carry[j];
                if (grad_v && store_v) c += grad_v[at + j];
                if (!detach_reset) {
                    gh += soft_reset ? c * (1.0f - threshold * sg)
                                     : c * ((rest - hh) * sg + (fired ? 0.0f : 1.0f));
                } else {
                    gh += (soft_reset || !fired) ? c : 0.0f;
                }
                if (want_k) {
                    /* dh[t]/dk = (x[t] +) r - v[t-1]; v[t-1] from h[t-1] (v0 or rest at 0) */
                    float hp = h[prev + j];
                    float vp = hp >= threshold ? (soft_reset ? hp - threshold : rest) : hp;
                    if (first) vp = v0 ? v0[c0 + j] : 0.0f;
                    float slope = rest - vp;
                    if (decay_input) slope += x[at + j];
                    chunk_k += gh * slope;
                }
                carry[j] = gh * retain;
                grad_x[at + j] = decay_input ? gh * k : gh;
            }
        }
        if (grad_v0) memcpy(grad_v0 + c0, carry, (size_t)m * sizeof(float));
        acc_k += chunk_k;
    }
    *sum_k = acc_k;
}

void lif_backward(const float *grad_s, const float *grad_v, const float *h, const float *x,
                  const float *v0, float *grad_x, float *grad_v0, int64_t n, int steps, float k,
                  float threshold, float rest, float alpha, int kind, int decay_input,
                  int soft_reset, int detach_reset, int store_v, int want_k, int parts,
                  double *sum_k) {
#pragma omp parallel for schedule(static, 1) num_threads(parts) if (parts > 1)
    for (int part = 0; part < parts; part++)
        backward_range(grad_s, grad_v, h, x, v0, grad_x, grad_v0, part_edge(n, part, parts),
                       part_edge(n, part + 1, parts), n, steps, k, threshold, rest, alpha,
                       kind, decay_input, soft_reset, detach_reset, store_v, want_k,
                       sum_k + part);
}
