"""The README's data guarantees (issue 13, data side): bad recordings are dropped from the
index and counted, blank recordings and corrupt folders are reported, the frame cache follows
file content and rebuilds bad entries, and data errors reach the user as one line.

Each test failed on the code before these guarantees (df99493)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from _helpers import one_line_error, run_cli, saved_checkpoint
from _writers import make_ncaltech, make_nmnist, random_events, write_atis_bin
from spikequant.data import CorruptEventFile, get_dataset

QUIET = {"progress": False}

pytestmark = pytest.mark.usefixtures("quiet_partial_datasets")


def outside_sensor(path: Path) -> Path:
    """A recording that passes every structural check and fails only when decoded."""
    write_atis_bin(path, [1, 50, 3], [1, 2, 3], [0, 5, 9], [0, 1, 1])
    return path


def frames_key(frames: torch.Tensor) -> bytes:
    return frames.numpy().tobytes()


# ---------------------------------------------------------------- item 4: --skip-bad


def test_skip_bad_leaves_files_bad_on_decode_out_of_the_index(tmp_path):
    make_nmnist(tmp_path, per_class=2)
    bad = outside_sensor(tmp_path / "NMNIST" / "Train" / "4" / "00000.bin")
    with pytest.warns(UserWarning, match="skipped 1 bad recording"):
        data = get_dataset("nmnist", "train", data_dir=tmp_path, skip_bad=True, **QUIET)
    assert len(data) == 19
    assert data.split_info["skipped_files"] == 1
    assert data.skipped == [str(bad)]
    served = [data[i] for i in range(len(data))]
    assert len({frames_key(f) for f, _ in served}) == 19, "a recording was served twice"
    assert sorted(label for _, label in served) == sorted([d for d in range(10) for _ in "ab"
                                                           if (d, _) != (4, "a")])
    loaded = torch.cat([b for b, _ in DataLoader(data, batch_size=5, num_workers=2)])
    torch.testing.assert_close(loaded, torch.stack([f for f, _ in served]), rtol=0, atol=0)


def nmnist_train_argv(out, data, *extra):
    return ["train", "--dataset", "nmnist", "--model", "ndigits", "--out", out,
            "--data-dir", data, "--time-steps", "2", "--batch-size", "10", "--epochs", "1",
            "--max-batches", "1", "--no-progress", *extra]


def test_train_skip_bad_counts_and_names_skipped_files_in_metrics(tmp_path, capsys):
    make_nmnist(tmp_path / "data", per_class=1)
    train_bad = outside_sensor(tmp_path / "data" / "NMNIST" / "Train" / "4" / "00000.bin")
    test_bad = outside_sensor(tmp_path / "data" / "NMNIST" / "Test" / "7" / "00000.bin")
    out = tmp_path / "run"
    printed = r"nmnist (train|test): skipped 1 bad recording file.* (Train|Test)/\d/00000.bin"
    with pytest.warns(UserWarning, match=printed) as caught:
        code, err = run_cli(nmnist_train_argv(out, tmp_path / "data", "--skip-bad"), capsys)
    assert {str(w.message).split(":")[0] for w in caught} >= {"nmnist train", "nmnist test"}
    assert code == 0, err
    split = json.loads((out / "metrics.json").read_text())["split"]
    assert split["skipped_files"] == 2
    assert {(s["split"], s["file"]) for s in split["skipped"]} == {
        ("train", "Train/4/00000.bin"), ("test", "Test/7/00000.bin")}
    assert all("outside the sensor" in s["reason"] for s in split["skipped"])
    assert split["train_size"] + split["validation"]["size"] == 9
    assert split["test_size"] == 9
    assert train_bad.exists() and test_bad.exists()  # left in place, only left out


def test_eval_and_infer_offer_the_skip_bad_they_advise(tmp_path, capsys):
    make_nmnist(tmp_path / "data", per_class=2)
    bad = outside_sensor(tmp_path / "data" / "NMNIST" / "Test" / "3" / "00001.bin")
    ckpt = saved_checkpoint(tmp_path / "best.pt", run={"dataset": "nmnist", "time_steps": 2,
                                                        "data_dir": str(tmp_path / "data")})
    code, err = run_cli(["eval", "-c", ckpt, "--json"], capsys)
    line = one_line_error(err)
    assert code == 2 and str(bad) in line and "--skip-bad" in line
    model = tmp_path / "model.sqm"
    assert run_cli(["export", "-c", ckpt, "-o", model], capsys)[0] == 0
    capsys.readouterr()
    from spikequant.cli import main

    for argv in (["eval", "-c", ckpt], ["infer", "-m", model]):
        with pytest.warns(UserWarning, match="Test/3/00001.bin"):
            assert main([str(a) for a in argv] + ["--skip-bad", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["total"] == 19 and result["skipped_files"] == 1
        assert result["skipped"][0]["file"] == "Test/3/00001.bin"


# ---------------------------------------------------------------- item 7: blank files


@pytest.mark.parametrize("dataset", ["nmnist", "ncaltech101"])
def test_empty_and_all_overflow_bin_files_are_bad_files(tmp_path, dataset):
    if dataset == "nmnist":
        make_nmnist(tmp_path, per_class=2)
        empty = tmp_path / "NMNIST" / "Train" / "2" / "00000.bin"
        overflow = tmp_path / "NMNIST" / "Test" / "5" / "00001.bin"
    else:
        make_ncaltech(tmp_path, per_class=10)
        folder = tmp_path / "NCALTECH101" / "Caltech101"
        empty = folder / "accordion" / "image_0003.bin"
        overflow = folder / "yin_yang" / "image_0007.bin"
    empty.write_bytes(b"")
    overflow.write_bytes(bytes([7, 240, 0, 1, 2]) * 40)
    refused = set()
    for split in ("train", "test"):
        try:
            get_dataset(dataset, split, data_dir=tmp_path, **QUIET)
        except CorruptEventFile as err:
            refused.add(err.path)
            assert "empty" in str(err) or "overflow" in str(err)
    assert refused == {str(empty), str(overflow)}  # one in each split
    skipped = {}
    for split in ("train", "test"):
        with pytest.warns(UserWarning, match=f"{dataset} {split}: skipped 1 bad recording"):
            data = get_dataset(dataset, split, data_dir=tmp_path, skip_bad=True, **QUIET)
        skipped.update({s["file"]: s["reason"] for s in data.split_info["skipped"]})
        assert all(data[i][0].sum() > 0 for i in range(len(data)))
    assert len(skipped) == 2
    assert any("empty" in r for r in skipped.values())
    assert any("overflow" in r for r in skipped.values())


def test_datasets_command_reports_corrupt_files_and_not_complete(tmp_path, capsys, monkeypatch):
    import dataclasses

    import spikequant.data.status as status_module

    make_nmnist(tmp_path, per_class=1)
    original = status_module.dataset_info

    def small_nmnist(name):  # a "full" N-MNIST of 10 + 10 files
        info = original(name)
        if info.name != "nmnist":
            return info
        return dataclasses.replace(info, expected_files={"train": 10, "test": 10})

    monkeypatch.setattr(status_module, "dataset_info", small_nmnist)
    from spikequant.cli import main

    assert main(["datasets", "--data-dir", str(tmp_path), "--json"]) == 0
    listing = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert listing["nmnist"]["complete"] is True
    cut = tmp_path / "NMNIST" / "Train" / "6" / "00000.bin"
    cut.write_bytes(cut.read_bytes()[:-2])
    (tmp_path / "NMNIST" / "Test" / "1" / "00000.bin").write_bytes(b"")
    assert main(["datasets", "--data-dir", str(tmp_path), "--json"]) == 0
    nmnist = {d["name"]: d for d in json.loads(capsys.readouterr().out)}["nmnist"]
    assert nmnist["complete"] is False
    assert {Path(b["file"]).relative_to(tmp_path).as_posix() for b in nmnist["bad_files"]} == {
        "NMNIST/Train/6/00000.bin", "NMNIST/Test/1/00000.bin"}
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "2 file(s) cannot be used" in text and str(cut) in text and "--skip-bad" in text


# ---------------------------------------------------------------- item 7: the frame cache


def rewrite_keeping_size_and_mtime(path: Path, seed: int) -> None:
    before = path.stat()
    n = before.st_size // 5
    write_atis_bin(path, *random_events(n, 34, 34, seed=seed))
    assert path.stat().st_size == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_frame_cache_follows_content_not_size_and_mtime(tmp_path):
    make_nmnist(tmp_path, per_class=1)
    kwargs = dict(data_dir=tmp_path, time_steps=4, **QUIET)
    first = get_dataset("nmnist", "train", **kwargs)[0][0]
    rewrite_keeping_size_and_mtime(Path(get_dataset("nmnist", "train", **kwargs).recordings[0]
                                        .path), seed=99)
    again = get_dataset("nmnist", "train", **kwargs)[0][0]
    truth = get_dataset("nmnist", "train", cache=False, **kwargs)[0][0]
    assert not torch.equal(truth, first)
    torch.testing.assert_close(again, truth, rtol=0, atol=0)


def test_content_digests_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    from spikequant.data import fingerprint

    make_nmnist(tmp_path, per_class=1)
    monkeypatch.setattr(fingerprint, "SETTLE_SECONDS", 0.05)
    time.sleep(0.1)
    kwargs = dict(data_dir=tmp_path, time_steps=4, **QUIET)
    first = get_dataset("nmnist", "train", **kwargs)
    hashed = []
    real_digest = fingerprint.file_digest
    monkeypatch.setattr(fingerprint, "file_digest", lambda p: hashed.append(p) or real_digest(p))
    get_dataset("nmnist", "train", **kwargs)
    assert hashed == []  # nothing changed: no file read to key the cache
    changed = Path(first.recordings[3].path)
    rewrite_keeping_size_and_mtime(changed, seed=5)
    time.sleep(0.1)
    again = get_dataset("nmnist", "train", **kwargs)
    assert hashed == [str(changed)]
    truth = get_dataset("nmnist", "train", cache=False, **kwargs)
    torch.testing.assert_close(again[3][0], truth[3][0], rtol=0, atol=0)


@pytest.mark.parametrize("entry", ["wrong shape", "float", "garbage"])
def test_bad_cache_entry_is_rebuilt_with_a_warning_naming_it(tmp_path, entry):
    make_nmnist(tmp_path, per_class=1)
    kwargs = dict(data_dir=tmp_path, time_steps=4, **QUIET)
    data = get_dataset("nmnist", "train", **kwargs)
    truth = torch.stack([data[i][0] for i in range(len(data))])
    entries = sorted(data.cache.dir.glob("*.npy"))
    assert len(entries) == 10
    victim = entries[0]
    if entry == "wrong shape":
        np.save(victim, np.ones((3, 2, 34, 34), np.uint8))
    elif entry == "float":
        np.save(victim, np.full((4, 2, 34, 34), np.nan, np.float32))
    else:
        victim.write_bytes(b"\x93NUMPY not really")
    data = get_dataset("nmnist", "train", **kwargs)
    with pytest.warns(UserWarning, match=rf"frame cache entry {victim}.*rebuilding") as caught:
        batch = next(iter(DataLoader(data, batch_size=10)))[0]
    assert any(".bin" in str(w.message) for w in caught)  # and the recording it belongs to
    torch.testing.assert_close(batch, truth, rtol=0, atol=0)
    assert np.load(victim).shape == (4, 2, 34, 34)  # rewritten


# ---------------------------------------------------------------- item 11: one line, no traceback


def test_data_dir_that_is_a_file_is_one_line_saying_so(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for argv in (
        ["train", "--dataset", "ndigits", "--data-dir", afile, "--out", tmp_path / "run",
         "--max-batches", "1", "--no-progress"],
        ["datasets", "--data-dir", afile],
        ["train", "--dataset", "nmnist", "--data-dir", afile / "below", "--out",
         tmp_path / "run2", "--max-batches", "1", "--no-progress"],
    ):
        code, err = run_cli(argv, capsys)
        line = one_line_error(err)
        assert code == 2 and str(afile) in line and "is a file" in line and "--data-dir" in line


def _refuse_writes_inside(folder: Path, monkeypatch) -> None:
    """EACCES on every write into `folder`, as a read-only folder of another user gives (the
    tests run as root here, where chmod does not stop writes)."""
    import spikequant.data.ndigits as ndigits_module

    real_write = ndigits_module.atomic_write

    def refuse_inside(path, write):
        if Path(path).is_relative_to(folder):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_write(path, write)

    monkeypatch.setattr(ndigits_module, "atomic_write", refuse_inside)


def test_ndigits_in_a_read_only_folder_says_what_to_do(tmp_path, capsys, monkeypatch):
    """ndigits itself (its events) cannot be generated into a folder that cannot be written."""
    readonly = tmp_path / "shared"
    readonly.mkdir()
    _refuse_writes_inside(readonly, monkeypatch)
    code, err = run_cli(["train", "--dataset", "ndigits", "--data-dir", readonly, "--out",
                         tmp_path / "run", "--time-steps", "3", "--max-batches", "1",
                         "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 2
    assert str(readonly / "NDIGITS") in line and "Permission denied" in line
    assert "--data-dir" in line and "writ" in line


def test_ndigits_frames_that_cannot_be_kept_are_computed_in_memory(tmp_path, monkeypatch,
                                                                    ndigits_dir):
    """A read-only copy holding the generated events but not the frames of T=3: the frames
    file is a cache, so it is computed and served from memory with a warning."""
    from spikequant.errors import CacheUnavailableWarning

    readonly = tmp_path / "shared"
    shutil.copytree(ndigits_dir / "NDIGITS", readonly / "NDIGITS",
                    ignore=shutil.ignore_patterns("frames-*"))
    _refuse_writes_inside(readonly, monkeypatch)
    with pytest.warns(CacheUnavailableWarning, match="ndigits frames file .*shared/NDIGITS/"
                      "frames-.*Permission denied.*--data-dir"):
        data = get_dataset("ndigits", "test", data_dir=readonly, time_steps=3, **QUIET)
    fresh = get_dataset("ndigits", "test", data_dir=ndigits_dir, time_steps=3, **QUIET)
    assert len(data) == len(fresh) and torch.equal(data[5][0], fresh[5][0])
    assert sorted(p.name for p in (readonly / "NDIGITS").iterdir()) == [
        p.name for p in (ndigits_dir / "NDIGITS").glob("ndigits-*")]


def test_bad_file_in_a_dataloader_worker_is_one_line_naming_it(tmp_path, capsys):
    make_nmnist(tmp_path / "data", per_class=1)
    bad = outside_sensor(tmp_path / "data" / "NMNIST" / "Train" / "4" / "00000.bin")
    # whichever loader draws it first (training, validation, calibration) runs in a worker
    argv = nmnist_train_argv(tmp_path / "run", tmp_path / "data", "--num-workers", "2")
    code, err = run_cli(argv, capsys)
    line = one_line_error(err)
    assert code == 2
    assert line.startswith("spikequant train: error: ") and str(bad) in line
    assert "outside the sensor" in line and "--skip-bad" in line
    assert "worker" not in line and "Traceback" not in err
