"""ndigits: generated once, deterministic, balanced, informative, cached as frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikequant.data import datasets as datasets_module
from spikequant.data import get_dataset, ndigits
from spikequant.data.events import EVENT_DTYPE


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ndigits-data")
    get_dataset("ndigits", "train", data_dir=root, progress=False)
    return root


@pytest.fixture(scope="module")
def recordings(data_dir):
    return ndigits.load_or_generate(data_dir / "NDIGITS", seed=0, progress=False)


def test_split_sizes_and_class_balance(data_dir):
    train = get_dataset("ndigits", "train", data_dir=data_dir, progress=False)
    test = get_dataset("ndigits", "test", data_dir=data_dir, progress=False)
    assert len(train) + len(test) == 1797
    assert abs(len(test) / 1797 - 0.2) < 0.005
    per_class = np.bincount(test.targets, minlength=10)
    assert per_class.min() >= 35 and per_class.max() <= 37
    assert np.bincount(train.targets, minlength=10).min() >= 135
    info = train.split_info
    assert info["kind"] == "stratified" and info["test_fraction"] == 0.2
    assert info["num_test"] == len(test)


def test_items_follow_the_contract(data_dir):
    train = get_dataset("ndigits", "train", data_dir=data_dir, progress=False)
    frames, label = train[0]
    assert frames.shape == (8, 2, 34, 34) and frames.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    batch, labels = next(iter(DataLoader(train, batch_size=5)))
    assert batch.shape == (5, 8, 2, 34, 34) and labels.shape == (5,)


def test_events_look_like_nmnist(recordings):
    events, offsets = recordings["events"], recordings["offsets"]
    assert events.dtype.names == EVENT_DTYPE.names
    per_recording = np.diff(offsets)
    assert 2000 < per_recording.mean() < 6000 and per_recording.min() > 500
    assert 0.4 < events["p"].mean() < 0.6  # both polarities
    assert events["x"].min() >= 0 and events["x"].max() == 33
    assert events["y"].min() >= 0 and events["y"].max() == 33
    assert events["t"].min() >= 0 and events["t"].max() < ndigits.DURATION_US
    for i in (0, 500, 1796):
        t = events["t"][offsets[i] : offsets[i + 1]]
        assert np.all(np.diff(t) >= 0)
        # activity in each of the three saccades
        assert np.histogram(t, bins=3, range=(0, ndigits.DURATION_US))[0].min() > 200


def test_generation_is_deterministic(recordings):
    again = ndigits.generate(seed=0, progress=False)
    np.testing.assert_array_equal(again["offsets"], recordings["offsets"])
    np.testing.assert_array_equal(again["events"], recordings["events"])
    np.testing.assert_array_equal(again["is_test"], recordings["is_test"])


def test_seed_changes_the_events_not_the_digits():
    from sklearn.datasets import load_digits

    canvas = ndigits.digit_canvases(load_digits().images[:4])
    a = ndigits.simulate(canvas, np.random.default_rng(0))
    b = ndigits.simulate(canvas, np.random.default_rng(0))
    c = ndigits.simulate(canvas, np.random.default_rng(1))
    np.testing.assert_array_equal(a[1], b[1])
    assert len(a[1]) != len(c[1]) or not np.array_equal(a[1], c[1])


def test_frames_are_informative(data_dir):
    """A 3-nearest-neighbour classifier on raw frames already separates the digits."""
    from sklearn.neighbors import KNeighborsClassifier

    train = get_dataset("ndigits", "train", data_dir=data_dir, progress=False)
    test = get_dataset("ndigits", "test", data_dir=data_dir, progress=False)
    flat = train.frames.reshape(len(train), -1).astype(np.float32)
    knn = KNeighborsClassifier(3).fit(flat, train.labels)
    accuracy = knn.score(test.frames.reshape(len(test), -1).astype(np.float32), test.labels)
    assert accuracy > 0.93


def test_generated_once_and_frames_cached_per_setting(data_dir, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("regenerated or reconverted")

    monkeypatch.setattr(ndigits, "generate", boom)
    monkeypatch.setattr(datasets_module, "recording_frames", boom)
    get_dataset("ndigits", "test", data_dir=data_dir, progress=False)  # from the frames file
    monkeypatch.undo()
    monkeypatch.setattr(ndigits, "generate", boom)
    other = get_dataset(
        "ndigits", "test", data_dir=data_dir, time_steps=4, split_by="time", progress=False
    )  # new frames from the stored events
    assert other[0][0].shape == (4, 2, 34, 34)
    assert len(list((data_dir / "NDIGITS").glob("frames-*.npz"))) == 2
    assert not list((data_dir / "NDIGITS").glob("*.tmp"))
