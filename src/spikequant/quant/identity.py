"""The float "quantizer": weights pass through unchanged (the full-precision reference)."""

from __future__ import annotations

from typing import Any

import torch

from .base import QuantizedWeight, WeightQuantizer


class IdentityQuantizer(WeightQuantizer):
    """`none`: float weights. Built from anything: bits, levels and options are ignored."""

    name = "none"
    is_float = True
    summary = "float"

    def __init__(self, levels: torch.Tensor | None = None) -> None:
        super().__init__(levels if levels is not None else torch.tensor([-1.0, 1.0]))

    @classmethod
    def from_spec(
        cls, bits: int | None = 1, levels: Any = None, **options: Any
    ) -> IdentityQuantizer:
        return cls()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        raise TypeError("the 'none' quantizer keeps float weights; it has no integer codes")
