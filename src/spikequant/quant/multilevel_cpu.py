"""The multi-level (2- to 8-bit) sigmoid quantizer as a compiled CPU kernel
(`csrc/multilevel_sigmoid.c`): the forward pass sums the steps' sigmoids a block of weights at
a time, with no full-size temporary per step; the backward pass makes the weight gradient and
the alpha and beta sums in one pass, and with the reference gradient (the default) takes all
steps' T = 1 sigmoids from a single exp a weight. The torch path (`sigmoid._SoftStaircase` and
tensor ops) makes two full-size passes per step each way. Built and loaded by
`spikequant._cpu_kernels`; the torch ops remain the reference and the fallback.
"""

from __future__ import annotations

import ctypes
import math
from typing import TYPE_CHECKING

import torch

from .._buffer_pool import POOL
from .._cpu_kernels import SOURCES, CompiledKernel, double_p, float_p, parts, ptr

if TYPE_CHECKING:
    from .sigmoid_backends import SigmoidArgs

MAX_STEPS = 255  # csrc/multilevel_sigmoid.c's MAX_STEPS: 8 bits
# The reference gradient takes its T = 1 sigmoids from exp(-x) * exp(b_i), one exp a weight,
# while every position is within this of 0 (exp(b_i) a normal float, never 0 * inf); wider
# level sets (e.g. 8 bits' -127..127) make one exp a step
FAST_REFERENCE_MAX_POSITION = 60.0


class MultilevelArgs(ctypes.Structure):
    """`msq_args` of csrc/multilevel_sigmoid.c, field by field."""

    _fields_ = [
        ("w", float_p), ("q", float_p), ("g", float_p), ("gw", float_p),
        ("n", ctypes.c_int64), ("row_len", ctypes.c_int64),
        ("alpha", float_p), ("beta", float_p), ("rows_share_scale", ctypes.c_int),
        ("positions", float_p), ("heights", float_p), ("exp_positions", float_p),
        ("steps", ctypes.c_int),
        ("t", ctypes.c_float), ("q0", ctypes.c_float),
        ("reference", ctypes.c_int), ("parts", ctypes.c_int),
        ("sums", double_p),
    ]


_ARGS_P = ctypes.POINTER(MultilevelArgs)
KERNEL = CompiledKernel(SOURCES / "multilevel_sigmoid.c",
                        {"msq_forward": [_ARGS_P], "msq_backward": [_ARGS_P]})


def unavailable_reason() -> str | None:
    """None when the kernel is built and loaded, else why it is not (one line)."""
    return KERNEL.unavailable_reason()


def use_multilevel_cpu(w: torch.Tensor, positions: torch.Tensor) -> bool:
    """Whether the sigmoid quantizer of weight `w` with step `positions` runs on this kernel:
    CPU float32, 2 to 255 steps, kernels not switched to torch ops, and the kernel builds."""
    steps = positions.numel()
    return 1 < steps <= MAX_STEPS and positions.device.type == "cpu" and KERNEL.usable_for(w)


def _args(w, q, a32, b32, steps, t, q0, reference, n_parts, g=None, gw=None, sums=None):
    positions, heights, exp_positions = steps
    rows = a32.numel()
    args = MultilevelArgs(
        w=ptr(w), q=ptr(q), g=ptr(g), gw=ptr(gw), n=w.numel(), row_len=w.numel() // rows,
        alpha=ptr(a32), beta=ptr(b32), rows_share_scale=int(rows == 1),
        positions=ptr(positions), heights=ptr(heights), exp_positions=ptr(exp_positions),
        steps=positions.numel(), t=t, q0=q0, reference=reference, parts=n_parts,
        sums=ptr(sums, double_p))
    return ctypes.byref(args)


class _MultilevelSigmoidCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, alpha, beta, positions, heights, t, q0, reference):
        w = w.contiguous()
        a32 = alpha.detach().reshape(-1).contiguous()
        b32 = beta.detach().reshape(-1).contiguous()
        b = positions.detach().float().contiguous()
        fast = reference and float(b.abs().max()) <= FAST_REFERENCE_MAX_POSITION
        steps = (b, heights.detach().float().contiguous(),
                 torch.exp(b.double()).float() if fast else None)
        scalars = (float(t), float(q0), int(bool(reference)))
        q = POOL.empty(w.shape)  # mapped since the last step: no page faults
        KERNEL.lib.msq_forward(_args(w, q, a32, b32, steps, *scalars, parts(w.numel())))
        ctx.save_for_backward(w, q, a32, b32)
        ctx.steps, ctx.scalars = steps, scalars
        ctx.alpha_shape, ctx.beta_shape = alpha.shape, beta.shape
        return q

    @staticmethod
    def backward(ctx, grad):
        w, q, a32, b32 = ctx.saved_tensors
        g = grad.contiguous()
        rows = a32.numel()
        n_parts = parts(w.numel())
        sums = torch.zeros(n_parts, 2, rows, dtype=torch.float64)
        gw = POOL.empty(w.shape)
        KERNEL.lib.msq_backward(_args(w, q, a32, b32, ctx.steps, *ctx.scalars, n_parts,
                                      g=g, gw=gw, sums=sums))
        total = sums.sum(0).to(w.dtype)  # the parts in a fixed order
        t = ctx.scalars[0]
        grad_alpha = total[0].reshape(ctx.alpha_shape) if ctx.needs_input_grad[1] else None
        grad_beta = None
        if ctx.needs_input_grad[2]:
            grad_beta = (total[1] * (a32 * t)).reshape(ctx.beta_shape)
        return gw, grad_alpha, grad_beta, None, None, None, None, None


def multilevel_sigmoid_cpu(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """The `c-multilevel` backend of sigmoid_backends.py (check
    `use_multilevel_cpu(w, args.positions)` first): what the `torch` backend gives, up to
    float rounding."""
    if not math.isfinite(float(args.temperature)):
        raise ValueError(f"temperature must be finite, got {float(args.temperature)}")
    return _MultilevelSigmoidCPU.apply(w, args.alpha.float(), args.beta.float(), args.positions,
                                       args.heights, args.temperature, args.q0,
                                       args.reference_gradient)
