"""The run folder (`train --out`): claimed before any data is read, held for the whole run.

- An exclusive lock (`fcntl.flock` on OUT/.lock, which records the holder's pid, host and start
  time): a second `train` on the same folder is refused with the holder's name instead of both
  runs overwriting each other's files.
- A fresh run never overwrites files it did not write: a folder holding metrics.json, log.csv,
  best.pt or tensorboard/ but no last.pt is refused.
- `--resume` continues OUT/last.pt after checking the settings that can't change; a folder
  without last.pt is started fresh (with a note) only when it is empty or new, and refused
  otherwise.
- Temporary files that killed writers left behind are removed.
"""

from __future__ import annotations

import datetime
import errno
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import remove_stale_temporaries
from ..errors import RunFolderError

LOCK_NAME = ".lock"
CHECKPOINT_NAME = "last.pt"
# What a run writes besides last.pt; a fresh run refuses a folder that already holds one.
RUN_OUTPUTS = ("best.pt", "metrics.json", "log.csv", "tensorboard")


@dataclass
class RunClaim:
    """A claimed run folder: its lock (rank 0) and the checkpoint to resume, if any."""

    out: Path
    checkpoint: dict[str, Any] | None = None
    lock_fd: int | None = None

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # closing the descriptor drops the flock
            self.lock_fd = None


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0


def _check_path(out: Path) -> None:
    for part in out.parts:
        if len(os.fsencode(part)) > 255:
            raise RunFolderError(
                f"--out: the name {part[:40]}... is {len(os.fsencode(part))} bytes long, more "
                "than a file name may have (255); choose a shorter --out"
            )
    if out.is_symlink() and not out.exists():
        raise RunFolderError(
            f"--out {out} is a symbolic link to {os.readlink(out)}, which does not exist or "
            "loops; remove the link or point it at a folder"
        )
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is an existing file, not a folder; choose a folder")


def _named(out: Path) -> str:
    """`out` for a message, with where it leads when it is a symbolic link."""
    return f"{out} (a link to {out.resolve()})" if out.is_symlink() else str(out)


def _make_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunFolderError(
            f"--out {out}: a part of the path is a file, not a folder"
        ) from None
    except OSError as err:
        raise RunFolderError(f"--out {out} cannot be created ({err.strerror})") from None


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that did not record itself"


def _lock(out: Path) -> int:
    import fcntl

    lock = out / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunFolderError(
            f"--out {out} is not writable ({err.strerror}); choose a folder you can write to"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunFolderError(
                f"--out {_named(out)} is in use by another spikequant train "
                f"({_holder(lock)}); wait for it to finish or choose another --out"
            ) from None
        raise RunFolderError(f"cannot lock {lock} ({err.strerror})") from None
    return fd


def _record_holder(fd: int, out: Path) -> None:
    """Write this process into the held lock file: done only once the folder is accepted, so a
    refused run leaves the record of the run that owns the folder as it was."""
    started = datetime.datetime.now().isoformat(timespec="seconds")
    record = f"pid {os.getpid()} on host {socket.gethostname()}, started {started}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
    except OSError as err:
        raise RunFolderError(f"--out {out} is not writable ({err.strerror})") from None


def _visible_entries(out: Path) -> list[str]:
    """The folder's entries but hidden ones (the lock, temporaries, .DS_Store...)."""
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def _check_contents(out: Path, resume: bool) -> None:
    """For a folder without last.pt: refuse what a new run would overwrite or mistake."""
    entries = _visible_entries(out)
    if resume:
        if entries:
            raise RunFolderError(
                f"--resume: {out} has no {CHECKPOINT_NAME} to continue, but holds "
                f"{', '.join(entries[:5])}; drop --resume to start a new run there "
                "(if those files are not a run's) or choose another --out"
            )
        print(f"note: no {CHECKPOINT_NAME} in {out}, nothing to resume: starting a new run",
              file=sys.stderr)
        return
    clashes = [name for name in RUN_OUTPUTS if name in entries]
    if clashes:
        raise RunFolderError(
            f"--out {out} holds {', '.join(clashes)} but no {CHECKPOINT_NAME}: not a run "
            "spikequant can continue, and a new run would overwrite them; choose another --out "
            "or move them away"
        )


def claim_run_folder(cfg: Any, time_steps: int) -> RunClaim:
    """Check, lock (rank 0) and read the run folder of `cfg`; RunFolderError on a folder that
    can't be used. `time_steps` is the run's resolved value, compared on --resume."""
    from .checkpoint import load_checkpoint
    from .resume import check_resume

    out = Path(cfg.out)
    _check_path(out)
    claim = RunClaim(out)
    if _is_main_process():
        _make_folder(out)
        claim.lock_fd = _lock(out)
        remove_stale_temporaries(out, old_targets=(CHECKPOINT_NAME, *RUN_OUTPUTS))
    try:
        last = out / CHECKPOINT_NAME
        if last.is_file():
            if not cfg.resume:
                raise RunFolderError(
                    f"{_named(out)} already holds a run ({CHECKPOINT_NAME}); pass --resume to "
                    "continue it or choose another --out"
                )
            claim.checkpoint = load_checkpoint(last)
            check_resume(claim.checkpoint, cfg, time_steps, last)
        elif _is_main_process():
            _check_contents(out, cfg.resume)
        if claim.lock_fd is not None:
            _record_holder(claim.lock_fd, out)
    except BaseException:
        claim.release()
        raise
    return claim
