"""Reading a TOML settings file, with `extends = "BASE.toml"`: a file may name, at its top, a
base file (resolved relative to it) whose tables it starts from. Its own entries replace the
base's key by key within the [train] and [sweep] tables, and within their tables (e.g.
[train.quantizer_options.sigmoid]), so a dataset's shared recipe is written once and each
experiment states only what sets it apart."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..errors import ConfigError

EXTENDS = "extends"
MERGED_TABLES = ("train", "sweep")


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings file at `path`, with the base files it extends merged in."""
    return _read(Path(path), ())


def _read(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        if chain:
            raise ConfigError(f"{chain[-1]}: the file it extends, {path}, is not there")
        if path.is_dir():
            raise ConfigError(f"config file {path} is a folder; pass a TOML file")
        raise FileNotFoundError(f"config file {path} not found")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text, as TOML must be ({err.reason} at byte "
                          f"{err.start})") from None
    base_name = data.pop(EXTENDS, None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise ConfigError(f"{EXTENDS} in {path} must be a file name, got {base_name!r}")
    here = path.resolve()
    base = (here.parent / base_name).resolve()
    seen = (*chain, here)
    if base in seen:
        loop = " -> ".join(str(p) for p in (*seen[seen.index(base):], base))
        raise ConfigError(f"{path}: {EXTENDS} makes a loop ({loop})")
    return merge(_read(base, seen), data)


def merge(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """`own` over `base`: the [train] and [sweep] tables merged key by key (and the tables
    inside them, to any depth), anything else replaced whole."""
    merged = dict(base)
    for key, value in own.items():
        old = merged.get(key)
        if key in MERGED_TABLES and isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def _deep_merge(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in own.items():
        old = merged.get(key)
        both = isinstance(old, Mapping) and isinstance(value, Mapping)
        merged[key] = _deep_merge(old, value) if both else value
    return merged
