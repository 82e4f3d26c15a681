"""Options of a component (quantizer, neuron), declared once and checked the same way from
Python, a config file and the command line.

A component declares its options by its constructor: every keyword parameter is an option,
with its annotation as the type, its default, and the line its class docstring's `Args:`
section gives it as the help. A constructor that takes `**options` and passes them to its
base class declares the base's options too. A component may add options its constructor
does not take (the sigmoid quantizer's temperature schedule, read by the training loop) as
`Option` objects.

    --quantizer-option t0=2 --quantizer-option gradient=exact      (text, parsed by type)
    [train.quantizer_options.sigmoid]  t0 = 2.0                      (TOML, checked by type)

An option the component does not declare, or a value that does not fit its type, is an
OptionError naming the option, the component and the options it accepts.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._types import describe_type, matches_type
from .errors import OptionError

REQUIRED = inspect.Parameter.empty
_NONE_WORDS = ("none", "null")
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True,
               "false": False, "no": False, "off": False, "0": False}


@dataclass(frozen=True)
class Option:
    """One declared option: its name, type (an annotation), default and help line."""

    name: str
    annotation: Any = Any
    default: Any = REQUIRED
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """`name` (type, default ...): help, as `--help` and the docs list it."""
        default = "required" if self.required else f"default {self.default!r}"
        text = f"{self.name} ({describe_type(self.annotation)}, {default})"
        return f"{text}: {self.help}" if self.help else text

    def fits(self, value: Any) -> bool:
        return matches_type(value, self.annotation)

    def parse(self, text: str) -> Any:
        """The value a command-line text stands for, read by the option's type:
        none/null, true/false, numbers, one of a Literal's values, else the text itself."""
        stripped = text.strip()
        candidates = _alternatives(self.annotation)
        if stripped.lower() in _NONE_WORDS and type(None) in candidates:
            return None
        for tp in candidates:
            value = _parse_as(stripped, tp)
            if value is not _NO_VALUE:
                return value
        return text


_NO_VALUE = object()


def _alternatives(annotation: Any) -> list[Any]:
    if annotation is Any:
        return [type(None), bool, int, float, str]
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    found = list(typing.get_args(annotation)) if union else [annotation]
    # the narrower reading first: "3" is an int before it is a float or a string
    order = {type(None): 0, bool: 1, int: 2, float: 3}
    return sorted(found, key=lambda t: order.get(t, 4))


def _parse_as(text: str, tp: Any) -> Any:
    if tp is bool:
        return _BOOL_WORDS.get(text.lower(), _NO_VALUE)
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            return _NO_VALUE
    if typing.get_origin(tp) is typing.Literal:
        for choice in typing.get_args(tp):
            if str(choice) == text:
                return choice
        return _NO_VALUE
    if tp is str:
        return text
    return _NO_VALUE


def constructor_options(cls: type, skip_first: bool = False,
                        exclude: Iterable[str] = ()) -> dict[str, Option]:
    """The options `cls(...)` takes: the keyword parameters of its `__init__`, and of its
    base classes' while each passes `**options` on. `skip_first`: the first parameter after
    self is positional, not an option (a quantizer's levels or bits)."""
    options: dict[str, Option] = {}
    excluded = set(exclude)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        if skip_first and params and params[0].kind is not inspect.Parameter.VAR_KEYWORD:
            params = params[1:]
        hints = _hints(init)
        helps = docstring_args(klass)
        passes_on = False
        for p in params:
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                passes_on = True
            elif p.kind is not inspect.Parameter.VAR_POSITIONAL and p.name not in options:
                if p.name not in excluded:
                    options[p.name] = Option(p.name, hints.get(p.name, Any), p.default,
                                             helps.get(p.name, ""))
        if not passes_on:
            break
    return options


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: no type check
        return {}


_ARG_LINE = re.compile(r"^(\s*)(\w+)(?: \([^)]*\))?:\s*(.*)$")


def docstring_args(obj: Any) -> dict[str, str]:
    """{name: help} from the `Args:` section of `obj`'s own docstring (Google style; a
    continuation line indented deeper joins the line above)."""
    doc = inspect.cleandoc(obj.__dict__.get("__doc__") or "") if isinstance(obj, type) else (
        inspect.getdoc(obj) or "")
    helps: dict[str, str] = {}
    inside, indent, current = False, None, None
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            inside, indent, current = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            current = None
            continue
        lead = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(line)
        if match and (indent is None or lead == indent):
            indent, current = lead, match.group(2)
            helps[current] = match.group(3).strip()
        elif current is not None and indent is not None and lead > indent:
            helps[current] = f"{helps[current]} {line.strip()}".strip()
        elif lead <= (indent or 0) and not match:
            inside = False
    return helps


def check_options(owner: str, declared: Mapping[str, Option], given: Mapping[str, Any],
                  flag: str = "") -> dict[str, Any]:
    """`given` if every key is a declared option and every value fits its type; OptionError
    naming the option, `owner` (e.g. "quantizer 'sigmoid'") and the accepted options
    otherwise. `flag` says where the options came from (e.g. "--quantizer-option")."""
    where = f" ({flag})" if flag else ""
    for key, value in given.items():
        option = declared.get(key)
        if option is None:
            raise OptionError(
                f"{owner} has no option {key!r}{where}; its options are: "
                f"{', '.join(declared) or 'none'}"
            )
        if not option.fits(value):
            raise OptionError(
                f"option {key!r} of {owner}{where} must be {describe_type(option.annotation)}, "
                f"got {value!r}"
            )
    return dict(given)


def resolve_options(owner: str, declared: Mapping[str, Option],
                    given: Mapping[str, Any], flag: str = "") -> dict[str, Any]:
    """Every declared option with its value: `given` (checked) over the defaults."""
    values = check_options(owner, declared, given, flag)
    missing = [o.name for o in declared.values() if o.required and o.name not in values]
    if missing:
        where = f" ({flag})" if flag else ""
        raise OptionError(f"{owner} needs option(s) {', '.join(missing)}{where}")
    return {name: values.get(name, option.default) for name, option in declared.items()}


def parse_assignments(items: Sequence[str], flag: str) -> dict[str, str]:
    """['t0=2', 'gradient=exact'] (or 't0=2,gradient=exact') -> {'t0': '2', ...}; OptionError
    for an item that is not KEY=VALUE."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"{flag} takes KEY=VALUE (e.g. {flag} t0=2), got {item!r}")
        found[key.strip()] = value.strip()
    return found


def parse_option_texts(owner: str, declared: Mapping[str, Option], texts: Mapping[str, str],
                       flag: str) -> dict[str, Any]:
    """Command-line texts {key: 'value'} read by each declared option's type, then checked."""
    unknown = [key for key in texts if key not in declared]
    if unknown:
        check_options(owner, declared, {unknown[0]: None}, flag)  # raises, naming it
    values = {key: declared[key].parse(text) for key, text in texts.items()}
    return check_options(owner, declared, values, flag)


def describe_options(declared: Mapping[str, Option], width: int = 88) -> str:
    """The options one a paragraph (wrapped to `width`), for help texts."""
    import textwrap

    paragraphs = [textwrap.fill(option.describe(), width, initial_indent="    ",
                                subsequent_indent="      ") for option in declared.values()]
    return "\n".join(paragraphs) or "    (none)"
