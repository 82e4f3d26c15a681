"""Level sets: the values a quantized weight may take (before its scale)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from ..errors import ConfigError

MAX_BITS = 8


def check_bits(bits: object, low: int = 1, high: int = MAX_BITS) -> int:
    """`bits` as an int if it is an integer in [low, high], else a ConfigError (a ValueError)
    saying so."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not low <= bits <= high:
        raise ConfigError(
            f"bits must be an integer from {low} to {high} (1 = binary, 2 = ternary, ...); "
            f"got {bits!r}. For another level set pass levels=[...] instead."
        )
    return int(bits)


def symmetric_levels(bits: int) -> torch.Tensor:
    """Levels for a bit width: binary {-1, 1} for 1 bit, else the 2^k - 1 integers in
    [-(2^(k-1) - 1), 2^(k-1) - 1] (2 bits is ternary {-1, 0, 1}).

    Args:
        bits: the bit width k, an integer from 1 to 8 (MAX_BITS).

    Returns:
        The levels as a float32 tensor [L], in increasing order.

    Raises:
        ConfigError: (a ValueError) `bits` is not an integer from 1 to 8.
    """
    bits = check_bits(bits)
    if bits == 1:
        return torch.tensor([-1.0, 1.0])
    qmax = 2 ** (bits - 1) - 1
    return torch.arange(-qmax, qmax + 1, dtype=torch.float32)


def power_of_two_levels(max_exponent: int = 2) -> torch.Tensor:
    """{-2^e, ..., -1, 0, 1, ..., 2^e}, e.g. max_exponent=2 gives {-4,-2,-1,0,1,2,4}.

    Args:
        max_exponent: e, the largest power of two in the set, an integer from 0 to 6
            (default 2); the set has 2 * e + 3 levels.

    Returns:
        The levels as a float32 tensor [2 * e + 3], in increasing order.

    Raises:
        ValueError: `max_exponent` is not an integer from 0 to 6.
    """
    if (
        isinstance(max_exponent, bool)
        or not isinstance(max_exponent, numbers.Integral)
        or not 0 <= max_exponent <= 6
    ):
        raise ValueError(
            f"max_exponent must be an integer from 0 to 6 (at most {2**MAX_BITS} levels), "
            f"got {max_exponent!r}"
        )
    pos = [2.0**e for e in range(max_exponent + 1)]
    return torch.tensor([-p for p in reversed(pos)] + [0.0] + pos)


def validate_levels(levels: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Check a user level set: finite numbers, strictly increasing, 2 to 256 values."""
    try:
        t = torch.as_tensor(levels, dtype=torch.float32).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"levels must be a list of numbers such as [-1, 0, 1], got {levels!r}"
        ) from err
    if t.numel() < 2:
        raise ValueError(
            f"a level set needs at least two values (e.g. [-1, 1]), got {t.tolist()}"
        )
    if not torch.isfinite(t).all():
        raise ValueError(f"levels must be finite numbers (no nan or inf), got {t.tolist()}")
    diffs = t[1:] - t[:-1]
    if (diffs == 0).any():
        raise ValueError(
            f"levels must not repeat a value, got {t.tolist()}; use {sorted(set(t.tolist()))}"
        )
    if (diffs < 0).any():
        raise ValueError(
            f"levels must be sorted in increasing order, got {t.tolist()}; "
            f"use {sorted(set(t.tolist()))}"
        )
    if t.numel() > 2**MAX_BITS:
        raise ValueError(
            f"at most {2**MAX_BITS} levels ({MAX_BITS} bits) are supported, got {t.numel()}"
        )
    return t


def resolve_levels(
    bits: int | None = 1, levels: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """The level set for `levels` if given, else for `bits`."""
    if levels is not None:
        return validate_levels(levels)
    if bits is None:
        raise ValueError(f"give either bits (1..{MAX_BITS}) or an explicit levels=[...] list")
    return symmetric_levels(bits)


def bits_for_levels(num_levels: int) -> int:
    """Bits a code needs to index `num_levels` levels: ceil(log2(L)), at least 1."""
    return max(1, math.ceil(math.log2(num_levels)))


def nearest_level_index(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Index of the nearest level for each value (levels sorted). A value half-way between two
    levels takes the upper one, so 0 binarizes to +1 as sign-with-ties-up and every hard step
    of the package (sigmoid's unit steps included) treats ties alike."""
    midpoints = (levels[1:] + levels[:-1]) / 2
    return torch.bucketize(values, midpoints.to(values.dtype), right=True)
