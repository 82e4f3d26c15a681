/* exp for the CPU kernels, written so that gcc vectorises the loops that call it without
   -ffast-math (which, linked into a shared library by gcc 12, would set flush-to-zero for the
   whole process): Cody-Waite range reduction x = n ln2 + r, then the degree-6 minimax
   polynomial for exp(r) on [-ln2/2, ln2/2] used by the Cephes library, within 2 ulp of expf.
   The input is clamped to [-87, 88], where the result is a normal float. */

#ifndef SPIKEQUANT_EXP_POLY_H
#define SPIKEQUANT_EXP_POLY_H

#include <stdint.h>
#include <string.h>

static inline float exp_poly(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

/* the first index of part `part` when n items are cut into `parts` equal ranges */
static inline int64_t part_edge(int64_t n, int64_t part, int64_t parts) {
    return (int64_t)((__int128)n * part / parts);
}

#endif
