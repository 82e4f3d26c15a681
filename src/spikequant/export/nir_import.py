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
from ..snn import SpikingSequential
from .nir_import_nodes import (
    StepDecayLIF,
    as_str,
    conv2d_layer,
    flatten_layer,
    linear_layer,
    neuron_layer,
    spikequant_layer,
)

__all__ = ["ImportedNetwork", "StepDecayLIF", "import_nir"]

SOURCES = ("spikequant", "snntorch", "norse")
SOURCE_DT = {"snntorch": 1e-4, "norse": 1e-3}


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
    edges = [(as_str(a), as_str(b)) for a, b in data["edges"]]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(data.get("metadata", {})),
                        type_check=False)


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
        restored = spikequant_layer(name, node, nodes[order[i + 1]], shape)
        if restored is not None:
            module, shape, skips_next = restored
            if skips_next:
                skip.add(i + 1)
        elif isinstance(node, nir.Affine):
            module, shape = linear_layer(name, node, shape, with_bias=True)
        elif isinstance(node, nir.Linear):
            module, shape = linear_layer(name, node, shape, with_bias=False)
        elif isinstance(node, nir.Conv2d):
            module, shape = conv2d_layer(name, node, shape)
        elif isinstance(node, nir.Flatten):
            module, shape = flatten_layer(name, node, shape)
        elif isinstance(node, (nir.LIF, nir.IF)):
            module = neuron_layer(name, node, shape, dt, source, surrogate)
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
    if source is None and as_str(metadata.get("source", "")) == "spikequant":
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
