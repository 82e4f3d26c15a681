"""Export a (quantized) spiking network to NIR, the Neuromorphic Intermediate Representation.

The network is traced with one dummy forward pass; the modules it calls, in order, must form a
chain (the study's networks do). Every node is one of the primitives snnTorch, Norse and Sinabs
all read, in the normalised form `nir_nodes` describes (r = 1, v_leak = v_reset = 0). Mapping,
per time step of `dt` seconds:

- Conv2d -> nir.Conv2d, Linear -> nir.Affine (zero bias when the layer has none). Quantized
  layers carry their eval-mode weights, scale * levels[codes], so each weight tensor holds at
  most L distinct values (L per output channel with per-channel scales); node metadata keeps
  `bits`, `levels` and `scale`, and `nir_sidecar` carries the exact codes.
- BatchNorm (eval: y = s z + t per channel) -> a gain node (1x1 nir.Conv2d, channel-diagonal, or a
  diagonal nir.Affine after a flatten), so the quantized weights stay untouched.
- LIF / PLIF (decay k = 1/tau, sigmoid(w) for PLIF; potential u = v - v_reset) -> nir.LIF with
  tau = dt / k, threshold - v_reset; with decay_input=False (h = v - k v + x) the input's gain
  1/k is divided out of the threshold (threshold * k). NIR fires on v > threshold, we on
  v >= threshold: they differ only for a potential exactly at threshold. A soft (subtract)
  reset has no NIR equivalent: exported as a reset to 0, with metadata reset="subtract".
- MaxPool2d on spikes -> channel-diagonal nir.Conv2d of ones + a memoryless nir.LIF at 0.5 (exact on
  binary input); max pooling of non-binary values raises UnsupportedExport.
- AvgPool2d -> channel-diagonal nir.Conv2d of 1/(kh kw); AvgPool1d (a voting layer) -> nir.Affine
  with 1/k entries; Flatten (module or a reshape between modules) -> nir.Flatten; dropout ->
  nothing (eval).
- The network's readout (output spikes averaged over the time steps) is outside the graph; the
  graph's metadata says so.

A registered network with fixed-point neuron state exports its integers instead (integer
weights, thresholds, leaks and per-channel multipliers): see `nir_integer`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_path, atomic_write_text
from ..errors import UnsupportedExport
from ..quant import WeightQuantizer, float_weight, weight_quantizer
from ..snn import BaseLIF, TimeSharedDropout
from .hooks import forward_hooks
from .nir_nodes import (
    CONVENTIONS,
    DEFAULT_DT,
    affine_node,
    chain_graph,
    channel_diagonal,
    conv_node,
    flatten_node,
    gain_node,
    if_node,
    neuron_nodes,
    spike_pool_nodes,
)

SKIPPED = (nn.Dropout, nn.Dropout2d, nn.Identity, TimeSharedDropout)


@dataclass
class TracedCall:
    name: str
    module: nn.Module
    in_shape: tuple[int, ...]  # one sample, one time step
    out_shape: tuple[int, ...]
    binary_input: bool
    in_ptr: int
    out_ptr: int


def _is_traced(name: str, module: nn.Module) -> bool:
    if isinstance(module, WeightQuantizer) or ".parametrizations" in f".{name}":
        return False
    if isinstance(module, (nn.Conv2d, nn.Linear, BaseLIF)):
        return True
    return not any(True for _ in module.children())


def _sample_shape(t: torch.Tensor, batch: int) -> tuple[int, ...]:
    # Traced with T = 1 and B = `batch`: time-major tensors start [1, B], folded ones [B].
    if t.shape[0] == batch:
        return tuple(t.shape[1:])
    if t.dim() > 1 and t.shape[0] == 1 and t.shape[1] == batch:
        return tuple(t.shape[2:])
    raise UnsupportedExport(f"cannot tell the batch axis of a tensor of shape {tuple(t.shape)}")


def _ptr(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


@torch.no_grad()
def trace_calls(model: nn.Module, input_shape: tuple[int, ...], batch: int = 2) -> list[TracedCall]:
    """The modules one forward pass calls, in order, with per-sample shapes."""
    calls: list[TracedCall] = []
    seen: set[int] = set()

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output: Any) -> None:
            if id(module) in seen:
                raise UnsupportedExport(f"module {name} is called twice; only chains export")
            seen.add(id(module))
            x = inputs[0]
            calls.append(TracedCall(name, module, _sample_shape(x, batch),
                                    _sample_shape(output, batch),
                                    bool(((x == 0) | (x == 1)).all()), _ptr(x), _ptr(output)))
        return record

    hooks = {m: hook(n) for n, m in model.named_modules() if n and _is_traced(n, m)}
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        # Spike-like input so that the trace sees the pooling of binary maps it will export.
        x = (torch.rand(1, batch, *input_shape, device=device) < 0.3).float()
        with forward_hooks(hooks):
            model(x)
    finally:
        model.train(was_training)
    return calls


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _quant_metadata(layer: nn.Module) -> dict[str, Any]:
    q = weight_quantizer(layer)
    if q is None or q.is_float:
        return {"quantized": 0}
    qw = q.quantize(float_weight(layer))
    return {"quantized": 1, "bits": qw.bits, "levels": _np(qw.levels),
            "scale": _np(qw.scale.flatten())}


def _conv_node(call: TracedCall) -> Any:
    m = call.module
    if m.padding_mode != "zeros":
        raise UnsupportedExport(f"{call.name}: padding_mode {m.padding_mode!r} has no NIR form")
    padding = m.padding if isinstance(m.padding, str) else _pair(m.padding)
    if m.groups != 1:
        raise UnsupportedExport(f"{call.name}: a grouped convolution (groups={m.groups}) is "
                                "misread by NIR importers; export needs groups=1")
    bias = None if m.bias is None else _np(m.bias)
    return conv_node(_np(m.weight), call.in_shape[1:], bias, _pair(m.stride), padding,
                     _pair(m.dilation), metadata=_quant_metadata(m))


def _linear_node(call: TracedCall) -> Any:
    m = call.module
    bias = None if m.bias is None else _np(m.bias)
    return affine_node(_np(m.weight), bias, metadata=_quant_metadata(m))


def _bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    if bn.running_mean is None:
        raise UnsupportedExport("batch norm without running statistics cannot be exported")
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        s = s * bn.weight
    t = -bn.running_mean * s
    if bn.bias is not None:
        t = t + bn.bias
    return s.detach().float(), t.detach().float()


def _bn_node(call: TracedCall) -> Any:
    s, t = _bn_scale_shift(call.module)
    return gain_node(_np(s), _np(t), call.out_shape, metadata={"from": "BatchNorm (eval)"})


def _neuron_nodes(call: TracedCall, dt: float) -> list[tuple[str, Any]]:
    m, shape = call.module, call.out_shape
    decay = m.decay()
    k = float(decay.detach()) if torch.is_tensor(decay) else float(decay)
    if k == 0.0:  # no leak: an integrate-and-fire neuron (only with decay_input=False)
        if m.decay_input:
            raise UnsupportedExport(f"{call.name}: decay 0 with decay_input never charges")
        return [(call.name, if_node(shape, m.threshold - m.rest, dt,
                                    metadata={"kind": type(m).__name__, "dt": dt}))]
    meta = {"kind": type(m).__name__, "tau_steps": 1.0 / k, "dt": dt,
            "reset": "subtract" if m.v_reset is None else "to_v_reset",
            "v_reset": m.rest, "decay_input": int(m.decay_input)}
    if m.v_reset is None:
        warnings.warn(f"{call.name}: soft (subtract) reset exported as a reset to 0; NIR's LIF "
                      "has only a reset to v_reset", stacklevel=3)
    # decay_input=False adds the input undecayed: u' = (1-k) u + x = (1-k) u + k (x / k)
    gain = np.ones(shape[0]) * (1.0 if m.decay_input else 1.0 / k)
    return neuron_nodes(call.name, shape, 1.0 / k, m.threshold - m.rest, gain,
                        np.zeros(shape[0]), dt, metadata=meta)


def _pool_nodes(call: TracedCall, dt: float) -> list[tuple[str, Any]]:
    m = call.module
    kernel = _pair(m.kernel_size)
    stride = _pair(m.stride if m.stride is not None else m.kernel_size)
    padding = _pair(m.padding)
    if len(call.in_shape) != 3:
        raise UnsupportedExport(f"{call.name}: pooling exports on (C, H, W) maps only")
    channels = call.in_shape[0]
    if isinstance(m, nn.AvgPool2d):
        if m.ceil_mode or (any(padding) and not m.count_include_pad) or m.divisor_override:
            raise UnsupportedExport(f"{call.name}: this AvgPool2d variant has no NIR form")
        weight = channel_diagonal(np.full(channels, 1.0 / (kernel[0] * kernel[1])), kernel)
        return [(call.name, conv_node(weight, call.in_shape[1:], stride=stride, padding=padding,
                                      metadata={"from": "AvgPool2d"}))]
    if m.ceil_mode or _pair(m.dilation) != (1, 1):
        raise UnsupportedExport(f"{call.name}: max pool with ceil_mode/dilation has no NIR form")
    if not call.binary_input:
        raise UnsupportedExport(
            f"{call.name}: NIR 1.0 has no max pool; it is exported exactly only on spikes "
            "(binary input), and this one pools non-binary values")
    nodes, _ = spike_pool_nodes(call.name, call.in_shape, kernel, stride, padding, dt)
    return nodes


def _vote_node(call: TracedCall) -> Any:
    m = call.module
    k, stride = m.kernel_size[0], (m.stride or m.kernel_size)[0]
    if k != stride or m.padding[0] or len(call.in_shape) != 1:
        raise UnsupportedExport(f"{call.name}: only AvgPool1d(k, k) on a vector exports")
    n_in, n_out = call.in_shape[0], call.out_shape[0]
    w = np.zeros((n_out, n_in), dtype=np.float32)
    for j in range(n_out):
        w[j, j * k : (j + 1) * k] = 1.0 / k
    return affine_node(w, metadata={"from": "AvgPool1d (voting layer)"})


def _nodes_for(calls: list[TracedCall], input_shape: tuple[int, ...], dt: float):
    nodes: list[tuple[str, Any]] = []
    shape = tuple(input_shape)
    for i, call in enumerate(calls):
        m = call.module
        if i and call.in_ptr != calls[i - 1].out_ptr:
            raise UnsupportedExport(
                f"{call.name} does not take the output of {calls[i - 1].name}: only chains of "
                "modules export to NIR (no residual or functional branches)")
        if isinstance(m, SKIPPED):
            continue
        if call.in_shape != shape:
            if len(call.in_shape) != 1 or math.prod(call.in_shape) != math.prod(shape):
                raise UnsupportedExport(f"{call.name}: input {call.in_shape} after {shape}")
            nodes.append((f"{call.name}_flatten_in", flatten_node(shape)))
        if isinstance(m, nn.Conv2d):
            nodes.append((call.name, _conv_node(call)))
        elif isinstance(m, nn.Linear):
            nodes.append((call.name, _linear_node(call)))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nodes.append((call.name, _bn_node(call)))
        elif isinstance(m, BaseLIF):
            nodes.extend(_neuron_nodes(call, dt))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            nodes.extend(_pool_nodes(call, dt))
        elif isinstance(m, nn.AvgPool1d):
            nodes.append((call.name, _vote_node(call)))
        elif isinstance(m, nn.Flatten):
            nodes.append((call.name, flatten_node(call.in_shape)))
        else:
            raise UnsupportedExport(f"{call.name}: {type(m).__name__} has no NIR mapping")
        shape = call.out_shape
    return nodes, shape


def _model_input_shape(model: nn.Module) -> tuple[int, ...]:
    config = getattr(model, "config", None) or {}
    if "name" not in config:
        shape = getattr(model, "input_shape", None)
        if shape is not None:
            return tuple(int(s) for s in shape)
        raise ValueError("pass input_shape=(C, H, W): the network has no registered model_config")
    from ..models import model_recipe

    return tuple(model_recipe(config["name"]).input_shape)


def _check_dt(dt: float) -> float:
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt (seconds a time step) must be a positive number, got {dt}")
    return dt


def to_nir(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    time_steps: int | None = None,
    dt: float = DEFAULT_DT,
) -> Any:
    """The network as a nir.NIRGraph (see the module docstring for the mapping).

    Args:
        model: the network, quantized or not; traced with one dummy forward pass. One with
            fixed-point neuron state (`state_bits` set) exports its integers (nir_integer).
        input_shape: (C, H, W) of one frame (default: the registered network's, or the
            model's `input_shape`); not used for a network with fixed-point state.
        time_steps: stored in the graph metadata (-1 there when None, the default); it does
            not change the graph.
        dt: the duration of one time step in seconds, NIR's time unit (time constants are
            tau_steps * dt). The default 1e-4 is the step snnTorch's importer assumes; pass
            the same dt to Norse's `from_nir(graph, dt=...)`.

    Raises:
        ValueError: `dt` is not a positive finite number, or no `input_shape` is given for a
            network without a registered model_config or input_shape.
        UnsupportedExport: the network holds a layer or an arrangement of layers that NIR
            has no form for.
    """
    dt = _check_dt(dt)
    if getattr(model, "state_bits", None) is not None:
        from .nir_integer import integer_nir_graph

        return integer_nir_graph(model, time_steps=time_steps, dt=dt)
    shape_in = tuple(input_shape) if input_shape is not None else _model_input_shape(model)
    nodes, shape_out = _nodes_for(trace_calls(model, shape_in), shape_in, dt)
    metadata = {
        "source": "spikequant",
        "dt": dt,
        "time_unit": "s",
        "time_steps": -1 if time_steps is None else int(time_steps),
        "conventions": CONVENTIONS,
        "readout": "class scores = output spikes averaged over the time steps (and over each "
        "class's `votes` consecutive output neurons)",
        "votes": int(getattr(model, "votes", 1)),
        "model_config": json.dumps(getattr(model, "config", None), default=str),
    }
    return chain_graph(nodes, shape_in, shape_out, metadata)


def write_nir(model: nn.Module, path: str, sidecar: bool = True, **options: Any) -> Any:
    """Write to_nir(model, **options) to `path` (HDF5, nir.write) atomically; returns the graph.

    Args:
        model: the network, as for `to_nir`.
        path: the NIR file to write; one already there is replaced.
        sidecar: also write `<path stem>.quant.json` (nir_sidecar) when the network has
            quantized layers: their bit widths, level sets, scales and codes, from which
            `packed_from_nir` rebuilds the packed model file exactly. Both are computed
            before either is written.
        **options: `to_nir`'s input_shape, time_steps and dt.
    """
    import nir

    from .nir_sidecar import sidecar_for, sidecar_path

    graph = to_nir(model, **options)
    side = sidecar_for(model, graph) if sidecar else None
    with atomic_path(path) as tmp:
        nir.write(str(tmp), graph)
    if side is not None and side["layers"]:
        atomic_write_text(sidecar_path(path), json.dumps(side, indent=1) + "\n")
    return graph
