"""The evaluation forward pass of a registered network with fixed-point neuron state.

In training the network runs its modules as usual, each neuron keeping its membrane on the
state grid (straight-through gradients; batch norm uses batch statistics). In evaluation, once
batch norm uses its running statistics, the network computes exactly what its integer program
(`integer_program`) computes, and what the integer-only inference of its exported file
computes: the accumulations run as convolutions / matrix products of integer-valued float
tensors (exact: every partial sum is an integer below 2^24 in float32, checked, or 2^53 in
float64), everything after them on int64 tensors.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..quant import float_weight, weight_quantizer
from ..snn.fixed_point import fixed_point_drive
from .integer_program import (
    FlattenOp,
    IntegerProgram,
    IntegerStage,
    MaxPoolOp,
    fold_from_tensors,
    trace_program,
)

FLOAT32_EXACT = 1 << 24


def unquantized_layers(model: nn.Module) -> list[str]:
    """Names of the conv / linear layers whose weights are float (no quantizer, or 'none')."""
    return [
        name for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
        and (weight_quantizer(m) is None or weight_quantizer(m).is_float)
    ]


def program_of_model(model: nn.Module) -> tuple[IntegerProgram, dict[str, torch.Tensor]]:
    """(integer program, {layer name: int64 weight codes}) of a registered network with
    state bits, from its current parameters."""
    floats = dict(model.named_parameters())
    floats.update(dict(model.named_buffers()))
    modules = dict(model.named_modules())
    codes: dict[str, torch.Tensor] = {}

    def weights(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        layer = modules[name]
        with torch.no_grad():
            q = weight_quantizer(layer).quantize(float_weight(layer))
        codes[name] = q.codes
        return q.scale, q.levels

    fold = fold_from_tensors(weights, floats.get, model.state_bits)
    program = trace_program(model.named_children(), fold, model.state_bits, model.input_shape,
                            model.num_classes, model.votes)
    return program, codes


def exact_dtype(device: torch.device, bound: float) -> torch.dtype:
    """float32 where every integer partial sum up to `bound` is exact on this device, else
    float64 (always off the CPU: GPU libraries may use TF32 or transform-based convolutions)."""
    return torch.float32 if device.type == "cpu" and bound < FLOAT32_EXACT else torch.float64


def no_inexact_kernels(device: torch.device):
    """cuDNN may pick FFT / Winograd convolutions, which are not exact on integers."""
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return nullcontext()


def accumulate(stage: IntegerStage, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The stage's integer accumulator (int64) for integer-valued `x` (time folded), with
    `weight` integer-valued in x's dtype."""
    with no_inexact_kernels(x.device):
        if stage.kind == "conv":
            acc = F.conv2d(x, weight, None, stage.stride, stage.padding, stage.dilation)
        else:
            acc = F.linear(x, weight)
    return acc.to(torch.int64)


def check_integer_input(x: torch.Tensor) -> None:
    if not bool(torch.isfinite(x).all()) or not torch.equal(x, torch.round(x)):
        raise ValueError(
            "a network with fixed-point state takes integer input (spikes or event counts per "
            "pixel, as the datasets' frames are); got non-integer values"
        )


@dataclass
class _Compiled:
    program: IntegerProgram
    level_weights: dict[str, torch.Tensor]  # {stage name: integer levels [L] as float64}
    codes: dict[str, torch.Tensor]
    weights: dict[tuple[str, torch.dtype, torch.device], torch.Tensor]

    def weight(self, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The layer's integer levels, weight-shaped, as `dtype` on `device` (kept)."""
        key = (name, dtype, device)
        if key not in self.weights:
            levels = self.level_weights[name].to(device, dtype)
            self.weights[key] = levels[self.codes[name].to(device)]
        return self.weights[key]


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _version_key(model: nn.Module) -> tuple[Any, ...] | None:
    try:
        return (model.state_bits,) + tuple(
            (id(t), t._version) for t in (*model.parameters(), *model.buffers()))
    except RuntimeError:  # inference tensors keep no version counter
        return None


def compiled(model: nn.Module) -> _Compiled:
    """The model's program, rebuilt only when a parameter or buffer changed since last time."""
    key = _version_key(model)
    hit = _CACHE.get(model)
    if key is not None and hit is not None and hit[0] == key:
        return hit[1]
    program, codes = program_of_model(model)
    levels = {s.name: s.fold.level_ints.double() for s in program.stages}
    result = _Compiled(program, levels, codes, {})
    if key is not None:
        _CACHE[model] = (key, result)
    return result


ACC_SLICE_BYTES = 8 << 20  # int64 accumulator of one slice of a stage (channels x samples)

WeightSlice = Callable[[IntegerStage, int, int, torch.dtype], torch.Tensor]


def run_program(program: IntegerProgram, x_seq: torch.Tensor, weight_slice: WeightSlice,
                channel_slice: Callable[[IntegerStage], int] | None = None) -> torch.Tensor:
    """Spike counts (int64 [B, classes]) of the program for integer-valued input [T, B, ...].

    `weight_slice(stage, first, last, dtype)` gives output channels [first, last) of a stage's
    weights as integer levels in `dtype`; `channel_slice(stage)` how many channels to take at a
    time (default: all). Samples are taken a slice at a time too, so that one slice's int64
    accumulator over all time steps stays within ACC_SLICE_BYTES."""
    check_integer_input(x_seq)
    steps = x_seq.shape[0]
    h = x_seq
    peak = float(h.abs().max()) if h.numel() else 0.0
    ops, i = program.ops, 0
    with torch.autocast(x_seq.device.type, enabled=False), torch.no_grad():
        while i < len(ops):
            op = ops[i]
            if isinstance(op, IntegerStage):
                after = ops[i + 1] if i + 1 < len(ops) else None
                pool = after if isinstance(after, MaxPoolOp) else None
                width = channel_slice(op) if channel_slice else op.weight_shape[0]
                h, peak = _run_stage(op, h, peak, weight_slice, width, pool), 1.0
                i += 2 if pool is not None else 1
                continue
            if isinstance(op, MaxPoolOp):
                h = F.max_pool2d(h.flatten(0, 1).float(), op.kernel, op.stride, op.padding)
                h = h.unflatten(0, (steps, -1))
            elif isinstance(op, FlattenOp):
                h = h.flatten(2)
            i += 1
    counts = h.sum(0).to(torch.int64)
    return counts.unflatten(1, (program.num_classes, program.votes)).sum(2)


def _run_stage(stage: IntegerStage, h: torch.Tensor, peak: float, weight_slice: WeightSlice,
               width: int, pool: MaxPoolOp | None) -> torch.Tensor:
    """The stage's spikes (uint8 0/1, [T, B, ...]), max-pooled by `pool` if given. Input and
    output stay whole; everything in between exists for one slice at a time."""
    fold = stage.fold
    device = h.device
    dtype = exact_dtype(device, stage.fan_in * float(fold.level_ints.abs().max()) * peak)
    steps, batch, channels = h.shape[0], h.shape[1], stage.weight_shape[0]
    spatial = h[0, 0, 0].numel() if stage.kind == "conv" else 1
    width = max(1, min(width, ACC_SLICE_BYTES // (8 * steps * spatial)))
    samples = max(1, min(batch, ACC_SLICE_BYTES // (8 * steps * width * spatial)))
    mult, offset = fold.mult.to(device), fold.offset.to(device)
    out = None
    for first in range(0, channels, width):
        last = min(first + width, channels)
        weight = weight_slice(stage, first, last, dtype)
        for b0 in range(0, batch, samples):
            b1 = min(b0 + samples, batch)
            acc = accumulate(stage, h[:, b0:b1].flatten(0, 1).to(dtype), weight)
            drive = fixed_point_drive(acc, mult[first:last], offset[first:last], fold.shift)
            del acc  # the drive overwrote it
            s = fold.neuron.run(drive.unflatten(0, (steps, -1))).flatten(0, 1)
            del drive
            if pool is not None:
                s = F.max_pool2d(s.to(torch.float32), pool.kernel, pool.stride, pool.padding)
            if out is None:
                out = torch.empty((steps, batch, channels, *s.shape[2:]), dtype=torch.uint8,
                                  device=device)
            out[:, b0:b1, first:last] = s.unflatten(0, (steps, -1))
    return out


def fixed_point_forward(model: nn.Module, x_seq: torch.Tensor) -> torch.Tensor:
    """Class scores [B, classes] (spike counts / (T * votes)) of the model's integer program."""
    c = compiled(model)

    def weight_slice(stage: IntegerStage, first: int, last: int, dtype: torch.dtype):
        return c.weight(stage.name, dtype, x_seq.device)[first:last]

    counts = run_program(c.program, x_seq, weight_slice)
    return counts.to(torch.float32) / float(x_seq.shape[0] * c.program.votes)
