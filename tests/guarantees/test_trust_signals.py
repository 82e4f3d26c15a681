"""Guarantees about SIGINT and SIGTERM: a command stopped by either leaves no half-written
file where a complete one is expected, ends with one line saying how to continue and status
130 / 143, and a stopped `train` or `sweep` continues bit-identically.

The in-process tests send the signal to themselves at a chosen point (deterministic, a second
each); one test sends it from outside to a running `spikequant train`. Each failed on the code
before these guarantees: SIGTERM killed the process where it stood (status -15, no line,
temporaries left behind, a sweep's plot half-written under a temporary name), and a signal
while an epoch was saved left best.pt without last.pt.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _helpers import run_cli, saved_checkpoint, train_argv
from _writers import make_nmnist
from spikequant.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_partial_datasets")

SIGNALS = [signal.SIGINT, signal.SIGTERM]
# two epochs of two batches; the same seed, so two runs are bit-identical
TWO_EPOCHS = ("-e", "2", "--max-batches", "2", "--seed", "1", "--deterministic")


def signal_on_call(monkeypatch, owner, name: str, signum: int, call: int) -> None:
    """Make `owner.name` send `signum` to this process on its `call`-th call (then run)."""
    real, calls = getattr(owner, name), []

    def sending(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, sending)


def interrupted_line(err: str, command: str, signum: int) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "interrupted" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"spikequant {command}: interrupted ({signal.Signals(signum).name}): ")
    return lines[0]


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".part"))]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_checkpoint(a), load_checkpoint(b)
    assert first["epoch"] == second["epoch"]
    assert first["model"].keys() == second["model"].keys()
    for key in first["model"]:
        assert torch.equal(first["model"][key], second["model"][key]), key
    measured = ("train_loss", "train_accuracy", "test_accuracy", "lr", "temperature")
    assert [[row.get(k) for k in measured] for row in first["history"]] == [
        [row.get(k) for k in measured] for row in second["history"]]


def log_rows(out: Path) -> int:
    return len(list(csv.DictReader((out / "log.csv").open())))


# ----------------------------------------------------------------------------- train


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_mid_epoch_then_resume_is_bit_identical(signum, tmp_path, ndigits_dir, capsys,
                                                         fast_eval, monkeypatch):
    from spikequant.train import trainer

    straight = tmp_path / "straight"
    assert run_cli(train_argv(straight, ndigits_dir, *TWO_EPOCHS), capsys)[0] == 0
    out = tmp_path / "stopped"
    with monkeypatch.context() as patched:
        signal_on_call(patched, trainer, "loss_fn", signum, call=4)  # epoch 2, second batch
        code, err = run_cli(train_argv(out, ndigits_dir, *TWO_EPOCHS), capsys)
    assert code == 128 + signum
    assert "--resume" in interrupted_line(err, "train", signum)
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 1
    assert log_rows(out) == 1 and not temporaries(out)
    # the lock was released: the same folder can be claimed again at once
    code, err = run_cli(train_argv(out, ndigits_dir, *TWO_EPOCHS, "--resume"), capsys)
    assert code == 0, err
    assert_same_weights(straight / "last.pt", out / "last.pt")
    assert log_rows(out) == 2


def test_a_signal_while_an_epoch_is_saved_waits_until_its_files_agree(tmp_path, ndigits_dir,
                                                                      capsys, fast_eval,
                                                                      monkeypatch):
    """The signal lands as best.pt is about to be written: best.pt, last.pt, log.csv and
    metrics.json are all written for that epoch before the command stops."""
    from spikequant.train import trainer

    out = tmp_path / "run"
    signal_on_call(monkeypatch, trainer, "atomic_torch_save", signal.SIGTERM, call=1)
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "3"), capsys)
    assert code == 143
    interrupted_line(err, "train", signal.SIGTERM)
    assert load_checkpoint(out / "best.pt")["epoch"] == load_checkpoint(out / "last.pt")["epoch"]
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 1
    assert log_rows(out) == 1 and not temporaries(out)


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_from_outside_stops_train_with_one_line(signum, tmp_path, ndigits_dir):
    """A real signal to a running `spikequant train` (its own process, as a user's Ctrl-C or
    `kill` gives): status 128 + N, one line, the folder a run --resume continues."""
    config = tmp_path / "tiny.toml"
    config.write_text("[train]\ncalibration_samples = 16\nval_fraction = 0.0\n"
                      "model_overrides = {channels = 4}\n")
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "spikequant", "train", "--config", str(config), "--out",
            str(out), "--data-dir", str(ndigits_dir), "-T", "2", "--batch-size", "16",
            "--epochs", "1000", "--max-batches", "2", "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "last.pt").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the run wrote no checkpoint in time"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "--resume" in interrupted_line(err, "train", signum)
    ckpt = load_checkpoint(out / "last.pt")
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == ckpt["epoch"]
    assert log_rows(out) == ckpt["epoch"] and not temporaries(out)


# ----------------------------------------------------------------------------- export


def test_a_signal_during_export_leaves_no_file_or_a_complete_one(tmp_path, capsys,
                                                                 monkeypatch):
    import spikequant.train
    from spikequant.export import load_packed, modelfile

    ckpt = saved_checkpoint(tmp_path / "last.pt")
    packed = tmp_path / "model.sqp"
    with monkeypatch.context() as patched:  # while the checkpoint is read: nothing written
        signal_on_call(patched, spikequant.train, "load_checkpoint", signal.SIGINT, call=1)
        code, err = run_cli(["export", "-c", ckpt, "-o", packed], capsys)
    assert code == 130 and not packed.exists() and not temporaries(tmp_path)
    interrupted_line(err, "export", signal.SIGINT)
    with monkeypatch.context() as patched:  # while the file is written: it is finished first
        signal_on_call(patched, modelfile, "st_save", signal.SIGTERM, call=1)
        code, err = run_cli(["export", "-c", ckpt, "-o", packed], capsys)
    assert code == 143 and not temporaries(tmp_path)
    interrupted_line(err, "export", signal.SIGTERM)
    model, _ = load_packed(packed)  # whole: its SHA-256 is checked
    assert code == 143 and model is not None


# ----------------------------------------------------------------------------- sweep


SWEEP = """
[sweep]
datasets = ["ndigits"]
quantizers = ["none", "sigmoid"]
bits = [1]
seeds = [0]
out = "{out}"

[train]
epochs = 2
batch_size = 16
max_batches = 2
time_steps = 2
data_dir = "{data}"
progress = false
deterministic = true
model_overrides = {{channels = 4}}
"""


def _sweep(tmp_path: Path, name: str, data: Path) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SWEEP.format(out=tmp_path / name, data=data))
    return path


def test_a_signal_mid_sweep_then_running_it_again_is_bit_identical(tmp_path, ndigits_dir,
                                                                   capsys, fast_eval,
                                                                   monkeypatch):
    from spikequant.train import trainer

    assert run_cli(["sweep", "--config", _sweep(tmp_path, "straight", ndigits_dir)],
                   capsys)[0] == 0
    stopped = _sweep(tmp_path, "stopped", ndigits_dir)
    with monkeypatch.context() as patched:  # the second run's second epoch
        signal_on_call(patched, trainer, "loss_fn", signal.SIGTERM, call=7)
        code, err = run_cli(["sweep", "--config", stopped], capsys)
    assert code == 143
    assert "run the same sweep again" in interrupted_line(err, "sweep", signal.SIGTERM)
    runs = ("ndigits/float/seed0", "ndigits/sigmoid-1b/seed0")
    assert load_checkpoint(tmp_path / "stopped" / runs[1] / "last.pt")["epoch"] == 1
    assert not (tmp_path / "stopped" / "results.csv").exists()
    assert not temporaries(tmp_path / "stopped")
    code, err = run_cli(["sweep", "--config", stopped], capsys)
    assert code == 0, err
    for run in runs:
        assert_same_weights(tmp_path / "straight" / run / "last.pt",
                            tmp_path / "stopped" / run / "last.pt")
    assert sorted(p.name for p in (tmp_path / "stopped").iterdir()) == [
        "accuracy_vs_bits.png", "ndigits", "results.csv", "results.md"]


# ----------------------------------------------------------------------------- frame cache


def test_a_signal_while_frames_are_cached_leaves_only_whole_entries(tmp_path, capsys,
                                                                    monkeypatch):
    make_nmnist(tmp_path / "data", per_class=1)
    argv = ["train", "--dataset", "nmnist", "--model", "ndigits", "--out", tmp_path / "run",
            "--data-dir", tmp_path / "data", "--time-steps", "2", "--batch-size", "10",
            "--epochs", "1", "--max-batches", "1", "--no-progress"]
    with monkeypatch.context() as patched:  # the third frame cache entry written
        signal_on_call(patched, np, "save", signal.SIGTERM, call=3)
        code, err = run_cli(argv, capsys)
    assert code == 143
    interrupted_line(err, "train", signal.SIGTERM)
    cache = tmp_path / "data" / "frames_cache"
    entries = list(cache.rglob("*.npy"))
    assert len(entries) == 2 and not temporaries(tmp_path / "data")
    for entry in entries:
        assert np.load(entry).shape == (2, 2, 34, 34)
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    entries = list(cache.rglob("*.npy"))
    assert len(entries) > 2 and all(np.load(e).shape == (2, 2, 34, 34) for e in entries)


@pytest.mark.slow
@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_at_a_random_moment_then_resume_is_bit_identical(signum, tmp_path,
                                                                  ndigits_dir):
    """As the SIGKILL test of test_slow_training.py, with the signal a user sends: the run
    stops with its status and line wherever it was in its second epoch, and --resume ends
    where an uninterrupted run does."""
    from test_slow_training import _epochs_logged, _train_cmd

    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    subprocess.run(_train_cmd(straight, ndigits_dir), check=True, timeout=600)
    proc = subprocess.Popen(_train_cmd(stopped, ndigits_dir), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while _epochs_logged(stopped) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    interrupted_line(err, "train", signum)
    subprocess.run(_train_cmd(stopped, ndigits_dir) + ["--resume"], check=True, timeout=600)
    assert_same_weights(straight / "last.pt", stopped / "last.pt")
