"""The interface every weight quantizer follows, and the exact integer view of its output."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..options import Option, check_options, constructor_options, resolve_options
from .levels import MAX_BITS, bits_for_levels, check_bits, symmetric_levels, validate_levels
from .registry import quantizers_for_bits, register_quantizer

if TYPE_CHECKING:
    from .schedule import TemperatureSchedule


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


class WeightQuantizer(nn.Module, metaclass=ABCMeta):
    """Maps float weights to low-precision weights.

    In training mode `forward` may be soft (differentiable); in eval mode it returns exactly
    `quantize(w).dequantize()`. Subclasses implement `forward` and `quantize`, optionally
    `init_from_weight` (data-dependent initialisation, run by `reset(weight)`).

    A subclass that sets `name` registers under it when the class is defined (pass
    `register=False` in the class statement to register it later, e.g. with
    `quantizer_registered`), so `make_quantizer(name, ...)`, `--quantizer name`, configs and
    sweeps know it. It declares what it supports: `bit_widths` it can be built with,
    `takes_levels` (whether an explicit level set `levels=[...]` is allowed), `is_float`
    (weights stay float: no codes), `summary` (a few words for `--quantizer`'s help).
    `from_spec(bits, levels, **options)` builds it; by default `cls(levels, **options)` with
    the given level set, else the symmetric levels of `bits`, or `cls(bits, **options)` for a
    quantizer that makes its own levels (`takes_levels = False`).

    Its options are its constructor's keyword parameters (`declared_options()`: type from the
    annotation, help from the class docstring's `Args:`), plus `training_options`: options the
    training loop reads rather than the constructor (the sigmoid quantizer's temperature
    schedule, built by `training_schedule`). `--quantizer-option KEY=VALUE` and a config's
    `quantizer_options` table set both, checked against these declarations.

    `weight_shaped` names the parameters / buffers whose shape follows the weight (a scale
    per output channel): loading a state dict gives them the saved shape, so a quantizer that
    was never `reset` (or was reset per tensor) still loads a per-channel one.
    """

    name: ClassVar[str | None] = None
    bit_widths: ClassVar[tuple[int, ...]] = tuple(range(1, MAX_BITS + 1))
    takes_levels: ClassVar[bool] = True
    is_float: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    training_options: ClassVar[Mapping[str, Option]] = {}
    per_channel: bool = False
    weight_shaped: tuple[str, ...] = ()

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # only a class naming itself registers: a subclass of a registered quantizer that
        # keeps its parent's name is a variant, not a second entry under that name
        if register and cls.__dict__.get("name") is not None:
            register_quantizer(cls)

    @classmethod
    def from_spec(
        cls, bits: int | None = 1, levels: Any = None, **options: Any
    ) -> WeightQuantizer:
        """A fresh quantizer from the user's `bits` / `levels` and constructor `options`, each
        checked with an error that says what to pass instead."""
        return cls.with_options(cls.spec_argument(bits, levels), **options)

    @classmethod
    def spec_argument(cls, bits: int | None, levels: Any) -> torch.Tensor | int:
        """What `__init__` takes first: the checked level set, or the bit width for a
        quantizer that makes its own levels."""
        widths = _widths_text(cls.bit_widths)
        if levels is not None:
            if not cls.takes_levels:
                raise ValueError(
                    f"{cls.name} uses its own levels for each bit width; pass bits={widths}, "
                    "not levels"
                )
            lv = validate_levels(levels)
            width, got = bits_for_levels(lv.numel()), f"levels {lv.tolist()}"
        elif bits is None:
            if cls.takes_levels:
                raise ValueError(
                    f"give either bits ({widths}) or an explicit levels=[...] list"
                )
            raise ValueError(f"{cls.name} needs bits={widths}")
        else:
            lv, width = None, check_bits(bits)
            got = f"bits={width}"
        if width not in cls.bit_widths:
            others = [n for n in quantizers_for_bits(width, levels is not None) if n != cls.name]
            raise ValueError(
                f"{cls.name} allows only bits={widths}, got {got}"
                + (f"; for {width} bits use quantizer {', '.join(others)}" if others else "")
            )
        if not cls.takes_levels:
            return width
        return lv if lv is not None else symmetric_levels(width)

    @classmethod
    def constructor_options(cls) -> dict[str, Option]:
        """The keyword options of the constructor (everything after its first argument)."""
        return constructor_options(cls, skip_first=True)

    @classmethod
    def declared_options(cls) -> dict[str, Option]:
        """Every option of this quantizer: the constructor's, then `training_options`."""
        return {**cls.constructor_options(), **cls.training_options}

    @classmethod
    def option_names(cls) -> list[str]:
        """The names of the constructor's keyword options."""
        return list(cls.constructor_options())

    @classmethod
    def resolve_options(cls, given: Mapping[str, Any], flag: str = "") -> dict[str, Any]:
        """Every declared option with its value (`given`, checked, over the defaults);
        OptionError naming an unknown option or a value of the wrong type."""
        return resolve_options(f"quantizer {cls.name!r}", cls.declared_options(), given, flag)

    @classmethod
    def split_options(cls, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the constructor's options, the training loop's options) of `options`."""
        own = cls.constructor_options()
        return ({k: v for k, v in options.items() if k in own},
                {k: v for k, v in options.items() if k not in own})

    @classmethod
    def training_schedule(cls, options: Mapping[str, Any], total_epochs: int
                          ) -> TemperatureSchedule | None:
        """The schedule the training loop follows for this quantizer, from its training
        options (None: nothing changes over training)."""
        return None

    @classmethod
    def with_options(cls, first: Any, **options: Any) -> WeightQuantizer:
        """`cls(first, **options)`, with an option it does not take (or a value of the wrong
        type) an OptionError listing those it does."""
        check_options(f"quantizer {cls.name!r}", cls.constructor_options(), options)
        return cls(first, **options)

    def __init__(self, levels: torch.Tensor, per_channel: bool = False) -> None:
        """Hold the level set and the scale granularity shared by every quantizer.

        Args:
            levels: the values a weight may take before its scale: a 1-D tensor of at least
                two values in increasing order (`from_spec` builds and checks it from the
                user's `bits` / `levels`). A float32 copy is kept as the buffer `levels`.
            per_channel: one scale per output channel (dim 0 of the weight) instead of one
                for the whole tensor, in quantizers that compute or learn scales; kept as
                `self.per_channel`. False (default): one scale per tensor.
        """
        super().__init__()
        # one scale per output channel instead of one per tensor, where the quantizer has scales
        self.per_channel = per_channel
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

    @abstractmethod
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The weight the layer computes with: soft or hard in training, hard in eval."""

    @abstractmethod
    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        """Integer codes, levels and scale of `weight` (what export stores)."""

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


def _widths_text(widths: tuple[int, ...]) -> str:
    """1..8 for a contiguous range, else the widths listed."""
    if len(widths) > 1 and list(widths) == list(range(widths[0], widths[-1] + 1)):
        return f"{widths[0]}..{widths[-1]}"
    return ", ".join(str(w) for w in widths)
