"""Atomic file writes, shared by every module that writes files: the content goes to a
temporary file beside the target, is flushed to disk, then renamed over the target, so a crash
or a concurrent reader never sees a half-written file.

Temporary names are short and hidden (`.sq<host>.<pid>.<random>.tmp`, about 25 characters)
rather than derived from the target's name, so a target whose name is near the file system's
255-byte limit can still be written. The host and process id in the name let
`remove_stale_temporaries` delete what a killed writer (SIGKILL, power loss) left behind
without touching the file of a writer still running.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
_TEMPORARY = re.compile(r"^\.sq(?P<host>[0-9a-f]{4})\.(?P<pid>\d+)\.[0-9a-f]{6}\.tmp$")
# What spikequant 0.x named its temporaries: `.<target>.<pid>.<8 hex>.tmp` (no host).
_OLD_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temporary_name() -> str:
    return f".sq{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on success it replaces `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(temporary_name())
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        if err.filename not in (None, str(tmp)):
            raise
        # name the file the user asked for (a failed write() names none; the temporary
        # means nothing to them)
        raise OSError(err.errno, err.strerror or str(err), str(target)) from err
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(binary_file)` on a temporary file, then move it over `path`."""
    with atomic_path(path) as tmp:
        # "x" rather than mkstemp, so the file gets the usual permissions (0666 minus umask)
        with open(tmp, "xb") as fh:
            write(fh)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number we can't ask about: keep the file
    return True


def remove_stale_temporaries(
    folder: str | os.PathLike, old_targets: Collection[str] = ()
) -> list[Path]:
    """Delete the temporaries in `folder` whose writer, a process on this host, has died;
    returns what was deleted. Older versions' temporaries, whose names are less distinctive,
    only for the targets named in `old_targets`. A missing folder has none."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and match["host"] != _HOST:
            continue  # another machine's writer, on a shared file system: its pids aren't ours
        if not match:
            match = _OLD_TEMPORARY.match(entry.name)
            if match and match["target"] not in old_targets:
                continue
        if not match or _process_alive(int(match["pid"])) or not entry.is_file():
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except FileNotFoundError:
            pass  # removed meanwhile by another cleaner
    return removed
