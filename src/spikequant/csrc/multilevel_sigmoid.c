/* The multi-level (2- to 8-bit) sigmoid quantizer on the CPU, forward and backward.

       Q(w) = alpha * (sum_i h_i * sigmoid(T * (beta * w - b_i)) + q0)

   with the `steps` step positions b_i and heights h_i of a `sigmoid_args` record
   (sigmoid_args.h: the arguments, and the split of the weight over threads). Built and loaded
   like binary_sigmoid.c, called through ctypes by quant/compiled_sigmoid.py. The weights are
   taken BLOCK at a time: the loop over the steps runs outside, the loop over the block's
   weights inside, so each step is one vectorised pass over a block that stays in L1. */

#include <stdint.h>

#include "sigmoid_args.h"

#define BLOCK 1024

/* the sigmoids' argument is T * (x - b_i) with x = beta * w, in that order (as the torch path):
   at 8 bits x and b_i reach 127 and T 1000, where T * x - T * b_i would lose the digits that
   matter */
static void forward_range(const sigmoid_args *a, int64_t start, int64_t end, double *unused_a,
                          double *unused_b) {
    (void)unused_a;
    (void)unused_b;
    const float t = a->t;
    float acc[BLOCK], x[BLOCK], e[BLOCK];
    for (int64_t lo = start; lo < end;) {
        int64_t row;
        const int64_t hi = row_end(a, lo, end, &row);
        const float be = a->beta[row], al = a->alpha[row];
        for (int64_t b0 = lo; b0 < hi; b0 += BLOCK) {
            const int64_t len = (b0 + BLOCK < hi ? b0 + BLOCK : hi) - b0;
            const float *restrict w = a->w + b0;
            float *restrict q = a->q + b0;
            for (int64_t k = 0; k < len; k++) {
                acc[k] = 0.0f;
                x[k] = be * w[k];
            }
            if (a->exp_t_positions) {
#pragma omp simd
                for (int64_t k = 0; k < len; k++) e[k] = exp_poly(-(t * x[k]));
                for (int i = 0; i < a->steps; i++) {
                    const float h = a->heights[i], eb = a->exp_t_positions[i];
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) acc[k] += h / (1.0f + e[k] * eb);
                }
            } else {
                for (int i = 0; i < a->steps; i++) {
                    const float h = a->heights[i], c = a->positions[i];
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) acc[k] += h * sigmoid(t * (x[k] - c));
                }
            }
#pragma omp simd
            for (int64_t k = 0; k < len; k++) q[k] = al * (acc[k] + a->q0);
        }
        lo = hi;
    }
}

/* dQ/dw = alpha * beta * T * slope, slope = sum_i h_i * sigmoid'(.) at T (exact) or at T = 1
   (reference: sigmoid(x - b_i) = 1 / (1 + exp(-x) * exp(b_i)), one exp a weight for all steps;
   exp_poly clamps its input, so the product is never 0 * inf and saturates to the right end).
   Per row:  sum_alpha += sum g * (Q / alpha)          (dQ/dalpha; recomputed where alpha = 0)
             sum_beta  += sum g * slope * w            (times alpha T: dQ/dbeta) */
static void backward_range(const sigmoid_args *a, int64_t start, int64_t end, double *sum_alpha,
                           double *sum_beta) {
    const float t = a->t;
    float slope[BLOCK], soft[BLOCK], e[BLOCK], x[BLOCK];
    for (int64_t lo = start; lo < end;) {
        int64_t row;
        const int64_t hi = row_end(a, lo, end, &row);
        const float al = a->alpha[row], be = a->beta[row];
        const float scale = al * t * be;
        const int alpha_from_q = al != 0.0f;
        const float inv_a = alpha_from_q ? 1.0f / al : 0.0f;
        double acc_alpha = 0.0, acc_beta = 0.0;
        for (int64_t b0 = lo; b0 < hi; b0 += BLOCK) {
            const int64_t len = (b0 + BLOCK < hi ? b0 + BLOCK : hi) - b0;
            const float *restrict w = a->w + b0;
            const float *restrict g = a->g + b0;
            const float *restrict q = a->q + b0;
            float *restrict gw = a->gw + b0;
            for (int64_t k = 0; k < len; k++) {
                slope[k] = soft[k] = 0.0f;
                x[k] = be * w[k];
            }
            if (a->reference && a->exp_positions) {
#pragma omp simd
                for (int64_t k = 0; k < len; k++) e[k] = exp_poly(-x[k]);
                for (int i = 0; i < a->steps; i++) {
                    const float h = a->heights[i], eb = a->exp_positions[i];
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) {
                        float s = 1.0f / (1.0f + e[k] * eb);
                        slope[k] += h * (s * (1.0f - s));
                    }
                }
            } else if (a->reference) { /* positions too far out for exp(b_i): one exp a step */
                for (int i = 0; i < a->steps; i++) {
                    const float h = a->heights[i], c = a->positions[i];
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) {
                        float s = sigmoid(x[k] - c);
                        slope[k] += h * (s * (1.0f - s));
                    }
                }
            }
            if ((!a->reference || !alpha_from_q) && a->exp_t_positions) {
                const int exact = !a->reference;
#pragma omp simd
                for (int64_t k = 0; k < len; k++) e[k] = exp_poly(-(t * x[k]));
                for (int i = 0; i < a->steps; i++) {
                    const float h = a->heights[i], eb = a->exp_t_positions[i];
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) {
                        float s = 1.0f / (1.0f + e[k] * eb);
                        soft[k] += h * s;
                        if (exact) slope[k] += h * (s * (1.0f - s));
                    }
                }
            } else if (!a->reference || !alpha_from_q) {
                const int exact = !a->reference;
                for (int i = 0; i < a->steps; i++) {
                    const float h = a->heights[i], c = a->positions[i];
#pragma omp simd
                    for (int64_t k = 0; k < len; k++) {
                        float s = sigmoid(t * (x[k] - c));
                        soft[k] += h * s;
                        if (exact) slope[k] += h * (s * (1.0f - s));
                    }
                }
            }
            /* d loss / d alpha: from q over alpha (alpha from q), else from the soft levels */
            const float *level = alpha_from_q ? q : soft;
            const float offset = alpha_from_q ? 0.0f : a->q0;
            double sa = 0.0, sb = 0.0; /* these sums cancel: doubles, as torch's pairwise sum */
#pragma omp simd reduction(+ : sa, sb)
            for (int64_t k = 0; k < len; k++) {
                float gx = g[k] * slope[k];
                gw[k] = gx * scale;
                sa += g[k] * (level[k] + offset);
                sb += gx * w[k];
            }
            if (alpha_from_q) sa *= inv_a;
            acc_alpha += sa;
            acc_beta += sb;
        }
        sum_alpha[row] += acc_alpha;
        sum_beta[row] += acc_beta;
        lo = hi;
    }
}

void msq_forward(const sigmoid_args *a) { run_in_parts(a, forward_range); }

void msq_backward(const sigmoid_args *a) { run_in_parts(a, backward_range); }
