"""Datasets of (frames [T, 2, H, W] float32, label int) for training, and `get_dataset`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .augment import FrameAugment, make_augment
from .cache import FrameCache, smallest_count_dtype, writable_cache_root
from .descriptor import DatasetInfo
from .events import CorruptEventFile, UnreadableRecording, check_in_sensor
from .frames import SPLIT_MODES, denoise_events, events_to_frames, resize_events
from .registry import dataset_info, resolve_data_dir
from .screening import screen, warn_skipped
from .sources import Recording, find_recordings

FRAME_CODE_VERSION = 1  # bump when a change to the frame pipeline changes cached frames
OPTIONS = ("resize", "denoise", "split_seed", "test_fraction", "cache_dir", "seed")


class PartialDatasetWarning(UserWarning):
    """Fewer files were found than the full dataset has; training goes on with those."""


@dataclass(frozen=True)
class FrameSpec:
    """Everything that decides the frames of a recording."""

    time_steps: int
    split_by: str
    out_hw: tuple[int, int]
    denoise_us: int | None

    def as_dict(self) -> dict:
        return {
            "time_steps": self.time_steps,
            "split_by": self.split_by,
            "out_hw": list(self.out_hw),
            "denoise_us": self.denoise_us,
            "code_version": FRAME_CODE_VERSION,
        }


def recording_frames(
    events: np.ndarray, info: DatasetInfo, spec: FrameSpec, path: str = "<events>"
) -> np.ndarray:
    """Events of one recording -> [T, 2, H, W] integer counts (validated, denoised, resized)."""
    width, height = info.sensor_size[:2]
    if info.variable_size and len(events):
        # Recordings of varying extent are shifted to the origin first, as tonic does.
        events = events.copy()
        events["x"] -= events["x"].min()
        events["y"] -= events["y"].min()
    check_in_sensor(events, width, height, path)
    if spec.denoise_us:
        events = denoise_events(events, width, height, spec.denoise_us)
    in_hw = (height, width)
    if info.variable_size and len(events):
        in_hw = (int(events["y"].max()) + 1, int(events["x"].max()) + 1)
    events = resize_events(events, in_hw, spec.out_hw)
    frames = events_to_frames(events, *spec.out_hw, spec.time_steps, spec.split_by, np.int64)
    return frames.astype(smallest_count_dtype(frames))


class EventFrameDataset(Dataset):
    """A benchmark split: recordings on disk -> frames through the on-disk cache.

    Every file is checked when the dataset is built (see screening.py); with skip_bad every
    recording is also decoded then, and the bad ones are left out of the index and listed in
    .skipped and split_info. A recording that fails when drawn raises an error naming it.

    Args:
        info: the dataset's descriptor: its `read` decodes the files, its classes become
            .classes, its name and `split` name the split in messages.
        split: "train" or "test", the split these recordings are (kept as .split).
        recordings: the split's recordings (files or time segments of them, with labels), as
            sources.find_recordings lists them.
        spec: what decides the frames: time steps, split mode, output (H, W), denoise window.
        split_info: what the run's metrics record about the split; .split_info is a copy with
            the skipped files' counts and list added.
        cache: the on-disk frame cache to read frames from and write them to; None (the
            default): frames are computed from the recording each time it is drawn.
        augment: applied to each sample's float32 frames when it is drawn; None (the default):
            none.
        skip_bad: decode every recording now and leave out the bad ones; False (the default):
            a bad file found by the check raises its error (CorruptEventFile,
            EventsOutsideSensor, UnreadableRecording), one found later raises when drawn.
        progress: show a progress bar while the files are checked (on splits of 2,000
            recordings or more, or 200 or more with `skip_bad`).

    Raises:
        CorruptEventFile: with `skip_bad`, every recording of the split is bad.
    """

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        recordings: list[Recording],
        spec: FrameSpec,
        split_info: dict,
        cache: FrameCache | None = None,
        augment: FrameAugment | None = None,
        skip_bad: bool = False,
        progress: bool = False,
    ):
        self.info, self.split, self.spec = info, split, spec
        self.cache, self.augment, self.skip_bad = cache, augment, skip_bad
        desc = f"{info.name} {split}: " + ("decoding every file" if skip_bad else "checking files")
        screening = screen(recordings, self.frames_of, cache, skip_bad, desc, progress)
        if not screening.kept and recordings:
            first = next(iter(screening.skipped.items()))
            raise CorruptEventFile(first[0], f"every recording of this split is bad ({first[1]})")
        self.recordings = screening.kept
        self.skipped: list[str] = list(screening.skipped)
        self.split_info = dict(split_info, **screening.summary())
        self.classes = list(info.classes)
        warn_skipped(info.name, split, screening)

    @property
    def targets(self) -> list[int]:
        return [r.label for r in self.recordings]

    def __len__(self) -> int:
        return len(self.recordings)

    def frames_of(self, rec: Recording) -> np.ndarray:
        """Integer frames of one recording, from the cache when it has them."""
        key = FrameCache.key(*rec.cache_key_parts()) if self.cache is not None else None
        if key is not None:
            cached = self.cache.load(key, rec.path)
            if cached is not None:
                return cached
        try:
            events = self.info.read(rec.path, rec.fmt)
        except OSError as err:
            raise UnreadableRecording(rec.path, err.strerror or str(err)) from None
        if rec.start is not None:
            events = events[(events["t"] >= rec.start) & (events["t"] < rec.end)]
        if not len(events):
            where = "" if rec.start is None else f" in its segment [{rec.start}, {rec.end}) us"
            raise CorruptEventFile(rec.path, f"no events{where}; it would train as a blank sample")
        frames = recording_frames(events, self.info, self.spec, rec.path)
        if key is not None:
            self.cache.save(key, frames)
        return frames

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rec = self.recordings[index]
        tensor = torch.from_numpy(self.frames_of(rec).astype(np.float32))
        if self.augment is not None:
            tensor = self.augment(tensor)
        return tensor, rec.label


def _frame_spec(info: DatasetInfo, time_steps, split_by, resize, denoise) -> FrameSpec:
    if split_by not in SPLIT_MODES:
        raise ValueError(f"split_by must be one of {SPLIT_MODES}, not {split_by!r}")
    steps = info.time_steps(time_steps)
    if steps < 1:
        raise ValueError(f"time_steps must be >= 1, got {time_steps}")
    if resize == "default":
        resize = info.resize
    if resize is None:
        resize = info.sensor_size[1::-1]  # (W, H, P) -> (H, W)
    if isinstance(resize, int):
        resize = (resize, resize)
    out_hw = (int(resize[0]), int(resize[1]))
    return FrameSpec(steps, split_by, out_hw, int(denoise) if denoise else None)


def get_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    time_steps: int | None = None,
    download: bool = False,
    skip_bad: bool = False,
    augment: bool | str | Mapping = False,
    cache: bool = True,
    split_by: str = "number",
    progress: bool = True,
    **options,
) -> Dataset:
    """A dataset of (frames float32 [T, 2, H, W], label) for `split` ("train" or "test").

    The result has .split_info (a JSON-able dict for the run's metrics), .targets, .classes.

    Options (the keyword arguments `**options`): resize=(H, W) | int | None ("default": the
    dataset's own, N-Caltech101's 48x48; None: the sensor size), denoise=filter microseconds
    (unset or 0: no denoising), split_seed / test_fraction (CIFAR10-DVS, N-Caltech101: seeded
    stratified split, default 0 / 0.1), cache_dir=folder (where frames are cached, instead of
    $SPIKEQUANT_FRAME_CACHE or <data_dir>/frames_cache), seed (ndigits: the seed of its
    simulated events and split, default 0).

    Args:
        name: the dataset's registered name (case, '-' and '_' are ignored), e.g. "nmnist".
        split: "train" or "test".
        data_dir: the data folder that holds each dataset's own folder (e.g. NMNIST/); "~" is
            expanded. None (the default): default_data_dir(), $SPIKEQUANT_DATA if set.
        time_steps: frames per sample (None: the dataset's default).
        download: fetch a missing benchmark through tonic when no recording of `split` is
            found. False (the default): a missing dataset raises FileNotFoundError saying how
            to get it. ndigits is generated on first use either way.
        skip_bad: decode every recording once now and leave out (and count, in
            dataset.skipped and split_info) those that cannot be decoded, instead of raising.
        augment: True for the dataset's usual random crop / flip / roll (its descriptor's
            default_augment); a mapping or "crop_pad=4,flip,roll=5" picks them; False (the
            default): none. Used on the train split only.
        cache: keep frames on disk so later epochs read frames only (ndigits always keeps one
            frames file a setting and serves a split from memory).
        split_by: "number" (equal event counts, the default) or "time" (equal durations).
        progress: show progress bars for long steps (checking or decoding the files of a big
            split, generating ndigits).

    Returns:
        An EventFrameDataset (the benchmarks) or an NDigitsDataset (ndigits).

    Raises:
        UnknownComponent: no dataset is registered as `name`.
        ValueError: a bad `split`, `split_by`, `time_steps`, `augment` or an unknown option.
        DataError: `data_dir` (or the nearest existing folder above it) is a file.
        FileNotFoundError: no recording of `split` is found (after downloading, with
            `download`).
    """
    info = dataset_info(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)}; valid: {', '.join(OPTIONS)}")
    root = usable_data_dir(resolve_data_dir(data_dir))
    spec = _frame_spec(
        info, time_steps, split_by, options.get("resize", "default"), options.get("denoise")
    )
    aug = make_augment(info.name, augment) if split == "train" else None
    return info.open(
        root, split, spec, aug, options,
        download=download, skip_bad=skip_bad, cache=cache, progress=progress,
    )


def open_recordings(
    info: DatasetInfo,
    root: Path,
    split: str,
    spec: FrameSpec,
    aug: FrameAugment | None,
    options: Mapping,
    *,
    download: bool,
    skip_bad: bool,
    cache: bool,
    progress: bool,
) -> EventFrameDataset:
    """A split of a dataset read from files: the recordings its descriptor finds under root
    (fetched first when missing and `download`), frames cached under root (or cache_dir)."""
    seed = int(options.get("split_seed", 0))
    fraction = float(options.get("test_fraction", info.test_fraction))
    recs, split_info, searched = find_recordings(info, root, split, seed, fraction)
    if not recs and download:
        from .download import download_with_tonic

        download_with_tonic(info, root, split)
        recs, split_info, searched = find_recordings(info, root, split, seed, fraction)
    if not recs:
        where = ", ".join(str(p) for p in searched)
        raise FileNotFoundError(
            f"{info.title}: no {split} recordings found (searched {where}). {info.how_to_get}"
        )
    _warn_if_partial(info, split_info)
    frame_cache = None
    if cache:
        cache_root, origin = writable_cache_root(root, options.get("cache_dir"))
        frame_cache = FrameCache(
            cache_root,
            {"dataset": info.name, **spec.as_dict(), "sensor": list(info.sensor_size)},
            shape=(spec.time_steps, 2, *spec.out_hw),
            origin=origin,
        )
    split_info["frames"] = spec.as_dict()
    return EventFrameDataset(
        info, split, recs, spec, split_info, frame_cache, aug, skip_bad, progress
    )


def usable_data_dir(root: Path) -> Path:
    """`root`, or a DataError when it (or the nearest existing folder above it) is a file."""
    existing = root
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == root else f"lies under {existing}, which is a file"
        raise DataError(
            f"data folder {root} {what}, not a folder: pass --data-dir (data_dir=) a folder; "
            "one that does not exist yet is created when something is written to it"
        )
    return root


def skipped_summary(**splits: Dataset) -> dict:
    """{"skipped_files", "skipped_recordings", "skipped": [{"split", "file", "reason"}]} over
    the named splits' datasets (what skip_bad left out), for a run's metrics."""
    infos = {name: getattr(data, "split_info", None) or {} for name, data in splits.items()}
    listed = [
        {"split": name, **entry}
        for name, info in infos.items()
        for entry in info.get("skipped", [])
    ]
    samples = sum(info.get("skipped_recordings", 0) for info in infos.values())
    return {"skipped_files": len(listed), "skipped_recordings": samples, "skipped": listed}


def _warn_if_partial(info: DatasetInfo, split_info: dict) -> None:
    expected, found = split_info["files_expected"], split_info["files_found"]
    if split_info.get("layout") != "aedat31" and found < expected:
        warnings.warn(
            f"{info.name}: using a partial copy, {found} of {expected} recordings found under "
            f"{split_info['root']}",
            PartialDatasetWarning,
            stacklevel=3,
        )
