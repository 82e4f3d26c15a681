"""Quantizers by name. A WeightQuantizer subclass that sets `name` is registered in
`QUANTIZERS` (a spikequant.registry.Registry) when its class is defined; `make_quantizer`, the
CLI's `--quantizer`, config checks and sweeps look names up there instead of keeping lists of
their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..registry import Registry
from .levels import MAX_BITS

if TYPE_CHECKING:
    from .base import WeightQuantizer

# in registration order, which is the order the CLI lists them in
QUANTIZERS: Registry[type[WeightQuantizer]] = Registry(
    "quantizer",
    "register one: a subclass of spikequant.quant.WeightQuantizer with a `name`, imported "
    "with --plugin MODULE or installed as a spikequant.plugins entry point",
)


def register_quantizer(cls: type[WeightQuantizer]) -> type[WeightQuantizer]:
    """Register `cls` under `cls.name` (its class definition does this unless it passes
    `register=False`); a name taken by another class is an error."""
    if not isinstance(cls.name, str):
        raise ValueError(f"{cls.__qualname__}.name must be a string, got {cls.name!r}")
    # (the class is not finished yet, so ABCMeta has not listed its abstract methods)
    missing = sorted({
        m for base in cls.__mro__[1:] for m in getattr(base, "__abstractmethods__", ())
        if getattr(getattr(cls, m, None), "__isabstractmethod__", False)
    })
    if missing:
        raise ValueError(
            f"quantizer {cls.name!r} ({cls.__qualname__}) must implement {', '.join(missing)}"
        )
    widths = cls.bit_widths
    if not isinstance(widths, tuple) or not widths or any(
        isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= MAX_BITS for b in widths
    ):
        raise ValueError(
            f"{cls.__qualname__}.bit_widths must be a tuple of bit widths from 1 to {MAX_BITS}, "
            f"got {widths!r}"
        )
    return QUANTIZERS.register(cls.name, cls, builtin=cls.__module__.startswith("spikequant."))


def unregister_quantizer(name: str) -> None:
    """Forget the quantizer registered as `name` (nothing happens if there is none; a
    built-in one can't be forgotten)."""
    QUANTIZERS.unregister(name)


@contextmanager
def quantizer_registered(cls: type[WeightQuantizer]) -> Iterator[type[WeightQuantizer]]:
    """`cls` registered for the duration of the block only (tests, experiments)."""
    register_quantizer(cls)
    try:
        yield cls
    finally:
        if QUANTIZERS.find(cls.name) is cls:
            unregister_quantizer(cls.name)


def quantizer_names() -> tuple[str, ...]:
    """The names of every registered quantizer, in registration order (the built-ins: none,
    sigmoid, then the baselines)."""
    return QUANTIZERS.names()


def quantizer_class(name: object) -> type[WeightQuantizer]:
    """The quantizer class registered as `name`; UnknownComponent (a ValueError) listing the
    names otherwise."""
    return QUANTIZERS.get(name)


def is_float_quantizer(name: str) -> bool:
    """Whether the quantizer registered as `name` keeps float weights (False for an unknown
    name: the caller's own check reports that)."""
    cls = QUANTIZERS.find(name)
    return cls is not None and cls.is_float


def allows_bits(name: str, bits: int) -> bool:
    """Whether the quantizer registered as `name` can be built with `bits` (True for an
    unknown name: the caller's own check reports that)."""
    cls = QUANTIZERS.find(name)
    return cls is None or cls.is_float or bits in cls.bit_widths


def quantizers_for_bits(bits: int, levels: bool = False) -> list[str]:
    """The registered quantizers (float excluded) that can be built with `bits` (and, with
    `levels`, with a level set of that width)."""
    return [
        n for n, c in QUANTIZERS.items()
        if not c.is_float and bits in c.bit_widths and (c.takes_levels or not levels)
    ]
