"""One registry type for every kind of component a user can add: quantizers, neurons,
surrogates, datasets and networks.

A `Registry` maps names to entries (a class, a record, a descriptor). Every kind follows the
same rules, so a name works the same way in Python, in a config file and on the command line:

- a name is lower-case letters, digits and underscores, starting with a letter or digit
  (it names run folders and command-line choices);
- lookups ignore case, '-' and '_': `N-MNIST`, `nmnist` and `n_mnist` are one name, so two
  entries whose names differ only in those are refused as duplicates;
- a name taken by another entry is an error (register the same entry twice: no change);
- `names()` lists entries in registration order (the order `--help` shows them);
- built-in entries can't be unregistered; `unregister` and `registered(...)` (a context
  manager) are for tests and experiments.

A lookup that misses loads the installed plugins (`spikequant.plugins`) once and looks again,
so a component an installed package registers through the entry-point group is found by name
without an import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from .errors import UnknownComponent

T = TypeVar("T")

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]*")


def name_key(name: str) -> str:
    """The form lookups compare: lower case, without '-' and '_'."""
    return str(name).lower().replace("-", "").replace("_", "")


class Registry(Generic[T]):
    """Entries of one kind by name.

    Args:
        kind: what an entry is, in words ("quantizer", "neuron"), for error messages.
        how_to_add: a sentence telling a user how to register one (shown when a name is
            unknown).
    """

    def __init__(self, kind: str, how_to_add: str = "") -> None:
        self.kind = kind
        self.how_to_add = how_to_add
        self._entries: dict[str, T] = {}  # canonical name -> entry, in registration order
        self._keys: dict[str, str] = {}  # name_key -> canonical name
        self._builtin: set[str] = set()

    # ------------------------------------------------------------------ changing it

    def register(self, name: str, entry: T, *, builtin: bool = False) -> T:
        """Add `entry` under `name` and return it; ValueError for a badly formed name or one
        another entry holds (under any spelling that differs only in case, '-' or '_')."""
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{self.kind} name {name!r}: use lower-case letters, digits and underscores, "
                f"starting with a letter or digit (e.g. {_suggest(name)!r}); it names run "
                "folders and command-line choices"
            )
        taken = self._keys.get(name_key(name))
        if taken is not None:
            if self._entries[taken] is entry and taken == name:
                return entry
            raise ValueError(
                f"{self.kind} name {name!r} is already taken by {_describe(self._entries[taken])}"
                + (f" (registered as {taken!r})" if taken != name else "")
                + f"; give {_describe(entry)} another name"
            )
        self._entries[name] = entry
        self._keys[name_key(name)] = name
        if builtin:
            self._builtin.add(name)
        return entry

    def unregister(self, name: str) -> T | None:
        """Remove the entry registered as `name` and return it (None if there is none); a
        built-in entry can't be removed."""
        canonical = self._keys.get(name_key(name))
        if canonical is None:
            return None
        if canonical in self._builtin:
            raise ValueError(f"{canonical!r} is a built-in {self.kind} and can't be unregistered")
        del self._keys[name_key(name)]
        return self._entries.pop(canonical)

    @contextmanager
    def registered(self, name: str, entry: T) -> Iterator[T]:
        """`entry` registered under `name` for the duration of the block only."""
        self.register(name, entry)
        try:
            yield entry
        finally:
            if self.find(name) is entry:
                self.unregister(name)

    # ------------------------------------------------------------------ reading it

    def find(self, name: object) -> T | None:
        """The entry registered as `name` (any spelling), or None; no plugins are loaded."""
        if not isinstance(name, str):
            return None
        canonical = self._keys.get(name_key(name))
        return None if canonical is None else self._entries[canonical]

    def get(self, name: object) -> T:
        """The entry registered as `name`; on a miss, installed plugins are loaded once and
        the name looked up again; UnknownComponent (a ValueError) listing the names
        otherwise."""
        entry = self.find(name)
        if entry is None and _load_installed_plugins():
            entry = self.find(name)
        if entry is None:
            raise UnknownComponent(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"
                + (f" ({self.how_to_add})" if self.how_to_add else "")
            )
        return entry

    def canonical(self, name: str) -> str:
        """The name `name` is registered under (UnknownComponent as `get` otherwise)."""
        self.get(name)
        return self._keys[name_key(name)]

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())

    def is_builtin(self, name: str) -> bool:
        canonical = self._keys.get(name_key(name))
        return canonical is not None and canonical in self._builtin

    def __contains__(self, name: object) -> bool:
        return self.find(name) is not None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


def _describe(entry: object) -> str:
    if isinstance(entry, type):
        return f"{entry.__module__}.{entry.__qualname__}"
    cls = type(entry)
    return f"a {cls.__module__}.{cls.__qualname__}"


def _suggest(name: object) -> str:
    text = re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_")
    return text or "my_name"


def _load_installed_plugins() -> bool:
    from .plugins import load_installed_plugins  # imports only the standard library

    return load_installed_plugins()
