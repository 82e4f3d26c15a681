"""Import a NIR graph (written by spikequant, snnTorch, Norse, ...) as a spikequant network.

The graph must be a chain Input -> ... -> Output of these primitives:

- nir.Affine / nir.Linear -> nn.Linear; nir.Conv2d -> nn.Conv2d (so `quantize_model` quantizes
  them and `write_nir` writes them back);
- nir.Flatten -> nn.Flatten (its dims count from the sample's first axis, as NIR states);
- nir.LIF -> a LIF neuron with decay k = dt / tau a step: the Euler step of NIR's
  tau dv/dt = (v_leak - v) + r I is v <- v + k (v_leak - v + r I); with v_leak = v_reset the
  membrane is measured from v_reset in units of r, so the neuron leaks to 0, is reset to 0 and
  fires at (v_threshold - v_reset) / r: the same spikes;
- nir.IF -> the same neuron with k = 0 and the input added undecayed (dv/dt = r I: v <- v + dt r I),
  firing at (v_threshold - v_reset) / (r dt).

A layer's neurons must share one tau, r, v_leak, v_threshold and v_reset (spikequant's neurons
have one of each a layer); a parameter given as one number is used for the whole layer. NIR
fires when v > v_threshold, spikequant when v >= threshold: they differ only for a potential
exactly at threshold.

Known quirks of other writers, tolerated where the intent is unambiguous:

- a leading axis of 1 on the Input (and Output) shape (Norse 1.1 writes the sample's batch
  axis): dropped when the first layer needs one axis fewer;
- a node written as None between a feature map and an Affine (Norse 1.1 writes no node for
  torch.nn.Flatten): read as a flatten when the Affine takes exactly the map's size;
- `source="norse"`: Norse 1.1 writes tau = dt * tau_mem (dt / tau_mem_inv) instead of tau_mem,
  and its IAF neuron adds its input undecayed without dt; this option reads both as Norse meant
  them, with Norse's default dt of 1e-3 s unless `dt` is given.

Everything else that does not fit (another primitive, a missing parameter, inconsistent shapes,
branches) raises NIRGraphError naming the node and what is wrong.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import NIRGraphError
from ..snn import BaseLIF, SpikingSequential

SOURCES = ("spikequant", "snntorch", "norse")
SOURCE_DT = {"snntorch": 1e-4, "norse": 1e-3}


class StepDecayLIF(BaseLIF):
    """A LIF neuron with a fixed decay a step `decay` (k = 1/tau_steps) in [0, 1]: k = 1 is
    memoryless, k = 0 (with decay_input=False) an integrate-and-fire neuron. Built by
    `import_nir`; other options as for spikequant.snn.LIF."""

    tau_option = None

    def __init__(self, decay: float, **options: Any) -> None:
        super().__init__(**options)
        decay = float(decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay a step must be in [0, 1], got {decay}")
        if decay == 0.0 and self.decay_input:
            raise ValueError("decay 0 needs decay_input=False (an integrate-and-fire neuron)")
        self.k = decay

    def decay(self) -> float:
        return self.k

    @property
    def tau(self) -> float:
        return math.inf if self.k == 0 else 1.0 / self.k

    def extra_repr(self) -> str:
        return f"decay={self.k:g}, {super().extra_repr()}"


class ImportedNetwork(SpikingSequential):
    """The network `import_nir` builds: [T, B, *input_shape] input -> [B, num_classes] output
    firing rates (spikes averaged over the time steps and over each class's `votes`
    consecutive output neurons, as spikequant's registered networks return). `spikes(x)`
    gives the output spikes [T, B, ...] themselves."""

    def __init__(self, layers: list[tuple[str, nn.Module]], input_shape: tuple[int, ...],
                 output_shape: tuple[int, ...], votes: int = 1,
                 metadata: dict[str, Any] | None = None) -> None:
        from collections import OrderedDict

        super().__init__(OrderedDict(layers))
        self.input_shape = tuple(int(s) for s in input_shape)
        self.output_shape = tuple(int(s) for s in output_shape)
        size = math.prod(self.output_shape)
        self.votes = votes if votes >= 1 and size % votes == 0 else 1
        self.num_classes = size // self.votes
        self.nir_metadata = dict(metadata or {})
        self.state_bits: int | None = None

    def spikes(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Output spikes [T, B, *output_shape] for input [T, B, *input_shape]."""
        if x_seq.dim() != 2 + len(self.input_shape) or tuple(x_seq.shape[2:]) != self.input_shape:
            raise ValueError(
                f"expected input [T, B, {', '.join(map(str, self.input_shape))}] (time first), "
                f"got {tuple(x_seq.shape)}")
        return super().forward(x_seq)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        rates = self.spikes(x_seq).mean(0).flatten(1)
        return rates.unflatten(1, (self.num_classes, self.votes)).mean(2)


# ---------------------------------------------------------------------- reading


def _read_file(path: Path) -> Any:
    import h5py
    import nir

    if not path.is_file():
        raise NIRGraphError(f"{path}: no such NIR file")
    try:
        with h5py.File(path, "r") as f:
            data = nir.serialization.hdf2dict(f["node"])
    except (OSError, KeyError) as err:
        raise NIRGraphError(f"{path}: not a readable NIR file ({err})") from None
    if data.get("type") != "NIRGraph" or "nodes" not in data or "edges" not in data:
        raise NIRGraphError(f"{path}: the file's root is not a NIR graph with nodes and edges")
    nodes = {}
    for name, node in data["nodes"].items():
        try:
            nodes[name] = nir.dict2NIRNode(dict(node))
        except KeyError as err:
            raise NIRGraphError(f"node {name!r} ({node.get('type', '?')}): missing parameter "
                                f"{err.args[0]!r}") from None
        except Exception as err:  # nir's own checks: assertions, shapes, unknown types
            missing = re.search(r"required positional argument[s]?: (.*)$", str(err))
            if isinstance(err, TypeError) and missing:
                raise NIRGraphError(f"node {name!r} ({node.get('type', '?')}): missing "
                                    f"parameter {missing.group(1)}") from None
            raise NIRGraphError(f"node {name!r} ({node.get('type', '?')}): cannot be read "
                                f"({type(err).__name__}: {err})") from None
    edges = [(_str(a), _str(b)) for a, b in data["edges"]]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(data.get("metadata", {})),
                        type_check=False)


def _str(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _chain(graph: Any) -> list[str]:
    import nir

    nodes, succ, pred = graph.nodes, {}, {}
    for a, b in graph.edges:
        for end in (a, b):
            if end not in nodes:
                raise NIRGraphError(f"edge {a!r} -> {b!r}: the graph has no node {end!r}")
        if a in succ:
            raise NIRGraphError(f"node {a!r} feeds both {succ[a]!r} and {b!r}: only chains "
                                "of nodes import (no branches)")
        if b in pred:
            raise NIRGraphError(f"node {b!r} takes both {pred[b]!r} and {a!r}: only chains "
                                "of nodes import (no merges or recurrence)")
        succ[a], pred[b] = b, a
    inputs = [n for n, node in nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise NIRGraphError(f"graph: {len(inputs)} nir.Input nodes, an importable graph has one")
    order, seen = [inputs[0]], {inputs[0]}
    while order[-1] in succ:
        nxt = succ[order[-1]]
        if nxt in seen:
            raise NIRGraphError(f"node {nxt!r}: the graph has a cycle; only chains import")
        order.append(nxt)
        seen.add(nxt)
    if not isinstance(nodes[order[-1]], nir.Output):
        raise NIRGraphError(f"node {order[-1]!r}: the chain from the input ends here, not at a "
                            "nir.Output")
    left = sorted(set(nodes) - seen)
    if left:
        raise NIRGraphError(f"node {left[0]!r}: not on the chain from input to output")
    return order


# ---------------------------------------------------------------------- parameters


def _array(name: str, node: Any, field: str) -> np.ndarray:
    value = getattr(node, field, None)
    if value is None:
        raise NIRGraphError(f"node {name!r} ({type(node).__name__}): missing parameter {field!r}")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise NIRGraphError(f"node {name!r}: parameter {field!r} is not numeric") from None
    if not np.all(np.isfinite(arr)):
        raise NIRGraphError(f"node {name!r}: parameter {field!r} has values that are not finite")
    return arr


def _one_value(name: str, node: Any, field: str, shape: tuple[int, ...]) -> float:
    arr = _array(name, node, field)
    if arr.ndim and tuple(arr.shape) != shape and arr.size != 1:
        raise NIRGraphError(f"node {name!r}: {field} has shape {tuple(arr.shape)}, but the layer "
                            f"before gives {shape}")
    flat = arr.reshape(-1)
    if flat.size == 0:
        raise NIRGraphError(f"node {name!r}: {field} is empty")
    if not np.allclose(flat, flat[0], rtol=1e-6, atol=0):
        raise NIRGraphError(f"node {name!r}: {field} differs between neurons (from {flat.min():g} "
                            f"to {flat.max():g}); spikequant's neurons share one a layer")
    return float(flat[0])


def _tuple(name: str, node: Any, field: str, dims: int) -> Any:
    value = getattr(node, field, None)
    if value is None:
        raise NIRGraphError(f"node {name!r} ({type(node).__name__}): missing parameter {field!r}")
    if isinstance(value, (str, bytes)):
        value = _str(value)
        if value not in ("same", "valid"):
            raise NIRGraphError(f"node {name!r}: {field} {value!r} is not 'same' or 'valid'")
        return value
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, dims)
    if arr.size != dims:
        raise NIRGraphError(f"node {name!r}: {field} has {arr.size} values, expected {dims}")
    return tuple(int(v) for v in arr)


# ---------------------------------------------------------------------- layers


def _linear(name: str, node: Any, shape: tuple[int, ...], with_bias: bool):
    weight = _array(name, node, "weight")
    if weight.ndim != 2:
        raise NIRGraphError(f"node {name!r}: weight has shape {weight.shape}, expected "
                            "(out_features, in_features)")
    out_f, in_f = weight.shape
    if len(shape) != 1 or shape[0] != in_f:
        raise NIRGraphError(f"node {name!r}: takes {in_f} inputs, but the layer before gives "
                            f"shape {shape}" + (" (a nir.Flatten is missing)" if
                                                math.prod(shape) == in_f else ""))
    bias = _array(name, node, "bias") if with_bias else None
    if bias is not None and bias.shape not in ((out_f,), ()):
        raise NIRGraphError(f"node {name!r}: bias has shape {bias.shape}, expected ({out_f},)")
    layer = nn.Linear(in_f, out_f, bias=bias is not None and bool(np.any(bias)))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(np.broadcast_to(bias, (out_f,)).copy()))
    return layer, (out_f,)


def _conv2d(name: str, node: Any, shape: tuple[int, ...]):
    from .nir_nodes import conv_out

    weight = _array(name, node, "weight")
    if weight.ndim != 4:
        raise NIRGraphError(f"node {name!r}: Conv2d weight has shape {weight.shape}, expected "
                            "(out_channels, in_channels / groups, kh, kw)")
    groups = int(getattr(node, "groups", 1) or 1)
    out_c, in_per_group, kh, kw = weight.shape
    if len(shape) != 3 or shape[0] != in_per_group * groups:
        raise NIRGraphError(f"node {name!r}: takes (C={in_per_group * groups}, H, W) maps, but "
                            f"the layer before gives shape {shape}")
    declared = getattr(node, "input_shape", None)
    declared = None if declared is None else tuple(int(s) for s in np.asarray(declared).flat)
    if declared is not None and declared != shape[1:]:
        raise NIRGraphError(f"node {name!r}: input_shape {declared} but the layer before gives "
                            f"(H, W) = {shape[1:]}")
    stride = _tuple(name, node, "stride", 2)
    padding = _tuple(name, node, "padding", 2)
    dilation = _tuple(name, node, "dilation", 2)
    bias = _array(name, node, "bias")
    if bias.shape not in ((out_c,), ()):
        raise NIRGraphError(f"node {name!r}: bias has shape {bias.shape}, expected ({out_c},)")
    if isinstance(padding, str):
        if padding == "same" and any(s != 1 for s in stride):
            raise NIRGraphError(f"node {name!r}: padding 'same' needs stride 1, got {stride}")
        pads = (0, 0) if padding == "valid" else None
    else:
        pads = padding
    if pads is None:
        out = (out_c, shape[1], shape[2])
    else:
        out = (out_c, conv_out(shape[1], kh, stride[0], pads[0], dilation[0]),
               conv_out(shape[2], kw, stride[1], pads[1], dilation[1]))
    if out[1] < 1 or out[2] < 1:
        raise NIRGraphError(f"node {name!r}: a {kh}x{kw} kernel does not fit the "
                            f"{shape[1]}x{shape[2]} input")
    layer = nn.Conv2d(shape[0], out_c, (kh, kw), stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bool(np.any(bias)))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(np.broadcast_to(bias, (out_c,)).copy()))
    return layer, out


def _flatten(name: str, node: Any, shape: tuple[int, ...]):
    start, end = getattr(node, "start_dim", None), getattr(node, "end_dim", None)
    if start is None or end is None:
        raise NIRGraphError(f"node {name!r}: Flatten needs start_dim and end_dim")
    rank = len(shape)
    s, e = int(start) % rank if rank else 0, int(end) % rank if rank else 0
    if not (-rank <= int(start) < rank and -rank <= int(end) < rank) or s > e:
        raise NIRGraphError(f"node {name!r}: cannot flatten dims {start}..{end} of shape {shape}")
    out = shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]
    # the module runs on [T*B, ...]: one axis more than the sample
    return nn.Flatten(s + 1, e + 1), out


def _neuron(name: str, node: Any, shape: tuple[int, ...], dt: float, source: str | None,
            surrogate: str):
    import nir

    def value(field: str) -> float:
        return _one_value(name, node, field, shape)

    r, v_th = value("r"), value("v_threshold")
    v_reset = 0.0 if getattr(node, "v_reset", None) is None else value("v_reset")
    if not r > 0:
        raise NIRGraphError(f"node {name!r}: r = {r:g}; an importable neuron has r > 0")
    if isinstance(node, nir.IF):
        gain = r if source == "norse" else r * dt
        return StepDecayLIF(0.0, threshold=(v_th - v_reset) / gain, v_reset=0.0,
                            decay_input=False, surrogate=surrogate)
    tau, v_leak = value("tau"), value("v_leak")
    if not tau > 0:
        raise NIRGraphError(f"node {name!r}: tau = {tau:g}; a time constant must be > 0")
    k = dt * dt / tau if source == "norse" else dt / tau
    if k > 1.0 + 1e-6:
        raise NIRGraphError(f"node {name!r}: tau = {tau:g} s is shorter than the time step "
                            f"dt = {dt:g} s (decay {k:g} a step); pass the dt the graph was "
                            "written with (source='norse' for a graph Norse 1.1 wrote)")
    if not math.isclose(v_leak, v_reset, rel_tol=1e-6, abs_tol=1e-9):
        raise NIRGraphError(f"node {name!r}: v_leak = {v_leak:g} differs from v_reset = "
                            f"{v_reset:g}; spikequant's neurons leak to their reset potential")
    return StepDecayLIF(min(k, 1.0), threshold=(v_th - v_reset) / r, v_reset=0.0,
                        decay_input=True, surrogate=surrogate)


def _role(node: Any) -> str:
    meta = getattr(node, "metadata", None) or {}
    return " ".join(_str(meta.get(key, "")) for key in ("role", "from"))


def _is_channel_diagonal(weight: np.ndarray) -> bool:
    off = weight.copy()
    idx = np.arange(min(weight.shape[:2]))
    off[idx, idx] = 0
    return weight.shape[0] == weight.shape[1] and not np.any(off)


def _spikequant_layer(name: str, node: Any, nxt: Any, shape: tuple[int, ...]):
    """The layer a spikequant-written structural node stands for (batch norm, pooling), so
    that it is not quantized as a weight layer: (module, shape, skips the next node) or None.
    Only where the node's metadata says so and its weights are exactly that layer's."""
    import nir

    role = _role(node)
    if not role.strip() or not isinstance(node, (nir.Conv2d, nir.Affine)):
        return None
    if getattr(node, "weight", None) is None:
        return None
    weight = _array(name, node, "weight")
    bias = None if getattr(node, "bias", None) is None else _array(name, node, "bias")
    if "BatchNorm" in role and weight.ndim in (2, 4) and _is_channel_diagonal(weight) \
            and (weight.ndim == 2 or weight.shape[2:] == (1, 1)) and bias is not None:
        gain = np.diagonal(weight[..., 0, 0] if weight.ndim == 4 else weight).copy()
        if weight.ndim == 4 and len(shape) != 3 or weight.ndim == 2 and len(shape) != 1 \
                or shape[0] != gain.size:
            return None
        bn = (nn.BatchNorm2d if weight.ndim == 4 else nn.BatchNorm1d)(gain.size)
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(gain))
            bn.bias.copy_(torch.from_numpy(bias.reshape(-1)))
            bn.running_var.fill_(1.0 - bn.eps)  # rsqrt(var + eps) = 1: y = gain x + bias
        return bn, shape, False
    if not isinstance(node, nir.Conv2d) or weight.ndim != 4 or not _is_channel_diagonal(weight) \
            or len(shape) != 3 or bias is not None and np.any(bias):
        return None
    layer, out = _conv2d(name, node, shape)
    diag = np.diagonal(weight, axis1=0, axis2=1)  # (kh, kw, C)
    if isinstance(layer.padding, str) or layer.dilation != (1, 1):
        return None
    kernel, stride, padding = layer.kernel_size, layer.stride, layer.padding
    if "max pool of spikes" in role and np.all(diag == 1) and isinstance(nxt, nir.LIF) \
            and "max pool of spikes" in _role(nxt):
        if not (np.allclose(nxt.v_threshold, 0.5) and np.allclose(nxt.r, 1)
                and np.allclose(nxt.v_reset, 0) and np.allclose(nxt.v_leak, 0)):
            return None
        return nn.MaxPool2d(kernel, stride, padding), out, True
    if "AvgPool2d" in role and np.allclose(diag, 1.0 / (kernel[0] * kernel[1])):
        return nn.AvgPool2d(kernel, stride, padding), out, False
    return None


def _first_needs(node: Any) -> int | None:
    import nir

    if isinstance(node, (nir.Affine, nir.Linear)):
        return 1
    if isinstance(node, nir.Conv2d):
        return 3
    return None


def _io_shape(name: str, types: Any, key: str) -> tuple[int, ...] | None:
    value = (types or {}).get(key) if isinstance(types, dict) else None
    if value is None:
        return None
    try:
        return tuple(int(s) for s in np.asarray(value).reshape(-1))
    except (TypeError, ValueError):
        raise NIRGraphError(f"node {name!r}: its shape {value!r} is not a list of sizes") from None


def _layers(graph: Any, order: list[str], dt: float, source: str | None, surrogate: str):
    import nir

    nodes = graph.nodes
    shape = _io_shape(order[0], nodes[order[0]].input_type, "input")
    if shape is None:
        raise NIRGraphError(f"node {order[0]!r}: the Input has no shape")
    first = nodes[order[1]] if len(order) > 2 else None
    needs = _first_needs(first)
    if needs is not None and len(shape) == needs + 1 and shape[0] == 1:
        shape = shape[1:]  # a batch axis of 1 (Norse 1.1 writes the sample's batch)
    input_shape, layers, skip = shape, [], set()
    for i, name in enumerate(order[1:-1], start=1):
        node = nodes[name]
        if node is None:
            nxt = nodes[order[i + 1]]
            if (isinstance(nxt, (nir.Affine, nir.Linear)) and len(shape) > 1
                    and getattr(nxt, "weight", None) is not None
                    and np.asarray(nxt.weight).shape[-1] == math.prod(shape)):
                layers.append((f"flatten_{name}", nn.Flatten()))
                shape = (math.prod(shape),)
                continue
            raise NIRGraphError(f"node {name!r}: written as None (no primitive); read as a "
                                "flatten only before an Affine that takes the whole map")
        if i in skip:
            continue
        restored = _spikequant_layer(name, node, nodes[order[i + 1]], shape)
        if restored is not None:
            module, shape, skips_next = restored
            if skips_next:
                skip.add(i + 1)
        elif isinstance(node, nir.Affine):
            module, shape = _linear(name, node, shape, with_bias=True)
        elif isinstance(node, nir.Linear):
            module, shape = _linear(name, node, shape, with_bias=False)
        elif isinstance(node, nir.Conv2d):
            module, shape = _conv2d(name, node, shape)
        elif isinstance(node, nir.Flatten):
            module, shape = _flatten(name, node, shape)
        elif isinstance(node, (nir.LIF, nir.IF)):
            module = _neuron(name, node, shape, dt, source, surrogate)
        else:
            raise NIRGraphError(
                f"node {name!r}: nir.{type(node).__name__} is not supported; spikequant imports "
                "chains of Affine, Linear, Conv2d, Flatten, LIF and IF")
        layers.append((_module_name(name, layers), module))
    out = _io_shape(order[-1], nodes[order[-1]].output_type, "output")
    if out is not None and out != shape and not (out[:1] == (1,) and out[1:] == shape):
        raise NIRGraphError(f"node {order[-1]!r}: the Output declares shape {out}, the chain "
                            f"gives {shape}")
    return layers, input_shape, shape


def _module_name(name: str, layers: list) -> str:
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if not clean or clean[0].isdigit():
        clean = f"n{clean}"
    taken = {n for n, _ in layers}
    base, i = clean, 1
    while clean in taken:
        clean, i = f"{base}_{i}", i + 1
    return clean


def import_nir(
    graph: str | Path | Any,
    dt: float | None = None,
    source: str | None = None,
    surrogate: str = "atan",
) -> ImportedNetwork:
    """A spikequant network computing what a NIR graph describes.

    Args:
        graph: a nir.NIRGraph, or the path of a NIR (HDF5) file.
        dt: seconds a time step. Default: the graph's `metadata["dt"]` (spikequant writes it),
            else the writer's time step given by `source`; NIRGraphError when neither says.
        source: the writer, for its conventions: "spikequant", "snntorch" (dt 1e-4 s, the step
            its exporter assumes) or "norse" (dt 1e-3 s, and Norse 1.1's tau and IAF
            conventions; see the module docstring). None: as the graph's metadata says.
        surrogate: the surrogate gradient of the imported neurons (for fine-tuning).

    Returns an `ImportedNetwork`: [T, B, *input_shape] -> [B, num_classes] firing rates, made of
    nn.Linear / nn.Conv2d / nn.Flatten and LIF neurons, so `spikequant.quantize_model` can
    quantize it, spikequant's training step fine-tune it and `write_nir` write it again.
    Raises NIRGraphError (naming the node) for anything it cannot import exactly.
    """
    import nir

    if isinstance(graph, (str, Path)):
        graph = _read_file(Path(graph))
    elif not isinstance(graph, nir.NIRGraph):
        raise NIRGraphError(f"import_nir takes a nir.NIRGraph or a file path, got "
                            f"{type(graph).__name__}")
    metadata = dict(getattr(graph, "metadata", None) or {})
    if source is None and _str(metadata.get("source", "")) == "spikequant":
        source = "spikequant"
    if source is not None and source not in SOURCES:
        raise NIRGraphError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    if dt is None:
        dt = metadata.get("dt", SOURCE_DT.get(source or ""))
    if dt is None:
        raise NIRGraphError("graph: no dt in its metadata; pass dt= (seconds a time step) or "
                            "source='snntorch' (1e-4 s) / source='norse' (1e-3 s)")
    dt = float(np.asarray(dt).reshape(-1)[0])
    if not (math.isfinite(dt) and dt > 0):
        raise NIRGraphError(f"dt must be a positive number of seconds, got {dt}")
    order = _chain(graph)
    layers, input_shape, output_shape = _layers(graph, order, dt, source, surrogate)
    if not layers:
        raise NIRGraphError("graph: no node between input and output")
    votes = int(np.asarray(metadata.get("votes", 1)).reshape(-1)[0]) if source == "spikequant" \
        else 1
    return ImportedNetwork(layers, input_shape, output_shape, votes,
                           {"dt": dt, "source": source or "nir"})
