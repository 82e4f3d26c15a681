"""Every public function and class of the API reference documents its arguments.

The API pages (docs/reference/api.md) render the `__all__` of each public module. A name passes
when it has a docstring and each of its parameters (a class's: its constructor's) is named in
it, as an `Args:` entry (`name:` or `name (type):`) or in backticks in the prose. The rule
itself is tested on two made-up functions, so a rule that passes everything fails here.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import re

import pytest

PUBLIC_MODULES = ("spikequant", "spikequant.quant", "spikequant.snn", "spikequant.models",
                  "spikequant.data", "spikequant.train", "spikequant.export",
                  "spikequant.errors")


def _documented(doc: str, name: str) -> bool:
    n = re.escape(name)
    return bool(re.search(rf"^\s*\**{n}\**\s*(\(|:)", doc, re.M)
                or re.search(rf"`{n}`|`{n}=|`--{n.replace('_', '-')}", doc))


def _parameters(fn) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.name not in ("self", "cls") and not p.name.startswith("_")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _class_docs(cls: type) -> str:
    parts = []
    for klass in cls.__mro__:
        if klass is object or klass.__module__.split(".")[0] != "spikequant":
            continue
        parts.append(klass.__doc__ or "")
        init = klass.__dict__.get("__init__")
        if init is not None:
            parts.append(init.__doc__ or "")
    return "\n".join(parts)


def undocumented(obj) -> list[str]:
    """What `obj` leaves out: 'docstring' when it has none, else its undocumented parameters."""
    if inspect.isclass(obj):
        if issubclass(obj, enum.Enum):
            return [] if obj.__doc__ else ["docstring"]
        doc = _class_docs(obj)
        params = _parameters(obj)
        if dataclasses.is_dataclass(obj):
            helped = {f.name for f in dataclasses.fields(obj) if f.metadata.get("help")}
            params = [p for p in params if p not in helped]
    else:
        doc = inspect.getdoc(obj) or ""
        params = _parameters(obj)
    if not doc.strip():
        return ["docstring"]
    return [p for p in params if not _documented(doc, p)]


def _public_names():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield f"{module_name}.{name}", obj


def test_every_public_module_lists_its_names():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        assert getattr(module, "__all__", None), f"{module_name} has no __all__"


def test_every_public_name_documents_its_arguments():
    missing = {name: gaps for name, obj in _public_names() if (gaps := undocumented(obj))}
    assert not missing, "undocumented: " + "; ".join(
        f"{name} ({', '.join(gaps)})" for name, gaps in sorted(missing.items()))


def _documented_fn(bits: int, per_channel: bool = False) -> None:
    """Pack weights.

    Args:
        bits: bits a weight.
        per_channel (bool): one scale a channel.
    """


def _half_documented_fn(bits: int, per_channel: bool = False) -> None:
    """Pack weights at `bits` bits."""


@pytest.mark.parametrize("fn, expected", [(_documented_fn, []),
                                          (_half_documented_fn, ["per_channel"]),
                                          (lambda x: x, ["docstring"])])
def test_the_rule_tells_documented_from_undocumented(fn, expected):
    assert undocumented(fn) == expected
