"""The packed model file: a safetensors container with the network's low-bit weights.

Layout (format "spikequant-packed", version 1). Tensors, by name:
    q:<key>:codes    uint8 [ceil(n * bits / 8)]   the weight's level indices, `bits` bits each,
                                                  packed as `bitpack.pack_bits` documents
    q:<key>:scale    float32, [] or [C_out, 1, ...]   the weight is scale * levels[codes]
    q:<key>:levels   float32 [L]                  the layer's level set
    i:<layer>:...    integers of a network with fixed-point neuron state (integer_params)
    f:<key>          float32 (or float16 with float_dtype="float16"; integer buffers keep
                     their dtype): every other tensor inference reads (batch norm statistics
                     and affine, biases, PLIF time-constant parameters, unquantized layers)
where <key> is the float network's state_dict key. Scales and level sets always stay float32:
they are a handful of numbers and every weight depends on them.

Header metadata (safetensors `__metadata__`, all strings):
    format          "spikequant-packed"
    format_version  "1"
    spikequant      JSON: model_config, float_dtype, layers (key, shape, bits, num_levels,
                    levels when L <= 16, scale_shape, count, packed_bytes), floats ({key:
                    the network's dtype}; shapes are in the safetensors index),
                    metadata (the caller's, e.g. the training run), writer version
    sha256          SHA-256 over the three entries above and every tensor (name, dtype, shape,
                    bytes, in name order): any change to weights or metadata is caught at load.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .._atomic import atomic_write_bytes
from ..errors import MissingFileError, ModelFileError
from ..quant import QuantizedWeight
from .bitpack import pack_bits, packed_size, unpack_bits
from .tensors import inference_tensors

FORMAT_NAME = "spikequant-packed"
FORMAT_VERSION = 1
FLOAT_DTYPES = {"float32": torch.float32, "float16": torch.float16}
HASHED_KEYS = ("format", "format_version", "spikequant")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _content_hash(header: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in HASHED_KEYS:
        digest.update(f"{key}={header[key]}\n".encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}|{_dtype_name(t.dtype)}|{list(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _pack_layer(key: str, qw: QuantizedWeight, tensors: dict[str, torch.Tensor]) -> dict:
    bits = qw.bits
    codes = qw.codes.detach().cpu()
    tensors[f"q:{key}:codes"] = torch.from_numpy(pack_bits(codes, bits))
    tensors[f"q:{key}:scale"] = qw.scale.detach().cpu().float().contiguous()
    tensors[f"q:{key}:levels"] = qw.levels.detach().cpu().float().contiguous()
    return {
        "key": key,
        "shape": list(codes.shape),
        "count": codes.numel(),
        "bits": bits,
        "num_levels": qw.levels.numel(),
        # Small level sets are also shown in the header for people reading it; the tensor rules.
        **({"levels": qw.levels.cpu().float().tolist()} if qw.levels.numel() <= 16 else {}),
        "scale_shape": list(qw.scale.shape),
        "packed_bytes": packed_size(codes.numel(), bits),
    }


def _store_float(key: str, t: torch.Tensor, dtype: torch.dtype, tensors: dict) -> str:
    """Stores the tensor; returns the dtype the network had (the file's may be float16)."""
    t = t.detach().cpu()
    tensors[f"f:{key}"] = (t.to(dtype) if t.is_floating_point() else t).contiguous()
    return _dtype_name(t.dtype)


def run_metadata(run: dict | None, epoch: int | None = None) -> dict:
    """The metadata `spikequant export` stores: the training run's settings (dataset, time
    steps, data folder... which `infer` reuses) and the epoch. Pass it to packed_model_bytes to
    get the exact size of the exported file.

    Args:
        run: the training run's settings as a dict (a checkpoint's "run" entry, a run
            config's to_dict()); copied. None: {}.
        epoch: the epoch the weights are from; None (the default) when it is not known.

    Returns:
        {"run": the settings, "epoch": epoch}.
    """
    return {"run": dict(run or {}), "epoch": epoch}


def serialize_packed(
    model: nn.Module, metadata: dict | None = None, float_dtype: str = "float32"
) -> bytes:
    """The bytes `save_packed` writes for `model`.

    Args:
        model: the network, quantized or not (its quantized weights are stored as packed
            codes, everything else inference reads as floats); read on any device, not moved.
        metadata: what to store in the header alongside the network (e.g. `run_metadata`),
            a JSON-able dict (other values are stored as their text); load_packed returns it.
            None (the default): {}.
        float_dtype: "float32" (the default) or "float16": the dtype the float parts (batch
            norm, biases, PLIF parameters, unquantized layers) are stored in; float16 halves
            them (lossy). Integer buffers keep their dtype; scales and level sets stay float32.

    Raises:
        ValueError: `float_dtype` is neither "float32" nor "float16".
    """
    if float_dtype not in FLOAT_DTYPES:
        choices = ", ".join(FLOAT_DTYPES)
        raise ValueError(f"float_dtype must be one of {choices}, got {float_dtype!r}")
    tensors: dict[str, torch.Tensor] = {}
    layers, floats = [], {}
    for key, value in inference_tensors(model):
        if isinstance(value, QuantizedWeight):
            layers.append(_pack_layer(key, value, tensors))
        else:
            floats[key] = _store_float(key, value, FLOAT_DTYPES[float_dtype], tensors)
    from .. import __version__
    from .integer_params import integer_section

    info = {
        "model_config": getattr(model, "config", None),
        "float_dtype": float_dtype,
        "layers": layers,
        "floats": floats,
        "metadata": metadata or {},
        "writer": f"spikequant {__version__}",
    }
    integer = integer_section(model, tensors)  # fixed-point state: its integer parameters
    if integer is not None:
        info["integer"] = integer
    return packed_bytes_from_parts(info, tensors)


def packed_bytes_from_parts(info: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bytes:
    """The packed file holding `tensors` with `info` as its `spikequant` header entry: what
    serialize_packed writes, and what a file rebuilt from its parts (a NIR sidecar) needs."""
    header = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "spikequant": json.dumps(info, default=str, separators=(",", ":")),
    }
    header["sha256"] = _content_hash(header, tensors)
    return _with_sorted_metadata(st_save(tensors, metadata=header))


def _with_sorted_metadata(data: bytes) -> bytes:
    """`data` with its header's metadata entries in sorted order: safetensors writes them in
    the order of a hash map, which changes from one process to the next, and the same model
    should be the same file. The entries keep their text, so the header keeps its length."""
    (size,) = struct.unpack("<Q", data[:8])
    raw = data[8:8 + size]
    header = json.loads(raw)
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:  # a writer whose JSON is not the compact form: leave it as it is
        return data
    return data[:8] + text + b" " * (size - len(text)) + data[8 + size:]


def packed_model_bytes(
    model: nn.Module, metadata: dict | None = None, float_dtype: str = "float32"
) -> int:
    """Exact size in bytes of the file `save_packed(model, path, metadata)` writes.

    The file is serialized in memory (not written) to measure it.

    `model`, `metadata` and `float_dtype` are those of `serialize_packed`.
    """
    return len(serialize_packed(model, metadata, float_dtype))


def save_packed(
    model: nn.Module,
    path: str | os.PathLike,
    metadata: dict | None = None,
    float_dtype: str = "float32",
) -> int:
    """Write `model` as a packed model file (atomically); returns the bytes written. `model`,
    `metadata` and `float_dtype` are those of `serialize_packed`, which makes the bytes.

    Args:
        path: the file to write (its folder is created when missing); one already there is
            replaced.
    """
    data = serialize_packed(model, metadata, float_dtype)
    atomic_write_bytes(path, data)
    return len(data)


def _bad(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(
        f"{path}: {problem}. The file is not a usable spikequant packed model; "
        "export it again with `spikequant export --checkpoint CKPT --out FILE`."
    )


def parse_header(data: bytes, path: str | os.PathLike = "<bytes>") -> tuple[dict, int]:
    """(safetensors header as a dict, its size in bytes with the 8-byte length) of a file's
    leading bytes; ValueError for anything that is not a complete header."""
    path = Path(path)
    if len(data) < 8:
        raise _bad(path, f"only {len(data)} bytes, too short for a safetensors header (truncated?)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise _bad(path, f"header claims {size} bytes, the file has {len(data) - 8} (truncated?)")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(path, f"unreadable header ({err})") from None
    if not isinstance(header, dict):
        raise _bad(path, "the header is not a JSON object")
    return header, 8 + size


def _read_header(path: Path, data: bytes) -> dict[str, str]:
    header, _ = parse_header(data, path)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise _bad(path, f"not a '{FORMAT_NAME}' file (safetensors metadata format is "
                         f"{None if not isinstance(meta, dict) else meta.get('format')!r})")
    return meta


def _check_version(path: Path, meta: dict[str, str]) -> None:
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise _bad(path, f"format_version {meta.get('format_version')!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses packed format version {version}, this spikequant reads up to "
            f"{FORMAT_VERSION}: upgrade spikequant to load it"
        )
    if version < 1:
        raise _bad(path, f"format_version {version} does not exist")


def read_packed(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Verified (info, tensors) of a packed file: format, version, size and content hash.

    Args:
        path: the packed model file.

    Returns:
        (info, tensors): info is the header's `spikequant` JSON entry as a dict
        (model_config, float_dtype, layers, floats, metadata, writer, and integer for a
        network with fixed-point state); tensors are the file's tensors by name ("q:...",
        "f:...", "i:...", as the module docstring lists them).

    Raises:
        MissingFileError: there is no file at `path`.
        ModelFileError: the file is not a spikequant packed model, is of a newer format
            version, is damaged, or its content hash does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no packed model file at {path} (spikequant export writes one)")
    data = path.read_bytes()
    meta = _read_header(path, data)
    _check_version(path, meta)
    try:
        tensors = st_load(data)
    except SafetensorError as err:
        raise _bad(path, f"damaged or truncated tensor data ({err})") from None
    if any(k not in meta for k in (*HASHED_KEYS, "sha256")):
        raise _bad(path, f"header metadata lacks one of {HASHED_KEYS + ('sha256',)}")
    if meta["sha256"] != _content_hash(meta, tensors):
        raise _bad(path, "content hash mismatch: the weights or metadata were altered or damaged")
    return json.loads(meta["spikequant"]), tensors


def _unpack_layer(path: Path, entry: dict, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    key, shape, bits = entry["key"], entry["shape"], entry["bits"]
    try:
        packed = tensors[f"q:{key}:codes"]
        scale = tensors[f"q:{key}:scale"]
        levels = tensors[f"q:{key}:levels"]
    except KeyError as err:
        raise _bad(path, f"tensor {err} of layer {key} is missing") from None
    count = int(np.prod(shape)) if shape else 1
    if packed.numel() != packed_size(count, bits) or levels.numel() > 1 << bits:
        raise _bad(path, f"layer {key}: {packed.numel()} code bytes for {count} weights at "
                         f"{bits} bits with {levels.numel()} levels")
    codes = torch.from_numpy(unpack_bits(packed.numpy(), bits, count).astype(np.int64))
    if count and int(codes.max()) >= levels.numel():
        raise _bad(path, f"layer {key}: a code exceeds its {levels.numel()} levels")
    # The same float32 expression as QuantizedWeight.dequantize, so the same weights bit for bit.
    return scale * levels[codes.reshape(shape)]


def packed_state_dict(
    path: str | os.PathLike,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(info, float state_dict) of a packed file: weights dequantized, float parts in the
    dtype the network had.

    Args:
        path: the packed model file, verified as `read_packed` does.

    Returns:
        (info, state): info as `read_packed` gives it; state maps the float network's
        state_dict keys to tensors (each quantized weight as scale * levels[codes]).

    Raises:
        MissingFileError: there is no file at `path`.
        ModelFileError: the file is not usable (see `read_packed`), or its layer entries do
            not match its tensors.
    """
    path = Path(path)
    info, tensors = read_packed(path)
    state: dict[str, torch.Tensor] = {}
    try:
        for entry in info["layers"]:
            state[entry["key"]] = _unpack_layer(path, entry, tensors)
        for key, dtype in info["floats"].items():
            t = tensors.get(f"f:{key}")
            if t is None:
                raise _bad(path, f"float tensor {key} is missing")
            state[key] = t.to(getattr(torch, dtype))
    except (KeyError, TypeError, AttributeError) as err:
        raise _bad(path, f"its metadata lacks or misstates a field ({err!r})") from None
    return info, state


def load_packed(
    path: str | os.PathLike, model: nn.Module | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """(network in eval mode, the metadata given to save_packed) from a packed file.

    The network is rebuilt from the file's model_config with float layers (quantizer "none"),
    holding the dequantized weights; pass `model` (an unquantized network of the same
    architecture) for networks that spikequant.models cannot build.

    Args:
        path: the packed model file, verified as `read_packed` does.
        model: the network to load the weights into, in place of one rebuilt from the
            file's model_config; None (the default): rebuilt.
        device: where the network is moved before it is returned ("cpu" by default).

    Returns:
        (network, metadata): the network in eval mode on `device`, and the metadata dict
        given to save_packed ({} when none was).

    Raises:
        MissingFileError: there is no file at `path`.
        ModelFileError: the file is not usable, or its tensors do not fit the network.
        ValueError: the file has no model_config and no `model` is given.
    """
    path = Path(path)
    info, state = packed_state_dict(path)
    if model is None:
        model = _build(path, info.get("model_config"), state, _recorded_plugins(info))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise _bad(path, f"its tensors do not fit the network ({err})") from None
    missing = [k for k in missing if k.rsplit(".", 1)[-1] not in ("num_batches_tracked",)]
    if missing or unexpected:
        raise _bad(path, f"tensors do not match the network (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}); is `model` an unquantized twin?")
    return model.to(device).eval(), info.get("metadata", {})


def _recorded_plugins(info: dict) -> list[str] | None:
    """The plugins the run behind a file was trained with, if the file says."""
    metadata = info.get("metadata")
    run = metadata.get("run") if isinstance(metadata, dict) else None
    plugins = run.get("plugins") if isinstance(run, dict) else None
    return [str(p) for p in plugins] if isinstance(plugins, list) else None


def _build(path: Path, config: dict | None, state: dict[str, torch.Tensor],
           plugins: list[str] | None = None) -> nn.Module:
    if not config:
        raise ValueError(
            f"{path} has no model_config (the network was not built by spikequant.models); "
            "pass model=<an unquantized network of the same architecture> to load_packed"
        )
    from ..models import build
    from ..models.registry import check_components
    from ..models.shapes import shape_mismatch

    check_components(config, plugins, str(path), quantizer=False)
    # Checked on the meta device first: a config declaring a huge network is refused before
    # it is allocated, whatever the file's hash says (anyone can compute a hash).
    problem = shape_mismatch(config, state)
    if problem:
        raise _bad(path, f"its tensors do not fit the network its model_config declares: "
                         f"{problem}")
    # the float twin: fixed-point state needs integer weights (integer_infer runs those files)
    return build(**{**config, "quantizer": "none", "state_bits": None})
