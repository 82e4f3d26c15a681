"""Quantizers by name. A WeightQuantizer subclass that sets `name` is registered here when its
class is defined; `make_quantizer`, the CLI's `--quantizer`, config checks and sweeps look
names up here instead of keeping lists of their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .levels import MAX_BITS

if TYPE_CHECKING:
    from .base import WeightQuantizer

# in registration order, which is the order the CLI lists them in
_REGISTRY: dict[str, type[WeightQuantizer]] = {}
# names end up in run folders (`sigmoid-2b`) and on the command line
_NAME = re.compile(r"[a-z0-9][a-z0-9_]*")


def register_quantizer(cls: type[WeightQuantizer]) -> type[WeightQuantizer]:
    """Register `cls` under `cls.name` (its class definition does this unless it passes
    `register=False`); a name taken by another class is an error."""
    name = cls.name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{cls.__qualname__}.name must be lower-case letters, digits and underscores "
            f"(it names run folders and the --quantizer choice), got {name!r}"
        )
    taken = _REGISTRY.get(name)
    if taken is not None and taken is not cls:
        raise ValueError(
            f"quantizer name {name!r} of {cls.__module__}.{cls.__qualname__} is already taken "
            f"by {taken.__module__}.{taken.__qualname__}; give one of them another name"
        )
    # (the class is not finished yet, so ABCMeta has not listed its abstract methods)
    missing = sorted({
        m for base in cls.__mro__[1:] for m in getattr(base, "__abstractmethods__", ())
        if getattr(getattr(cls, m, None), "__isabstractmethod__", False)
    })
    if missing:
        raise ValueError(
            f"quantizer {name!r} ({cls.__qualname__}) must implement {', '.join(missing)}"
        )
    widths = cls.bit_widths
    if not isinstance(widths, tuple) or not widths or any(
        isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= MAX_BITS for b in widths
    ):
        raise ValueError(
            f"{cls.__qualname__}.bit_widths must be a tuple of bit widths from 1 to {MAX_BITS}, "
            f"got {widths!r}"
        )
    _REGISTRY[name] = cls
    return cls


def unregister_quantizer(name: str) -> None:
    """Forget the quantizer registered as `name` (nothing happens if there is none)."""
    _REGISTRY.pop(name, None)


@contextmanager
def quantizer_registered(cls: type[WeightQuantizer]) -> Iterator[type[WeightQuantizer]]:
    """`cls` registered for the duration of the block only (tests, experiments)."""
    register_quantizer(cls)
    try:
        yield cls
    finally:
        if _REGISTRY.get(cls.name) is cls:
            unregister_quantizer(cls.name)


def quantizer_names() -> tuple[str, ...]:
    """The names of every registered quantizer, in registration order (the built-ins: none,
    sigmoid, then the baselines)."""
    return tuple(_REGISTRY)


def quantizer_class(name: object) -> type[WeightQuantizer]:
    """The quantizer class registered as `name`; ValueError listing the names otherwise."""
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f"unknown quantizer {name!r}; choose one of {', '.join(quantizer_names())}"
        )
    return cls


def is_float_quantizer(name: str) -> bool:
    """Whether the quantizer registered as `name` keeps float weights (False for an unknown
    name: the caller's own check reports that)."""
    cls = _REGISTRY.get(name)
    return cls is not None and cls.is_float


def allows_bits(name: str, bits: int) -> bool:
    """Whether the quantizer registered as `name` can be built with `bits` (True for an
    unknown name: the caller's own check reports that)."""
    cls = _REGISTRY.get(name)
    return cls is None or cls.is_float or bits in cls.bit_widths


def quantizers_for_bits(bits: int, levels: bool = False) -> list[str]:
    """The registered quantizers (float excluded) that can be built with `bits` (and, with
    `levels`, with a level set of that width)."""
    return [
        n for n, c in _REGISTRY.items()
        if not c.is_float and bits in c.bit_widths and (c.takes_levels or not levels)
    ]
