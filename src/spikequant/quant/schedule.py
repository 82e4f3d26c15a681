"""Temperature schedules for the sigmoid quantizer: T grows until the soft staircase is the
step function used at inference."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import nn

from .base import WeightQuantizer

KINDS = ("geometric", "linear", "reference", "exponential", "cosine", "constant")
# (t0, t_max) a kind takes when they are not given. "reference" is Quantization Networks'
# ramp, T = 10 * (epoch + 1) capped at 2000.
KIND_DEFAULTS: dict[str, tuple[float, float]] = {"reference": (10.0, 2000.0)}
GENERIC_DEFAULTS = (1.0, 1000.0)
KIND_CAP = "kind default"  # t_max sentinel: the kind's own cap (None means no cap at all)


def _positive_number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return number


def check_temperature(temperature: float) -> float:
    """`temperature` as a float if it is a positive finite number, else a ValueError."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(temperature, bool) or not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"temperature must be a positive finite number (e.g. 1.0; the schedule raises it "
            f"towards t_max), got {temperature!r}"
        )
    return value


class TemperatureSchedule:
    """T as a function of (fractional) epoch.

    - geometric: from t0 to t_max by a constant factor an epoch, reaching t_max after
      `ramp` (a fraction) of `total_epochs` and staying there, so a run of any length ends
      with its weights effectively hard
    - linear: T = t0 * (epoch + 1)
    - reference: Quantization Networks' ramp, linear with t0 = 10 and t_max = 2000 by default
    - exponential: T = t0 * growth ** epoch
    - cosine: from t0 to t_max along half a cosine over `total_epochs`
    - constant: T = t0
    Every kind is capped at `t_max` (None: no cap; by default 1000, 2000 for reference).
    With `per_step=True` the epoch is fractional (epoch + step / steps_per_epoch), so T rises
    smoothly within an epoch.

    Args:
        kind: the schedule's shape, one of "geometric", "linear" (default), "reference",
            "exponential", "cosine", "constant" (see above).
        t0: T at epoch 0, a positive number; no kind goes below it. None (default): the
            kind's own, 10 for "reference" and 1 for the others.
        t_max: the cap on T, a positive number at least `t0`; None: no cap. Left out: the
            kind's own cap, 2000 for "reference" and 1000 for the others. "geometric" and
            "cosine" need a number.
        growth: the factor T grows by each epoch in the "exponential" kind, which needs it
            above 1; the other kinds ignore it (it must still be positive). Default 1.5.
        total_epochs: the length of the run in epochs, an integer >= 1; "geometric" and
            "cosine" need it to place t_max, the other kinds ignore it. Default None.
        per_step: count the epoch fractionally in `update` (epoch + step / steps_per_epoch)
            instead of changing T once an epoch. Default False.
        ramp: for "geometric", the share of `total_epochs` after which T reaches t_max, in
            (0, 1] (default 0.8); checked but ignored by the other kinds.

    Raises:
        ValueError: an unknown kind, a value out of the ranges above, or a "geometric" /
            "cosine" schedule without t_max or total_epochs.
    """

    def __init__(
        self,
        kind: str = "linear",
        t0: float | None = None,
        t_max: float | None | str = KIND_CAP,
        growth: float = 1.5,
        total_epochs: int | None = None,
        per_step: bool = False,
        ramp: float = 0.8,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(
                f"temperature schedule must be one of {', '.join(KINDS)}, got {kind!r}"
            )
        default_t0, default_cap = KIND_DEFAULTS.get(kind, GENERIC_DEFAULTS)
        t0 = default_t0 if t0 is None else t0
        t_max = default_cap if t_max == KIND_CAP else t_max
        t0 = _positive_number("t0 (the first epoch's temperature)", t0)
        if t_max is not None:
            t_max = _positive_number("t_max (the temperature cap, or None for no cap)", t_max)
            if t_max < t0:
                raise ValueError(f"t_max ({t_max:g}) must be at least t0 ({t0:g})")
        growth = _positive_number("growth", growth)
        if kind == "exponential" and growth <= 1:
            raise ValueError(f"an exponential schedule needs growth > 1 (e.g. 1.5), got {growth}")
        if kind in ("cosine", "geometric") and (
            t_max is None or isinstance(total_epochs, bool)
            or not isinstance(total_epochs, int) or total_epochs < 1
        ):
            raise ValueError(
                f"a {kind} schedule needs t_max (a number) and total_epochs (an integer >= 1), "
                f"got t_max={t_max!r}, total_epochs={total_epochs!r}"
            )
        ramp = _positive_number("ramp (the share of the run over which T rises)", ramp)
        if ramp > 1:
            raise ValueError(f"ramp is a share of the run, in (0, 1]; got {ramp}")
        self.kind, self.t0, self.t_max = kind, t0, t_max
        self.growth, self.total_epochs, self.per_step = growth, total_epochs, bool(per_step)
        self.ramp = ramp
        self.current = self.value(0.0)

    def value(self, epoch: float) -> float:
        """T at a (fractional) epoch, counted from 0."""
        if self.kind in ("linear", "reference"):
            t = self.t0 * (epoch + 1)
        elif self.kind == "geometric":
            # epoch e of E starts at e / E of the run; t_max is reached at `ramp` of it
            frac = min(max(epoch / (self.ramp * self.total_epochs), 0.0), 1.0)
            t = self.t0 * (self.t_max / self.t0) ** frac
        elif self.kind == "exponential":
            t = self.t0 * self.growth ** min(epoch, 700.0 / math.log(self.growth))
        elif self.kind == "cosine":
            frac = min(max(epoch / self.total_epochs, 0.0), 1.0)
            t = self.t0 + (self.t_max - self.t0) * (1 - math.cos(math.pi * frac)) / 2
        else:
            t = self.t0
        t = max(t, self.t0)  # a negative epoch never gives T <= 0
        return min(t, self.t_max) if self.t_max is not None else t

    def update(
        self, model: nn.Module, epoch: int, step: int = 0, steps_per_epoch: int = 1
    ) -> float:
        """Set T for (epoch, step) on every quantizer of `model`; returns T. Without
        `per_step`, the step is ignored and T changes once an epoch."""
        position = float(epoch)
        if self.per_step and steps_per_epoch > 0:
            position += step / steps_per_epoch
        self.current = self.value(position)
        set_temperature(model, self.current)
        return self.current

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - set(vars(self))
        if unknown:
            raise ValueError(
                f"not a TemperatureSchedule state: unknown key(s) {', '.join(sorted(unknown))}"
            )
        settings = {k: v for k, v in state.items() if k != "current"}
        self.__init__(**{**self._settings(), **settings})  # validates the restored settings
        self.current = float(state.get("current", self.current))

    def _settings(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "current"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"TemperatureSchedule({args})"


def quantizers_of(model: nn.Module) -> Iterable[WeightQuantizer]:
    return (m for m in model.modules() if isinstance(m, WeightQuantizer))


def set_temperature(model: nn.Module, temperature: float) -> None:
    """Set T on every quantizer of `model` (only sigmoid quantizers use it).

    Args:
        model: the network; every spikequant.quant.WeightQuantizer among its modules gets the
            temperature (the others ignore it).
        temperature: the sigmoid quantizers' T, a positive finite number (a ValueError
            otherwise); larger T makes the soft staircase closer to the hard step.
    """
    temperature = check_temperature(temperature)
    for q in quantizers_of(model):
        q.set_temperature(temperature)
