"""The integer-inference memory benchmark and the state-bits table script, at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import state_bits_table  # noqa: E402


def test_memory_benchmark_measures_both_ways(tmp_path):
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_integer_infer.py"), "--network", "ndigits",
         "--batch", "2", "--time-steps", "2", "--batches", "1", "--threads", "1",
         "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {"float", "integer"}
    # binary weights: 1 bit resident against 32
    assert rows["integer"]["weights_resident_bytes"] * 20 < rows["float"]["weights_resident_bytes"]
    for row in rows.values():
        assert row["peak_rss_mib"] >= row["baseline_rss_mib"] > 0 and row["samples_per_s"] > 0
    assert "| integer (`infer --integer`, packed codes) |" in done.stdout
    assert "goal: at most 25 %" in done.stdout and "Command:" in done.stdout


def test_state_bits_table_trains_and_summarizes(tmp_path, ndigits_dir, capsys, one_torch_thread):
    args = ["--out", str(tmp_path / "runs"), "--data-dir", str(ndigits_dir), "--seeds", "0",
            "--state-bits", "float", "12", "--json", str(tmp_path / "table.json"),
            "--set", "epochs=1", "--set", "max_batches=1", "--set", "batch_size=16",
            "--set", "time_steps=4", "--set", "val_fraction=0", "--set",
            "calibration_samples=16"]
    assert state_bits_table.main(args) == 0
    table = capsys.readouterr().out
    result = json.loads((tmp_path / "table.json").read_text())
    rows = {r["state"]: r for r in result["rows"]}
    for width, tag in (("float", "state-float"), (12, "state-12")):
        metrics = json.loads((tmp_path / "runs" / tag / "seed0" / "metrics.json").read_text())
        assert metrics["state_bits"] == (None if width == "float" else 12)
        assert metrics["quantizer"] == "sigmoid" and metrics["bits"] == 1
        assert rows[width]["test_mean"] == pytest.approx(100 * metrics["test_accuracy"])
    assert rows[12]["drop_points"] == pytest.approx(rows["float"]["test_mean"]
                                                    - rows[12]["test_mean"])
    # 2 conv blocks of 32 channels at 34x34 and 17x17, and 100 output neurons
    assert result["settings"]["neurons_per_sample"] == 32 * 34 * 34 + 32 * 17 * 17 + 100
    assert rows[12]["membrane_bytes_per_sample"] * 32 == rows["float"][
        "membrane_bytes_per_sample"] * 12
    assert "| 12-bit fixed point |" in table and "12-bit state against float state" in table
    # a second call trains nothing: the finished runs are read back
    before = (tmp_path / "runs" / "state-12" / "seed0" / "last.pt").stat().st_mtime_ns
    assert state_bits_table.main(args) == 0
    assert (tmp_path / "runs" / "state-12" / "seed0" / "last.pt").stat().st_mtime_ns == before


def test_table_settings_cannot_override_what_it_compares(tmp_path):
    args = state_bits_table.parse_args(["--out", str(tmp_path), "--set", "state_bits=8"])
    with pytest.raises(ValueError, match="state_bits are set by the table itself"):
        state_bits_table.config_for(args, "float", 0)
    args = state_bits_table.parse_args(["--set", "lr=2e-3", "--set", "exclude=['conv1']"])
    assert dict(args.set) == {"lr": 2e-3, "exclude": ["conv1"]}
