"""On-disk frame cache: one .npy of integer counts per recording, in a folder per frame
configuration (everything that changes the frames: dataset, T, split mode, resize, denoise,
sensor, code version), each file named by a digest of the recording's content (see
fingerprint.py) and its time segment. An entry is checked when read (a readable .npy of
unsigned integer counts of the configuration's [T, 2, H, W] shape); one that is not is
reported by name and rebuilt from its recording.

Files are written to a temporary name in the same folder and renamed into place, so readers
(several DataLoader workers, several processes) see either no file or a whole one; two workers
computing the same recording both write identical frames and the last rename wins."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._atomic import atomic_write

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
    """Frames of one configuration under root/<dataset>/<T..-split-digest>/."""

    def __init__(
        self, root: str | os.PathLike, config: dict, shape: tuple[int, ...] | None = None
    ):
        self.shape = tuple(shape) if shape is not None else None
        config = {"cache_version": CACHE_VERSION, **config}
        text = json.dumps(config, sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        name = f"T{config.get('time_steps')}-{config.get('split_by')}-{digest}"
        self.config = config
        self.dir = Path(root) / str(config.get("dataset", "data")) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        described = self.dir / "config.json"
        if not described.exists():
            atomic_write(described, lambda f: f.write(text.encode() + b"\n"))

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
        except FileNotFoundError:
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

    def save(self, key: str, frames: np.ndarray) -> None:
        counts = frames.astype(smallest_count_dtype(frames), copy=False)
        atomic_write(self.path(key), lambda f: np.save(f, counts))

    def mark_bad(self, key: str, reason: str) -> None:
        atomic_write(self.dir / f"{key}.bad", lambda f: f.write(reason.encode()))

    def listing(self) -> set[str]:
        """Names of the files in this configuration's folder (one directory read)."""
        try:
            return set(os.listdir(self.dir))
        except FileNotFoundError:
            return set()

    def bad_reason(self, key: str) -> str | None:
        """Why an earlier run found this recording bad, or None if none did."""
        try:
            return (self.dir / f"{key}.bad").read_text(errors="replace").strip() or "bad"
        except FileNotFoundError:
            return None


def writable_cache_root(data_dir: Path, requested: str | os.PathLike | None) -> Path:
    """`requested`, else data_dir/frames_cache, else (read-only data) a per-user folder."""
    if requested:
        return Path(requested).expanduser()
    preferred = data_dir / "frames_cache"
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=preferred, delete=True)
        probe.close()
        return preferred
    except OSError:
        tag = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:10]
        cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        return Path(cache_home).expanduser() / "spikequant" / "frames" / tag
