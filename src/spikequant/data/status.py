"""Whether each dataset is on this machine: what `spikequant datasets` prints."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .descriptor import DatasetInfo
from .formats import quick_check
from .registry import dataset_info, resolve_data_dir
from .sources import count_recordings

LAYOUT_NAMES = {
    "atis_bin": "ATIS .bin",
    "gesture_npy": "tonic .npy",
    "aedat31": "original AEDAT 3.1 + labels CSV",
    "aedat4": "tonic .aedat4",
    "aedat2": "original AEDAT 2.0",
}


@dataclass
class DatasetStatus:
    """Whether one dataset is on this machine, and where: one entry of `spikequant datasets`.

    Args:
        info: the dataset's descriptor.
        found: whether any of its recordings are there (ndigits: always, being generated on
            first use).
        where: the folder looked in, the dataset's folder under the data directory.
        counts: the recordings found, per split its descriptor's `find` is asked for
            ({"train": n, "test": n} or {"all": n}); empty (the default) when none are.
        layout: the file layout found, in words (e.g. "ATIS .bin"); None (the default) when
            nothing was found.
        note: a line for the listing: how to get the dataset when it is missing, why its
            folder could not be searched, or (ndigits) whether it is generated yet.
        checked: whether every file's structure was checked (False, the default: only
            counted).
        bad_files: (file, reason) of each file that failed the check; empty by default.
    """

    info: DatasetInfo
    found: bool
    where: str
    counts: dict[str, int] = field(default_factory=dict)
    layout: str | None = None
    note: str = ""
    checked: bool = False  # whether every file's structure was checked
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        """Every expected recording is there and, when checked, no file is bad."""
        enough = self.total >= sum(self.info.expected_files.values())
        return self.found and enough and not self.bad_files


def dataset_status(
    name: str, data_dir: str | os.PathLike | None = None, check: bool = True
) -> DatasetStatus:
    """Look for `name` under data_dir (default: default_data_dir()).

    Args:
        name: the dataset's registered name (case, '-' and '_' are ignored).
        data_dir: the data folder that holds each dataset's own folder; "~" is expanded.
            None (the default): default_data_dir().
        check: also test every file found the way training does before it starts (sizes and
            headers, and that an ATIS file holds an event), listing the bad ones in
            .bad_files; without it the files are only counted.

    Returns:
        What was found, as `spikequant datasets` prints it.

    Raises:
        UnknownComponent: no dataset is registered as `name`.
    """
    info = dataset_info(name)
    return info.status(resolve_data_dir(data_dir), check)


def files_status(info: DatasetInfo, root: Path, check: bool) -> DatasetStatus:
    """The status of a dataset read from files: its recordings under root counted (and, with
    `check`, every file checked)."""
    try:
        counts, layout, folder, files = count_recordings(info, root)
    except (OSError, ValueError) as err:
        return DatasetStatus(info, False, str(root / info.folder), note=str(err))
    found = sum(counts.values()) > 0
    return DatasetStatus(
        info,
        found,
        str(folder),
        counts if found else {},
        LAYOUT_NAMES.get(layout, layout),
        "" if found else info.how_to_get,
        checked=check and found,
        bad_files=_bad_files(files) if check else [],
    )


def _bad_files(files) -> list[tuple[str, str]]:
    bad = []
    for path, fmt in files:
        try:
            quick_check(path, fmt)
        except DataError as err:
            bad.append((str(path), getattr(err, "reason", None) or str(err)))
        except OSError as err:
            bad.append((str(path), f"cannot be read ({err.strerror or err})"))
    return bad
