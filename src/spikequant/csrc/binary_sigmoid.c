/* The binary sigmoid quantizer on the CPU, forward and backward, each one pass over the weights.

       Q(w) = alpha * (h * sigmoid(T * (beta * w - b)) + q0)

   Built at first use by spikequant/_cpu_kernels.py (`cc -O3 -march=native -fopenmp`) and
   called through ctypes by quant/cpu_kernel.py. The flattened weight is cut into `parts`
   equal ranges, shared out among OpenMP threads; torch loaded its libgomp first, so these are
   torch's own intra-op threads (torch.set_num_threads). Each part sums its alpha and beta
   gradients into its own slot, and the caller adds the slots in order: the result does not
   depend on which thread ran what.
   alpha and beta hold one value per row of `row_len` weights (per output channel), or one
   value for the whole tensor (`rows_share_scale`). exp is exp_poly.h's. */

#include <stdint.h>
#include <string.h>

#include "exp_poly.h"

#define BLOCK 2048 /* sums run in float over a block, then in double across blocks */

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_poly(-x)); }

/* q[i] = alpha * (h * sigmoid(t * (beta * w[i] - b)) + q0) for i in [start, end) */
static void forward_range(const float *restrict w, float *restrict q, int64_t start,
                          int64_t end, int64_t row_len, const float *alpha, const float *beta,
                          int rows_share_scale, float b, float h, float t, float q0) {
    for (int64_t lo = start; lo < end;) {
        int64_t row = rows_share_scale ? 0 : lo / row_len;
        int64_t hi = rows_share_scale ? end : (row + 1) * row_len;
        if (hi > end) hi = end;
        const float tb = t * beta[row], tbb = t * b, ah = alpha[row] * h, aq = alpha[row] * q0;
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) q[i] = ah * sigmoid(tb * w[i] - tbb) + aq;
        lo = hi;
    }
}

/* gw[i] = g[i] * alpha * h * T * beta * sigmoid'(.) where sigmoid' is the derivative at T
   (reference = 0) or of the T = 1 sigmoid, sigmoid(beta * w - b) (reference = 1, Quantization
   Networks' gradient). Per row it adds to
       sum_alpha[row] += sum g * (h * sigmoid(T (beta w - b)) + q0)       (dQ/dalpha)
       sum_beta[row]  += sum g * sigmoid'(.) * w        (times alpha h T: dQ/dbeta)
   The reference gradient takes the alpha sum from q = Q(w) (q / alpha), saving a second exp;
   a row whose alpha is 0 recomputes the sigmoid instead. */
static void backward_range(const float *restrict w, const float *restrict g,
                           const float *restrict q, float *restrict gw, int64_t start,
                           int64_t end, int64_t row_len, const float *alpha, const float *beta,
                           int rows_share_scale, float b, float h, float t, float q0,
                           int reference, double *sum_alpha, double *sum_beta) {
    for (int64_t lo = start; lo < end;) {
        int64_t row = rows_share_scale ? 0 : lo / row_len;
        int64_t hi = rows_share_scale ? end : (row + 1) * row_len;
        if (hi > end) hi = end;
        const float a = alpha[row], be = beta[row];
        const float scale = a * h * t * be;
        const float tb = t * be, tbb = t * b;
        const int alpha_from_q = reference && a != 0.0f;
        const float inv_a = alpha_from_q ? 1.0f / a : 0.0f;
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
        sum_beta[row] += acc_beta;
        lo = hi;
    }
}

void bsq_forward(const float *w, float *q, int64_t n, int64_t row_len, const float *alpha,
                 const float *beta, int rows_share_scale, float b, float h, float t, float q0,
                 int parts) {
#pragma omp parallel for schedule(static, 1) num_threads(parts) if (parts > 1)
    for (int part = 0; part < parts; part++)
        forward_range(w, q, part_edge(n, part, parts), part_edge(n, part + 1, parts), row_len,
                      alpha, beta, rows_share_scale, b, h, t, q0);
}

/* sums: [parts][2][rows] doubles, zeroed by the caller; slot [p][0] gets part p's alpha sums,
   [p][1] its beta sums */
void bsq_backward(const float *w, const float *g, const float *q, float *gw, int64_t n,
                  int64_t row_len, const float *alpha, const float *beta, int rows_share_scale,
                  float b, float h, float t, float q0, int reference, int parts, double *sums) {
    const int64_t rows = rows_share_scale ? 1 : n / row_len;
#pragma omp parallel for schedule(static, 1) num_threads(parts) if (parts > 1)
    for (int part = 0; part < parts; part++)
        backward_range(w, g, q, gw, part_edge(n, part, parts), part_edge(n, part + 1, parts),
                       row_len, alpha, beta, rows_share_scale, b, h, t, q0, reference,
                       sums + (int64_t)part * 2 * rows, sums + ((int64_t)part * 2 + 1) * rows);
}
