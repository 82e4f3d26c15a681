"""Command-line options generated from TrainConfig's fields: each field's metadata
(train.setting) gives the flag, help, choices, type and range, and the dataclass the default
shown. `train` adds every field this way; `eval` and `infer` add the few they share with it
(dataset, data folder, time steps, batch size, device, --skip-bad), so a flag means the same
and is checked the same in every command."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ..train.config import TrainConfig
from ..train.setting import choices_of, default_shown, help_of
from . import argtypes
from ._common import quantizer_help

# Help written beside other commands' options of the same name, shared with them.
SHARED_HELP = {"quantizer": quantizer_help}


def add_setting(parser: argparse._ActionsContainer, f: dataclasses.Field,
                help: str | None = None) -> None:
    """Add the option of TrainConfig field `f` (default None: a value not given is taken from
    elsewhere, a config file or the training run); `help` replaces the field's own."""
    from ..train.setting import flag_of

    options = _options(f)
    if help is not None:
        options["help"] = help.replace("%", "%%")
    parser.add_argument(*_names(f, flag_of(f)), **options)


def add_settings(parser: argparse._ActionsContainer, helps: dict[str, str | None]) -> None:
    """The options of the TrainConfig fields named in `helps` ({field: its help here, or None
    for the field's own})."""
    for name, text in helps.items():
        add_setting(parser, TrainConfig.field(name), text)


def _names(f: dataclasses.Field, flag: str) -> tuple[str, ...]:
    short = f.metadata.get("short")
    return (flag, short) if short else (flag,)


def _options(f: dataclasses.Field) -> dict[str, Any]:
    meta = f.metadata
    options: dict[str, Any] = {"dest": f.name, "default": None}
    if f.type in (bool, "bool"):
        options.update(action="store_const", const=not f.default)
    elif meta.get("repeat"):
        options["action"] = "append"
    else:
        options["type"] = _arg_type(f)
        options["choices"] = choices_of(f)
    if meta.get("metavar"):
        options["metavar"] = meta["metavar"]
    options["help"] = argparse.SUPPRESS if meta.get("hidden") else _help(f)
    return options


def _help(f: dataclasses.Field) -> str:
    text = SHARED_HELP[f.name]() if f.name in SHARED_HELP else help_of(f)
    shown = default_shown(f) if f.type not in (bool, "bool") else None
    return f"{text} [default: {shown}]".replace("%", "%%") if shown else text.replace("%", "%%")


def _arg_type(f: dataclasses.Field):
    """The argparse type of a field: named in its metadata, else its number type and range."""
    named = f.metadata.get("arg_type")
    if named:
        return str if named == "str" else getattr(argtypes, named)
    hints = typing.get_type_hints(TrainConfig)
    kinds = set(typing.get_args(hints[f.name]) or (hints[f.name],)) - {type(None)}
    number = next((k for k in (int, float) if k in kinds), None)
    bounds = f.metadata.get("bounds")
    if number is None or bounds is None or bounds.low is None:
        return number or str
    return argtypes.at_least(bounds.low, integer=number is int, above=bounds.above)


