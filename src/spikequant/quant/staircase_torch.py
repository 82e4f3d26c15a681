"""The sigmoid quantizer in torch ops, for any number of steps: the reference the kernels are
tested against, and the backend wherever none of them runs (see sigmoid_backends.py).

    Q(w) = alpha * ( sum_i h_i * sigmoid(T * (beta * w - b_i)) + q_0 )

alpha and beta's gradients come from autograd through the two products; the staircase itself
is one autograd Function that keeps memory O(|w|) however many steps there are.
"""

from __future__ import annotations

import torch

from .base import channel_view
from .sigmoid_backends import SigmoidArgs


class _SoftStaircase(torch.autograd.Function):
    """sum_i s_i * sigmoid(T * (x - b_i)), one step at a time so that memory stays O(|x|)
    however many levels there are (8 bits has 254 steps). Positions, heights and T stay
    tensors: reading their values on the host would stall a GPU every forward pass."""

    @staticmethod
    def forward(ctx, x, positions, heights, temperature, reference_gradient=False):
        t = temperature.to(x.dtype)
        b, s = positions.to(x.dtype), heights.to(x.dtype)
        ctx.reference = reference_gradient
        out = torch.zeros_like(x)
        z = torch.empty_like(x)
        for i in range(b.numel()):
            torch.sub(x, b[i], out=z).mul_(t).sigmoid_()
            out.addcmul_(z, s[i])
        ctx.save_for_backward(x, b, s, t)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, b, s, t = ctx.saved_tensors
        slope = torch.zeros_like(x)
        z = torch.empty_like(x)
        for i in range(b.numel()):
            torch.sub(x, b[i], out=z)
            if not ctx.reference:
                z.mul_(t)
            z.sigmoid_()
            slope.addcmul_(z * (1 - z), s[i])
        return grad_out * slope.mul_(t), None, None, None, None


def staircase_torch(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """Q(w) (see the module) in torch ops, differentiable in w, alpha and beta."""
    alpha, beta = args.alpha, args.beta
    if alpha.dim():
        alpha, beta = channel_view(alpha, w), channel_view(beta, w)
    x = beta.to(w.dtype) * w
    soft = _SoftStaircase.apply(x, args.positions, args.heights, args.temperature,
                                args.reference_gradient)
    return alpha.to(w.dtype) * (soft + args.q0.to(w.dtype))
