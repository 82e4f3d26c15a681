/* What the sigmoid quantizer's CPU kernels (binary_sigmoid.c, multilevel_sigmoid.c) share: their
   one argument record, which quant/compiled_sigmoid.py's ctypes Structure mirrors field by
   field, and the split of the flattened weight into `parts` equal ranges, one an OpenMP thread
   (torch's own intra-op threads, as torch loaded libgomp first). Each part adds its alpha and
   beta sums into its own slot and the caller adds the slots in order, so results do not depend
   on which thread ran what. alpha and beta hold one value per row of `row_len` weights (one per
   output channel), or one value for the whole tensor (`rows_share_scale`).

       Q(w) = alpha * (sum_i h_i * sigmoid(T * (beta * w - b_i)) + q0) */

#ifndef SPIKEQUANT_SIGMOID_ARGS_H
#define SPIKEQUANT_SIGMOID_ARGS_H

#include <stdint.h>

#include "exp_poly.h"

typedef struct {
    const float *w;       /* [n] weights */
    float *q;             /* [n] forward: the output; backward: the forward's output */
    const float *g;       /* [n] backward: dL/dQ */
    float *gw;            /* [n] backward: dL/dw */
    int64_t n, row_len;
    const float *alpha, *beta; /* [rows] or [1] */
    int rows_share_scale;
    const float *positions;     /* [steps] b_i, ascending */
    const float *heights;       /* [steps] h_i */
    /* multi-level only: sigmoid(T (x - b_i)) = 1 / (1 + exp(-T x) exp(T b_i)), one exp a
       weight for all steps, where exp(T b_i) and (exp_poly clamping) exp(-T x) cannot be
       0 or inf; NULL where they could: one exp a step instead */
    const float *exp_positions;   /* [steps] exp(b_i): the reference gradient's T = 1 */
    const float *exp_t_positions; /* [steps] exp(T b_i): the sigmoids at T */
    int steps;
    float t, q0;
    int reference; /* 1: Quantization Networks' gradient (T = 1 sigmoids, times T) */
    int parts;
    double *sums; /* backward: [parts][2][rows] zeroed by the caller, gets per part the sums
                     of g * Q / alpha (dQ/dalpha) and of g * slope * w (times alpha T:
                     dQ/dbeta); forward: NULL */
} sigmoid_args;

typedef void (*sigmoid_range)(const sigmoid_args *a, int64_t start, int64_t end,
                              double *sum_alpha, double *sum_beta);

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_poly(-x)); }

/* the end of the run of weights from `lo` that share one alpha and beta (row `*row`) */
static inline int64_t row_end(const sigmoid_args *a, int64_t lo, int64_t end, int64_t *row) {
    *row = a->rows_share_scale ? 0 : lo / a->row_len;
    int64_t hi = a->rows_share_scale ? end : (*row + 1) * a->row_len;
    return hi > end ? end : hi;
}

/* `range` over each of the a->parts equal parts of the weight, one a thread */
static void run_in_parts(const sigmoid_args *a, sigmoid_range range) {
    const int parts = a->parts;
    const int64_t rows = a->rows_share_scale ? 1 : a->n / a->row_len;
#pragma omp parallel for schedule(static, 1) num_threads(parts) if (parts > 1)
    for (int part = 0; part < parts; part++) {
        double *sums = a->sums ? a->sums + (int64_t)part * 2 * rows : 0;
        range(a, part_edge(a->n, part, parts), part_edge(a->n, part + 1, parts), sums,
              sums ? sums + rows : 0);
    }
}

#endif
