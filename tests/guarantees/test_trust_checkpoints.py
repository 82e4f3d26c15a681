"""Guarantees about files read back (issue 13, items 1, 2 and 11): no code runs from a
checkpoint, damaged or diverged weights are refused, and a file declaring another network is
an error before memory is allocated for it."""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from _helpers import one_line_error, run_cli, saved_checkpoint, train_argv
from spikequant.models import build
from spikequant.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SRC = Path(__file__).resolve().parents[2] / "src"


class CreatesAFile:
    """Unpickling this object opens (creates) `path`: what a crafted checkpoint could do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def crafted(tmp_path):
    """(checkpoint that creates `marker` when unpickled, marker)."""
    marker = tmp_path / "pwned"
    model = build("ndigits", "sigmoid", 1, channels=4)
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    torch.save({"version": 1, "model_config": model.config, "model": model.state_dict(),
                "run": {"dataset": "ndigits"}, "payload": CreatesAFile(marker)}, path)
    return path, marker


@pytest.mark.parametrize("command", ["eval", "export", "report", "train --resume"])
def test_crafted_checkpoint_runs_no_code_in_any_command(command, crafted, tmp_path, capsys,
                                                        no_data):
    path, marker = crafted
    argv = {
        "eval": ["eval", "--checkpoint", path],
        "export": ["export", "--checkpoint", path, "--out", tmp_path / "m.sqp"],
        "report": ["report", "--checkpoint", path],
        "train --resume": train_argv(path.parent, tmp_path, "--resume"),
    }[command]
    code, err = run_cli(argv, capsys)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    assert code == 2
    assert "refused" in one_line_error(err) and str(path) in err


def test_no_source_file_loads_pickles_unrestricted():
    offenders = [f"{p}:{i}" for p in SRC.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"weights_only\s*=\s*False", line)
                 or (re.search(r"\btorch\.load\(", line) and "weights_only=True" not in line)]
    assert offenders == []


def _largest_tensor_record(path: Path) -> tuple[int, int]:
    """(offset of the bytes, size) of the biggest tensor stored in a torch.save zip."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def test_a_flipped_byte_in_a_checkpoint_is_refused(tmp_path, capsys):
    path = saved_checkpoint(tmp_path / "last.pt")
    load_checkpoint(path)  # intact: loads
    start, size = _largest_tensor_record(path)
    data = bytearray(path.read_bytes())
    data[start + size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        load_checkpoint(path)
    code, err = run_cli(["export", "--checkpoint", path, "--out", tmp_path / "m.sqp"], capsys)
    assert code == 2 and "SHA-256" in one_line_error(err)
    assert not (tmp_path / "m.sqp").exists()


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b"", b"\x00" * 64])
def test_a_file_that_is_no_checkpoint_says_so_and_is_not_called_unsafe(content, tmp_path,
                                                                       capsys):
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    code, err = run_cli(["eval", "--checkpoint", path], capsys)
    line = one_line_error(err)
    assert code == 2 and f"{path} is not a" in line
    assert "call ?" not in line and "run code" not in line


def test_nan_parameters_in_a_checkpoint_are_refused(tmp_path, capsys):
    model = build("ndigits", "sigmoid", 1, channels=4)
    with torch.no_grad():
        model.conv1.parametrizations.weight.original[0, 0, 0, 0] = float("nan")
    path = saved_checkpoint(tmp_path / "last.pt", model=model)
    code, err = run_cli(["export", "--checkpoint", path, "--out", tmp_path / "m.sqp"], capsys)
    assert code == 2 and "NaN" in one_line_error(err) and "conv1" in err
    assert not (tmp_path / "m.sqp").exists()


def test_a_run_whose_weights_stop_being_finite_stops_and_keeps_the_last_good_epoch(
        tmp_path, ndigits_dir, capsys, monkeypatch, fast_eval):
    from spikequant.train import trainer

    real_epoch = trainer.train_epoch

    def diverging_epoch(run, *args, **kwargs):
        row = real_epoch(run, *args, **kwargs)
        if run.epoch == 1:  # the second epoch blows up, as a too-high --lr does
            with torch.no_grad():
                run.net.conv2.parametrizations.weight.original.fill_(float("inf"))
        return row

    monkeypatch.setattr(trainer, "train_epoch", diverging_epoch)
    out = tmp_path / "run"
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "3"), capsys)
    assert code == 2
    assert "diverged in epoch 2" in one_line_error(err) and "conv2" in err
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1  # the last finite epoch, loadable


def test_a_nan_training_loss_ends_in_one_line_and_a_nonzero_exit(tmp_path, ndigits_dir, capsys,
                                                                  monkeypatch):
    from spikequant.train import trainer

    real_loss = trainer.loss_fn

    def nan_loss(rates, labels, kind):  # what a diverging forward pass hands the loss
        return real_loss(rates, labels, kind) * float("nan")

    monkeypatch.setattr(trainer, "loss_fn", nan_loss)
    out = tmp_path / "run"
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "2"), capsys)
    assert code == 2
    line = one_line_error(err)
    assert "training loss became nan at epoch 1 step 0" in line and "--lr" in line
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path, capsys):
    from spikequant.train.checkpoint import atomic_torch_save

    small, big = (build("ndigits", "sigmoid", 1, channels=c) for c in (4, 8))
    path = tmp_path / "last.pt"
    # the weights of a wider network under the small one's config
    atomic_torch_save({"model_config": small.config, "model": big.state_dict(),
                       "run": {"dataset": "ndigits", "time_steps": 2}}, path)
    for argv in (["eval", "--checkpoint", path],
                 ["export", "--checkpoint", path, "--out", tmp_path / "m.sqp"]):
        code, err = run_cli(argv, capsys)
        assert code == 2
        line = one_line_error(err)
        assert "does not fit the network" in line and "conv1" in line


@pytest.fixture
def refuse_building_huge(monkeypatch):
    """Fail the test if a network with 20,000 channels is built for real (gigabytes)."""
    import spikequant.models

    real_build = spikequant.models.build

    def guarded(*args, **kwargs):
        if kwargs.get("channels") == 20_000:
            raise AssertionError("the declared 20,000-channel network was allocated")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(spikequant.models, "build", guarded)


def test_packed_file_declaring_a_huge_network_is_refused_before_allocating(
        tmp_path, capsys, refuse_building_huge):
    from spikequant.export.modelfile import serialize_packed

    model = build("ndigits", "sigmoid", 1, channels=4).eval()
    model.set_config({**model.config, "channels": 20_000})  # metadata lies; hash recomputed
    path = tmp_path / "m.sqp"
    path.write_bytes(serialize_packed(model, {"run": {"dataset": "ndigits"}}))
    for argv in (["infer", "--model", path], ["report", "--model", path]):
        code, err = run_cli(argv, capsys)
        assert code == 2
        assert "conv1.weight" in one_line_error(err)


def test_checkpoint_declaring_a_huge_network_is_refused_before_allocating(
        tmp_path, capsys, refuse_building_huge):
    model = build("ndigits", "sigmoid", 1, channels=4)
    model.set_config({**model.config, "channels": 20_000})
    path = saved_checkpoint(tmp_path / "last.pt", model=model)
    code, err = run_cli(["export", "--checkpoint", path, "--out", tmp_path / "m.sqp"], capsys)
    assert code == 2 and "does not fit" in one_line_error(err)


def test_checkpoint_round_trip_keeps_random_states_and_loads_restricted(tmp_path):
    """What train writes (random states included) loads with weights_only=True and restores
    the same random streams."""
    import random

    import numpy as np

    from spikequant.train.state import capture_rng, restore_rng

    state = capture_rng()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    path = saved_checkpoint(tmp_path / "last.pt", rng=state)
    torch.load(path, weights_only=True)  # no pickled objects
    restore_rng(load_checkpoint(path)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_a_checkpoint_of_the_previous_format_still_loads_with_a_warning(tmp_path):
    """Version 1 (before the checksum) kept numpy's random state as an array: it is read with
    numpy arrays allowed, nothing else, and said to be unchecked."""
    import numpy as np

    from spikequant.train.state import restore_rng

    model = build("ndigits", "sigmoid", 1, channels=4)
    path = tmp_path / "last.pt"
    torch.save({"version": 1, "model_config": model.config, "model": model.state_dict(),
                "rng": {"python": __import__("random").getstate(),
                        "numpy": np.random.get_state(), "torch": torch.get_rng_state()}}, path)
    with pytest.warns(UserWarning, match="no checksum"):
        ckpt = load_checkpoint(path)
    restore_rng(ckpt["rng"])
    assert torch.equal(ckpt["model"]["bn1.running_var"], model.state_dict()["bn1.running_var"])
