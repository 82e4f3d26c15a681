"""Whether a value fits a type annotation, and the annotation in words: the checks of config
files, of TrainConfig and of the options a component declares (spikequant.options)."""

from __future__ import annotations

import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any

TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
              list: "a list", dict: "a table"}


def describe_type(tp: Any) -> str:
    """The annotation `tp` in words: "an integer", "a number or nothing", "one of 'a', 'b'"."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("nothing" if a is type(None) else describe_type(a)
                           for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"a list of {describe_type(item).removeprefix('a ').removeprefix('an ')}s"
    return TYPE_WORDS.get(origin or tp, getattr(tp, "__name__", str(tp)))


def matches_type(value: Any, tp: Any) -> bool:
    """Whether `value` fits the annotation `tp` (a bool is not an int, an int is a float)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return any(type(value) is type(v) and value == v for v in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return any(matches_type(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is list or tp is list:
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and (
            not args or all(matches_type(v, args[0]) for v in value))
    if origin is dict or tp is dict:
        args = typing.get_args(tp)
        return isinstance(value, Mapping) and (
            not args or all(matches_type(k, args[0]) and matches_type(v, args[1])
                            for k, v in value.items()))
    return True  # a kind of annotation this check does not know: left to the code using it


