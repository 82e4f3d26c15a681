"""Slow tests (make test-slow): the demo's accuracy bars, bit-identical resume after SIGKILL,
and two-process data-parallel training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from spikequant.cli import main

pytestmark = pytest.mark.slow


def read_json(path):
    return json.loads(path.read_text())


def test_demo_meets_its_accuracy_bars(tmp_path, ndigits_dir):
    """Issue 10's demo bar, seed 0: binary sigmoid, fine-tuned from the float network with
    train's defaults, within 1.0 point of float; float itself >= 95 %."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data-dir", str(ndigits_dir)]) == 0
    fp = read_json(out / "float" / "metrics.json")
    sig = read_json(out / "sigmoid-1b" / "metrics.json")
    ste = read_json(out / "ste-1b" / "metrics.json")
    print(f"float {fp['test_accuracy']:.4f} sigmoid {sig['test_accuracy']:.4f} "
          f"ste {ste['test_accuracy']:.4f}")
    assert fp["test_accuracy"] >= 0.95
    assert sig["test_accuracy"] >= fp["test_accuracy"] - 0.010
    assert sig["init_from"]["path"] == str(out / "float" / "best.pt")
    assert sig["memory_savings"] > 20
    assert "binary sigmoid" in (out / "demo.md").read_text()


def test_binary_defaults_end_within_one_point_of_float(tmp_path, ndigits_dir):
    """Issue 10's first bar on seed 0: `train --quantizer sigmoid --bits 1 --epochs 20` with
    nothing else ends within 1.0 point of `--quantizer none` at the same settings."""
    accuracy = {}
    for quantizer in ("none", "sigmoid"):
        out = tmp_path / quantizer
        assert main(["train", "--dataset", "ndigits", "--quantizer", quantizer, "--bits", "1",
                     "--epochs", "20", "--seed", "0", "--out", str(out), "--data-dir",
                     str(ndigits_dir), "--no-progress"]) == 0
        accuracy[quantizer] = read_json(out / "metrics.json")["test_accuracy"]
    print(accuracy)
    assert accuracy["sigmoid"] >= accuracy["none"] - 0.010


def _train_cmd(out, data, epochs=3):
    return [sys.executable, "-m", "spikequant", "train", "--dataset", "ndigits", "--quantizer",
            "sigmoid", "--epochs", str(epochs), "--out", str(out), "--data-dir", str(data),
            "--batch-size", "32", "--max-batches", "20", "--seed", "1", "--deterministic",
            "--no-progress"]


def _epochs_logged(out):
    log = out / "log.csv"
    return max(0, len(log.read_text().strip().splitlines()) - 1) if log.is_file() else 0


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, ndigits_dir):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_train_cmd(straight, ndigits_dir), check=True, timeout=600)

    proc = subprocess.Popen(_train_cmd(killed, ndigits_dir))
    deadline = time.time() + 300
    while _epochs_logged(killed) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch
    assert proc.poll() is None, "the run ended before it could be killed"
    assert _epochs_logged(killed) == 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_json(killed / "metrics.json")["epochs_completed"] == 1

    subprocess.run(_train_cmd(killed, ndigits_dir) + ["--resume"], check=True, timeout=600)
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(killed / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["history"][-1]["test_accuracy"] == b["history"][-1]["test_accuracy"]


def test_two_process_ddp_writes_one_metrics_file_over_the_whole_test_set(tmp_path, ndigits_dir,
                                                                          capsys):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "spikequant", "train", "--dataset", "ndigits", "--quantizer", "sigmoid",
           "--epochs", "1", "--out", str(out), "--data-dir", str(ndigits_dir),
           "--batch-size", "32", "--max-batches", "10", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd, check=True, timeout=600, env=env)
    metrics = read_json(out / "metrics.json")
    assert metrics["world_size"] == 2
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "best.pt", "last.pt", "log.csv", "metrics.json"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--json"]) == 0
    single = json.loads(capsys.readouterr().out)
    assert single["total"] == metrics["split"]["test_size"]
    assert single["accuracy"] == pytest.approx(metrics["test_accuracy"])
