"""Quantization that survives NIR: a JSON sidecar beside the graph, and the packed model rebuilt
from the two.

NIR carries weights as plain arrays and no bit widths or scales (its metadata is not for
backends to rely on), so `write_nir_sidecar` writes `<graph>.quant.json` next to `<graph>.nir`:

    format            "spikequant-nir-quant"
    format_version    1
    layers            one entry a quantized layer, in network order:
        node            the graph node that holds the layer's weights
        key             the network's state_dict key of the weight
        bits            bits a weight
        levels          the level set (float32 values, written exactly)
        scale           the per-layer scale, or one a channel (float32 values); scale_shape
        shape           the weight's shape
        codes           the level index of every weight, `bits` bits each, packed as
                        spikequant.export.bitpack.pack_bits documents (LSB first, row-major
                        weight order), base64
        the weight is scale * levels[codes], exactly the graph node's weight (for a network
        with fixed-point state: the node's integer levels, metadata["level_ints"][codes])
    tensors           every other tensor of the packed model file (batch norm, PLIF time
                      constants, integer neuron parameters): name, dtype, shape, base64 of its
                      little-endian bytes
    packed_info       the packed file's `spikequant` header entry (model_config, ...)
    packed_sha256     the packed file's content hash, checked when it is rebuilt

`packed_from_nir(graph, sidecar)` checks every layer's codes against the graph's weights and
returns the bytes of the packed model file, identical to what `spikequant export` writes for the
same network; `spikequant infer` and `load_packed` read it as usual.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from torch import nn

from .._atomic import atomic_write_bytes, atomic_write_text
from ..errors import NIRGraphError
from .bitpack import unpack_bits
from .modelfile import packed_bytes_from_parts, parse_header, serialize_packed

SIDECAR_FORMAT = "spikequant-nir-quant"
SIDECAR_VERSION = 1


def sidecar_path(graph_path: str | os.PathLike) -> Path:
    """`m.nir` -> `m.quant.json`."""
    path = Path(graph_path)
    return path.with_name(path.stem + ".quant.json")


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).decode()


def _tensor(text: str, dtype: str, shape: list[int], where: str) -> torch.Tensor:
    try:
        raw = bytearray(base64.b64decode(text, validate=True))
        t = torch.frombuffer(raw, dtype=getattr(torch, dtype)) if raw else torch.empty(
            0, dtype=getattr(torch, dtype))
        return t.reshape(shape).clone()
    except (ValueError, TypeError, AttributeError, RuntimeError) as err:
        raise NIRGraphError(f"{where}: unreadable tensor data ({err})") from None


def sidecar_for(model: nn.Module, graph: Any, metadata: dict | None = None) -> dict[str, Any]:
    """The sidecar (a JSON-ready dict) of `model`, whose NIR graph is `graph`."""
    data = serialize_packed(model, metadata)
    header, _ = parse_header(data)
    meta = header["__metadata__"]
    info, tensors = json.loads(meta["spikequant"]), st_load(data)
    layers = []
    for entry in info["layers"]:
        key = entry["key"]
        node = key.removesuffix(".weight")
        if node not in graph.nodes:
            raise NIRGraphError(f"layer {key}: the graph has no node {node!r}")
        scale = tensors[f"q:{key}:scale"]
        layers.append({
            "node": node, "key": key, "bits": entry["bits"],
            "levels": tensors[f"q:{key}:levels"].tolist(),
            "scale": scale.reshape(-1).tolist(), "scale_shape": list(scale.shape),
            "shape": entry["shape"], "count": entry["count"],
            "codes": _b64(tensors[f"q:{key}:codes"]),
        })
    rest = [{"name": name, "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
             "data": _b64(t)} for name, t in sorted(tensors.items()) if not name.startswith("q:")]
    return {"format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "layers": layers,
            "tensors": rest, "packed_info": info, "packed_sha256": meta["sha256"]}


def write_nir_sidecar(model: nn.Module, graph: Any, graph_path: str | os.PathLike,
                      metadata: dict | None = None) -> Path:
    """Write the sidecar of `model` beside `graph_path` (atomically); returns its path."""
    path = sidecar_path(graph_path)
    atomic_write_text(path, json.dumps(sidecar_for(model, graph, metadata), indent=1) + "\n")
    return path


def _graph_levels(node: Any) -> np.ndarray | None:
    meta = getattr(node, "metadata", None) or {}
    if meta.get("integer"):  # fixed-point state: the graph holds integer levels
        return np.asarray(meta["level_ints"])
    return None


def _layer_tensors(layer: dict, graph: Any, tensors: dict[str, torch.Tensor]) -> None:
    where = f"sidecar layer {layer.get('node')!r}"
    try:
        name, key, bits = layer["node"], layer["key"], int(layer["bits"])
        levels = torch.tensor(layer["levels"], dtype=torch.float32)
        scale = torch.tensor(layer["scale"], dtype=torch.float32).reshape(layer["scale_shape"])
        shape, count = [int(s) for s in layer["shape"]], int(layer["count"])
        packed = _tensor(layer["codes"], "uint8", [-1], where)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise NIRGraphError(f"{where}: missing or malformed field ({err!r})") from None
    node = graph.nodes.get(name)
    if node is None or not hasattr(node, "weight"):
        raise NIRGraphError(f"{where}: the graph has no weight node {name!r}")
    codes = torch.from_numpy(unpack_bits(packed.numpy(), bits, count).astype(np.int64))
    if count != int(np.prod(shape)) or (count and int(codes.max()) >= levels.numel()):
        raise NIRGraphError(f"{where}: {count} codes for shape {shape} and "
                            f"{levels.numel()} levels do not fit")
    codes = codes.reshape(shape)
    weight = np.asarray(node.weight)
    level_ints = _graph_levels(node)
    expected = (level_ints[codes.numpy()] if level_ints is not None
                else (scale * levels[codes]).numpy())
    if weight.shape != tuple(shape) or not np.array_equal(weight, expected):
        raise NIRGraphError(f"node {name!r}: its weights are not scale * levels[codes] of the "
                            "sidecar; the graph and the sidecar are not from the same export")
    tensors[f"q:{key}:codes"] = packed
    tensors[f"q:{key}:scale"] = scale
    tensors[f"q:{key}:levels"] = levels


def packed_from_nir(graph: Any, sidecar: dict[str, Any] | str | os.PathLike) -> bytes:
    """The packed model file's bytes rebuilt from a NIR graph (or its path) and its sidecar (a
    dict or the JSON file's path); NIRGraphError naming the layer where the two disagree."""
    import nir

    if not hasattr(graph, "nodes"):
        graph = nir.read(str(graph))
    if not isinstance(sidecar, dict):
        try:
            sidecar = json.loads(Path(sidecar).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise NIRGraphError(f"{sidecar}: not a readable sidecar ({err})") from None
    if sidecar.get("format") != SIDECAR_FORMAT:
        raise NIRGraphError(f"not a {SIDECAR_FORMAT!r} sidecar (format {sidecar.get('format')!r})")
    if int(sidecar.get("format_version", 0)) > SIDECAR_VERSION:
        raise NIRGraphError(f"sidecar format_version {sidecar['format_version']}: this "
                            f"spikequant reads up to {SIDECAR_VERSION}; upgrade spikequant")
    tensors: dict[str, torch.Tensor] = {}
    for layer in sidecar.get("layers", []):
        _layer_tensors(layer, graph, tensors)
    for entry in sidecar.get("tensors", []):
        where = f"sidecar tensor {entry.get('name')!r}"
        if not {"name", "dtype", "shape", "data"} <= set(entry):
            raise NIRGraphError(f"{where}: needs name, dtype, shape and data")
        tensors[entry["name"]] = _tensor(entry["data"], entry["dtype"], entry["shape"], where)
    if not isinstance(sidecar.get("packed_info"), dict):
        raise NIRGraphError("the sidecar lacks its packed_info object")
    data = packed_bytes_from_parts(sidecar["packed_info"], tensors)
    header, _ = parse_header(data)
    if header["__metadata__"]["sha256"] != sidecar.get("packed_sha256"):
        raise NIRGraphError("the rebuilt packed model's content hash differs from the "
                            "sidecar's packed_sha256: the sidecar was altered")
    return data


def rebuild_packed(graph: Any, sidecar: dict[str, Any] | str | os.PathLike,
                   out: str | os.PathLike) -> int:
    """Write packed_from_nir(graph, sidecar) to `out` atomically; returns the bytes written."""
    data = packed_from_nir(graph, sidecar)
    atomic_write_bytes(out, data)
    return len(data)
