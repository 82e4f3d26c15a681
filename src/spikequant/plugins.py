"""Plugins: modules of a user's that register components (quantizers, neurons, surrogates,
datasets, networks) so the `spikequant` command can use them by name.

Two routes, the same effect (importing the module runs its `class ...(WeightQuantizer)`,
`register_dataset(...)`, `register_model(...)` statements):

- `--plugin MODULE` on any command (repeatable), or `plugins = ["MODULE", ...]` in a
  `train` / `sweep` config file: MODULE is a module name importable from the current
  directory or the Python path (`my_lab.quantizers`), or the path of a `.py` file.
- An installed package declares an entry point in the group `spikequant.plugins`
  (pyproject.toml: `[project.entry-points."spikequant.plugins"] my_lab = "my_lab.plugin"`).
  Installed plugins are loaded once a process: by the command at start-up, and from Python at
  the first lookup of a name no registry knows. An entry point may name a module (imported)
  or a function (called with no arguments after its module is imported).

A plugin that fails to import is a PluginError naming it (for `--plugin`); an installed one
that fails is a warning naming the entry point and the fix, so one broken package does not
stop every command.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from .errors import PluginError

ENTRY_POINT_GROUP = "spikequant.plugins"

_loaded: dict[str, ModuleType] = {}  # what load_plugin was given -> the module
_installed_done = False


class PluginWarning(UserWarning):
    """An installed plugin (entry point) that could not be loaded."""


def load_plugin(spec: str) -> ModuleType:
    """Import the plugin `spec` (a module name, or the path of a .py file) once a process and
    return the module; PluginError (an ImportError) naming it when that fails."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"a plugin is a module name or a .py file, got {spec!r}")
    spec = spec.strip()
    if spec in _loaded:
        return _loaded[spec]
    try:
        module = _import_file(spec) if spec.endswith(".py") else _import_name(spec)
    except PluginError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure inside the user's module
        raise PluginError(
            f"plugin {spec!r} failed to import: {type(err).__name__}: {err}"
        ) from err
    _loaded[spec] = module
    return module


def load_plugins(specs: Iterable[str]) -> list[ModuleType]:
    """`load_plugin` for each of `specs`, in order."""
    return [load_plugin(spec) for spec in specs]


def loaded_plugins() -> list[str]:
    """The plugins loaded with load_plugin so far (as given), in order."""
    return list(_loaded)


def _import_name(name: str) -> ModuleType:
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found and os.getcwd() not in sys.path:
        # the command's own directory is on sys.path, not the user's: a plugin next to the
        # user's files is what `--plugin my_module` means
        sys.path.insert(0, os.getcwd())
        importlib.invalidate_caches()
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
    if not found:
        raise PluginError(
            f"plugin {name!r} not found: give a module importable from the current directory "
            "or the Python path (e.g. my_lab.quantizers), or the path of a .py file"
        )
    return importlib.import_module(name)


def _import_file(path_text: str) -> ModuleType:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise PluginError(f"plugin file {path} not found")
    name = f"spikequant_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} can't be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def installed_entry_points() -> list:
    """The entry points of the group `spikequant.plugins` of the installed packages."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load_installed_plugins() -> bool:
    """Load every installed plugin (entry points) once a process; True when this call loaded
    at least one."""
    global _installed_done
    if _installed_done:
        return False
    _installed_done = True
    loaded = False
    for ep in installed_entry_points():
        try:
            target = ep.load()
            if callable(target) and not isinstance(target, ModuleType):
                target()
        except Exception as err:  # noqa: BLE001 - a broken package must not stop the command
            warnings.warn(
                f"installed spikequant plugin {ep.name!r} ({ep.value}) failed to load: "
                f"{type(err).__name__}: {err}; fix or uninstall the package that declares it",
                PluginWarning, stacklevel=2,
            )
            continue
        loaded = True
    return loaded
