"""On-disk frame cache: one .npy of integer counts per recording, in a folder per frame
configuration (everything that changes the frames: dataset, T, split mode, resize, denoise,
sensor, code version), each file named by a digest of the recording's content (see
fingerprint.py) and its time segment. An entry is checked when read (a readable .npy of
unsigned integer counts of the configuration's [T, 2, H, W] shape); one that is not is
reported by name and rebuilt from its recording.

Files are written to a temporary name in the same folder and renamed into place, so readers
(several DataLoader workers, several processes) see either no file or a whole one; two workers
computing the same recording both write identical frames and the last rename wins.

A cache that cannot be used (a folder that cannot be created or written, a full disk) is not
an error: one warning names the folder and the setting that moves it, and the frames are
computed from the recordings each time they are drawn."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .. import environment
from .._atomic import atomic_write
from ..errors import CacheUnavailableWarning

CACHE_VERSION = 2  # 2: entries named by content digest instead of path, size and mtime
COUNT_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32))


class BadCacheEntryWarning(UserWarning):
    """A frame cache entry that is not what spikequant writes; it is rebuilt."""


def smallest_count_dtype(frames: np.ndarray) -> np.dtype:
    peak = int(frames.max()) if frames.size else 0
    if peak < 2**8:
        return np.dtype(np.uint8)
    if peak < 2**16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


class FrameCache:
    """Frames of one configuration under root/<dataset>/<T..-split-digest>/. `origin` says
    which setting chose root, for the warning when it cannot be written."""

    def __init__(
        self, root: str | os.PathLike, config: dict, shape: tuple[int, ...] | None = None,
        origin: str = "",
    ):
        self.shape = tuple(shape) if shape is not None else None
        config = {"cache_version": CACHE_VERSION, **config}
        text = json.dumps(config, sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        name = f"T{config.get('time_steps')}-{config.get('split_by')}-{digest}"
        self.config, self.origin, self.writable = config, origin, True
        self.dir = Path(root) / str(config.get("dataset", "data")) / name
        described = self.dir / "config.json"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not described.exists():
                atomic_write(described, lambda f: f.write(text.encode() + b"\n"))
        except OSError as err:
            self.cannot_write(err)

    @staticmethod
    def key(*parts) -> str:
        return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def load(self, key: str, source: str = "") -> np.ndarray | None:
        """The cached frames, or None on a miss or a bad entry (reported, to be rewritten)."""
        path = self.path(key)
        try:
            frames = np.load(path, allow_pickle=False)
        except (FileNotFoundError, NotADirectoryError):  # a miss, or a cache never made
            return None
        except (ValueError, OSError, EOFError) as err:
            return self._bad_entry(path, source, f"cannot be read ({err})")
        problem = self.problem(frames)
        if problem:
            return self._bad_entry(path, source, problem)
        return frames

    def problem(self, frames: np.ndarray) -> str | None:
        """Why `frames` is not a valid entry of this cache, or None."""
        if frames.dtype not in COUNT_DTYPES:
            return f"holds {frames.dtype} values, not unsigned integer event counts"
        if self.shape is not None and frames.shape != self.shape:
            return f"has shape {list(frames.shape)}, expected {list(self.shape)}"
        return None  # unsigned integers are finite and non-negative

    @staticmethod
    def _bad_entry(path: Path, source: str, problem: str) -> None:
        of = f" (frames of {source})" if source else ""
        warnings.warn(
            f"frame cache entry {path}{of} {problem}; rebuilding it from the recording",
            BadCacheEntryWarning,
            stacklevel=3,
        )
        return None

    def cannot_write(self, err: OSError) -> None:
        """Stop writing to this cache, with one warning saying why and how to move it."""
        if not self.writable:
            return
        self.writable = False
        moved = f" ({self.origin})" if self.origin else ""
        warnings.warn(
            f"the frame cache {self.dir}{moved} cannot be written ({err.strerror or err}): "
            "frames are computed from the recordings each time, slower; set "
            "SPIKEQUANT_FRAME_CACHE to a folder you can write",
            CacheUnavailableWarning,
            stacklevel=3,
        )

    def save(self, key: str, frames: np.ndarray) -> None:
        """Keep the frames of `key`; a write that fails turns the cache's writes off."""
        if not self.writable:
            return
        counts = frames.astype(smallest_count_dtype(frames), copy=False)
        try:
            atomic_write(self.path(key), lambda f: np.save(f, counts))
        except OSError as err:
            self.cannot_write(err)

    def mark_bad(self, key: str, reason: str) -> None:
        if not self.writable:
            return
        try:
            atomic_write(self.dir / f"{key}.bad", lambda f: f.write(reason.encode()))
        except OSError as err:
            self.cannot_write(err)

    def listing(self) -> set[str]:
        """Names of the files in this configuration's folder (one directory read)."""
        try:
            return set(os.listdir(self.dir))
        except OSError:  # missing, or a cache that could not be made
            return set()

    def bad_reason(self, key: str) -> str | None:
        """Why an earlier run found this recording bad, or None if none did."""
        try:
            return (self.dir / f"{key}.bad").read_text(errors="replace").strip() or "bad"
        except OSError:
            return None


def writable_cache_root(
    data_dir: Path, requested: str | os.PathLike | None
) -> tuple[Path, str]:
    """(frame cache root, the setting that chose it): `requested` (get_dataset's cache_dir),
    else $SPIKEQUANT_FRAME_CACHE, else data_dir/frames_cache, else (read-only data) a folder
    under environment.cache_home()."""
    if requested:
        return Path(requested).expanduser(), "cache_dir="
    chosen = environment.frame_cache_dir()
    if chosen is not None:
        return chosen, "$SPIKEQUANT_FRAME_CACHE"
    preferred = data_dir / "frames_cache"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=preferred, delete=True)
        probe.close()
        return preferred, "under the data folder"
    except OSError:
        tag = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
        origin = f"the data folder is read-only; {environment.cache_home_origin()}"
        return environment.cache_home() / "frames" / tag, origin
