"""Temperature schedules for the sigmoid quantizer: T grows until the soft staircase is the
step function used at inference."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import nn

from .base import WeightQuantizer

KINDS = ("linear", "exponential", "cosine", "constant")


class TemperatureSchedule:
    """T as a function of (fractional) epoch.

    - linear (the reference): T = t0 * (epoch + 1)
    - exponential: T = t0 * growth ** epoch
    - cosine: from t0 to t_max along half a cosine over `total_epochs`
    - constant: T = t0
    Every kind is capped at `t_max` (if given). With `per_step=True` the epoch is fractional
    (epoch + step / steps_per_epoch), so T rises smoothly within an epoch.
    """

    def __init__(
        self,
        kind: str = "linear",
        t0: float = 1.0,
        t_max: float | None = 1000.0,
        growth: float = 1.5,
        total_epochs: int | None = None,
        per_step: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"temperature schedule must be one of {KINDS}, got {kind!r}")
        if not t0 > 0:
            raise ValueError(f"t0 must be positive, got {t0}")
        if t_max is not None and t_max < t0:
            raise ValueError(f"t_max ({t_max}) must be at least t0 ({t0})")
        if kind == "exponential" and growth <= 1:
            raise ValueError(f"an exponential schedule needs growth > 1, got {growth}")
        if kind == "cosine" and (t_max is None or not total_epochs):
            raise ValueError("a cosine schedule needs t_max and total_epochs")
        self.kind, self.t0, self.t_max = kind, float(t0), t_max
        self.growth, self.total_epochs, self.per_step = float(growth), total_epochs, per_step
        self.current = self.value(0.0)

    def value(self, epoch: float) -> float:
        if self.kind == "linear":
            t = self.t0 * (epoch + 1)
        elif self.kind == "exponential":
            t = self.t0 * self.growth ** min(epoch, 700.0 / math.log(self.growth))
        elif self.kind == "cosine":
            frac = min(max(epoch / self.total_epochs, 0.0), 1.0)
            t = self.t0 + (self.t_max - self.t0) * (1 - math.cos(math.pi * frac)) / 2
        else:
            t = self.t0
        return min(t, self.t_max) if self.t_max is not None else t

    def update(self, model: nn.Module, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
        """Set T for (epoch, step) on every quantizer of `model`; returns T."""
        position = float(epoch)
        if self.per_step and steps_per_epoch > 0:
            position += step / steps_per_epoch
        self.current = self.value(position)
        set_temperature(model, self.current)
        return self.current

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, val in state.items():
            setattr(self, key, val)


def quantizers_of(model: nn.Module) -> Iterable[WeightQuantizer]:
    return (m for m in model.modules() if isinstance(m, WeightQuantizer))


def set_temperature(model: nn.Module, temperature: float) -> None:
    for q in quantizers_of(model):
        q.set_temperature(temperature)
