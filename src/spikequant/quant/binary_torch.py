"""The binary sigmoid quantizer in the fewest passes torch ops allow (the CPU path).

    Q(w) = alpha * ( s * sigmoid(T * (beta * w - b)) + q_0 )

On a CPU the quantizer of a large layer is bound by memory traffic and by page faults on fresh
full-size buffers, not by arithmetic: each pass over N-MNIST's 16.8 M-weight FC layer moves
67 MB, and each new 67 MB tensor costs more than a pass. So the forward makes exactly two new
tensors (the sigmoid, saved, and Q(w)) in three passes, and the backward one (the weight
gradient) in four ops:

    d alpha = sum(g * Q(w)) / alpha           (sum(g * (s * sigma + q_0)) where alpha = 0)
    g_x     = sigmoid_backward(g, sigma)      g * sigma * (1 - sigma), one fused pass
    d beta  = alpha * s * T * sum(g_x * w)
    d w     = g_x * (alpha * s * T * beta)    in place

against ten ops and two more temporaries for the composed form. Per-channel scales (one alpha
and beta per output channel) use batched row dot products instead of dots. The reference
gradient (Quantization Networks' code: the T = 1 sigmoid's slope, scaled by T) recomputes that
sigmoid in the backward into the buffer that becomes the weight gradient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .sigmoid_backends import SigmoidArgs

_sigmoid_backward = torch.ops.aten.sigmoid_backward


def _row_dot(a: torch.Tensor, b: torch.Tensor, rows: int) -> torch.Tensor:
    """sum(a * b) per row of the [rows, -1] view, with no temporary of a's size."""
    if rows == 1:
        return torch.dot(a.reshape(-1), b.reshape(-1))
    return torch.bmm(a.reshape(rows, 1, -1), b.reshape(rows, -1, 1)).reshape(rows)


class _BinarySigmoidLean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, alpha, beta, b, s, t, q0, reference):
        sig = torch.addcmul(b * -t, w, beta * t).sigmoid_()
        out = torch.addcmul(alpha * q0, sig, alpha * s)
        ctx.save_for_backward(w, sig, out, alpha, beta, b, s, t, q0)
        ctx.reference = bool(reference)
        return out

    @staticmethod
    def backward(ctx, grad):
        w, sig, out, alpha, beta, b, s, t, q0 = ctx.saved_tensors
        g = grad.contiguous()
        rows = alpha.numel()
        grad_alpha = grad_beta = None
        if ctx.needs_input_grad[1]:
            # one pass reading Q(w) instead of two; the division needs alpha != 0, and
            # checking that on an accelerator would stall it: only on the CPU
            if w.device.type == "cpu" and bool(alpha.ne(0).all()):
                grad_alpha = _row_dot(g, out, rows).reshape(alpha.shape) / alpha
            else:
                sums = g.sum() if rows == 1 else g.reshape(rows, -1).sum(1)
                grad_alpha = (s * _row_dot(g, sig, rows) + q0 * sums).reshape(alpha.shape)
        if ctx.reference:
            slope_of = torch.addcmul(-b, w, beta).sigmoid_()
            grad_x = _sigmoid_backward.grad_input(g, slope_of, grad_input=slope_of)
        else:
            grad_x = _sigmoid_backward(g, sig)
        scale = alpha * s * t
        if ctx.needs_input_grad[2]:
            grad_beta = scale * _row_dot(grad_x, w, rows).reshape(beta.shape)
        return grad_x.mul_(scale * beta), grad_alpha, grad_beta, None, None, None, None, None


def binary_sigmoid(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """Q(w) for one step (binary levels) in training mode, differentiable in w, alpha and beta:
    the `torch-binary` backend of sigmoid_backends.py (its `args`: one position and height)."""
    dt = w.dtype
    alpha, beta = args.alpha, args.beta
    if alpha.dim():  # per channel: broadcast along w's first dimension
        view = (-1,) + (1,) * (w.dim() - 1)
        alpha, beta = alpha.reshape(view), beta.reshape(view)
    return _BinarySigmoidLean.apply(
        w, alpha.to(dt), beta.to(dt), args.positions.reshape(-1)[0].to(dt),
        args.heights.reshape(-1)[0].to(dt), args.temperature.to(dt), args.q0.to(dt),
        args.reference_gradient,
    )
