"""Output files of the commands that write one: an existing file is replaced only with
--force, an input is never overwritten, and the path is checked before any work is done."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .._atomic import remove_stale_temporaries
from ..errors import OutputExistsError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_outputs(outputs: Sequence[tuple[str, str | None]],
                  inputs: Sequence[tuple[str, str | None]], force: bool = False) -> None:
    """OutputExistsError when an output is an input, two outputs are one file, an output is a
    folder, its name is too long, or it exists and `force` is not set."""
    given = [(flag, Path(p)) for flag, p in outputs if p]
    sources = [(flag, Path(p)) for flag, p in inputs if p]
    for i, (flag, path) in enumerate(given):
        if len(os.fsencode(path.name)) > 255:
            raise OutputExistsError(
                f"{flag}: the file name {path.name[:40]}... is {len(os.fsencode(path.name))} "
                "bytes long, more than a file name may have (255); choose a shorter name"
            )
        for src_flag, src in sources:
            if path.resolve() == src.resolve() or _same_file(path, src):
                raise OutputExistsError(
                    f"{flag} {path} is the {src_flag} file itself; writing it would destroy the "
                    "input: choose another name"
                )
        for other_flag, other in given[:i]:
            if path.resolve() == other.resolve():
                raise OutputExistsError(f"{flag} and {other_flag} name the same file {path}")
        if path.is_dir():
            raise OutputExistsError(f"{flag} {path} is a folder; give a file name inside it")
        if path.exists() and not force:
            raise OutputExistsError(
                f"{flag} {path} exists; pass --force to replace it, or choose another name"
            )
        remove_stale_temporaries(path.parent, old_targets=(path.name,))
