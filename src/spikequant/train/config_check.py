"""Checks of training settings against TrainConfig: the tables of a config file, the type of
every value, and the range of every number. A misspelt table, `epochs = 1.5` or
`resume = "no"` is an error naming the file and the key, never a run with other settings."""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping
from typing import Any

from .._types import describe_type, matches_type
from ..errors import ConfigError
from .setting import Bounds, where

# The tables a `train --config` file may hold, and the nested tables (dict-valued settings).
TRAIN_TABLE = "train"
DICT_SETTINGS = ("model_overrides", "layer_bits", "quantizer_options", "neuron_options")

def setting_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_types(cls: type, values: Mapping[str, Any], source: str) -> None:
    """ConfigError for the first value whose type does not fit the field of `cls` it sets."""
    hints = setting_types(cls)
    for key, value in values.items():
        tp = hints.get(key)
        if tp is not None and not matches_type(value, tp):
            raise ConfigError(
                f"{key} in {source} must be {describe_type(tp)}, got {value!r}"
            )


def _number(f: dataclasses.Field, value: Any, bounds: Bounds, integer: bool) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (not integer or isinstance(value, numbers.Integral)) and math.isfinite(value)
    low, high = bounds.low, bounds.high
    if ok and low is not None:
        ok = value > low if bounds.above else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        kind = "an integer" if integer else "a finite number"
        bound = "" if low is None else f" {'>' if bounds.above else '>='} {low:g}"
        if high is not None:
            bound += f"{' and' if bound else ''} <= {high:g}"
        raise ConfigError(f"{where(f)} must be {kind}{bound}, got {value!r}")


def check_ranges(cfg: Any) -> None:
    """ConfigError for a number out of the range its field's metadata gives (train.setting):
    counts positive, rates positive and finite, decay and momentum not negative; then the
    level set or bit width the run's quantizer is built with."""
    hints = setting_types(type(cfg))
    for f in dataclasses.fields(cfg):
        bounds = f.metadata.get("bounds")
        value = getattr(cfg, f.name)
        if bounds is None or (value is None and _optional(hints[f.name])):
            continue
        _number(f, value, bounds, integer=int in _number_types(hints[f.name]))
    _check_quantizer_spec(cfg)


def _check_quantizer_spec(cfg: Any) -> None:
    """ConfigError for a level set or bit width the run's quantizer cannot be built with."""
    from ..quant.levels import validate_levels
    from ..quant.registry import quantizer_class, quantizer_names

    flag = cfg.field("bits" if cfg.levels is None else "levels")
    try:
        if cfg.levels is not None:
            validate_levels(cfg.levels)
        if cfg.quantizer in quantizer_names():  # an unknown name is --quantizer's error
            cls = quantizer_class(cfg.quantizer)
            if not cls.is_float:
                cls.spec_argument(cfg.bits, cfg.levels)
    except ValueError as err:
        raise ConfigError(f"{where(flag)}: {err}") from None


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _number_types(tp: Any) -> set[Any]:
    return {a for a in (typing.get_args(tp) or (tp,)) if a is not type(None)}


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def train_table(data: Mapping[str, Any], path: str, cls: type) -> dict[str, Any]:
    """The training settings of a parsed `train --config` file: its [train] table, or the whole
    file when it has no tables. Any other table, or a key outside [train] when the file has
    one, is an error: it would otherwise be ignored without a word."""
    known = _field_names(cls)
    tables = {k for k, v in data.items() if isinstance(v, Mapping)
              and k.replace("-", "_") not in DICT_SETTINGS}
    if TRAIN_TABLE in tables:
        outside = sorted(set(data) - {TRAIN_TABLE})
        if outside:
            hint = (" (a sweep file: run it with `spikequant sweep --config FILE`)"
                    if "sweep" in outside else "")
            raise ConfigError(
                f"{path}: only a [train] table is read by `spikequant train`; "
                f"{', '.join(outside)} would be ignored{hint}"
            )
        table = data[TRAIN_TABLE]
    elif tables:
        guess = [t for t in sorted(tables) if _close(t, TRAIN_TABLE)]
        hint = f" (did you mean [train] instead of [{guess[0]}]?)" if guess else ""
        raise ConfigError(
            f"{path}: unknown table(s) [{'], ['.join(sorted(tables))}]{hint}; settings go in "
            f"a [train] table (or at the top of the file, with no table)"
        )
    else:
        table = data
    values = {k.replace("-", "_"): v for k, v in table.items()}
    for key, value in values.items():
        if isinstance(value, Mapping) and key not in DICT_SETTINGS:
            raise ConfigError(
                f"{path}: [{TRAIN_TABLE}.{key}] is not a setting; "
                f"valid keys: {', '.join(sorted(known))}"
            )
    return values


def _close(a: str, b: str) -> bool:
    """Same letters, or one letter off: `trian`, `trains`, `tarin`."""
    if sorted(a) == sorted(b):
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    shorter, longer = sorted((a, b), key=len)
    return sum(x != y for x, y in zip(shorter, longer)) <= 1


# The [sweep] table's keys and what each must be; the grid sets these run settings itself.
SWEEP_KEYS = {"datasets": (str,), "quantizers": (str,), "bits": (int,), "seeds": (int,),
              "out": None}
SET_BY_THE_GRID = ("dataset", "quantizer", "bits", "seed", "out", "resume")


def _grid_values(key: str, value: Any, path: str) -> None:
    kinds = SWEEP_KEYS[key]
    if kinds is None:
        if not isinstance(value, str):
            raise ConfigError(f"{key} in [sweep] of {path} must be a string, got {value!r}")
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, kinds):
            word = "an integer" if kinds == (int,) else "a string"
            raise ConfigError(
                f"{key} in [sweep] of {path} must be {word} or a list of them, got {value!r}"
            )


def check_sweep_file(data: Mapping[str, Any], path: str, cls: type) -> dict[str, Any]:
    """The [train] table of a parsed sweep file, after checking its tables, the [sweep] grid's
    types and the [train] table's keys and types; ConfigError for the first problem."""
    unknown_tables = sorted(set(data) - {"sweep", TRAIN_TABLE})
    if unknown_tables:
        raise ConfigError(
            f"{path}: unknown table(s) or key(s) {', '.join(unknown_tables)}; a sweep file has "
            "a [sweep] table (datasets, quantizers, bits, seeds, out) and a [train] table"
        )
    for key, value in data["sweep"].items():
        if key in SWEEP_KEYS:
            _grid_values(key, value, path)
    train = data.get(TRAIN_TABLE, {})
    if not isinstance(train, Mapping):
        raise ConfigError(f"{path}: train must be a [train] table of settings")
    values = {k.replace("-", "_"): v for k, v in train.items()}
    unknown = sorted(set(values) - _field_names(cls))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in [train] of {path}: {', '.join(unknown)}; "
            f"valid keys: {', '.join(sorted(_field_names(cls)))}"
        )
    by_grid = [k for k in SET_BY_THE_GRID if k in values]
    if by_grid:
        raise ConfigError(
            f"{path}: {', '.join(by_grid)} in [train] would be replaced by each run of the grid; "
            "set datasets, quantizers, bits, seeds and out in [sweep]"
        )
    check_types(cls, values, f"[train] of {path}")
    return values
