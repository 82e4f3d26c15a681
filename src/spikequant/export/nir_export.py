"""Export a (quantized) spiking network to NIR, the Neuromorphic Intermediate Representation.

The network is traced with one dummy forward pass; the modules it calls, in order, must form a
chain (the study's networks do). Mapping, per time step (NIR graphs are continuous-time; with
`dt` the length of one step, the Euler step of each NIR ODE is exactly our update):

- Conv2d -> nir.Conv2d, Linear -> nir.Affine (nir.Linear without bias). Quantized layers carry
  their eval-mode weights, scale * levels[codes], so each weight tensor holds at most L distinct
  values (L per output channel with per-channel scales); node metadata keeps `bits`, `levels`
  and `scale`.
- LIF / PLIF -> nir.LIF with tau = dt / k (k = 1/tau, sigmoid(w) for PLIF), v_threshold,
  v_reset = v_leak = the reset potential, r = 1 (decay_input=True: h = v + k (x - v)) or
  r = tau/dt (decay_input=False: h = v - k v + x). NIR fires on v > threshold, we on
  v >= threshold: they differ only for a potential exactly at threshold. A soft (subtract)
  reset has no NIR equivalent: exported as a reset to 0, with metadata reset="subtract".
- BatchNorm (eval: y = s z + t per channel) directly before a neuron is folded into the neuron:
  r' = r s, v_leak' = v_leak + r t (exact: tau dv/dt = (v_leak - v) + r (s z + t)), so the
  weights stay untouched. Elsewhere it becomes conv bias + t/s followed by nir.Scale(s).
- MaxPool2d on spikes -> nir.SumPool2d then nir.Threshold(0.5): on binary inputs the max of a
  window is 1 exactly when its sum exceeds 0.5, so this is exact. NIR 1.0 has no max pool;
  max pooling of non-binary values raises UnsupportedExport (a NotImplementedError).
- AvgPool2d -> nir.AvgPool2d; AvgPool1d (a voting layer) -> nir.Linear with 1/k entries;
  Flatten (module or a reshape between modules) -> nir.Flatten; dropout -> nothing (eval).
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

from .._atomic import atomic_path
from ..errors import UnsupportedExport
from ..quant import WeightQuantizer, float_weight, weight_quantizer
from ..snn import BaseLIF, TimeSharedDropout
from .hooks import forward_hooks

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


def _bias(layer: nn.Module, n: int) -> np.ndarray:
    return _np(layer.bias) if layer.bias is not None else np.zeros(n, dtype=np.float32)


def _conv_node(call: TracedCall) -> Any:
    import nir

    m = call.module
    if m.padding_mode != "zeros":
        raise UnsupportedExport(f"{call.name}: padding_mode {m.padding_mode!r} has no NIR form")
    padding = m.padding if isinstance(m.padding, str) else _pair(m.padding)
    return nir.Conv2d(input_shape=tuple(call.in_shape[1:]), weight=_np(m.weight),
                      stride=_pair(m.stride), padding=padding, dilation=_pair(m.dilation),
                      groups=m.groups, bias=_bias(m, m.out_channels),
                      metadata=_quant_metadata(m))


def _linear_node(call: TracedCall) -> Any:
    import nir

    m = call.module
    if m.bias is None:
        return nir.Linear(weight=_np(m.weight), metadata=_quant_metadata(m))
    return nir.Affine(weight=_np(m.weight), bias=_np(m.bias), metadata=_quant_metadata(m))


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


def _per_channel(v: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """A per-channel vector broadcast over a (C, ...) neuron shape."""
    return np.broadcast_to(_np(v).reshape(-1, *([1] * (len(shape) - 1))), shape).copy()


def _neuron_node(call: TracedCall, bn: tuple | None, dt: float) -> Any:
    import nir

    m, shape = call.module, call.out_shape
    k = float(m.decay()) if not torch.is_tensor(m.decay()) else float(m.decay().detach())
    tau_steps = 1.0 / k
    rest = 0.0 if m.v_reset is None else m.v_reset
    r = np.full(shape, 1.0 if m.decay_input else tau_steps, dtype=np.float32)
    v_leak = np.full(shape, rest, dtype=np.float32)
    if bn is not None:
        s, t = bn
        v_leak = v_leak + r * _per_channel(t, shape)
        r = r * _per_channel(s, shape)
    meta = {"kind": type(m).__name__, "tau_steps": tau_steps, "dt": dt,
            "reset": "subtract" if m.v_reset is None else "to_v_reset",
            "batchnorm_folded": int(bn is not None)}
    if m.v_reset is None:
        warnings.warn(f"{call.name}: soft (subtract) reset exported as a reset to 0; NIR's LIF "
                      "has only a reset to v_reset", stacklevel=3)
    return nir.LIF(tau=np.full(shape, tau_steps * dt, dtype=np.float32), r=r.astype(np.float32),
                   v_leak=v_leak.astype(np.float32),
                   v_threshold=np.full(shape, m.threshold, dtype=np.float32),
                   v_reset=np.full(shape, rest, dtype=np.float32), metadata=meta)


def _pool_nodes(call: TracedCall) -> list[Any]:
    import nir

    m = call.module
    kernel = _pair(m.kernel_size)
    stride = _pair(m.stride if m.stride is not None else m.kernel_size)
    padding = _pair(m.padding)
    if isinstance(m, nn.AvgPool2d):
        if m.ceil_mode or (any(padding) and not m.count_include_pad) or m.divisor_override:
            raise UnsupportedExport(f"{call.name}: this AvgPool2d variant has no NIR form")
        return [nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                              padding=np.array(padding))]
    if m.ceil_mode or _pair(m.dilation) != (1, 1):
        raise UnsupportedExport(f"{call.name}: max pool with ceil_mode/dilation has no NIR form")
    if not call.binary_input:
        raise UnsupportedExport(
            f"{call.name}: NIR 1.0 has no max pool; it is exported exactly only on spikes "
            "(binary input), and this one pools non-binary values")
    summed = nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                           padding=np.array(padding), metadata={"from": "MaxPool2d"})
    spikes = nir.Threshold(threshold=np.full(call.out_shape, 0.5, dtype=np.float32),
                           metadata={"from": "MaxPool2d (binary OR of the window)"})
    return [summed, spikes]


def _vote_node(call: TracedCall) -> Any:
    import nir

    m = call.module
    k, stride = m.kernel_size[0], (m.stride or m.kernel_size)[0]
    if k != stride or m.padding[0] or len(call.in_shape) != 1:
        raise UnsupportedExport(f"{call.name}: only AvgPool1d(k, k) on a vector exports")
    n_in, n_out = call.in_shape[0], call.out_shape[0]
    w = np.zeros((n_out, n_in), dtype=np.float32)
    for j in range(n_out):
        w[j, j * k : (j + 1) * k] = 1.0 / k
    return nir.Linear(weight=w, metadata={"from": "AvgPool1d (voting layer)"})


def _flatten_node(shape: tuple[int, ...]) -> Any:
    import nir

    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)


def _following(calls: list[TracedCall], i: int) -> TracedCall | None:
    for call in calls[i + 1 :]:
        if not isinstance(call.module, SKIPPED):
            return call
    return None


def _bn_without_neuron(nodes: list[tuple[str, Any]], call: TracedCall, s, t) -> Any:
    """Batch norm not followed by a neuron: bias + t/s on the layer before, then nir.Scale(s)."""
    import nir

    if not nodes or not isinstance(nodes[-1][1], (nir.Conv2d, nir.Affine, nir.Linear)):
        raise UnsupportedExport(f"{call.name}: batch norm must follow a conv/linear layer")
    if bool((s == 0).any()):
        raise UnsupportedExport(f"{call.name}: a zero batch-norm scale cannot be folded")
    name, prev = nodes[-1]
    shift = _np(t / s)
    if isinstance(prev, nir.Linear):
        prev = nir.Affine(weight=prev.weight, bias=shift, metadata=prev.metadata)
        nodes[-1] = (name, prev)
    else:
        prev.bias = prev.bias + shift
    return nir.Scale(scale=_per_channel(s, call.out_shape).astype(np.float32),
                     metadata={"from": "BatchNorm scale"})


def _nodes_for(calls: list[TracedCall], input_shape: tuple[int, ...], dt: float):
    nodes: list[tuple[str, Any]] = []
    shape, pending_bn = tuple(input_shape), None
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
            nodes.append((f"{call.name}.flatten_in", _flatten_node(shape)))
        if isinstance(m, nn.Conv2d):
            nodes.append((call.name, _conv_node(call)))
        elif isinstance(m, nn.Linear):
            nodes.append((call.name, _linear_node(call)))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            s, t = _bn_scale_shift(m)
            nxt = _following(calls, i)
            if nxt is not None and isinstance(nxt.module, BaseLIF):
                pending_bn = (s, t)  # folded into that neuron's r and v_leak
            else:
                nodes.append((call.name, _bn_without_neuron(nodes, call, s, t)))
        elif isinstance(m, BaseLIF):
            nodes.append((call.name, _neuron_node(call, pending_bn, dt)))
            pending_bn = None
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            for j, node in enumerate(_pool_nodes(call)):
                nodes.append((call.name if j == 0 else f"{call.name}.threshold", node))
        elif isinstance(m, nn.AvgPool1d):
            nodes.append((call.name, _vote_node(call)))
        elif isinstance(m, nn.Flatten):
            nodes.append((call.name, _flatten_node(call.in_shape)))
        else:
            raise UnsupportedExport(f"{call.name}: {type(m).__name__} has no NIR mapping")
        shape = call.out_shape
    return nodes, shape


def _model_input_shape(model: nn.Module) -> tuple[int, ...]:
    config = getattr(model, "config", None) or {}
    if "name" not in config:
        raise ValueError("pass input_shape=(C, H, W): the network has no registered model_config")
    from ..models import model_recipe

    return tuple(model_recipe(config["name"]).input_shape)


def to_nir(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    time_steps: int | None = None,
    dt: float = 1.0,
) -> Any:
    """The network as a nir.NIRGraph (see the module docstring for the mapping).

    input_shape: (C, H, W) of one frame (default: the registered network's); time_steps: stored
    in the graph metadata; dt: the duration of one time step in NIR's time unit (time constants
    are tau_steps * dt).
    """
    import nir

    if getattr(model, "state_bits", None) is not None:
        from .nir_integer import integer_nir_graph

        return integer_nir_graph(model, time_steps=time_steps, dt=dt)
    shape_in = tuple(input_shape) if input_shape is not None else _model_input_shape(model)
    nodes, shape_out = _nodes_for(trace_calls(model, shape_in), shape_in, dt)
    node_dict = {"input": nir.Input(input_type={"input": np.array(shape_in)})}
    node_dict.update(dict(nodes))
    node_dict["output"] = nir.Output(output_type={"output": np.array(shape_out)})
    names = list(node_dict)
    metadata = {
        "source": "spikequant",
        "dt": dt,
        "time_steps": -1 if time_steps is None else int(time_steps),
        "readout": "class scores = output spikes averaged over the time steps (and over each "
        "class's `votes` consecutive output neurons)",
        "votes": int(getattr(model, "votes", 1)),
        "model_config": json.dumps(getattr(model, "config", None), default=str),
    }
    return nir.NIRGraph(nodes=node_dict, edges=list(zip(names[:-1], names[1:])),
                        metadata=metadata, type_check=True)


def write_nir(model: nn.Module, path: str, **options: Any) -> Any:
    """Write to_nir(model, **options) to `path` (HDF5, nir.write) atomically; returns the graph."""
    import nir

    graph = to_nir(model, **options)
    with atomic_path(path) as tmp:
        nir.write(str(tmp), graph)
    return graph
