"""Whether each dataset is on this machine: what `spikequant datasets` prints."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import ndigits
from .registry import DatasetInfo, dataset_info, resolve_data_dir
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
    info: DatasetInfo
    found: bool
    where: str
    counts: dict[str, int] = field(default_factory=dict)
    layout: str | None = None
    note: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        return self.found and self.total >= sum(self.info.expected_files.values())


def dataset_status(name: str, data_dir: str | os.PathLike | None = None) -> DatasetStatus:
    """Look for `name` under data_dir (default: default_data_dir())."""
    info = dataset_info(name)
    root = resolve_data_dir(data_dir)
    if info.name == "ndigits":
        folder = root / info.tonic_folder
        ready = ndigits.events_path(folder, 0).exists()
        note = "generated" if ready else "generated on first use (a few seconds, no download)"
        counts = {"all": 1797} if ready else {}
        return DatasetStatus(info, True, str(folder), counts, "simulated events", note)
    try:
        counts, layout, folder = count_recordings(info, root)
    except (OSError, ValueError) as err:
        return DatasetStatus(info, False, str(root / info.tonic_folder), note=str(err))
    found = sum(counts.values()) > 0
    return DatasetStatus(
        info,
        found,
        str(folder),
        counts if found else {},
        LAYOUT_NAMES.get(layout, layout),
        "" if found else info.how_to_get,
    )
