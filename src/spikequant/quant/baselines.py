"""The quantizers the study compares against, behind the WeightQuantizer interface.

- SteQuantizer (`ste`): BinaryConnect's deterministic sign (round to the nearest level for k
  bits) with a fixed per-layer scale and a straight-through gradient cancelled outside the range.
- XnorQuantizer (`xnor`): sign(w) * mean|w| per layer or per output channel (XNOR-Net).
- LsqQuantizer (`lsq`): learned step size s, w_hat = s * round_to_level(w / s) (Esser et al. 2020).
- DorefaQuantizer (`dorefa`): DoReFa-Net's tanh-normalised k-bit weights; E|w| * sign(w) for 1 bit.
- PtqQuantizer (`ptq`): float in training, nearest level at an MSE-optimal scale in eval.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import QuantizedWeight, WeightQuantizer, channel_view, reduce_per_channel
from .levels import check_bits, nearest_level_index


def round_to_levels_ste(v: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Nearest level in the forward pass, identity gradient in the backward pass."""
    q = levels.to(v.dtype)[nearest_level_index(v.detach(), levels)]
    return v + (q - v).detach()


def _abs_mean(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.abs().mean(dim=dim)


def _abs_max(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.abs().amax(dim=dim)


def _positive(scale: torch.Tensor) -> torch.Tensor:
    return torch.where(scale > 0, scale, torch.ones_like(scale))


class SteQuantizer(WeightQuantizer):
    """w_hat = H * nearest_level(w / H) with H fixed at initialisation (mean|w| for binary, as
    BinaryConnect's fixed +-H; max|w| / max|q| for k bits). The gradient passes straight through
    where |w / H| lies within half a step outside the outermost levels (|w / H| <= 2 for binary,
    <= q_n + 1/2 for integer levels) and is cancelled beyond (BinaryConnect's clipping)."""

    name = "ste"
    summary = "sign/round + straight-through, BinaryConnect"
    weight_shaped = ("scale",)

    def __init__(self, levels: torch.Tensor, per_channel: bool = False) -> None:
        super().__init__(levels, per_channel)
        self.register_buffer("scale", torch.ones(()))

    @property
    def clip_low(self) -> float:
        return self.level_min - self.min_step / 2

    @property
    def clip_high(self) -> float:
        return self.level_max + self.min_step / 2

    def init_from_weight(self, weight: torch.Tensor) -> None:
        if self.levels.numel() == 2:
            scale = reduce_per_channel(weight, _abs_mean, self.per_channel)
        else:
            scale = reduce_per_channel(weight, _abs_max, self.per_channel)
            scale = scale / self.level_absmax
        scale = _positive(scale.float())
        self.scale = scale.flatten() if self.per_channel else scale

    def _scale(self, weight: torch.Tensor) -> torch.Tensor:
        return self.scale if self.scale.dim() == 0 else channel_view(self.scale, weight)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.hard(weight)
        scale = self._scale(weight).to(weight.dtype)
        v = weight / scale
        inside = ((v >= self.clip_low) & (v <= self.clip_high)).to(weight.dtype)
        gated = v * inside + (v * (1 - inside)).detach()
        return scale * round_to_levels_ste(gated, self.levels)

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        scale = self._scale(weight)
        codes = nearest_level_index((weight / scale).detach(), self.levels)
        return QuantizedWeight(codes, self.levels, scale.detach().float())


class XnorQuantizer(WeightQuantizer):
    """w_hat = mean|w| * sign(w); the scale is recomputed every forward pass and differentiated
    exactly, the sign passes a straight-through gradient where |w| <= 1."""

    name = "xnor"
    summary = "sign x mean|w|"
    bit_widths = (1,)

    def __init__(self, levels: torch.Tensor, per_channel: bool = False) -> None:
        if levels.numel() != 2 or levels.tolist() != [-1.0, 1.0]:
            raise ValueError(
                f"xnor allows only bits=1 (levels [-1, 1]), got levels {levels.tolist()}"
            )
        super().__init__(levels, per_channel)

    def _scale(self, weight: torch.Tensor) -> torch.Tensor:
        if self.per_channel:
            return channel_view(weight.abs().flatten(1).mean(dim=1), weight)
        return weight.abs().mean()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.hard(weight)
        inside = (weight.abs() <= 1).to(weight.dtype)
        gated = weight * inside + (weight * (1 - inside)).detach()
        return self._scale(weight) * round_to_levels_ste(gated, self.levels)

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        codes = (weight.detach() >= 0).long()
        return QuantizedWeight(codes, self.levels, self._scale(weight).detach().float())


class _GradScale(torch.autograd.Function):
    """Identity forward, gradient multiplied by g (LSQ's step-size gradient scale)."""

    @staticmethod
    def forward(ctx, x, g: float):
        ctx.g = g
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.g, None


class LsqQuantizer(WeightQuantizer):
    """Learned step size quantization for any level set: v = w / s clipped to [q_0, q_n],
    w_hat = s * nearest_level(v), straight-through rounding, gradient of s scaled by
    1 / sqrt(N * Q_p). Binary levels {-1, 1} give w_hat = s * sign(w)."""

    name = "lsq"
    summary = "learned step size"
    weight_shaped = ("step_size",)

    def __init__(self, levels: torch.Tensor, per_channel: bool = False) -> None:
        super().__init__(levels, per_channel)
        self.step_size = nn.Parameter(torch.ones(()))

    @property
    def q_positive(self) -> float:
        return max(self.level_max, 1.0)

    def init_from_weight(self, weight: torch.Tensor) -> None:
        mean_abs = reduce_per_channel(weight, _abs_mean, self.per_channel)
        init = 2 * mean_abs / math.sqrt(self.q_positive)
        if self.levels.numel() == 2:
            init = mean_abs  # the L2-optimal scale for sign(w)
        init = _positive(init.float())
        self.step_size = nn.Parameter(init.flatten() if self.per_channel else init)

    def _step(self, weight: torch.Tensor) -> torch.Tensor:
        s = self.step_size
        return s if s.dim() == 0 else channel_view(s, weight)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.hard(weight)
        per_scale = weight.numel() / max(self.step_size.numel(), 1)
        g = 1.0 / math.sqrt(per_scale * self.q_positive)
        s = _GradScale.apply(self._step(weight), g).to(weight.dtype)
        v = torch.clamp(weight / s, self.level_min, self.level_max)
        return s * round_to_levels_ste(v, self.levels)

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        s = self._step(weight).detach()
        codes = nearest_level_index(weight.detach() / s, self.levels)
        return QuantizedWeight(codes, self.levels, s.float())


def dorefa_levels(bits: int) -> torch.Tensor:
    """DoReFa's 2^k evenly spaced levels in [-1, 1] (k bits each); {-1, 1} for one bit."""
    return torch.linspace(-1.0, 1.0, 2**bits)


class DorefaQuantizer(WeightQuantizer):
    """DoReFa-Net weights. k > 1: w_n = tanh(w) / (2 max|tanh w|) + 1/2,
    w_hat = 2 * round((2^k - 1) w_n) / (2^k - 1) - 1 (straight-through round).
    k = 1: w_hat = E|w| * sign(w) with E|w| held constant in the gradient."""

    name = "dorefa"
    takes_levels = False  # its own 2^k evenly spaced levels in [-1, 1]

    def __init__(self, bits: int) -> None:
        bits = check_bits(bits)
        super().__init__(dorefa_levels(bits))
        self.k = bits

    def _normalised(self, weight: torch.Tensor) -> torch.Tensor:
        t = torch.tanh(weight)
        denom = t.abs().max().clamp(min=1e-12)
        return t / (2 * denom) + 0.5

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.hard(weight)
        if self.k == 1:
            return weight.abs().mean().detach() * round_to_levels_ste(weight, self.levels)
        n = 2**self.k - 1
        x = self._normalised(weight) * n
        rounded = x + (torch.round(x) - x).detach()
        return 2 * rounded / n - 1

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        w = weight.detach()
        if self.k == 1:
            return QuantizedWeight((w >= 0).long(), self.levels, w.abs().mean().float())
        n = 2**self.k - 1
        codes = torch.round(self._normalised(w) * n).long()
        return QuantizedWeight(codes, self.levels, torch.ones((), device=w.device))


class PtqQuantizer(WeightQuantizer):
    """Post-training quantization: float weights while training, and in eval each weight rounded
    to the nearest level at the scale that minimises the squared error: the best of a grid of
    fractions of max|w| / max|q|, then refined by alternating "best codes for the scale, best
    scale for the codes" (s = <w, q> / <q, q>) steps, each of which can only lower the error.
    The scale of a layer's weight is computed once per weight version, not every eval batch."""

    name = "ptq"
    summary = "round a float model after training"
    GRID = 100
    REFINE_STEPS = 20

    def __init__(self, levels: torch.Tensor, per_channel: bool = False) -> None:
        super().__init__(levels, per_channel)
        self._scale_cache: tuple[tuple, torch.Tensor] | None = None

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight if self.training else self.hard(weight)

    def _squared_error(self, rows: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        levels = self.levels.to(rows.device)
        q = levels[nearest_level_index(rows / scale, levels)] * scale
        return ((q - rows) ** 2).sum(dim=1, keepdim=True)

    def best_scale(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.detach().float()
        rows = w.flatten(1) if self.per_channel else w.flatten().unsqueeze(0)
        levels = self.levels.to(w.device)
        top = _positive(rows.abs().amax(dim=1, keepdim=True)) / self.level_absmax
        best, best_err = top, torch.full_like(top, float("inf"))
        for f in torch.linspace(0.05, 1.0, self.GRID).tolist():
            err = self._squared_error(rows, f * top)
            better = err < best_err
            best, best_err = torch.where(better, f * top, best), torch.where(better, err, best_err)
        for _ in range(self.REFINE_STEPS):
            q = levels[nearest_level_index(rows / best, levels)]
            qq = (q * q).sum(dim=1, keepdim=True)
            fitted = (rows * q).sum(dim=1, keepdim=True) / qq.clamp(min=1e-30)
            fitted = torch.where(fitted > 0, fitted, best)
            err = self._squared_error(rows, fitted)
            better = err < best_err
            if not better.any():
                break
            best, best_err = torch.where(better, fitted, best), torch.where(better, err, best_err)
        return channel_view(best.flatten(), weight) if self.per_channel else best.reshape(())

    def _scale(self, weight: torch.Tensor) -> torch.Tensor:
        if not isinstance(weight, nn.Parameter):
            return self.best_scale(weight)
        key = (id(weight), weight.data_ptr(), weight._version, weight.shape, weight.device,
               weight.dtype, self.per_channel)
        if self._scale_cache is None or self._scale_cache[0] != key:
            self._scale_cache = (key, self.best_scale(weight))
        return self._scale_cache[1]

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        scale = self._scale(weight)
        codes = nearest_level_index(weight.detach() / scale, self.levels)
        return QuantizedWeight(codes, self.levels, scale)
