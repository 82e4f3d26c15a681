"""Level sets: the values a quantized weight may take (before its scale)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

MAX_BITS = 8


def symmetric_levels(bits: int) -> torch.Tensor:
    """Levels for a bit width: binary {-1, 1} for 1 bit, else the 2^k - 1 integers in
    [-(2^(k-1) - 1), 2^(k-1) - 1] (2 bits is ternary {-1, 0, 1})."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(
            f"bits must be an integer from 1 to {MAX_BITS} (1 = binary, 2 = ternary, ...); "
            f"got {bits!r}. For another level set pass levels=[...] instead."
        )
    if bits == 1:
        return torch.tensor([-1.0, 1.0])
    qmax = 2 ** (bits - 1) - 1
    return torch.arange(-qmax, qmax + 1, dtype=torch.float32)


def power_of_two_levels(max_exponent: int = 2) -> torch.Tensor:
    """{-2^e, ..., -1, 0, 1, ..., 2^e}, e.g. max_exponent=2 gives {-4,-2,-1,0,1,2,4}."""
    if max_exponent < 0:
        raise ValueError(f"max_exponent must be >= 0, got {max_exponent}")
    pos = [2.0**e for e in range(max_exponent + 1)]
    return torch.tensor([-p for p in reversed(pos)] + [0.0] + pos)


def validate_levels(levels: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Check a user level set: finite, strictly increasing, at least two values."""
    t = torch.as_tensor(levels, dtype=torch.float32).flatten()
    if t.numel() < 2:
        raise ValueError(f"a level set needs at least two values, got {t.tolist()}")
    if not torch.isfinite(t).all():
        raise ValueError(f"levels must be finite numbers, got {t.tolist()}")
    diffs = t[1:] - t[:-1]
    if (diffs == 0).any():
        raise ValueError(f"levels must not repeat a value, got {t.tolist()}")
    if (diffs < 0).any():
        raise ValueError(
            f"levels must be sorted in increasing order, got {t.tolist()} "
            f"(did you mean {sorted(set(t.tolist()))}?)"
        )
    if t.numel() > 2**MAX_BITS:
        raise ValueError(f"at most {2**MAX_BITS} levels are supported, got {t.numel()}")
    return t


def resolve_levels(bits: int | None = 1, levels: Sequence[float] | torch.Tensor | None = None):
    """The level set for `levels` if given, else for `bits`."""
    if levels is not None:
        return validate_levels(levels)
    if bits is None:
        raise ValueError("give either bits (1..8) or an explicit levels=[...] list")
    return symmetric_levels(bits)


def bits_for_levels(num_levels: int) -> int:
    """Bits a code needs to index `num_levels` levels: ceil(log2(L)), at least 1."""
    return max(1, math.ceil(math.log2(num_levels)))


def nearest_level_index(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Index of the nearest level for each value (levels sorted)."""
    midpoints = (levels[1:] + levels[:-1]) / 2
    return torch.bucketize(values, midpoints.to(values.dtype), right=False)
