"""What a recording's frames are keyed by: a digest of the file's whole content.

Hashing every event file at every start would read the whole dataset each run, which is what
the frame cache exists to avoid, so the digest of a file is remembered with the file's stat
signature (device, inode, size, mtime and ctime, in nanoseconds) and computed again only when
that changes. The ctime cannot be set from user space: rewriting a file and putting its old
mtime back (`touch -d`, `os.utime`, `rsync`/`cp -p`) still changes it. A file whose ctime is
within `SETTLE_SECONDS` of now is never remembered ("racy", as git calls it: a second change
inside the same clock tick would keep the signature), only hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .._atomic import atomic_write_text

SETTLE_SECONDS = 2.0
CHUNK = 1 << 20
MEMO_VERSION = 1


def stat_signature(path: str | os.PathLike) -> list[int] | None:
    """[dev, inode, size, mtime_ns, ctime_ns], or None while the file may still be changing."""
    st = os.stat(path)
    if time.time_ns() - st.st_ctime_ns < SETTLE_SECONDS * 1e9:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def file_digest(path: str | os.PathLike) -> str:
    """BLAKE2b (128-bit) of the file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class DigestMemo:
    """{absolute path: (stat signature, digest)} kept in one JSON file, written atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, list] = {}
        self.changed = False
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") == MEMO_VERSION and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except (OSError, ValueError, AttributeError):
            pass  # missing or damaged: every file is hashed again

    def digest(self, path: str | os.PathLike) -> str:
        key = os.path.abspath(path)
        before = stat_signature(path)
        known = self.entries.get(key)
        if before is not None and isinstance(known, list) and known[:1] == [before]:
            return known[1]
        digest = file_digest(path)
        if before is not None and stat_signature(path) == before:
            self.entries[key] = [before, digest]
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        text = json.dumps({"version": MEMO_VERSION, "files": self.entries}, separators=(",", ":"))
        try:
            atomic_write_text(self.path, text)
        except OSError:
            return  # a cache that cannot be written is only slower next time
        self.changed = False
