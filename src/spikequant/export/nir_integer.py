"""NIR export of a network with fixed-point neuron state: the integers it was simulated with.

The graph is Input -> per stage: nir.Conv2d / nir.Linear with the weights as integer levels
(int8, or int16 when a level needs it; zero bias) -> nir.LIF in membrane units (one unit = one
step of the membrane grid) -> max pooling of spikes as nir.SumPool2d + nir.Threshold(0.5)
(exact on spikes) -> ... -> Output. The input frames are integer event counts.

nir.LIF fields, per neuron, in membrane units with time step dt:
    v_threshold   THETA = 2^(K-3)          (integers; float arrays, as NIR declares them)
    v_reset       R                        (the reset and resting potential)
    tau           dt * 2^K / L             (the leak fraction k = L / 2^K)
    r, v_leak     mult / (k 2^shift), R + offset / (k 2^shift) per channel: the Euler step of
                  NIR's LIF, v += k (v_leak - v) + k r acc, is then the integer update before
                  rounding (k is already folded into mult and offset with decay_input).
NIR's equations have no rounding or saturation, so the exact integer fields travel in each
LIF node's metadata["integer"]: state_bits K, leak L, threshold, rest, hard_reset, v_min,
v_max, shift, mult [C] and offset [C] (int64 arrays), and the update as a formula with its
rounding rule. A hardware toolchain that reads those reproduces `spikequant infer` exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from ..errors import UnsupportedExport
from ..models.fixed_point_forward import program_of_model
from ..models.integer_program import FlattenOp, IntegerStage, MaxPoolOp

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


def _conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _weight_node(stage: IntegerStage, weight: np.ndarray, shape: tuple[int, ...]):
    import nir

    meta = {"integer": 1, "level_unit": stage.fold.level_unit,
            "level_ints": stage.fold.level_ints.numpy()}
    if stage.kind == "linear":
        return nir.Linear(weight=weight, metadata=meta), (stage.weight_shape[0],)
    kh, kw = stage.weight_shape[2:]
    out = (stage.weight_shape[0],
           _conv_out(shape[1], kh, stage.stride[0], stage.padding[0], stage.dilation[0]),
           _conv_out(shape[2], kw, stage.stride[1], stage.padding[1], stage.dilation[1]))
    node = nir.Conv2d(input_shape=tuple(shape[1:]), weight=weight, stride=stage.stride,
                      padding=stage.padding, dilation=stage.dilation, groups=1,
                      bias=np.zeros(stage.weight_shape[0], dtype=weight.dtype), metadata=meta)
    return node, out


def _per_neuron(per_channel: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(per_channel.reshape(-1, *([1] * (len(shape) - 1))), shape).copy()


def _neuron_node(stage: IntegerStage, shape: tuple[int, ...], dt: float):
    import nir

    fold, neuron = stage.fold, stage.fold.neuron
    if neuron.leak == 0:
        raise UnsupportedExport(f"{stage.neuron_name}: a leak fraction of 0 (tau beyond "
                                f"2^{neuron.bits + 1} steps) has no NIR LIF form")
    k = neuron.leak / 2**neuron.bits
    mult, offset = fold.mult.numpy(), fold.offset.numpy()
    r = mult.astype(np.float64) / (k * 2.0**fold.shift)
    v_leak = neuron.rest + offset.astype(np.float64) / (k * 2.0**fold.shift)
    meta = {"kind": "integer LIF", "dt": dt, "integer": {
        "state_bits": neuron.bits, "leak": neuron.leak, "threshold": neuron.threshold,
        "rest": neuron.rest, "hard_reset": int(neuron.hard_reset), "v_min": neuron.v_min,
        "v_max": neuron.v_max, "shift": fold.shift, "mult": mult.astype(np.int64),
        "offset": offset.astype(np.int64), "update": UPDATE_RULE}}
    full = np.full(shape, 1.0)
    return nir.LIF(tau=full * dt * 2**neuron.bits / neuron.leak, r=_per_neuron(r, shape),
                   v_leak=_per_neuron(v_leak, shape), v_threshold=full * neuron.threshold,
                   v_reset=full * neuron.rest, metadata=meta)


def _pool_nodes(op: MaxPoolOp, shape: tuple[int, ...]):
    import nir

    out = (shape[0], _conv_out(shape[1], op.kernel[0], op.stride[0], op.padding[0]),
           _conv_out(shape[2], op.kernel[1], op.stride[1], op.padding[1]))
    summed = nir.SumPool2d(kernel_size=np.array(op.kernel), stride=np.array(op.stride),
                           padding=np.array(op.padding), metadata={"from": "MaxPool2d"})
    spikes = nir.Threshold(threshold=np.full(out, 0.5),
                           metadata={"from": "MaxPool2d (binary OR of the window)"})
    return [summed, spikes], out


def integer_nir_graph(model: nn.Module, time_steps: int | None = None, dt: float = 1.0) -> Any:
    """The nir.NIRGraph of a registered network with state bits (module docstring)."""
    import nir

    program, codes = program_of_model(model)
    shape = tuple(program.input_shape)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    pools = 0
    for op in program.ops:
        if isinstance(op, IntegerStage):
            weight = _int_array(op.fold.level_ints[codes[op.name]].numpy())
            nodes[op.name], shape = _weight_node(op, weight, shape)
            nodes[op.neuron_name] = _neuron_node(op, shape, dt)
        elif isinstance(op, MaxPoolOp):
            pools += 1
            (summed, spikes), shape = _pool_nodes(op, shape)
            nodes[f"pool{pools}"], nodes[f"pool{pools}.threshold"] = summed, spikes
        elif isinstance(op, FlattenOp):
            nodes["flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0,
                                           end_dim=-1)
            shape = (int(np.prod(shape)),)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    names = list(nodes)
    metadata = {
        "source": "spikequant", "arithmetic": "integer", "state_bits": program.state_bits,
        "dt": dt, "time_steps": -1 if time_steps is None else int(time_steps),
        "update": UPDATE_RULE,
        "readout": "class = the most output spikes over the time steps, summed over each "
        "class's `votes` consecutive output neurons (ties: the first class)",
        "votes": program.votes,
    }
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata=metadata,
                        type_check=True)
