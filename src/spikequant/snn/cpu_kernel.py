"""The multi-step LIF / PLIF neuron as a compiled CPU kernel (`csrc/lif.c`): one pass over the
time axis forward and one backward, each [T, N] tensor read or written once, where the torch
implementation (`functional._LIFMultiStep`, the reference) runs 3-4 operations per time step.
The arguments, saved state and results are those of `functional._LIFMultiStep` and of the CUDA
kernels (`kernels_triton.py`). Built and loaded by `spikequant._cpu_kernels` (which says how,
and how to turn it off); float32 tensors and the built-in surrogates only, the torch
implementation otherwise.
"""

from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from .._cpu_kernels import SOURCES, CompiledKernel, double_p, float_p, parts, ptr
from .functional import kernel_backward_inputs, kernel_buffers, save_for_kernel_backward
from .surrogate import kernel_code

_i64, _int, _f32 = ctypes.c_int64, ctypes.c_int, ctypes.c_float

KERNEL = CompiledKernel(
    SOURCES / "lif.c",
    {
        "lif_forward": [float_p, float_p, float_p, float_p, float_p, _i64, _int, _f32, _f32,
                        _f32, _int, _int, _int, _int],
        "lif_backward": [float_p, float_p, float_p, float_p, float_p, float_p, float_p, _i64,
                         _int, _f32, _f32, _f32, _f32, _int, _int, _int, _int, _int, _int, _int,
                         double_p],
    },
)


def use_cpu_kernel(x_seq: torch.Tensor, v0: torch.Tensor | None, decay, surrogate: str) -> bool:
    """Whether this neuron call runs on the kernel."""
    k = decay if isinstance(decay, torch.Tensor) else None
    return kernel_code(surrogate) is not None and KERNEL.usable_for(x_seq, v0, k)


class _LIFMultiStepCPU(torch.autograd.Function):
    """`functional._LIFMultiStep` with the same arguments and results, on the C kernel."""

    @staticmethod
    def forward(ctx, x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind, alpha,
                store_v_seq):
        x, v0, h_seq, spikes, v_out, steps, n, rest = kernel_buffers(x_seq, v0, v_reset,
                                                                     store_v_seq)
        if n > 0:
            KERNEL.lib.lif_forward(ptr(x), ptr(v0), ptr(h_seq), ptr(spikes), ptr(v_out), n,
                                   steps, float(k), float(threshold), rest, int(decay_input),
                                   int(v_reset is None), int(store_v_seq), parts(n * steps))
        save_for_kernel_backward(ctx, x, h_seq, v0, k, threshold, v_reset, decay_input,
                                 detach_reset, kind, alpha, store_v_seq)
        return spikes, v_out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v):
        (h_seq, v0, k_tensor, x_saved, threshold, rest, soft, decay_input, detach, kind, alpha,
         store_v, steps, n, want_k, want_v0) = kernel_backward_inputs(ctx)
        k = float(k_tensor) if k_tensor is not None else ctx.k
        grad_s = grad_spikes.contiguous() if grad_spikes is not None else None
        grad_v = grad_v.contiguous() if grad_v is not None else None
        grad_x = torch.empty_like(h_seq)
        grad_v0 = torch.empty_like(h_seq[0]) if want_v0 else None
        n_parts = parts(n * steps)
        sums = torch.zeros(n_parts, dtype=torch.float64)
        if n > 0:
            KERNEL.lib.lif_backward(
                ptr(grad_s), ptr(grad_v), ptr(h_seq), ptr(x_saved), ptr(v0), ptr(grad_x),
                ptr(grad_v0), n, steps, k, threshold, rest, alpha, kernel_code(kind),
                int(decay_input), int(soft), int(detach), int(store_v), int(want_k), n_parts,
                ptr(sums, double_p),
            )
        elif want_v0:
            grad_v0.zero_()
        grad_k = None
        if want_k:  # the parts in a fixed order
            grad_k = sums.sum().reshape(k_tensor.shape).to(k_tensor.dtype)
        return grad_x, grad_v0, grad_k, None, None, None, None, None, None, None


def lif_multistep_cpu(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind,
                      alpha, store_v_seq):
    """The arguments of `functional._LIFMultiStep.apply`, run by the C kernel."""
    return _LIFMultiStepCPU.apply(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset,
                                  kind, alpha, store_v_seq)
