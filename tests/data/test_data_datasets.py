"""The four benchmarks through get_dataset, on small copies laid out in tonic's folders with
files written byte by byte in their real formats; splits, bad input, cache and augmentation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from _writers import (
    aedat31_packet,
    make_cifar_aedat4,
    make_gesture_npy,
    make_ncaltech,
    make_nmnist,
    polarity_word,
    random_events,
    write_aedat2,
    write_aedat31,
    write_atis_bin,
    write_gesture_labels,
)
from spikequant.data import (
    DATASETS,
    CorruptEventFile,
    EventsOutsideSensor,
    PartialDatasetWarning,
    dataset_info,
    default_data_dir,
    get_dataset,
)
from spikequant.data.registry import NCALTECH101_CLASSES, DatasetInfo

QUIET = {"progress": False}

pytestmark = pytest.mark.usefixtures("quiet_partial_datasets")


# ---------------------------------------------------------------- registry


def test_registry_contract():
    shapes = {
        "ndigits": ((2, 34, 34), 8),
        "nmnist": ((2, 34, 34), 10),
        "dvsgesture": ((2, 128, 128), 20),
        "cifar10dvs": ((2, 128, 128), 20),
        "ncaltech101": ((2, 48, 48), 10),
    }
    assert set(DATASETS) == set(shapes)
    for name, (shape, steps) in shapes.items():
        info = dataset_info(name)
        assert info.frame_shape == shape and info.default_time_steps == steps
        assert len(info.sensor_size) == 3 and info.how_to_get and info.folder
    assert dataset_info("ncaltech101").num_classes == 101 == len(set(NCALTECH101_CLASSES))
    assert dataset_info("dvsgesture").num_classes == 11
    assert dataset_info("N-MNIST").name == "nmnist"
    with pytest.raises(ValueError, match="ndigits, nmnist, dvsgesture"):
        dataset_info("mnist-dvs")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEQUANT_DATA", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("SPIKEQUANT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "spikequant" / "data"


# ---------------------------------------------------------------- N-MNIST


def test_nmnist_official_split_and_frames(tmp_path):
    counts = make_nmnist(tmp_path)
    train = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=4, **QUIET)
    test = get_dataset("nmnist", "test", data_dir=tmp_path, **QUIET)
    assert len(train) == 20 and len(test) == 20
    frames, label = train[5]
    assert frames.shape == (4, 2, 34, 34) and frames.dtype == torch.float32
    assert label == 2 and isinstance(label, int)
    assert frames.sum().item() == counts[train.recordings[5].path]
    assert test[0][0].shape == (10, 2, 34, 34)  # the dataset's default T
    info = train.split_info
    assert info["kind"] == "official" and info["num_train"] == 20 and info["num_test"] == 20
    assert info["files_found"] == 40 and info["files_expected"] == 70000
    json.dumps(info)
    batch, labels = next(iter(DataLoader(train, batch_size=6)))
    assert batch.shape == (6, 4, 2, 34, 34) and labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_partial_copy_is_used_and_reported(tmp_path):
    make_nmnist(tmp_path, per_class=1)
    with pytest.warns(PartialDatasetWarning, match="20 of 70000"):
        data = get_dataset("nmnist", "train", data_dir=tmp_path, **QUIET)
    assert len(data) == 10


def test_missing_dataset_names_the_path_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        get_dataset("nmnist", "train", data_dir=tmp_path, **QUIET)
    message = str(err.value)
    assert str(tmp_path / "NMNIST" / "Train") in message
    assert "garrickorchard.com" in message and "--download" in message


def test_download_goes_through_tonic_only_when_asked(tmp_path, monkeypatch):
    calls = []

    def fake_tonic_download(info, data_dir, split):
        calls.append((info.name, split))
        make_nmnist(data_dir, per_class=1)

    import spikequant.data.download as download

    monkeypatch.setattr(download, "download_with_tonic", fake_tonic_download)
    with pytest.raises(FileNotFoundError):
        get_dataset("nmnist", "test", data_dir=tmp_path, **QUIET)
    assert calls == []
    data = get_dataset("nmnist", "test", data_dir=tmp_path, download=True, **QUIET)
    assert calls == [("nmnist", "test")] and len(data) == 10


def test_download_calls_the_tonic_class(tmp_path, monkeypatch):
    import tonic.datasets

    from spikequant.data.download import download_with_tonic

    seen = {}

    class FakeNMNIST:
        def __init__(self, save_to, train=True):
            seen.update(save_to=save_to, train=train)

    monkeypatch.setattr(tonic.datasets, "NMNIST", FakeNMNIST)
    download_with_tonic(dataset_info("nmnist"), tmp_path, "test")
    assert seen == {"save_to": str(tmp_path), "train": False}


# ---------------------------------------------------------------- DVS128 Gesture


def test_dvsgesture_tonic_npy_layout(tmp_path):
    make_gesture_npy(tmp_path)
    train = get_dataset("dvsgesture", "train", data_dir=tmp_path, time_steps=5, **QUIET)
    test = get_dataset("dvsgesture", "test", data_dir=tmp_path, time_steps=5, **QUIET)
    assert len(train) == 22 and len(test) == 11
    assert sorted(set(train.targets)) == list(range(11))
    index = [Path(r.path).name for r in test.recordings].index("3.npy")
    frames, label = test[index]
    assert frames.shape == (5, 2, 128, 128) and frames.sum() == 60 and label == 3
    assert train.split_info["layout"] == "gesture_npy"


def test_dvsgesture_original_aedat31_with_label_csv(tmp_path):
    folder = tmp_path / "DVSGesture" / "DvsGesture"
    for user in (1, 2):
        x, y, t, p = random_events(300, 128, 128, seed=user, t_max=3_000_000)
        words = [polarity_word(*e) for e in zip(x, y, p)]
        write_aedat31(
            folder / f"user{user:02d}_fluorescent.aedat",
            [aedat31_packet(1, words[:150], t[:150]), aedat31_packet(1, words[150:], t[150:])],
        )
        write_gesture_labels(
            folder / f"user{user:02d}_fluorescent_labels.csv",
            [(1, 0, 1_000_000), (5, 1_000_000, 2_000_000), (11, 2_500_000, 3_000_000)],
        )
    (folder / "trials_to_train.txt").write_text("user01_fluorescent.aedat\n")
    (folder / "trials_to_test.txt").write_text("user02_fluorescent.aedat\n")
    train = get_dataset("dvsgesture", "train", data_dir=tmp_path, time_steps=4, **QUIET)
    test = get_dataset("dvsgesture", "test", data_dir=tmp_path, time_steps=4, **QUIET)
    assert train.targets == [0, 4, 10] and len(test) == 3
    x, y, t, p = random_events(300, 128, 128, seed=1, t_max=3_000_000)
    in_first = int(((t >= 0) & (t < 1_000_000)).sum())
    assert train[0][0].sum() == in_first
    assert train.split_info["layout"] == "aedat31"


# ---------------------------------------------------------------- CIFAR10-DVS


def test_cifar10dvs_aedat4_stratified_split(tmp_path):
    make_cifar_aedat4(tmp_path)
    train = get_dataset("cifar10dvs", "train", data_dir=tmp_path, time_steps=3, **QUIET)
    test = get_dataset("cifar10dvs", "test", data_dir=tmp_path, time_steps=3, **QUIET)
    assert len(train) == 90 and len(test) == 10
    assert sorted(test.targets) == list(range(10))  # one of each class's ten
    train_files = {r.path for r in train.recordings}
    test_files = {r.path for r in test.recordings}
    assert not train_files & test_files and len(train_files | test_files) == 100
    info = test.split_info
    assert info["kind"] == "stratified" and info["test_fraction"] == 0.1 and info["seed"] == 0
    assert info["num_train"] == 90 and info["num_test"] == 10
    json.dumps(info)
    again = get_dataset("cifar10dvs", "test", data_dir=tmp_path, time_steps=3, **QUIET)
    assert [r.path for r in again.recordings] == [r.path for r in test.recordings]
    other = get_dataset("cifar10dvs", "test", data_dir=tmp_path, split_seed=1, **QUIET)
    assert {r.path for r in other.recordings} != test_files
    assert other.split_info["test_files_sha1"] != info["test_files_sha1"]
    frames, label = test[0]
    assert frames.shape == (3, 2, 128, 128) and frames.sum() == 50 + int(
        Path(test.recordings[0].path).stem.split("_")[-1]
    )


def test_cifar10dvs_original_aedat(tmp_path):
    for c in ("cat", "dog"):
        for k in range(3):
            x, y, t, p = random_events(40, 128, 128, seed=k)
            write_aedat2(tmp_path / "CIFAR10DVS" / c / f"cifar10_{c}_{k}.aedat", x, y, p, t)
    data = get_dataset("cifar10dvs", "train", data_dir=tmp_path, **QUIET)
    assert data.split_info["layout"] == "aedat2" and data.split_info["files_found"] == 6
    # each recording gets its folder's CIFAR-10 index (cat 3, dog 5): a subset check would let
    # every label collapse to one class
    labels = sorted((Path(r.path).parent.name, t) for r, t in zip(data.recordings, data.targets))
    assert labels == [("cat", 3)] * 3 + [("dog", 5)] * 3
    assert data[0][0].sum() == 40


# ---------------------------------------------------------------- N-Caltech101


def test_ncaltech101_varying_sizes_resized_to_48(tmp_path):
    sizes = make_ncaltech(tmp_path)
    train = get_dataset("ncaltech101", "train", data_dir=tmp_path, **QUIET)
    test = get_dataset("ncaltech101", "test", data_dir=tmp_path, **QUIET)
    assert len(train) == 27 and len(test) == 3
    names = dataset_info("ncaltech101").classes
    assert {names[t] for t in test.targets} == {"accordion", "Faces_easy", "yin_yang"}
    for i in range(len(train)):
        frames, _ = train[i]
        assert frames.shape == (10, 2, 48, 48)
        assert frames.sum() == sizes[train.recordings[i].path]
        assert frames[:, :, 47, :].sum() > 0 and frames[:, :, :, 47].sum() > 0  # full extent


def test_unknown_ncaltech_folder_is_named(tmp_path):
    make_ncaltech(tmp_path, classes=("accordion",), per_class=2)
    write_atis_bin(
        tmp_path / "NCALTECH101" / "Caltech101" / "Faces" / "image_0001.bin", [1], [1], [1], [1]
    )
    with pytest.raises(ValueError, match="'Faces' is not an N-Caltech101 class"):
        get_dataset("ncaltech101", "train", data_dir=tmp_path, **QUIET)


# ---------------------------------------------------------------- bad input


def test_truncated_file_raises_naming_it_or_is_skipped(tmp_path):
    make_nmnist(tmp_path, per_class=2)
    bad = tmp_path / "NMNIST" / "Train" / "3" / "00001.bin"
    bad.write_bytes(bad.read_bytes()[:-1])
    with pytest.raises(CorruptEventFile, match="00001.bin"):
        get_dataset("nmnist", "train", data_dir=tmp_path, **QUIET)
    with pytest.warns(UserWarning, match="skipped 1 bad recording"):
        data = get_dataset("nmnist", "train", data_dir=tmp_path, skip_bad=True, **QUIET)
    assert len(data) == 19 and data.skipped == [str(bad)]
    assert data.split_info["skipped_files"] == 1


def test_events_outside_sensor_found_on_read(tmp_path):
    make_nmnist(tmp_path, per_class=1)
    bad = tmp_path / "NMNIST" / "Train" / "4" / "00000.bin"
    write_atis_bin(bad, [1, 50], [1, 2], [0, 5], [0, 1])
    strict = get_dataset("nmnist", "train", data_dir=tmp_path, **QUIET)
    with pytest.raises(EventsOutsideSensor, match=r"00000.bin.*x in \[1, 50\]"):
        strict[4]
    with pytest.warns(UserWarning, match=r"skipped 1 bad recording file.*Train/4/00000.bin"):
        lenient = get_dataset("nmnist", "train", data_dir=tmp_path, skip_bad=True, **QUIET)
    assert len(lenient) == 9 and lenient.skipped == [str(bad)]  # left out when indexed
    assert lenient[4][1] == 5
    with pytest.warns(UserWarning, match="an earlier run|outside the sensor"):
        later = get_dataset("nmnist", "train", data_dir=tmp_path, skip_bad=True, **QUIET)
    assert len(later) == 9 and later.skipped == [str(bad)]  # remembered in the cache


def test_empty_recording_is_a_bad_file(tmp_path):
    make_nmnist(tmp_path, per_class=1)
    (tmp_path / "NMNIST" / "Test" / "0" / "00000.bin").write_bytes(b"")
    with pytest.raises(CorruptEventFile, match=r"00000.bin: the file is empty"):
        get_dataset("nmnist", "test", data_dir=tmp_path, **QUIET)


# ---------------------------------------------------------------- cache


def test_cache_hit_equals_miss_and_later_epochs_read_frames_only(tmp_path, monkeypatch):
    make_nmnist(tmp_path, per_class=1)
    kwargs = dict(data_dir=tmp_path, time_steps=6, split_by="time", **QUIET)
    fresh = get_dataset("nmnist", "train", cache=False, **kwargs)
    cached = get_dataset("nmnist", "train", **kwargs)
    first = [cached[i][0] for i in range(len(cached))]
    uncached = [fresh[i][0] for i in range(len(fresh))]
    files = list(cached.cache.dir.glob("*.npy"))
    assert len(files) == 10 and (cached.cache.dir / "config.json").exists()

    def no_reading(*args, **kw):
        raise AssertionError("read an event file on a cache hit")

    monkeypatch.setattr(DatasetInfo, "read", no_reading)
    again = get_dataset("nmnist", "train", **kwargs)
    for i in range(len(again)):
        torch.testing.assert_close(again[i][0], first[i], rtol=0, atol=0)
        torch.testing.assert_close(uncached[i], first[i], rtol=0, atol=0)
    assert fresh.cache is None


def test_cache_is_keyed_by_what_changes_frames(tmp_path):
    make_nmnist(tmp_path, per_class=1)
    a = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=4, **QUIET)
    b = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=5, **QUIET)
    c = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=4, split_by="time", **QUIET)
    d = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=4, denoise=5000, **QUIET)
    assert len({a.cache.dir, b.cache.dir, c.cache.dir, d.cache.dir}) == 4
    first = a[0][0]
    path = Path(a.recordings[0].path)
    write_atis_bin(path, [3, 4, 5], [3, 4, 5], [0, 1, 2], [1, 1, 1])
    os.utime(path, ns=(1, 10**18))
    changed = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=4, **QUIET)
    assert changed[0][0].sum() == 3 != first.sum()


def test_cache_with_several_dataloader_workers(tmp_path):
    make_nmnist(tmp_path, per_class=2)
    data = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=3, **QUIET)
    plain = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=3, cache=False, **QUIET)
    loaded = torch.cat([b for b, _ in DataLoader(data, batch_size=4, num_workers=2)])
    assert len(list(data.cache.dir.glob("*.npy"))) == 20
    assert not list(data.cache.dir.glob("*.tmp"))
    want = torch.stack([plain[i][0] for i in range(len(plain))])
    torch.testing.assert_close(loaded, want, rtol=0, atol=0)


# ---------------------------------------------------------------- augmentation


def test_augment_train_only_and_keeps_shape(tmp_path):
    make_cifar_aedat4(tmp_path, per_class=10)
    plain = get_dataset("cifar10dvs", "train", data_dir=tmp_path, time_steps=2, **QUIET)
    aug = get_dataset(
        "cifar10dvs",
        "train",
        data_dir=tmp_path,
        time_steps=2,
        augment="crop_pad=8,flip,roll=5",
        **QUIET,
    )
    test = get_dataset("cifar10dvs", "test", data_dir=tmp_path, augment=True, **QUIET)
    assert test.augment is None and aug.augment.as_dict() == {
        "crop_pad": 8,
        "flip": True,
        "roll": 5,
    }
    torch.manual_seed(0)
    changed = 0
    for i in range(20):
        a, b = aug[i][0], plain[i][0]
        assert a.shape == b.shape
        assert a.sum() <= b.sum()  # a crop can only lose events; flip and roll keep them
        changed += int(not torch.equal(a, b))
    assert changed > 10


def test_flip_and_crop_semantics():
    from spikequant.data.augment import FrameAugment, make_augment, random_crop

    frames = torch.zeros(2, 2, 5, 5)
    frames[:, :, 1, 0] = 1
    torch.manual_seed(1)
    flips = {int(FrameAugment(flip=True)(frames)[0, 0, 1].argmax()) for _ in range(20)}
    assert flips == {0, 4}
    crops = [random_crop(frames, 2) for _ in range(50)]
    assert all(c.shape == frames.shape for c in crops)
    assert {c.sum().item() for c in crops} >= {0.0, 4.0}
    with pytest.raises(ValueError, match="unknown augmentation"):
        make_augment("cifar10dvs", {"rotate": 10})
    assert make_augment("nmnist", True) == FrameAugment(crop_pad=2)
    assert make_augment("nmnist", False) is None


# ---------------------------------------------------------------- the CLI


def test_datasets_command(tmp_path, capsys):
    from spikequant.cli import main

    make_nmnist(tmp_path, per_class=1)
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "10 train + 10 test recordings (partial copy)" in out
    assert str(tmp_path / "NMNIST") in out
    assert "figshare" in out and "garrickorchard" in out  # how to get the missing ones
    assert "generated on first use" in out
    assert main(["datasets", "--data-dir", str(tmp_path), "--json"]) == 0
    listing = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert listing["nmnist"]["recordings"] == {"train": 10, "test": 10}
    assert listing["ncaltech101"]["found"] is False
    assert listing["ncaltech101"]["frame_shape"] == [2, 48, 48]
