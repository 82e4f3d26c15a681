"""A registered network as an integer program: what its fixed-point state version computes,
layer by layer, with every number an integer.

A stage is a weight layer, the batch norm after it (if any) and the neuron layer it feeds:

    acc   = sum over inputs of W_int * x                 x: spikes (0/1) or the integer input
                                                          frames (event counts); W_int the
                                                          weight's level as an integer
    D     = round((mult[c] * acc + offset[c]) / 2^shift)  per output channel c
    spikes = IntegerNeuron(D)                             spikequant.snn.fixed_point

Folding (float64, on the CPU, so that every caller gets the same integers): a quantized weight
is scale * levels[code] and the levels are integer multiples of a unit u (1 for binary,
ternary and k-bit levels); batch norm in eval mode is y = g * z + beta - g * mean with
g = gamma / sqrt(var + eps). With k the neuron's leak fraction (decay_input) and step its
membrane grid step, the real multiplier is m[c] = k * scale * u * g[c] / step and the real
offset o[c] = k * (beta[c] - g[c] * mean[c] + g[c] * bias[c]) / step; both are rounded (half up)
to integers at `shift` fractional bits, `shift` being the largest that keeps every multiplier of
the layer within 16-bit signed range (MULTIPLIER_BITS), at most MAX_SHIFT. Between stages:
max pooling of spikes (exact) and flattening. The readout counts output spikes over time and
over each class's voting neurons: the class with the most spikes wins (ties: the first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..quant import float_weight
from ..snn import LIF, PLIF, BaseLIF, TimeSharedDropout
from ..snn.fixed_point import IntegerNeuron, StateGrid, quantize_fraction

MULTIPLIER_BITS = 16
MAX_SHIFT = 32
MAX_LEVEL_INT = 1 << 15
SKIPPED = (TimeSharedDropout, nn.Dropout, nn.Identity)


@dataclass
class StageFold:
    """The integers of one stage."""

    level_ints: torch.Tensor  # int64 [L]: the level set in units of `level_unit`
    level_unit: float
    mult: torch.Tensor  # int64 [C]
    offset: torch.Tensor  # int64 [C]
    shift: int
    neuron: IntegerNeuron

    def info(self) -> dict[str, Any]:
        """JSON-ready description (the per-channel tensors are stored apart)."""
        return {"level_ints": self.level_ints.tolist(), "level_unit": self.level_unit,
                "shift": self.shift, "neuron": asdict(self.neuron)}

    @classmethod
    def from_info(cls, info: dict[str, Any], mult: torch.Tensor, offset: torch.Tensor):
        return cls(torch.tensor(info["level_ints"], dtype=torch.int64), float(info["level_unit"]),
                   mult.to(torch.int64), offset.to(torch.int64), int(info["shift"]),
                   IntegerNeuron(**info["neuron"]))


@dataclass
class IntegerStage:
    name: str  # the weight layer's module name
    kind: str  # "conv" or "linear"
    weight_shape: tuple[int, ...]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    bn_name: str | None
    neuron_name: str
    fold: StageFold

    @property
    def fan_in(self) -> int:
        return math.prod(self.weight_shape[1:])


@dataclass(frozen=True)
class MaxPoolOp:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class FlattenOp:
    pass


@dataclass
class IntegerProgram:
    ops: list[IntegerStage | MaxPoolOp | FlattenOp]
    input_shape: tuple[int, ...]
    num_classes: int
    votes: int
    state_bits: int

    @property
    def stages(self) -> list[IntegerStage]:
        return [op for op in self.ops if isinstance(op, IntegerStage)]


def integer_levels(levels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(integers n_j, unit u) with levels[j] = u * n_j, u the largest that works (a level set
    whose values are not integer multiples of a common unit within 1e-4 is refused)."""
    values = levels.detach().cpu().double().flatten()
    gap = float((values[1:] - values[:-1]).min()) if values.numel() > 1 else abs(float(values[0]))
    for divisor in range(1, 65):
        unit = gap / divisor
        ratio = values / unit
        if float((ratio - ratio.round()).abs().max()) <= 1e-4:
            ints = ratio.round().to(torch.int64)
            if int(ints.abs().max()) >= MAX_LEVEL_INT:
                break
            return ints, unit
    raise ValueError(
        f"levels {values.tolist()} are not small integer multiples of one unit, which the "
        "fixed-point network needs; use integer or evenly spaced levels (e.g. --bits K)"
    )


def multiplier_shift(m: torch.Tensor) -> int:
    """The most fractional bits (<= MAX_SHIFT) that keep round(|m| * 2^shift) < 2^15."""
    top = float(m.abs().max()) if m.numel() else 0.0
    limit = (1 << (MULTIPLIER_BITS - 1)) - 1
    if top == 0.0:
        return 0
    shift = min(max(math.floor(math.log2(limit / top)), 0), MAX_SHIFT)
    while shift > 0 and math.floor(top * 2.0**shift + 0.5) > limit:
        shift -= 1
    return shift


@dataclass
class BatchNormParams:
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    running_mean: torch.Tensor
    running_var: torch.Tensor
    eps: float


def fold_stage(
    scale: torch.Tensor,
    levels: torch.Tensor,
    channels: int,
    neuron: BaseLIF,
    decay: float,
    state_bits: int,
    bias: torch.Tensor | None = None,
    bn: BatchNormParams | None = None,
) -> StageFold:
    """The integers of a stage (module docstring), from its float parameters."""
    grid = StateGrid(state_bits, neuron.threshold)
    ints, unit = integer_levels(levels)
    s = scale.detach().cpu().double().flatten() * unit
    s = s.expand(channels).clone() if s.numel() == 1 else s
    b = torch.zeros(channels, dtype=torch.float64)
    if bias is not None:
        b = b + bias.detach().cpu().double()
    if bn is not None:
        g = torch.rsqrt(bn.running_var.detach().cpu().double() + bn.eps)
        if bn.weight is not None:
            g = g * bn.weight.detach().cpu().double()
        b = (b - bn.running_mean.detach().cpu().double()) * g
        if bn.bias is not None:
            b = b + bn.bias.detach().cpu().double()
        s = s * g
    leak = quantize_fraction(decay, state_bits)
    gain = (leak / (1 << state_bits) if neuron.decay_input else 1.0) / grid.step
    m, o = s * gain, b * gain
    if not bool(torch.isfinite(m).all() & torch.isfinite(o).all()):
        raise ValueError("a stage folds to infinite or NaN multipliers (zero batch-norm variance "
                         "with eps 0, or non-finite parameters)")
    shift = multiplier_shift(m)
    mult = torch.floor(m * 2.0**shift + 0.5).to(torch.int64)
    offset_real = torch.floor(o * 2.0**shift + 0.5)
    if float(offset_real.abs().max()) >= 2.0**62:
        raise ValueError("a stage's folded offset overflows 64-bit integers; its batch-norm "
                         "shift is out of all proportion to its scale")
    rest = 0 if neuron.v_reset is None else grid.to_int(neuron.v_reset)
    integer_neuron = IntegerNeuron(state_bits, leak, grid.threshold_int, rest,
                                   hard_reset=neuron.v_reset is not None)
    return StageFold(ints, unit, mult, offset_real.to(torch.int64), shift, integer_neuron)


def neuron_decay(neuron: nn.Module, w: torch.Tensor | None) -> float:
    """k = 1/tau of a LIF (its tau) or PLIF (sigmoid of its parameter w, in float64)."""
    if isinstance(neuron, PLIF):
        if w is None:
            raise ValueError("a PLIF neuron's parameter w is missing")
        return float(torch.sigmoid(w.detach().cpu().double()))
    if isinstance(neuron, LIF):
        return 1.0 / neuron.tau
    raise ValueError(f"{type(neuron).__name__} has no fixed-point form (LIF and PLIF do)")


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(x) for x in v)


def _no_integer_form(name: str, module: nn.Module, why: str) -> ValueError:
    return ValueError(f"{name} ({type(module).__name__}) has no integer form: {why}")


@dataclass
class _OpenStage:
    name: str
    layer: nn.Module
    bn_name: str | None = None
    bn: nn.Module | None = None


FoldFn = Callable[[_OpenStage, str, BaseLIF], StageFold]


def _close(open_stage: _OpenStage, neuron_name: str, neuron: BaseLIF,
           fold: FoldFn) -> IntegerStage:
    layer = open_stage.layer
    shape = tuple(float_weight(layer).shape)
    if isinstance(layer, nn.Conv2d):
        return IntegerStage(open_stage.name, "conv", shape, _pair(layer.stride),
                            _pair(layer.padding), _pair(layer.dilation), open_stage.bn_name,
                            neuron_name, fold(open_stage, neuron_name, neuron))
    return IntegerStage(open_stage.name, "linear", shape, (1, 1), (0, 0),
                        (1, 1), open_stage.bn_name, neuron_name,
                        fold(open_stage, neuron_name, neuron))


def _check_layer(name: str, m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise _no_integer_form(name, m, "only groups=1 and numeric zero padding")


def _pool_op(name: str, m: nn.MaxPool2d) -> MaxPoolOp:
    if m.ceil_mode or _pair(m.dilation) != (1, 1):
        raise _no_integer_form(name, m, "max pooling with ceil_mode or dilation")
    stride = m.stride if m.stride is not None else m.kernel_size
    return MaxPoolOp(_pair(m.kernel_size), _pair(stride), _pair(m.padding))


def trace_program(
    modules: Iterable[tuple[str, nn.Module]],
    fold: FoldFn,
    state_bits: int,
    input_shape: tuple[int, ...],
    num_classes: int,
    votes: int,
) -> IntegerProgram:
    """The program of a chain of modules (a SpikingConvNet's children, in order)."""
    ops: list[IntegerStage | MaxPoolOp | FlattenOp] = []
    open_stage: _OpenStage | None = None
    for name, m in modules:
        if isinstance(m, SKIPPED):
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if open_stage is not None:
                raise _no_integer_form(name, m, f"{open_stage.name} reaches it without a neuron")
            _check_layer(name, m)
            open_stage = _OpenStage(name, m)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if open_stage is None or open_stage.bn is not None:
                raise _no_integer_form(name, m, "batch norm must follow a conv / linear layer")
            if m.running_mean is None:
                raise _no_integer_form(name, m, "batch norm without running statistics")
            open_stage.bn_name, open_stage.bn = name, m
        elif isinstance(m, BaseLIF):
            if open_stage is None:
                raise _no_integer_form(name, m, "a neuron must follow a conv / linear layer")
            ops.append(_close(open_stage, name, m, fold))
            open_stage = None
        elif isinstance(m, nn.MaxPool2d) and open_stage is None:
            ops.append(_pool_op(name, m))
        elif isinstance(m, nn.Flatten) and open_stage is None:
            if m.start_dim != 1 or m.end_dim != -1:
                raise _no_integer_form(name, m, "only Flatten(1, -1)")
            ops.append(FlattenOp())
        else:
            raise _no_integer_form(name, m, "only conv / linear, batch norm, LIF / PLIF, max "
                                   "pooling of spikes, flatten and dropout have one")
    if open_stage is not None or not ops or not isinstance(ops[-1], IntegerStage):
        raise ValueError("the network must end with a neuron layer to have an integer form")
    return IntegerProgram(ops, tuple(input_shape), num_classes, votes, state_bits)


def bn_params(module: nn.Module, tensor: Callable[[str], torch.Tensor | None],
              name: str) -> BatchNormParams:
    return BatchNormParams(tensor(f"{name}.weight"), tensor(f"{name}.bias"),
                           tensor(f"{name}.running_mean"), tensor(f"{name}.running_var"),
                           float(module.eps))


def fold_from_tensors(
    weights: Callable[[str], tuple[torch.Tensor, torch.Tensor]],
    tensor: Callable[[str], torch.Tensor | None],
    state_bits: int,
) -> FoldFn:
    """A FoldFn reading float parameters by state_dict key (`tensor`, None where absent) and
    (scale, levels) of each layer by its module name (`weights`)."""

    def fold(stage: _OpenStage, neuron_name: str, neuron: BaseLIF) -> StageFold:
        scale, levels = weights(stage.name)
        bn = None if stage.bn is None else bn_params(stage.bn, tensor, stage.bn_name)
        decay = neuron_decay(neuron, tensor(f"{neuron_name}.w"))
        channels = float_weight(stage.layer).shape[0]
        return fold_stage(scale, levels, channels, neuron, decay, state_bits,
                          bias=tensor(f"{stage.name}.bias"), bn=bn)

    return fold
