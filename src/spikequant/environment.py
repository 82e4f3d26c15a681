"""The environment variables spikequant reads, in one place: each one's accepted values,
meaning and default, how its value is read, and where the per-user caches live.

    SPIKEQUANT_KERNELS          auto | torch | triton: which implementation runs the fused
                                neuron and quantizer (spikequant._kernels)
    SPIKEQUANT_MALLOPT          on | off: keep freed large CPU buffers (spikequant._cpu_memory)
    SPIKEQUANT_CPU_KERNEL_DIR   folder of the compiled CPU kernels
    SPIKEQUANT_DATA             the default data folder (`--data-dir`)
    SPIKEQUANT_FRAME_CACHE      folder of the frame cache
    SPIKEQUANT_FUZZ_EXAMPLES    examples each event-file reader is fuzzed with (test suite)

Every value is checked when it is read, and the `spikequant` command checks them all when it
starts (`check_environment`): a bad one is a ConfigError naming the variable, its value and
what it accepts, never a traceback or a silent default. An empty value means the default.
Per-user caches live under `cache_home()` ($XDG_CACHE_HOME/spikequant, else
~/.cache/spikequant), the one place both the kernel cache and the data folder start from.

Nothing here imports torch: the command reads these before anything heavy is loaded.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

PREFIX = "SPIKEQUANT_"
ON = ("1", "on", "true", "yes")
OFF = ("0", "off", "false", "no")


@dataclass(frozen=True)
class Variable:
    """One environment variable: `parse` turns its (stripped, non-empty) text into a value or
    raises ValueError; `accepted` says what it takes, for the error."""

    name: str
    meaning: str
    accepted: str
    default: str
    parse: Callable[[str], Any]


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError
        return text.lower()

    return parse


def _switch(text: str) -> bool:
    if text.lower() in ON:
        return True
    if text.lower() in OFF:
        return False
    raise ValueError


def _folder(text: str) -> Path:
    return Path(text).expanduser()


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("SPIKEQUANT_KERNELS", "which implementation runs the fused neuron and quantizer",
             "auto, torch or triton", "auto", _choice("auto", "torch", "triton")),
    Variable("SPIKEQUANT_MALLOPT", "keep freed large CPU buffers for reuse (glibc)",
             f"on ({', '.join(ON)}) or off ({', '.join(OFF)})", "on", _switch),
    Variable("SPIKEQUANT_CPU_KERNEL_DIR", "folder of the compiled CPU kernels",
             "a folder path (created when missing)", "$XDG_CACHE_HOME/spikequant, else "
             "~/.cache/spikequant", _folder),
    Variable("SPIKEQUANT_DATA", "the data folder when --data-dir is not given",
             "a folder path", "$XDG_CACHE_HOME/spikequant/data, else "
             "~/.cache/spikequant/data", _folder),
    Variable("SPIKEQUANT_FRAME_CACHE", "folder of the frame cache of the event datasets",
             "a folder path (created when missing)", "DATA/frames_cache, else (data folder "
             "read-only) $XDG_CACHE_HOME/spikequant/frames", _folder),
    Variable("SPIKEQUANT_FUZZ_EXAMPLES", "examples each event-file reader is fuzzed with "
             "(the test suite)", "an integer >= 1", "200", _positive_int),
)}


def raw(name: str) -> str | None:
    """The variable's text, stripped; None when unset or empty (its default applies)."""
    text = os.environ.get(name, "").strip()
    return text or None


def value(name: str) -> Any:
    """The parsed value of a declared variable, or None when it is unset or empty; a value it
    does not accept is a ConfigError naming the variable, the value and what it accepts."""
    var = VARIABLES[name]
    text = raw(name)
    if text is None:
        return None
    try:
        return var.parse(text)
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={os.environ[name]!r} is not accepted: {name} takes "
            f"{var.accepted} (unset it for the default, {var.default})"
        ) from None


def unknown_variables() -> list[str]:
    """One line for each SPIKEQUANT_* variable set that spikequant does not read (a typo?)."""
    lines = []
    for name in sorted(os.environ):
        if name.startswith(PREFIX) and name not in VARIABLES:
            close = difflib.get_close_matches(name, list(VARIABLES), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            lines.append(f"environment variable {name} is not one spikequant reads; {hint}"
                         f"known: {', '.join(VARIABLES)}")
    return lines


def check_environment() -> list[str]:
    """Check every declared variable that is set (ConfigError for the first bad one) and
    return warnings for SPIKEQUANT_* names spikequant does not know."""
    for name in VARIABLES:
        value(name)
    return unknown_variables()


def cache_home() -> Path:
    """spikequant's per-user cache folder: $XDG_CACHE_HOME/spikequant, else
    ~/.cache/spikequant. The kernel cache, the default data folder and the fallback frame
    cache are all under it unless their own variable moves them."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(base).expanduser() / "spikequant"


def cache_home_origin() -> str:
    """Which setting put cache_home() where it is, for messages."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return f"$XDG_CACHE_HOME={base}" if base else "the default ~/.cache ($XDG_CACHE_HOME moves it)"


def kernel_cache_dir() -> tuple[Path, str]:
    """(folder of the compiled CPU kernels, the setting that chose it)."""
    chosen = value("SPIKEQUANT_CPU_KERNEL_DIR")
    if chosen is not None:
        return chosen, "$SPIKEQUANT_CPU_KERNEL_DIR"
    return cache_home(), f"{cache_home_origin()}; $SPIKEQUANT_CPU_KERNEL_DIR moves it"


def default_data_dir() -> Path:
    """$SPIKEQUANT_DATA if set, else cache_home()/data."""
    chosen = value("SPIKEQUANT_DATA")
    return chosen if chosen is not None else cache_home() / "data"


def data_dir_origin(root: str | os.PathLike) -> str:
    """Which setting chose the data folder `root`, for messages: $SPIKEQUANT_DATA or the
    default when it is theirs, else --data-dir."""
    root = Path(root).expanduser()
    if value("SPIKEQUANT_DATA") is not None:
        if root == value("SPIKEQUANT_DATA"):
            return "$SPIKEQUANT_DATA; --data-dir moves it"
    elif root == cache_home() / "data":
        return f"the default, under {cache_home_origin()}; --data-dir or $SPIKEQUANT_DATA moves it"
    return "--data-dir"


def frame_cache_dir() -> Path | None:
    """$SPIKEQUANT_FRAME_CACHE, or None (frames are cached under the data folder)."""
    return value("SPIKEQUANT_FRAME_CACHE")
