"""Argument types of the `spikequant` command: numbers checked for range and finiteness, device
names checked against this machine, so a bad value is argparse's one-line error naming the
flag (`--time-steps 0`, `--lr inf`, `--device mps`) and never a silent substitute."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

# Flags whose value is a comma-separated list that may start with a minus sign.
LIST_FLAGS = ("--levels",)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def at_least(low: float, *, integer: bool = False, above: bool = False
             ) -> Callable[[str], float]:
    """An argument type for a number of at least `low` (above it with `above`)."""
    parse = _int if integer else _float

    def check(text: str) -> float:
        value = parse(text)
        if value < low or (above and value == low):
            bound = f"a number above {low:g}" if above else f"{low:g} or more"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return check


positive_int = at_least(1, integer=True)
non_negative_int = at_least(0, integer=True)
positive_float = at_least(0, above=True)
non_negative_float = at_least(0)


def device(text: str) -> str:
    from ..errors import ResourceError
    from ..train.resources import check_device

    try:
        return check_device(text)
    except ResourceError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix(f"--device {text}: ")) from None


def join_list_values(argv: Sequence[str], flags: Sequence[str] = LIST_FLAGS) -> list[str]:
    """`--levels -4,-2,-1,0,1,2,4` as `--levels=-4,-2,-1,0,1,2,4`: argparse takes a value that
    starts with '-' and is not a plain number for a flag, and refuses it."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if args[i] in flags and i + 1 < len(args) and args[i + 1].startswith("-") and any(
                c.isdigit() for c in args[i + 1][:3]):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out

