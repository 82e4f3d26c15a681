"""What a training setting says about itself, kept on its TrainConfig field as metadata: its
help text, the values it may take, its command-line flag and group, the range of a number,
and how a flag's text becomes the value. `spikequant train`'s options, the checks of
TrainConfig.validate and their error messages are all generated from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# The option groups of `spikequant train --help`, in the order listed; "" is the main group.
GROUPS = (
    "",
    "optimisation",
    "options of the quantizer and the neuron",
    "network and data",
    "evaluation and model selection",
)

Choices = Sequence[str] | Callable[[], Sequence[str]]


@dataclass(frozen=True)
class Bounds:
    """The range of a number: at least `low` (above it when `above`), at most `high`."""

    low: float | None = None
    above: bool = False
    high: float | None = None


POSITIVE = Bounds(0, above=True)
NOT_NEGATIVE = Bounds(0)
AT_LEAST_ONE = Bounds(1)


def setting(default: Any = dataclasses.MISSING, *, help: str | Callable[[], str], group: str = "",
            flag: str | None = None, short: str | None = None, metavar: str | None = None,
            choices: Choices | None = None, bounds: Bounds | None = None,
            default_text: str | Callable[[], str] | None = None, arg_type: str | None = None,
            parse: Callable[[Any], Any] | None = None, repeat: bool = False,
            cli: bool = True, hidden: bool = False, options_of: str | None = None,
            default_factory: Callable[[], Any] | Any = dataclasses.MISSING) -> Any:
    """A TrainConfig field and its description.

    flag: the option when it is not --NAME-WITH-DASHES; a boolean option sets the field to the
    opposite of its default (`--no-progress`). default_text: what a default of None means.
    arg_type: the name of a cli.argtypes parser, when the field's type and bounds do not pick
    it. parse: turns the flag's text (the list of texts with `repeat`) into the value.
    cli: False for a setting only a config file sets. hidden: a flag left out of --help.
    options_of: "quantizer" or "neuron" for the table of that component's own options (the
    flag's KEY=VALUE texts are read by the types the component declares)."""
    if group not in GROUPS:
        raise ValueError(f"unknown option group {group!r}")
    metadata = dict(help=help, group=group, flag=flag, short=short, metavar=metavar,
                    choices=choices, bounds=bounds, default_text=default_text,
                    arg_type=arg_type, parse=parse, repeat=repeat, cli=cli, hidden=hidden,
                    options_of=options_of)
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def help_of(f: dataclasses.Field) -> str:
    text = f.metadata["help"]
    return text() if callable(text) else text


def flag_of(f: dataclasses.Field) -> str | None:
    """The command-line option of a field, None for a config-file-only setting."""
    if not f.metadata.get("cli", True):
        return None
    return f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"


def where(f: dataclasses.Field) -> str:
    """How an error names a setting: as the flag and as the config file's key."""
    flag = flag_of(f)
    return f"{flag} / {f.name} in the config file" if flag else f"{f.name} in the config file"


def choices_of(f: dataclasses.Field) -> tuple[str, ...] | None:
    choices = f.metadata.get("choices")
    if callable(choices):
        choices = choices()
    return None if choices is None else tuple(choices)


def default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def default_shown(f: dataclasses.Field) -> str | None:
    """The default as --help shows it, None when there is nothing to show (an empty list, a
    switch)."""
    value = default_of(f)
    if value is None:
        text = f.metadata.get("default_text")
        return text() if callable(text) else text
    if isinstance(value, bool) or value in ([], {}):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_levels(text: str) -> list[float]:
    """'-4,-2,-1,0,1,2,4' -> [-4.0, -2.0, ...]."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as err:
        raise ValueError(f"--levels must be comma-separated numbers, got {text!r}") from err


def parse_layer_bits(items: list[str]) -> dict[str, int]:
    """['conv1=8', 'classifier=8'] (or 'conv1=8,classifier=8') -> {'conv1': 8, ...}."""
    chosen: dict[str, int] = {}
    for item in (part for entry in items for part in entry.split(",")):
        name, sep, width = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            chosen[name.strip()] = int(width)
        except ValueError:
            raise ValueError(
                f"--layer-bits takes NAME=BITS (e.g. conv1=8), got {item!r}"
            ) from None
    return chosen
