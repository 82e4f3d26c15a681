"""The specification of integer-only inference: the arithmetic of an integer program
(spikequant.models.integer_program) in plain int64 tensor code, one operation at a time.

Nothing here is fast or frugal (weights are unpacked whole, convolutions are sums of shifted
integer products); it is written to be read and checked against the format, and the fast path
(`integer_infer.IntegerNetwork`) and the evaluation of a network with fixed-point state must
agree with it bit for bit (tests/export/test_integer_infer.py). All divisions are floor divisions:
round(p / 2^s) = floor((p + 2^(s-1)) / 2^s), half up.
"""

from __future__ import annotations

import torch

from ..models.integer_program import FlattenOp, IntegerProgram, IntegerStage, MaxPoolOp
from ..snn.fixed_point import IntegerNeuron


def _div_round(p: torch.Tensor, shift: int) -> torch.Tensor:
    if shift == 0:
        return p
    return torch.div(p + 2 ** (shift - 1), 2**shift, rounding_mode="floor")


def conv2d(x: torch.Tensor, w: torch.Tensor, stride: tuple[int, int],
           padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """out[n, o, i, j] = sum over c, a, b of w[o, c, a, b] * x_padded[n, c, i*s + a*d, j*s + b*d]"""
    n, _, height, width = x.shape
    out_c, _, kh, kw = w.shape
    xp = torch.zeros((n, x.shape[1], height + 2 * padding[0], width + 2 * padding[1]),
                     dtype=torch.int64)
    xp[:, :, padding[0] : padding[0] + height, padding[1] : padding[1] + width] = x
    out_h = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = torch.zeros((n, out_c, out_h, out_w), dtype=torch.int64)
    for a in range(kh):
        for b in range(kw):
            top, left = a * dilation[0], b * dilation[1]
            patch = xp[:, :, top : top + stride[0] * (out_h - 1) + 1 : stride[0],
                       left : left + stride[1] * (out_w - 1) + 1 : stride[1]]
            # [n, c, h, w] x [o, c] -> [n, h, w, o]
            out += torch.tensordot(patch, w[:, :, a, b], dims=([1], [1])).permute(0, 3, 1, 2)
    return out


def max_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
               padding: tuple[int, int]) -> torch.Tensor:
    """The maximum of each window; padding never wins (it is below every value)."""
    n, c, height, width = x.shape
    low = torch.iinfo(torch.int64).min
    xp = torch.full((n, c, height + 2 * padding[0], width + 2 * padding[1]), low,
                    dtype=torch.int64)
    xp[:, :, padding[0] : padding[0] + height, padding[1] : padding[1] + width] = x
    out_h = (xp.shape[2] - kernel[0]) // stride[0] + 1
    out_w = (xp.shape[3] - kernel[1]) // stride[1] + 1
    out = torch.full((n, c, out_h, out_w), low, dtype=torch.int64)
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            window = xp[:, :, a : a + stride[0] * (out_h - 1) + 1 : stride[0],
                        b : b + stride[1] * (out_w - 1) + 1 : stride[1]]
            out = torch.maximum(out, window)
    return out


def neuron_steps(drive: torch.Tensor, neuron: IntegerNeuron) -> torch.Tensor:
    """Spikes (int64 0/1, [T, ...]) of the integer membrane update (snn.fixed_point)."""
    low, high = -(2 ** (neuron.bits - 1)), 2 ** (neuron.bits - 1) - 1
    v = torch.full(drive.shape[1:], neuron.rest, dtype=torch.int64)
    spikes = torch.zeros(drive.shape, dtype=torch.int64)
    for t in range(drive.shape[0]):
        leak = _div_round(neuron.leak * (v - neuron.rest), neuron.bits)
        h = torch.clamp(v - leak + drive[t], low, high)
        fired = h >= neuron.threshold
        spikes[t] = fired.to(torch.int64)
        if neuron.hard_reset:
            v = torch.where(fired, torch.full_like(h, neuron.rest), h)
        else:
            v = torch.where(fired, h - neuron.threshold, h)
    return spikes


def stage_output(stage: IntegerStage, weight: torch.Tensor, x: torch.Tensor,
                 steps: int) -> torch.Tensor:
    """Spikes (int64, time folded [T*B, ...]) of one stage for integer input `x` [T*B, ...]."""
    if stage.kind == "conv":
        acc = conv2d(x, weight, stage.stride, stage.padding, stage.dilation)
    else:
        acc = x @ weight.T
    shape = (1, -1) + (1,) * (acc.dim() - 2)
    fold = stage.fold
    drive = _div_round(acc * fold.mult.view(shape) + fold.offset.view(shape), fold.shift)
    spikes = neuron_steps(drive.unflatten(0, (steps, -1)), fold.neuron)
    return spikes.flatten(0, 1)


def reference_spike_counts(program: IntegerProgram, weights: dict[str, torch.Tensor],
                           x_seq: torch.Tensor) -> torch.Tensor:
    """int64 [B, classes]: output spikes of each class over time and its voting neurons, for
    integer input [T, B, C, H, W] and each stage's weights as integer levels (int64, by the
    stage's layer name)."""
    if not torch.equal(x_seq, torch.round(x_seq.double()).to(x_seq.dtype)):
        raise ValueError("the integer network takes integer input")
    steps, batch = x_seq.shape[:2]
    h = x_seq.to(torch.int64).flatten(0, 1)
    for op in program.ops:
        if isinstance(op, IntegerStage):
            h = stage_output(op, weights[op.name].to(torch.int64), h, steps)
        elif isinstance(op, MaxPoolOp):
            h = max_pool2d(h, op.kernel, op.stride, op.padding)
        elif isinstance(op, FlattenOp):
            h = h.flatten(1)
    counts = h.unflatten(0, (steps, batch)).sum(0)
    return counts.unflatten(1, (program.num_classes, program.votes)).sum(2)
