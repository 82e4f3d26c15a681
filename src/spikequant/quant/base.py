"""The interface every weight quantizer follows, and the exact integer view of its output."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .levels import bits_for_levels


@dataclass
class QuantizedWeight:
    """A weight tensor as `scale * levels[codes]`: what export stores.

    codes: int64, the weight's shape, each an index into `levels`.
    levels: float [L], sorted.
    scale: float, shape [] (per tensor) or [C_out, 1, ...] (per output channel).
    """

    codes: torch.Tensor
    levels: torch.Tensor
    scale: torch.Tensor

    @property
    def bits(self) -> int:
        return bits_for_levels(self.levels.numel())

    def dequantize(self) -> torch.Tensor:
        return self.scale * self.levels[self.codes]


def channel_view(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Reshape a per-output-channel vector to broadcast against `weight`."""
    return t.reshape(-1, *([1] * (weight.dim() - 1)))


def reduce_per_channel(w: torch.Tensor, fn, per_channel: bool) -> torch.Tensor:
    """Apply a reduction `fn(tensor_2d, dim=1)` per output channel, or over the whole tensor."""
    if per_channel:
        return channel_view(fn(w.detach().flatten(1), dim=1), w)
    return fn(w.detach().flatten().unsqueeze(0), dim=1).reshape(())


class WeightQuantizer(nn.Module):
    """Maps float weights to low-precision weights.

    In training mode `forward` may be soft (differentiable); in eval mode it returns exactly
    `quantize(w).dequantize()`. Subclasses set `name` and implement `forward`, `quantize` and
    optionally `reset` (data-dependent initialisation from the float weights).
    """

    name: str = "base"
    per_channel: bool = False

    def __init__(self, levels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("levels", levels.clone().float())

    @property
    def bits(self) -> int:
        return bits_for_levels(self.levels.numel())

    def reset(self, weight: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Initialise data-dependent state from float weights (called once by the layer)."""

    def set_temperature(self, temperature: float) -> None:  # noqa: B027 - optional hook
        """Only the sigmoid quantizer has a temperature; the others ignore it."""

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        raise NotImplementedError

    def hard(self, weight: torch.Tensor) -> torch.Tensor:
        return self.quantize(weight).dequantize().to(weight.dtype)

    def extra_repr(self) -> str:
        lv = self.levels.tolist()
        shown = lv if len(lv) <= 8 else f"{len(lv)} levels in [{lv[0]:g}, {lv[-1]:g}]"
        return f"levels={shown}, per_channel={self.per_channel}"
