"""The integer parameters of a network with fixed-point state, as the packed file stores them.

For a network built with state bits, `spikequant export` adds to the packed file (format
"spikequant-packed" version 1; readers that do not know them ignore them, the content hash
covers them):

    i:<layer>:mult     int16 (int32 / int64 when a value needs it) [C]  per-channel multiplier
    i:<layer>:offset   int32 (int64 when needed) [C]                    per-channel offset

and, in the header's JSON, "integer": {"state_bits": K, "stages": [{"layer", "bn", "neuron",
"level_ints", "level_unit", "shift", "neuron": {"bits", "leak", "threshold", "rest",
"hard_reset"}}, ...]}: everything the integer-only network computes with
(spikequant.models.integer_program states the arithmetic). They are folded from the float
parameters when the file is written, so inference reads integers and folds nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

PREFIX = "i:"


def _smallest(t: torch.Tensor, dtypes: tuple[torch.dtype, ...]) -> torch.Tensor:
    for dtype in dtypes:
        info = torch.iinfo(dtype)
        if t.numel() == 0 or (int(t.min()) >= info.min and int(t.max()) <= info.max):
            return t.to(dtype).contiguous()
    return t.to(torch.int64).contiguous()


def integer_section(model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """Adds the `i:` tensors of `model` to `tensors`; returns the header's "integer" entry, or
    None for a network with float state."""
    if getattr(model, "state_bits", None) is None:
        return None
    from ..models.fixed_point_forward import program_of_model

    program, _ = program_of_model(model)
    stages = []
    for stage in program.stages:
        fold = stage.fold
        tensors[f"{PREFIX}{stage.name}:mult"] = _smallest(fold.mult, (torch.int16, torch.int32))
        tensors[f"{PREFIX}{stage.name}:offset"] = _smallest(fold.offset, (torch.int32,))
        stages.append({"layer": stage.name, "bn": stage.bn_name, "neuron": stage.neuron_name,
                       **fold.info()})
    return {"state_bits": program.state_bits, "stages": stages}
