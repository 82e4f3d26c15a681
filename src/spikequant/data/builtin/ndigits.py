"""ndigits: scikit-learn's 1,797 handwritten digits seen by a simulated event camera along
N-MNIST's saccades (spikequant.data.ndigits). Nothing to download: the events are generated
on first use into NDIGITS/ under the data directory, with a seeded stratified 80/20 split, and
each frame setting is converted once into a frames file served from memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ... import environment
from ...errors import CacheUnavailableWarning, DataError
from .. import ndigits
from ..augment import FrameAugment
from ..descriptor import DatasetInfo, register_dataset

if TYPE_CHECKING:
    from ..status import DatasetStatus

DIGIT_CLASSES = tuple(str(d) for d in range(10))


class NDigitsDataset(Dataset):
    """ndigits split held in memory as integer frames.

    Args:
        frames: the split's frames, [N, T, 2, H, W] event counts (an integer array); a sample
            is served as float32 [T, 2, H, W].
        labels: [N] digit labels 0-9, one per sample, in the order of `frames`.
        split_info: what the run's metrics record about the split (kept as .split_info).
        augment: applied to each sample's frames when it is drawn; None (the default): none.
    """

    def __init__(
        self,
        frames: np.ndarray,
        labels: np.ndarray,
        split_info: dict,
        augment: FrameAugment | None = None,
    ):
        self.frames, self.labels = frames, labels.astype(np.int64)
        self.split_info, self.augment = split_info, augment
        self.classes = list(DIGIT_CLASSES)
        self.skipped: list[str] = []

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        tensor = torch.from_numpy(self.frames[index].astype(np.float32))
        if self.augment is not None:
            tensor = self.augment(tensor)
        return tensor, int(self.labels[index])


class NDigits(DatasetInfo):
    def open(
        self, root: Path, split: str, spec, augment: FrameAugment | None,
        options: Mapping[str, Any], *, download: bool, skip_bad: bool, cache: bool,
        progress: bool,
    ) -> NDigitsDataset:
        seed = int(options.get("seed", 0))
        folder = root / self.folder
        try:
            data = ndigits_frames(self, folder, seed, spec, progress)
        except OSError as err:
            raise DataError(
                f"cannot write the generated ndigits data into {folder} ({err.strerror or err}"
                f"{': ' + str(err.filename) if err.filename else ''}; the data folder is "
                f"{environment.data_dir_origin(root)}). ndigits is generated on first use and "
                "kept in the data folder: pass --data-dir a folder you can write to (or set "
                f"SPIKEQUANT_DATA), or generate it once where you can write and copy its "
                f"{folder.name}/ folder here"
            ) from None
        split_info = {
            "dataset": self.name,
            "kind": "stratified",
            "test_fraction": ndigits.TEST_FRACTION,
            "seed": seed,
            "num_train": len(data["train_labels"]),
            "num_test": len(data["test_labels"]),
            "root": str(folder),
            "frames": spec.as_dict(),
        }
        return NDigitsDataset(data[split], data[f"{split}_labels"], split_info, augment)

    def status(self, data_dir: Path, check: bool) -> DatasetStatus:
        from ..status import DatasetStatus

        folder = data_dir / self.folder
        ready = ndigits.events_path(folder, 0).exists()
        note = "generated" if ready else "generated on first use (a few seconds, no download)"
        counts = {"all": sum(self.expected_files.values())} if ready else {}
        return DatasetStatus(self, True, str(folder), counts, "simulated events", note)


def ndigits_frames(info: DatasetInfo, root: Path, seed: int, spec, progress: bool) -> dict:
    """{"train": frames, "test": frames, labels..}: computed once per spec into root."""
    from .. import datasets  # the frame pipeline, which imports the registry

    digest = ndigits.config_digest(
        {"seed": seed, "gen": ndigits.GENERATOR_VERSION, **spec.as_dict()}
    )
    path = root / f"frames-seed{seed}-T{spec.time_steps}-{spec.split_by}-{digest}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            pass  # rebuilt below
    data = ndigits.load_or_generate(root, seed, progress)
    every = range(len(data["labels"]))
    frames = [
        datasets.recording_frames(ev, info, spec)
        for ev in tqdm(
            ndigits.recordings(data, every),
            total=len(every),
            desc="ndigits: events to frames",
            disable=not progress,
        )
    ]
    stacked = np.stack(frames)
    stacked = stacked.astype(datasets.smallest_count_dtype(stacked))
    is_test = data["is_test"]
    result = {
        "train": stacked[~is_test],
        "train_labels": data["labels"][~is_test],
        "test": stacked[is_test],
        "test_labels": data["labels"][is_test],
    }
    try:
        ndigits.atomic_save_npz(path, **result)
    except OSError as err:  # the frames are in memory: only the next start is slower
        warnings.warn(
            f"the ndigits frames file {path} cannot be written ({err.strerror or err}): the "
            "frames are computed again at the next start; pass --data-dir a folder you can "
            "write to",
            CacheUnavailableWarning,
            stacklevel=2,
        )
    return result


NDIGITS = register_dataset(
    NDigits(
        name="ndigits",
        title="N-Digits (offline): scikit-learn's 1,797 handwritten digits seen by a simulated "
        "event camera along N-MNIST's saccades",
        classes=DIGIT_CLASSES,
        sensor_size=(34, 34, 2),
        default_time_steps=8,
        folder="NDIGITS",
        how_to_get="Nothing to get: generated on first use in a few seconds (no download).",
        split="seeded stratified 80/20 train/test",
        expected_files={"all": 1797},
        test_fraction=ndigits.TEST_FRACTION,
        default_augment={"crop_pad": 2},
    )
)
