"""Helpers of the tests of the README's "Guarantees" (issue 13): run the command the way a user
does, notice data being read when it must not be, and keep training runs to a second."""

from __future__ import annotations

import pytest
import torch

from spikequant.cli import main


def run_cli(argv, capsys) -> tuple[int, str]:
    """(exit status, stderr) of `spikequant ARGV`; argparse's exits included. Any other
    exception propagates: a traceback is what these tests exist to rule out."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    """The error line of stderr (argparse prints its usage above it)."""
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def forbid_data(monkeypatch) -> None:
    """From now on, fail the test if a dataset is opened: the command had to stop before."""

    def opened(*args, **kwargs):
        raise AssertionError("a dataset was opened before the bad input was refused")

    monkeypatch.setattr("spikequant.data.get_dataset", opened)


@pytest.fixture
def no_data(monkeypatch):
    """forbid_data for the whole test."""
    forbid_data(monkeypatch)


@pytest.fixture
def fast_eval(monkeypatch):
    """Per-epoch validation and test accuracy from a table {epoch: accuracy} (default 0.5)
    instead of evaluating, so a training run takes about a second. Returns the table to
    fill."""
    table: dict[int, float] = {}

    def evaluate_epoch(run):
        accuracy = table.get(run.epoch + 1, 0.5)
        return {"val_accuracy": accuracy, "test_accuracy": accuracy}

    monkeypatch.setattr("spikequant.train.trainer.evaluate_epoch", evaluate_epoch)
    return table


def train_argv(out, data, *extra):
    return ["train", "--dataset", "ndigits", "--out", out, "--data-dir", data,
            "--batch-size", "16", "--max-batches", "1", "--no-progress", *extra]


def saved_checkpoint(path, run=None, model=None, **entries):
    """A checkpoint as `spikequant train` writes it (with this version's save function)."""
    from spikequant.models import build
    from spikequant.train.checkpoint import CHECKPOINT_VERSION, atomic_torch_save

    torch.manual_seed(0)
    model = model or build("ndigits", "sigmoid", 1, channels=4)
    state = {"version": CHECKPOINT_VERSION, "model_config": model.config,
             "model": model.state_dict(), "run": run or {"dataset": "ndigits", "time_steps": 2},
             "epoch": 1, **entries}
    atomic_torch_save(state, path)
    return path
