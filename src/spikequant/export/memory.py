"""Memory report: what each part of a packed model file costs, against a float32 copy.

What stays float, and why:
- one scale per quantized layer (or per output channel), float32: every weight of the layer is
  scale * level, so the scale must be exact; it is 4 bytes against thousands of weights;
- the level set, float32: L numbers (2 for binary);
- batch norm (running mean and variance, weight, bias: 4 numbers a channel), biases, PLIF
  time-constant parameters (one number a neuron layer) and any layer left unquantized:
  per-channel or per-layer numbers that set thresholds and leak; rounding them moves every
  neuron's firing point, and they are a few thousand numbers against millions of weights.
  `float_dtype="float16"` halves them (lossy).
- the safetensors header (tensor names, shapes, the JSON architecture and a SHA-256).

A network with fixed-point neuron state (trained with --state-bits K) also stores, per neuron
layer, an integer multiplier and offset a channel and a few integers (integer_params): the
report lists their bytes and K, the width of every membrane potential at run time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .modelfile import parse_header, read_packed, serialize_packed

# safetensors dtype codes, as torch names them
DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
               "I64": "int64", "I32": "int32", "U8": "uint8", "I8": "int8", "BOOL": "bool"}


@dataclass
class LayerRow:
    name: str
    shape: list[int]
    weights: int
    bits: int
    levels: int
    code_bytes: int
    scale_bytes: int
    fp32_bytes: int


@dataclass
class FloatRow:
    name: str
    tensors: list[str]
    numbers: int
    stored_dtype: str
    bytes: int
    fp32_bytes: int


@dataclass
class MemoryReport:
    """What each part of a packed model file costs, against a float32 copy of the network.

    Args:
        layers: one row per quantized layer: its name, weight shape, weight count, bits a
            code, number of levels, bytes of packed codes, bytes of its float32 scale and
            level set, and bytes of the same weights in float32.
        floats: one row per module with tensors stored as floats: its tensor names, numbers,
            stored dtype, bytes in the file and bytes in float32.
        file_bytes: the size of the whole file in bytes.
        header_bytes: the size of the safetensors header in bytes, with its 8-byte length.
        state_bits: K, the bits of every membrane potential of a network with fixed-point
            neuron state; None (the default): float neuron state.
        integer_bytes: bytes of the integer neuron parameters of such a network (0 without).
    """

    layers: list[LayerRow] = field(default_factory=list)
    floats: list[FloatRow] = field(default_factory=list)
    file_bytes: int = 0
    header_bytes: int = 0
    state_bits: int | None = None  # None: float neuron state
    integer_bytes: int = 0

    @property
    def fp32_bytes(self) -> int:
        return sum(r.fp32_bytes for r in self.layers) + sum(r.fp32_bytes for r in self.floats)

    @property
    def weight_code_bytes(self) -> int:
        return sum(r.code_bytes for r in self.layers)

    @property
    def saving(self) -> float:
        return self.fp32_bytes / max(self.file_bytes, 1)

    @property
    def weight_saving(self) -> float:
        return sum(r.fp32_bytes for r in self.layers) / max(self.weight_code_bytes, 1)

    def totals(self) -> dict[str, Any]:
        return {
            "quantized_weights": sum(r.weights for r in self.layers),
            "fp32_bytes": self.fp32_bytes,
            "weight_code_bytes": self.weight_code_bytes,
            "scale_and_level_bytes": sum(r.scale_bytes for r in self.layers),
            "float_part_bytes": sum(r.bytes for r in self.floats),
            "float_part_numbers": sum(r.numbers for r in self.floats),
            "header_bytes": self.header_bytes,
            "state_bits": self.state_bits,
            "integer_param_bytes": self.integer_bytes,
            "file_bytes": self.file_bytes,
            "saving": self.saving,
            "weight_saving": self.weight_saving,
        }

    def as_dict(self) -> dict[str, Any]:
        return {"layers": [asdict(r) for r in self.layers],
                "floats": [asdict(r) for r in self.floats], "totals": self.totals()}


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def report_from_header(header: dict[str, Any], file_bytes: int, header_bytes: int) -> MemoryReport:
    """A report from a packed file's safetensors header (tensor index and metadata)."""
    info = json.loads(header["__metadata__"]["spikequant"])
    rep = MemoryReport(file_bytes=file_bytes, header_bytes=header_bytes)
    for e in info["layers"]:
        scale_bytes = 4 * (_numel(e["scale_shape"]) + e["num_levels"])
        rep.layers.append(LayerRow(e["key"].removesuffix(".weight"), e["shape"], e["count"],
                                   e["bits"], e["num_levels"], e["packed_bytes"], scale_bytes,
                                   4 * e["count"]))
    groups: dict[str, FloatRow] = {}
    for key in info["floats"]:
        entry = header[f"f:{key}"]
        module, _, tensor = key.rpartition(".")
        n = _numel(entry["shape"])
        start, end = entry["data_offsets"]
        dtype = DTYPE_NAMES.get(entry["dtype"], entry["dtype"])
        row = groups.setdefault(module, FloatRow(module, [], 0, dtype, 0, 0))
        row.tensors.append(tensor)
        row.numbers += n
        row.bytes += end - start
        row.fp32_bytes += 4 * n
    rep.floats = list(groups.values())
    if info.get("integer"):
        rep.state_bits = int(info["integer"]["state_bits"])
        rep.integer_bytes = sum(entry["data_offsets"][1] - entry["data_offsets"][0]
                                for key, entry in header.items() if key.startswith("i:"))
    return rep


def memory_report(
    model: nn.Module, metadata: dict | None = None, float_dtype: str = "float32"
) -> MemoryReport:
    """The report of the file `save_packed(model, ..., metadata, float_dtype)` would write.

    The file is serialized in memory, not written.

    Args:
        model: the network, quantized or not.
        metadata: the header metadata the file would hold, as for save_packed (it counts in
            the header's size); None (the default): {}.
        float_dtype: "float32" (the default) or "float16", the dtype the float parts would
            be stored in.

    Raises:
        ValueError: `float_dtype` is neither "float32" nor "float16".
    """
    data = serialize_packed(model, metadata, float_dtype)
    header, size = parse_header(data)
    return report_from_header(header, len(data), size)


def memory_report_from_file(path: str | os.PathLike) -> MemoryReport:
    """The report of an existing packed file (verified as load_packed does).

    Args:
        path: the packed model file.

    Raises:
        MissingFileError: there is no file at `path`.
        ModelFileError: the file is not a usable spikequant packed model (see read_packed).
    """
    read_packed(path)
    data = Path(path).read_bytes()
    header, size = parse_header(data, path)
    return report_from_header(header, len(data), size)


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1024**2 else f"{n / 1024**2:,.2f} MiB"


def format_report(rep: MemoryReport, title: str = "memory report") -> str:
    """A plain-text table: per quantized layer, float parts, totals.

    Args:
        rep: the report to show (from `memory_report` or `memory_report_from_file`).
        title: the table's first line.
    """
    lines = [title, "", f"{'layer':<24}{'shape':<22}{'weights':>12}{'bits':>5}{'L':>4}"
             f"{'codes B':>12}{'scale B':>9}{'fp32 B':>13}{'saving':>8}"]
    for r in rep.layers:
        lines.append(
            f"{r.name:<24}{'x'.join(map(str, r.shape)):<22}{r.weights:>12,}{r.bits:>5}"
            f"{r.levels:>4}{r.code_bytes:>12,}{r.scale_bytes:>9,}{r.fp32_bytes:>13,}"
            f"{r.fp32_bytes / max(r.code_bytes + r.scale_bytes, 1):>7.1f}x")
    lines += ["", f"{'float part':<24}{'tensors':<38}{'numbers':>10}{'dtype':>9}{'bytes':>11}"]
    for f in rep.floats:
        lines.append(f"{f.name or '(root)':<24}{','.join(f.tensors)[:37]:<38}{f.numbers:>10,}"
                     f"{f.stored_dtype:>9}{f.bytes:>11,}")
    t = rep.totals()
    lines += [
        "",
        f"quantized weights        {t['quantized_weights']:>14,}",
        f"fp32 model               {t['fp32_bytes']:>14,} B  ({_kib(t['fp32_bytes'])})",
        f"  weight codes           {t['weight_code_bytes']:>14,} B",
        f"  scales + level sets    {t['scale_and_level_bytes']:>14,} B",
        f"  float parts            {t['float_part_bytes']:>14,} B  "
        f"({t['float_part_numbers']:,} numbers)",
        *([f"  integer neuron params  {t['integer_param_bytes']:>14,} B  "
           f"({t['state_bits']}-bit neuron state: multiplier and offset a channel)"]
          if t["state_bits"] is not None else []),
        f"  header (safetensors)   {t['header_bytes']:>14,} B",
        f"file on disk             {t['file_bytes']:>14,} B  ({_kib(t['file_bytes'])})",
        f"saving (fp32 / file)     {t['saving']:>14.2f}x   (weights alone: "
        f"{t['weight_saving']:.2f}x)",
        "",
        "kept float: each layer's scale and level set (float32, so every weight is exact); "
        "batch norm,",
        "biases, PLIF time constants and unquantized layers (they set each neuron's input "
        "gain, threshold",
        "offset and leak; a few numbers a channel or a layer against millions of weights).",
    ]
    return "\n".join(lines)
