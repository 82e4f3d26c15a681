"""The multi-step LIF / PLIF neuron as a compiled CPU kernel (`csrc/lif.c`): one pass over the
time axis forward and one backward, each [T, N] tensor read or written once, where the torch
implementation (`functional._LIFMultiStep`, the reference) runs 3-4 operations per time step.
The arguments, saved state and results are those of `functional._LIFMultiStep` and of the CUDA
kernels (`kernels_triton.py`); the autograd Function is `functional.FusedLIFMultiStep`, with
this module's `CPUKernelBackend` launching the kernel. Both C functions take one argument
record (`csrc/lif_args.h`, mirrored by `LifArgs`). Built and loaded by
`spikequant._cpu_kernels` (which says how, and how to turn it off); float32 tensors and the
built-in surrogates only, the torch implementation otherwise.
"""

from __future__ import annotations

import ctypes

import torch

from .._cpu_kernels import SOURCES, CompiledKernel, double_p, float_p, parts, ptr
from .functional import Decay, FusedLIFMultiStep, KernelBackwardInputs, KernelBuffers
from .surrogate import kernel_code


class LifArgs(ctypes.Structure):
    """`lif_args` of csrc/lif_args.h, field by field (that header says what each holds)."""

    _fields_ = [
        ("x", float_p), ("v0", float_p), ("h", float_p), ("s", float_p), ("v_out", float_p),
        ("grad_s", float_p), ("grad_v", float_p), ("grad_x", float_p), ("grad_v0", float_p),
        ("sum_k", double_p),
        ("n", ctypes.c_int64), ("steps", ctypes.c_int),
        ("k", ctypes.c_float), ("threshold", ctypes.c_float), ("rest", ctypes.c_float),
        ("alpha", ctypes.c_float),
        ("kind", ctypes.c_int), ("decay_input", ctypes.c_int), ("soft_reset", ctypes.c_int),
        ("detach_reset", ctypes.c_int), ("store_v", ctypes.c_int), ("want_k", ctypes.c_int),
        ("parts", ctypes.c_int),
    ]


_ONE_RECORD = [ctypes.POINTER(LifArgs)]
KERNEL = CompiledKernel(SOURCES / "lif.c", {"lif_forward": _ONE_RECORD,
                                            "lif_backward": _ONE_RECORD})


def use_cpu_kernel(x_seq: torch.Tensor, v0: torch.Tensor | None, decay, surrogate: str) -> bool:
    """Whether this neuron call runs on the kernel."""
    k = decay if isinstance(decay, torch.Tensor) else None
    return kernel_code(surrogate) is not None and KERNEL.usable_for(x_seq, v0, k)


class CPUKernelBackend:
    """`functional.FusedLIFMultiStep`'s launches on the C kernel (`KERNEL`, loaded)."""

    def launch_forward(self, buffers: KernelBuffers, k: Decay, threshold: float,
                       decay_input: bool, soft_reset: bool, store_v: bool) -> None:
        """`lif_forward` over all T steps, its threads split by the tensor's size."""
        n, steps = buffers.n, buffers.steps
        KERNEL.lib.lif_forward(ctypes.byref(LifArgs(
            x=ptr(buffers.x), v0=ptr(buffers.v0), h=ptr(buffers.h_seq), s=ptr(buffers.spikes),
            v_out=ptr(buffers.v_out), n=n, steps=steps, k=float(k), threshold=float(threshold),
            rest=buffers.rest, decay_input=int(decay_input), soft_reset=int(soft_reset),
            store_v=int(store_v), parts=parts(n * steps))))

    def launch_backward(self, saved: KernelBackwardInputs, k: Decay,
                        grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None,
                        grad_x: torch.Tensor, grad_v0: torch.Tensor | None
                        ) -> torch.Tensor | None:
        """`lif_backward`; each thread's part of the decay gradient in its own float64 slot,
        the slots added in a fixed order."""
        # named here, so that a contiguous copy lives until the kernel has returned
        grad_s = grad_spikes.contiguous() if grad_spikes is not None else None
        grad_v = grad_v.contiguous() if grad_v is not None else None
        n_parts = parts(saved.n * saved.steps)
        sums = torch.zeros(n_parts, dtype=torch.float64)
        KERNEL.lib.lif_backward(ctypes.byref(LifArgs(
            x=ptr(saved.x_saved), v0=ptr(saved.v0), h=ptr(saved.h_seq), grad_s=ptr(grad_s),
            grad_v=ptr(grad_v), grad_x=ptr(grad_x), grad_v0=ptr(grad_v0),
            sum_k=ptr(sums, double_p), n=saved.n, steps=saved.steps, k=float(k),
            threshold=saved.threshold, rest=saved.rest, alpha=saved.alpha,
            kind=kernel_code(saved.kind), decay_input=int(saved.decay_input),
            soft_reset=int(saved.soft), detach_reset=int(saved.detach),
            store_v=int(saved.store_v), want_k=int(saved.want_k), parts=n_parts)))
        return sums.sum() if saved.want_k else None


CPU_BACKEND = CPUKernelBackend()


class _LIFMultiStepCPU(FusedLIFMultiStep):
    """`functional._LIFMultiStep` with the same arguments and results, on the C kernel."""


def lif_multistep_cpu(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind,
                      alpha, store_v_seq):
    """The arguments of `functional._LIFMultiStep.apply`, run by the C kernel."""
    return _LIFMultiStepCPU.apply(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset,
                                  kind, alpha, store_v_seq, CPU_BACKEND)
