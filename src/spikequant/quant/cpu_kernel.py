"""The binary sigmoid quantizer as a compiled CPU kernel (`csrc/binary_sigmoid.c`): one pass
over the weights forward, one backward, with the sigmoid, its derivative and the alpha and
beta sums done while each weight is in a register; the torch ops of `binary_torch.py` make
nine passes over N-MNIST's 67 MB FC weight a step. Built and loaded by
`spikequant._cpu_kernels` (which says how, and how to turn it off); the torch ops remain the
reference and the fallback.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import torch

from .._buffer_pool import POOL
from .._cpu_kernels import SOURCES, CompiledKernel, double_p, float_p, parts, ptr

if TYPE_CHECKING:
    from .sigmoid_backends import SigmoidArgs

_i64, _int, _f32 = ctypes.c_int64, ctypes.c_int, ctypes.c_float

KERNEL = CompiledKernel(
    SOURCES / "binary_sigmoid.c",
    {
        "bsq_forward": [float_p, float_p, _i64, _i64, float_p, float_p, _int,
                        _f32, _f32, _f32, _f32, _int],
        "bsq_backward": [float_p, float_p, float_p, float_p, _i64, _i64, float_p, float_p, _int,
                         _f32, _f32, _f32, _f32, _int, _int, double_p],
    },
)


def unavailable_reason() -> str | None:
    """None when the kernel is built and loaded, else why it is not (one line)."""
    return KERNEL.unavailable_reason()


def use_cpu_kernel(w: torch.Tensor) -> bool:
    """Whether the binary quantizer of weight `w` runs on this kernel (CPU float32, kernels
    not switched to torch ops, and the kernel builds)."""
    return KERNEL.usable_for(w)


class _BinarySigmoidCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, alpha, beta, b, h, t, q0, reference):
        w = w.contiguous()
        a32 = alpha.detach().reshape(-1).contiguous()
        b32 = beta.detach().reshape(-1).contiguous()
        shared = int(a32.numel() == 1)
        row_len = w.numel() // a32.numel()
        scalars = (float(b), float(h), float(t), float(q0))
        q = POOL.empty(w.shape)  # mapped since the last step: no page faults
        KERNEL.lib.bsq_forward(ptr(w), ptr(q), w.numel(), row_len, ptr(a32), ptr(b32), shared,
                               *scalars, parts(w.numel()))
        ctx.save_for_backward(w, q, a32, b32)
        ctx.scalars, ctx.reference = scalars, int(bool(reference))
        ctx.alpha_shape, ctx.beta_shape = alpha.shape, beta.shape
        return q

    @staticmethod
    def backward(ctx, grad):
        w, q, a32, b32 = ctx.saved_tensors
        g = grad.contiguous()
        rows = a32.numel()
        shared, row_len = int(rows == 1), w.numel() // rows
        n_parts = parts(w.numel())
        sums = torch.zeros(n_parts, 2, rows, dtype=torch.float64)
        gw = POOL.empty(w.shape)
        KERNEL.lib.bsq_backward(ptr(w), ptr(g), ptr(q), ptr(gw), w.numel(), row_len, ptr(a32),
                                ptr(b32), shared, *ctx.scalars, ctx.reference, n_parts,
                                ptr(sums, double_p))
        total = sums.sum(0).to(w.dtype)  # the parts in a fixed order
        _, h, t, _ = ctx.scalars
        grad_alpha = total[0].reshape(ctx.alpha_shape) if ctx.needs_input_grad[1] else None
        grad_beta = None
        if ctx.needs_input_grad[2]:
            grad_beta = (total[1] * (a32 * (h * t))).reshape(ctx.beta_shape)
        return gw, grad_alpha, grad_beta, None, None, None, None, None


def binary_sigmoid_cpu(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """The `c-binary` backend of sigmoid_backends.py (check `use_cpu_kernel(w)` first): what
    `binary_torch.binary_sigmoid` gives, up to float rounding."""
    return _BinarySigmoidCPU.apply(
        w, args.alpha.float(), args.beta.float(), args.positions.reshape(-1)[0],
        args.heights.reshape(-1)[0], args.temperature, args.q0, args.reference_gradient,
    )
