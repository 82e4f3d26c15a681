/* The built-in surrogates' numbers in the fused neuron kernels: the values of
   spikequant.snn.surrogate.SurrogateKernel (a test compares the two). */
#ifndef SPIKEQUANT_SURROGATE_KINDS_H
#define SPIKEQUANT_SURROGATE_KINDS_H

enum surrogate_kind {
    SURROGATE_ATAN = 0,
    SURROGATE_SIGMOID = 1,
    SURROGATE_FAST_SIGMOID = 2,
    SURROGATE_TRIANGLE = 3,
};

#endif
