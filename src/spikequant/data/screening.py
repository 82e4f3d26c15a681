"""Which recordings of a split are served: every file is checked once when the dataset is
built, and with skip_bad every recording is also decoded once then, so a bad one is dropped
from the index before any sample is drawn (indices stay stable, no sample is served twice)
and counted."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from tqdm.auto import tqdm

from .cache import FrameCache
from .events import CorruptEventFile, EventsOutsideSensor, UnreadableRecording
from .fingerprint import DigestMemo
from .formats import quick_check
from .sources import Recording

BAD_INPUT = (CorruptEventFile, EventsOutsideSensor, UnreadableRecording)
SHOWN_IN_WARNING = 3


class SkippedRecordingsWarning(UserWarning):
    """skip_bad dropped recordings that cannot be decoded; they are listed in split_info."""


@dataclass
class Screening:
    kept: list[Recording]
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason, in order found
    skipped_recordings: int = 0
    relpaths: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        """What split_info (and a run's metrics.json) records about the skipped files."""
        return {
            "skipped_files": len(self.skipped),
            "skipped_recordings": self.skipped_recordings,
            "skipped": [
                {"file": self.relpaths[p], "reason": r} for p, r in self.skipped.items()
            ],
        }


def screen(
    recordings: list[Recording],
    decode: Callable[[Recording], np.ndarray],
    cache: FrameCache | None,
    skip_bad: bool,
    desc: str,
    progress: bool,
) -> Screening:
    """Key each recording by its file's content digest (when frames are cached). One whose
    frames are cached decoded before, content and all, and is kept; any other file gets the
    structural check, and with skip_bad its recordings are decoded now (through `decode`, which
    caches the frames). Without skip_bad a bad file raises its error."""
    result = Screening([], relpaths={r.path: r.relpath for r in recordings})
    check = _Checks(cache, decode, skip_bad)
    shown = progress and (len(recordings) >= 2000 or skip_bad and len(recordings) >= 200)
    try:
        for rec in tqdm(recordings, desc=desc, disable=not shown, leave=False):
            rec, problem = check.recording(rec)
            if problem is None:
                result.kept.append(rec)
            else:
                result.skipped.setdefault(rec.path, problem)
                result.skipped_recordings += 1
    finally:
        if check.memo is not None:
            check.memo.save()  # what was hashed before an error need not be hashed again
    return result


class _Checks:
    """The checks of one screening, each file's done once."""

    def __init__(self, cache: FrameCache | None, decode, skip_bad: bool):
        self.cache, self.decode, self.skip_bad = cache, decode, skip_bad
        self.memo = DigestMemo(cache.dir.parent / "content-digests.json") if cache else None
        self.present = cache.listing() if cache is not None else set()
        self.digests: dict[str, str | None] = {}
        self.structure: dict[str, str | None] = {}

    def recording(self, rec: Recording) -> tuple[Recording, str | None]:
        """(rec with its digest, None) if it is served, else (rec, why not)."""
        if self.cache is None:
            return rec, self._structure(rec) or self._decoded(rec, None)
        if rec.path not in self.digests:
            self.digests[rec.path] = self._guard(rec, lambda: self.memo.digest(rec.path))
        digest = self.digests[rec.path]
        if digest is None:
            return rec, self.structure[rec.path]
        rec = replace(rec, digest=digest)
        key = FrameCache.key(*rec.cache_key_parts())
        if f"{key}.bad" in self.present:
            marked = self.cache.bad_reason(key) or "bad"
            if not self.skip_bad:
                raise CorruptEventFile(rec.path, f"an earlier run found it bad: {marked}")
            return rec, marked
        if f"{key}.npy" in self.present:
            return rec, None
        return rec, self._structure(rec) or self._decoded(rec, key)

    def _structure(self, rec: Recording) -> str | None:
        if rec.path not in self.structure:
            self.structure[rec.path] = None
            self._guard(rec, lambda: quick_check(rec.path, rec.fmt))
        return self.structure[rec.path]

    def _decoded(self, rec: Recording, key: str | None) -> str | None:
        if not self.skip_bad:
            return None  # decoded when first drawn; an error then names the file
        try:
            self.decode(rec)
        except BAD_INPUT as err:
            if key is not None:  # later runs skip it without decoding it again
                self.cache.mark_bad(key, err.reason)
            return err.reason
        return None

    def _guard(self, rec: Recording, action):
        """action(), or None after noting why the file is bad (raised unless skip_bad)."""
        try:
            try:
                return action()
            except OSError as err:
                raise UnreadableRecording(rec.path, err.strerror or str(err)) from None
        except BAD_INPUT as err:
            if not self.skip_bad:
                raise
            self.structure[rec.path] = err.reason
            return None


def warn_skipped(name: str, split: str, screening: Screening) -> None:
    if not screening.skipped:
        return
    items = list(screening.skipped.items())
    shown = "; ".join(f"{screening.relpaths[p]} ({r})" for p, r in items[:SHOWN_IN_WARNING])
    more = f"; and {len(items) - SHOWN_IN_WARNING} more" if len(items) > SHOWN_IN_WARNING else ""
    warnings.warn(
        f"{name} {split}: skipped {len(items)} bad recording file(s) "
        f"({screening.skipped_recordings} sample(s)) with --skip-bad: {shown}{more}. "
        "All are listed under split.skipped in the run's metrics.json.",
        SkippedRecordingsWarning,
        stacklevel=4,
    )
