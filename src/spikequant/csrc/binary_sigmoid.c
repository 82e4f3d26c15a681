/* The binary sigmoid quantizer on the CPU, forward and backward, each one pass over the weights.

       Q(w) = alpha * (h * sigmoid(T * (beta * w - b)) + q0)

   with the one step position b = positions[0] and height h = heights[0] of a `sigmoid_args`
   record (sigmoid_args.h: the arguments, and the split of the weight over threads). Built at
   first use by spikequant/_cpu_kernels.py (`cc -O3 -march=native -fopenmp`) and called through
   ctypes by quant/compiled_sigmoid.py. exp is exp_poly.h's. */

#include <stdint.h>

#include "sigmoid_args.h"

#define BLOCK 2048 /* sums run in float over a block, then in double across blocks */

/* q[i] = alpha * (h * sigmoid(t * (beta * w[i] - b)) + q0) for i in [start, end) */
static void forward_range(const sigmoid_args *a, int64_t start, int64_t end, double *unused_a,
                          double *unused_b) {
    (void)unused_a;
    (void)unused_b;
    const float *restrict w = a->w;
    float *restrict q = a->q;
    const float t = a->t, b = a->positions[0], h = a->heights[0];
    for (int64_t lo = start; lo < end;) {
        int64_t row;
        const int64_t hi = row_end(a, lo, end, &row);
        const float tb = t * a->beta[row], tbb = t * b, ah = a->alpha[row] * h,
                    aq = a->alpha[row] * a->q0;
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) q[i] = ah * sigmoid(tb * w[i] - tbb) + aq;
        lo = hi;
    }
}

/* gw[i] = g[i] * alpha * h * T * beta * sigmoid'(.) where sigmoid' is the derivative at T
   (reference = 0) or of the T = 1 sigmoid, sigmoid(beta * w - b) (reference = 1, Quantization
   Networks' gradient). Per row it adds to
       sum_alpha[row] += sum g * (h * sigmoid(T (beta w - b)) + q0)       (dQ/dalpha)
       sum_beta[row]  += h * sum g * sigmoid'(.) * w    (times alpha T: dQ/dbeta)
   The reference gradient takes the alpha sum from q = Q(w) (q / alpha), saving a second exp;
   a row whose alpha is 0 recomputes the sigmoid instead. */
static void backward_range(const sigmoid_args *a, int64_t start, int64_t end, double *sum_alpha,
                           double *sum_beta) {
    const float *restrict w = a->w, *restrict g = a->g, *restrict q = a->q;
    float *restrict gw = a->gw;
    const float t = a->t, b = a->positions[0], h = a->heights[0], q0 = a->q0;
    const int reference = a->reference;
    for (int64_t lo = start; lo < end;) {
        int64_t row;
        const int64_t hi = row_end(a, lo, end, &row);
        const float al = a->alpha[row], be = a->beta[row];
        const float scale = al * h * t * be;
        const float tb = t * be, tbb = t * b;
        const int alpha_from_q = reference && al != 0.0f;
        const float inv_a = alpha_from_q ? 1.0f / al : 0.0f;
        double acc_alpha = 0.0, acc_beta = 0.0;
        for (int64_t b0 = lo; b0 < hi; b0 += BLOCK) {
            int64_t b1 = b0 + BLOCK < hi ? b0 + BLOCK : hi;
            float sa = 0.0f, sb = 0.0f;
            if (!reference) {
#pragma omp simd reduction(+ : sa, sb)
                for (int64_t i = b0; i < b1; i++) {
                    float s = sigmoid(tb * w[i] - tbb);
                    float gx = g[i] * (s * (1.0f - s));
                    gw[i] = gx * scale;
                    sa += g[i] * (h * s + q0);
                    sb += gx * w[i];
                }
            } else if (alpha_from_q) {
#pragma omp simd reduction(+ : sa, sb)
                for (int64_t i = b0; i < b1; i++) {
                    float s1 = sigmoid(be * w[i] - b);
                    float gx = g[i] * (s1 * (1.0f - s1));
                    gw[i] = gx * scale;
                    sa += g[i] * q[i];
                    sb += gx * w[i];
                }
                sa *= inv_a;
            } else {
#pragma omp simd reduction(+ : sa, sb)
                for (int64_t i = b0; i < b1; i++) {
                    float s1 = sigmoid(be * w[i] - b);
                    float gx = g[i] * (s1 * (1.0f - s1));
                    gw[i] = gx * scale;
                    sa += g[i] * (h * sigmoid(tb * w[i] - tbb) + q0);
                    sb += gx * w[i];
                }
            }
            acc_alpha += sa;
            acc_beta += sb;
        }
        sum_alpha[row] += acc_alpha;
        sum_beta[row] += acc_beta * h;
        lo = hi;
    }
}

void bsq_forward(const sigmoid_args *a) { run_in_parts(a, forward_range); }

void bsq_backward(const sigmoid_args *a) { run_in_parts(a, backward_range); }
