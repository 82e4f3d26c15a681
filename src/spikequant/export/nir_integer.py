"""NIR export of a network with fixed-point neuron state: the integers it was simulated with.

The graph is Input -> per stage: nir.Conv2d / nir.Affine with the weights as integer levels
(int8, or int16 when a level needs it; zero bias) -> a gain node where the stage's
multipliers differ between channels (a channel-diagonal 1x1 nir.Conv2d; a diagonal nir.Affine
on vectors) -> nir.LIF in membrane units (one unit = one step of the membrane grid, measured
from the resting potential R) -> max pooling of spikes as a channel-diagonal nir.Conv2d of
ones + a LIF at 0.5 (exact on spikes) -> ... -> Output. The input frames are integer event
counts. Every node is in the normalised form of `nir_nodes` (r = 1, v_leak = v_reset = 0),
which snnTorch, Norse and Sinabs read.

With k = L / 2^K the leak fraction, a stage's drive D = (mult[c] acc + offset[c]) / 2^shift
is k times the LIF input gain[c] acc + bias[c], gain = mult / (k 2^shift), bias = offset /
(k 2^shift): the Euler step of NIR's LIF, u += k (I - u), is then the integer update before
rounding. A gain shared by every channel with no offset is divided out of the threshold
instead of a gain node (the LIF then counts in units of that gain).

nir.LIF fields, per neuron, with time step dt:
    v_threshold   (THETA - R) / gain  or THETA - R with a gain node; THETA = 2^(K-3)
    tau           dt * 2^K / L
NIR's equations have no rounding or saturation, so the exact integer fields travel in each
LIF node's metadata["integer"]: state_bits K, leak L, threshold, rest, hard_reset, v_min,
v_max, shift, mult [C] and offset [C] (int64 arrays), and the update as a formula with its
rounding rule. A hardware toolchain that reads those reproduces `spikequant infer` exactly; a
float simulator of the graph (snnTorch, Norse, Sinabs) drops the rounding and agrees on
nearly every spike.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from torch import nn

from ..errors import UnsupportedExport
from ..models.fixed_point_forward import program_of_model
from ..models.integer_program import FlattenOp, IntegerStage, MaxPoolOp
from .nir_nodes import (
    CONVENTIONS,
    DEFAULT_DT,
    affine_node,
    chain_graph,
    conv_node,
    conv_out,
    flatten_node,
    neuron_nodes,
    spike_pool_nodes,
)

UPDATE_RULE = (
    "D[t] = (mult[c] * acc + offset[c] + 2^(shift-1)) >> shift; "
    "H = V - ((leak * (V - rest) + 2^(K-1)) >> K) + D[t]; H = clamp(H, v_min, v_max); "
    "spike = H >= threshold; V = rest if spike (hard reset) or H - threshold (soft), else H; "
    "V starts at rest; >> is an arithmetic shift (floor), so rounding is half up"
)


def _int_array(values: np.ndarray) -> np.ndarray:
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
            return values.astype(dtype)
    return values.astype(np.int64)


def _weight_node(stage: IntegerStage, weight: np.ndarray, shape: tuple[int, ...]):
    meta = {"integer": 1, "level_unit": stage.fold.level_unit,
            "level_ints": stage.fold.level_ints.numpy()}
    if stage.kind == "linear":
        return affine_node(weight, metadata=meta), (stage.weight_shape[0],)
    kh, kw = stage.weight_shape[2:]
    out = (stage.weight_shape[0],
           conv_out(shape[1], kh, stage.stride[0], stage.padding[0], stage.dilation[0]),
           conv_out(shape[2], kw, stage.stride[1], stage.padding[1], stage.dilation[1]))
    node = conv_node(weight, shape[1:], stride=stage.stride, padding=stage.padding,
                     dilation=stage.dilation, metadata=meta)
    return node, out


def _neuron_nodes(stage: IntegerStage, shape: tuple[int, ...], dt: float):
    fold, neuron = stage.fold, stage.fold.neuron
    if neuron.leak == 0:
        raise UnsupportedExport(f"{stage.neuron_name}: a leak fraction of 0 (tau beyond "
                                f"2^{neuron.bits + 1} steps) has no NIR LIF form")
    k = neuron.leak / 2**neuron.bits
    mult, offset = fold.mult.numpy(), fold.offset.numpy()
    gain = mult.astype(np.float64) / (k * 2.0**fold.shift)
    bias = offset.astype(np.float64) / (k * 2.0**fold.shift)
    meta = {"kind": "integer LIF", "dt": dt, "integer": {
        "state_bits": neuron.bits, "leak": neuron.leak, "threshold": neuron.threshold,
        "rest": neuron.rest, "hard_reset": int(neuron.hard_reset), "v_min": neuron.v_min,
        "v_max": neuron.v_max, "shift": fold.shift, "mult": mult.astype(np.int64),
        "offset": offset.astype(np.int64), "update": UPDATE_RULE}}
    return neuron_nodes(stage.neuron_name, shape, 2**neuron.bits / neuron.leak,
                        float(neuron.threshold - neuron.rest), gain, bias, dt, metadata=meta,
                        gain_name=f"{stage.name}_gain")


def integer_nir_graph(model: nn.Module, time_steps: int | None = None,
                      dt: float = DEFAULT_DT) -> Any:
    """The nir.NIRGraph of a registered network with state bits (module docstring)."""
    program, codes = program_of_model(model)
    shape = tuple(program.input_shape)
    nodes: list[tuple[str, Any]] = []
    pools = 0
    for op in program.ops:
        if isinstance(op, IntegerStage):
            weight = _int_array(op.fold.level_ints[codes[op.name]].numpy())
            node, out = _weight_node(op, weight, shape)
            nodes.append((op.name, node))
            nodes.extend(_neuron_nodes(op, out, dt))
            shape = out
        elif isinstance(op, MaxPoolOp):
            pools += 1
            pool, shape = spike_pool_nodes(f"pool{pools}", shape, op.kernel, op.stride,
                                           op.padding, dt, weight_dtype=np.int8)
            nodes.extend(pool)
        elif isinstance(op, FlattenOp):
            nodes.append(("flatten", flatten_node(shape)))
            shape = (int(np.prod(shape)),)
    metadata = {
        "source": "spikequant", "arithmetic": "integer", "state_bits": program.state_bits,
        "dt": dt, "time_unit": "s", "time_steps": -1 if time_steps is None else int(time_steps),
        "update": UPDATE_RULE, "conventions": CONVENTIONS,
        "readout": "class = the most output spikes over the time steps, summed over each "
        "class's `votes` consecutive output neurons (ties: the first class)",
        "votes": program.votes,
        "model_config": json.dumps(getattr(model, "config", None), default=str),
    }
    return chain_graph(nodes, tuple(program.input_shape), shape, metadata)
