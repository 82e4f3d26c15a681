"""Integer-only inference from a packed model file: the network's integer program
(spikequant.models.integer_program) run with its weights kept as the file's bit-packed codes.

Per stage, output channels are processed a slice at a time (as many as fit WEIGHT_CHUNK_BYTES
as float levels): the slice's codes are unpacked to their integer levels, accumulated against
the stage's input (spikes, or the integer event counts of the first layer) a few samples at a
time, turned into the neurons' integer input with the per-channel multiplier, offset and
shift, run through the integer membrane update over all time steps, and max-pooled, before the
next slice is unpacked (models.fixed_point_forward.run_program). So at no point is the
network, or a large layer, expanded to float32: what stays resident is the packed codes
(1 bit a binary weight), a few integers a channel, and one stage's spikes.

The accumulations are integer sums; they run as float32 convolutions / matrix products of
integer-valued operands, which is exact because every partial sum is an integer below 2^24
(checked per stage from its fan-in, largest level and largest input; float64 beyond that and
off the CPU). `integer_reference.reference_spike_counts` states the same arithmetic in plain
int64 code, and the tests check that the two agree bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import MissingFileError, ModelFileError
from ..models.fixed_point_forward import run_program
from ..models.integer_program import (
    IntegerProgram,
    IntegerStage,
    StageFold,
    fold_from_tensors,
    trace_program,
)
from .modelfile import read_packed

WEIGHT_CHUNK_BYTES = 4 << 20  # float32 levels of one slice of a layer's weights


def unpack_code_range(packed: torch.Tensor, bits: int, start: int, count: int) -> torch.Tensor:
    """Codes [start, start + count) of a bit-packed stream (export.bitpack's layout: code i at
    stream bits [i * bits, (i + 1) * bits), bit 0 first, stream bit j = bit j % 8 of byte
    j // 8) as int32, unpacking only the bytes that hold them."""
    first, end = start * bits, (start + count) * bits
    raw = packed[first // 8 : (end + 7) // 8]
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    stream = ((raw.unsqueeze(1) >> shifts) & 1).flatten()[first % 8 : first % 8 + count * bits]
    if bits == 1:
        return stream.to(torch.int32)
    weights = 1 << torch.arange(bits, dtype=torch.int32, device=packed.device)
    return (stream.view(count, bits).to(torch.int32) * weights).sum(1, dtype=torch.int32)


class IntegerNetwork(nn.Module):
    """A packed file's network in integer arithmetic. `forward` takes [T, B, C, H, W]
    integer-valued input (event counts; a float tensor holding integers is fine) and returns
    class scores as the float network does (spike counts / (T * votes)); `spike_counts`
    returns the integer counts themselves.

    Usually built with `from_packed`.

    Args:
        program: the network's integer program (spikequant.models.integer_program): its
            stages with their integer multipliers, offsets and shifts, the input shape, the
            classes and votes.
        codes: {stage name: that stage's weight codes as the file stores them, uint8 and
            bit-packed}; kept as buffers, unpacked a slice of output channels at a time.
        bits: {stage name: bits a code of that stage}.
    """

    def __init__(self, program: IntegerProgram, codes: dict[str, torch.Tensor],
                 bits: dict[str, int]) -> None:
        super().__init__()
        self.program = program
        self.bits = dict(bits)
        self.metadata: dict[str, Any] = {}
        self._buffer_of = {}
        for i, stage in enumerate(program.stages):
            self._buffer_of[stage.name] = f"codes{i}"
            self.register_buffer(f"codes{i}", codes[stage.name].contiguous())

    @property
    def state_bits(self) -> int:
        return self.program.state_bits

    @classmethod
    def from_packed(cls, path: str | os.PathLike, state_bits: int | None = None) -> IntegerNetwork:
        """The network of a packed file. A file written from a network trained with state bits
        carries its integer parameters and runs exactly as it was evaluated; `state_bits`
        folds a float-state file (or refolds one) at that precision after training."""
        path = Path(path)
        info, tensors = read_packed(path)
        try:
            return cls._from_file(path, info, tensors, state_bits)
        except (KeyError, TypeError) as err:
            raise ModelFileError(f"{path}: its metadata lacks or misstates a field ({err!r}); "
                                 "export it again with `spikequant export`") from None

    @classmethod
    def _from_file(cls, path: Path, info: dict, tensors: dict, state_bits: int | None):
        from ..models import build_float_on_meta
        from ..models.registry import architecture_keys

        config = info.get("model_config")
        if not config:
            raise ModelFileError(f"{path} has no model_config: the integer path runs the "
                                 "registered networks (spikequant.models) only")
        twin = build_float_on_meta(config["name"], **{k: config[k] for k in
                                                      architecture_keys(config["name"])
                                                      if k in config})
        layers = {e["key"].removesuffix(".weight"): e for e in info["layers"]}
        floats = [n for n, m in twin.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                  and n not in layers]
        if floats:
            raise ValueError(f"{path}: {', '.join(floats)} kept float weights; the integer path "
                             "needs every conv / linear layer quantized")
        fold, bits = _fold_source(path, info, tensors, layers, state_bits)
        program = trace_program(twin.named_children(), fold, bits, twin.input_shape,
                                twin.num_classes, twin.votes)
        codes = {s.name: tensors[f"q:{s.name}.weight:codes"] for s in program.stages}
        net = cls(program, codes, {s.name: layers[s.name]["bits"] for s in program.stages})
        net.metadata = info.get("metadata") or {}  # what save_packed was given (the run)
        return net

    def packed_codes(self, stage: IntegerStage) -> torch.Tensor:
        """The stage's weight codes as the file stores them (uint8, bit-packed)."""
        return getattr(self, self._buffer_of[stage.name])

    def weight_levels(self, stage: IntegerStage, first: int, last: int,
                      dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """Output channels [first, last) of the stage's weights as integer levels."""
        packed = self.packed_codes(stage)
        fan_in = stage.fan_in
        codes = unpack_code_range(packed, self.bits[stage.name], first * fan_in,
                                  (last - first) * fan_in)
        levels = stage.fold.level_ints.to(packed.device, dtype)
        if codes.numel() and int(codes.max()) >= levels.numel():
            raise ValueError(f"layer {stage.name}: a code exceeds its {levels.numel()} levels")
        return levels[codes].view(last - first, *stage.weight_shape[1:])

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        counts = self.spike_counts(x_seq)
        return counts.float() / float(x_seq.shape[0] * self.program.votes)

    @torch.no_grad()
    def spike_counts(self, x_seq: torch.Tensor) -> torch.Tensor:
        """int64 [B, classes]: each class's output spikes over time and its voting neurons."""
        if x_seq.dim() != 5 or tuple(x_seq.shape[2:]) != self.program.input_shape:
            raise ValueError(
                f"expected input [T, B, {', '.join(map(str, self.program.input_shape))}] "
                f"(time first), got {tuple(x_seq.shape)}")
        return run_program(self.program, x_seq, self.weight_levels, self._channel_slice)

    def _channel_slice(self, stage: IntegerStage) -> int:
        """Output channels whose float levels fit WEIGHT_CHUNK_BYTES."""
        return max(1, min(stage.weight_shape[0], WEIGHT_CHUNK_BYTES // (4 * stage.fan_in)))

    def resident_bytes(self) -> dict[str, int]:
        """Bytes the network keeps between calls: packed codes and per-channel integers."""
        codes = sum(self.packed_codes(s).numel() for s in self.program.stages)
        ints = sum(t.numel() * t.element_size() for s in self.program.stages
                   for t in (s.fold.mult, s.fold.offset))
        return {"weight_codes": codes, "integer_parameters": ints}


def _fold_source(path: Path, info: dict, tensors: dict, layers: dict,
                 state_bits: int | None) -> tuple[Callable, int]:
    """(FoldFn, state bits): the file's own integers, or a fold of its float parameters."""
    stored = info.get("integer")
    if stored is not None and state_bits in (None, stored["state_bits"]):
        by_layer = {s["layer"]: s for s in stored["stages"]}

        def read(stage, neuron_name, neuron) -> StageFold:
            entry = by_layer.get(stage.name)
            if entry is None:
                raise ValueError(f"{path}: its integer parameters lack layer {stage.name}")
            return StageFold.from_info(entry, tensors[f"i:{stage.name}:mult"],
                                       tensors[f"i:{stage.name}:offset"])

        return read, int(stored["state_bits"])
    if state_bits is None:
        raise ValueError(
            f"{path} holds a network trained with float neuron state; pass the state bits to "
            "run it in fixed point after training (e.g. `spikequant infer --state-bits 16`), "
            "or train with --state-bits K to get exactly the evaluated network")

    def weights(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = layers[name]["key"]
        return tensors[f"q:{key}:scale"], tensors[f"q:{key}:levels"]

    def tensor(key: str) -> Any:
        t = tensors.get(f"f:{key}")
        return None if t is None else t.to(getattr(torch, info["floats"][key]))

    from ..snn.fixed_point import check_state_bits

    return fold_from_tensors(weights, tensor, check_state_bits(state_bits)), state_bits


def file_state_bits(path: str | os.PathLike) -> int | None:
    """The state bits a packed file's network was trained with (None: float state), from its
    header alone (`IntegerNetwork.from_packed` verifies the whole file)."""
    import json

    from .modelfile import parse_header

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no packed model file at {path} (spikequant export writes one)")
    with path.open("rb") as fh:
        head = fh.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else 0
        data = head + fh.read(min(size, 100 << 20))
    header, _ = parse_header(data, path)
    try:
        info = json.loads(header["__metadata__"]["spikequant"])
    except (KeyError, TypeError, ValueError):
        return None  # not ours: load_packed says why
    integer = info.get("integer") if isinstance(info, dict) else None
    return int(integer["state_bits"]) if isinstance(integer, dict) else None
