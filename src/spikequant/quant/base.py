"""The interface every weight quantizer follows, and the exact integer view of its output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    optionally `init_from_weight` (data-dependent initialisation, run by `reset(weight)`).

    `weight_shaped` names the parameters / buffers whose shape follows the weight (a scale
    per output channel): loading a state dict gives them the saved shape, so a quantizer that
    was never `reset` (or was reset per tensor) still loads a per-channel one.
    """

    name: str = "base"
    per_channel: bool = False
    weight_shaped: tuple[str, ...] = ()

    def __init__(self, levels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("levels", levels.clone().float())
        self._cache_level_floats()

    def _cache_level_floats(self) -> None:
        # python copies for the forward pass: reading a CUDA tensor's value would sync each call
        self.level_min = float(self.levels[0])
        self.level_max = float(self.levels[-1])
        self.level_absmax = float(self.levels.abs().max())
        self.min_step = float((self.levels[1:] - self.levels[:-1]).min())

    @property
    def bits(self) -> int:
        return bits_for_levels(self.levels.numel())

    def reset(self, weight: torch.Tensor | None = None) -> None:
        """Initialise data-dependent state (scales, step positions) from float weights; the
        layer calls it once, when the quantizer is attached. Without a weight it does nothing:
        a quantizer keeps no state between inputs, and SpikingJelly's functional.reset_net
        calls reset() on every module of a network between batches."""
        if weight is not None:
            with torch.no_grad():
                self.init_from_weight(weight)

    def init_from_weight(self, weight: torch.Tensor) -> None:  # noqa: B027 - optional hook
        """Subclasses with data-dependent state set it here from the float weights."""

    def set_temperature(self, temperature: float) -> None:  # noqa: B027 - optional hook
        """Only the sigmoid quantizer has a temperature; the others ignore it."""

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        raise NotImplementedError

    def hard(self, weight: torch.Tensor) -> torch.Tensor:
        return self.quantize(weight).dequantize().to(weight.dtype)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for name in self.weight_shaped:
            saved = state_dict.get(prefix + name)
            current = getattr(self, name, None)
            if saved is None or current is None or saved.shape == current.shape:
                continue
            fresh = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
            if isinstance(current, nn.Parameter):
                setattr(self, name, nn.Parameter(fresh, requires_grad=current.requires_grad))
            else:
                setattr(self, name, fresh)
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._cache_level_floats()

    def extra_repr(self) -> str:
        lv = self.levels.tolist()
        shown = lv if len(lv) <= 8 else f"{len(lv)} levels in [{lv[0]:g}, {lv[-1]:g}]"
        return f"levels={shown}, per_channel={self.per_channel}"
