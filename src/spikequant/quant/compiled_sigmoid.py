"""What the sigmoid quantizer's two compiled CPU kernels share (csrc/binary_sigmoid.c and
csrc/multilevel_sigmoid.c, with csrc/sigmoid_args.h): the ctypes Structure of their one
argument record, and the autograd Function that calls a kernel's forward and backward with it.
cpu_kernel.py (binary) and multilevel_cpu.py (2 to 8 bits) each load one kernel and say when
it runs; outputs come from the buffer pool, mapped since the last step (no page faults).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import torch

from .._buffer_pool import POOL
from .._cpu_kernels import SOURCES, CompiledKernel, double_p, float_p, parts, ptr

if TYPE_CHECKING:
    from .sigmoid_backends import SigmoidArgs


class KernelArgs(ctypes.Structure):
    """`sigmoid_args` of csrc/sigmoid_args.h, field by field."""

    _fields_ = [
        ("w", float_p), ("q", float_p), ("g", float_p), ("gw", float_p),
        ("n", ctypes.c_int64), ("row_len", ctypes.c_int64),
        ("alpha", float_p), ("beta", float_p), ("rows_share_scale", ctypes.c_int),
        ("positions", float_p), ("heights", float_p), ("exp_positions", float_p),
        ("exp_t_positions", float_p),
        ("steps", ctypes.c_int),
        ("t", ctypes.c_float), ("q0", ctypes.c_float),
        ("reference", ctypes.c_int), ("parts", ctypes.c_int),
        ("sums", double_p),
    ]


def sigmoid_kernel(source: str, prefix: str) -> CompiledKernel:
    """The compiled kernel of csrc/SOURCE, exporting PREFIX_forward and PREFIX_backward."""
    argtypes = [ctypes.POINTER(KernelArgs)]
    return CompiledKernel(SOURCES / source,
                          {f"{prefix}_forward": argtypes, f"{prefix}_backward": argtypes})


def _record(w, q, a32, b32, steps, t, q0, reference, n_parts, g=None, gw=None, sums=None):
    positions, heights, exp_positions, exp_t_positions = steps
    rows = a32.numel()
    return ctypes.byref(KernelArgs(
        w=ptr(w), q=ptr(q), g=ptr(g), gw=ptr(gw), n=w.numel(), row_len=w.numel() // rows,
        alpha=ptr(a32), beta=ptr(b32), rows_share_scale=int(rows == 1),
        positions=ptr(positions), heights=ptr(heights), exp_positions=ptr(exp_positions),
        exp_t_positions=ptr(exp_t_positions),
        steps=positions.numel(), t=t, q0=q0, reference=reference, parts=n_parts,
        sums=ptr(sums, double_p)))


class CompiledSigmoid(torch.autograd.Function):
    """Forward and backward on a compiled kernel; each kernel's module subclasses it, so that
    autograd graphs and profiles name the kernel."""

    @staticmethod
    def forward(ctx, w, alpha, beta, kernel_pair, steps, t, q0, reference):
        forward_fn, ctx.backward_fn = kernel_pair
        w = w.contiguous()
        a32 = alpha.detach().reshape(-1).contiguous()
        b32 = beta.detach().reshape(-1).contiguous()
        scalars = (float(t), float(q0), int(bool(reference)))
        q = POOL.empty(w.shape)
        forward_fn(_record(w, q, a32, b32, steps, *scalars, parts(w.numel())))
        ctx.save_for_backward(w, q, a32, b32)
        ctx.steps, ctx.scalars = steps, scalars
        ctx.alpha_shape, ctx.beta_shape = alpha.shape, beta.shape
        return q

    @staticmethod
    def backward(ctx, grad):
        w, q, a32, b32 = ctx.saved_tensors
        g = grad.contiguous()
        n_parts = parts(w.numel())
        sums = torch.zeros(n_parts, 2, a32.numel(), dtype=torch.float64)
        gw = POOL.empty(w.shape)
        ctx.backward_fn(_record(w, q, a32, b32, ctx.steps, *ctx.scalars, n_parts, g=g, gw=gw,
                                sums=sums))
        total = sums.sum(0).to(w.dtype)  # the parts in a fixed order
        grad_alpha = total[0].reshape(ctx.alpha_shape) if ctx.needs_input_grad[1] else None
        grad_beta = None
        if ctx.needs_input_grad[2]:  # dQ/dbeta = alpha * T * sum(g * slope * w)
            grad_beta = (total[1] * (a32 * ctx.scalars[0])).reshape(ctx.beta_shape)
        return gw, grad_alpha, grad_beta, None, None, None, None, None


def run_kernel(function: type[CompiledSigmoid], kernel: CompiledKernel, prefix: str,
               w: torch.Tensor, args: SigmoidArgs,
               exp_positions: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
               ) -> torch.Tensor:
    """Q(w) on `kernel` (loaded: check `kernel.usable_for(w)` first) through `function`,
    differentiable in w, alpha and beta. `exp_positions`: exp(b_i) and exp(T b_i) for the
    multi-level kernel's one-exp-a-weight sigmoids (at T = 1 and at T), each or None."""
    lib = kernel.lib
    steps = (args.positions.detach().reshape(-1).float().contiguous(),
             args.heights.detach().reshape(-1).float().contiguous(), *exp_positions)
    return function.apply(
        w, args.alpha.float(), args.beta.float(),
        (getattr(lib, f"{prefix}_forward"), getattr(lib, f"{prefix}_backward")), steps,
        args.temperature, args.q0, args.reference_gradient)
