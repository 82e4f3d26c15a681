"""The ablation behind README's "What closes the gap": which ingredient of the training recipe
brings binary (and 2-, 4-bit) sigmoid-quantized SNNs on ndigits within reach of float.

    python benchmarks/gap_ablation.py --out runs/gap --jobs 2          # train what is missing
    python benchmarks/gap_ablation.py --out runs/gap --table-only      # just print the table

Every run is `spikequant train --dataset ndigits --epochs 20` with the defaults, except for the
settings its row names; runs are named ROW_bBITS_sSEED (float: fp_sSEED) in OUT, finished ones
are skipped and interrupted ones resume. Each process uses one torch thread, so `--jobs` runs
side by side. The table reports the final-epoch test accuracy (mean +- std over seeds) and its
drop against the float run of the same seed (nothing is selected on the test set), how far
the test accuracy swings over the last five epochs, and the soft-hard gap of the last epoch
(share of quantized weights whose soft value is more than 1 % of the layer's scale away from the
hard one).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

EPOCHS = 20
FINE_TUNE_EPOCHS = 5
OLD = {"quantizer_options": {"temperature_schedule": "linear", "temperature_per_step": False,
                             "gradient": "exact"},
       "bn_recalibration": False}

# (row id, label, quantizer, settings beyond the defaults); rows add one ingredient each
ROWS: list[tuple[str, str, str, dict]] = [
    ("A", "sigmoid, previous defaults (linear T per epoch, exact gradient, no BN re-estimation)",
     "sigmoid", dict(OLD)),
    ("B", "+ reference gradient", "sigmoid",
     {**OLD, "quantizer_options": {**OLD["quantizer_options"], "gradient": "reference"}}),
    ("C", "+ geometric T ramp, per step", "sigmoid", {"bn_recalibration": False}),
    ("D", "+ batch-norm re-estimation with hard weights (= today's defaults)", "sigmoid", {}),
    ("E", f"defaults, fine-tuned {FINE_TUNE_EPOCHS} epochs from the float run (--init-from)",
     "sigmoid", {"epochs": FINE_TUNE_EPOCHS, "init_from": "float"}),
    ("F", "defaults + conv1 and classifier at 8 bits (--layer-bits)", "sigmoid",
     {"layer_bits": {"conv1": 8, "classifier": 8}}),
    ("STE", "sign/uniform + STE, same recipe", "ste", {}),
    ("LSQ", "LSQ, same recipe", "lsq", {}),
]
BITS = (1, 2, 4)
SEEDS = (0, 1, 2)


def run_name(row: str, bits: int | None, seed: int) -> str:
    return f"fp_s{seed}" if row == "fp" else f"{row}_b{bits}_s{seed}"


def settings_of(row: str, bits: int | None, seed: int, out: Path) -> dict:
    values = {"dataset": "ndigits", "epochs": EPOCHS, "seed": seed, "progress": False,
              "resume": True, "out": str(out / run_name(row, bits, seed))}
    if row == "fp":
        values["quantizer"] = "none"
        return values
    _, _, quantizer, extra = next(r for r in ROWS if r[0] == row)
    values.update(quantizer=quantizer, bits=bits, **extra)
    if values.get("init_from") == "float":
        values["init_from"] = str(out / run_name("fp", None, seed) / "best.pt")
    return values


def read_finished(path: Path) -> dict | None:
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if metrics.get("finished") else None


def train_one(values: dict) -> str:
    """One run in its own process with one torch thread."""
    code = (
        "import json, sys, torch; torch.set_num_threads(1)\n"
        "from spikequant.train import TrainConfig, fit\n"
        "fit(TrainConfig(**json.loads(sys.argv[1])))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = Path(values["out"] + ".log")
    with log.open("w") as fh:
        rc = subprocess.call([sys.executable, "-c", code, json.dumps(values)], env=env,
                             stdout=fh, stderr=subprocess.STDOUT)
    return f"{Path(values['out']).name}: {'done' if rc == 0 else f'FAILED (rc {rc}, see {log})'}"


def missing_runs(out: Path, bits: tuple[int, ...], rows: list[str]) -> list[dict]:
    plan = [settings_of("fp", None, s, out) for s in SEEDS]
    for row in rows:
        plan += [settings_of(row, b, s, out) for b in bits for s in SEEDS]
    return [v for v in plan if read_finished(Path(v["out"])) is None]


def table(out: Path, bits: tuple[int, ...], rows: list[str]) -> str:
    float_acc = {s: m["test_accuracy"] for s in SEEDS
                 if (m := read_finished(out / run_name("fp", None, s)))}
    lines = ["| bits | recipe | seeds | test accuracy (mean +- std) | drop vs float | "
             "swing over the last 5 epochs | soft-hard gap at the end |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    if float_acc:
        accs = [100 * a for a in float_acc.values()]
        swing = _swing([out / run_name("fp", None, s) for s in float_acc])
        lines.append(f"| 32 | float (--quantizer none) | {len(accs)} | {_mean_std(accs)} | | "
                     f"{swing} | |")
    for b in bits:
        for row, label, _, _ in (r for r in ROWS if r[0] in rows):
            runs = {s: m for s in SEEDS if (m := read_finished(out / run_name(row, b, s)))}
            if not runs:
                continue
            accs = [100 * m["test_accuracy"] for m in runs.values()]
            drops = [100 * (float_acc[s] - m["test_accuracy"]) for s, m in runs.items()
                     if s in float_acc]
            drop = f"{statistics.fmean(drops):+.2f} pts" if drops else "n/a"
            swing = _swing([out / run_name(row, b, s) for s in runs])
            gaps = [m.get("soft_hard_gap") for m in runs.values()]
            gap = (f"{100 * statistics.fmean(gaps):.1f} %" if None not in gaps else "n/a")
            lines.append(f"| {b} | {row}: {label} | {len(accs)} | {_mean_std(accs)} | {drop} | "
                         f"{swing} | {gap} |")
    return "\n".join(lines) + "\n"


def _swing(folders: list[Path], last: int = 5) -> str:
    """Mean over seeds of (max - min) test accuracy over the last epochs: how much the final
    figure depends on where training happens to stop."""
    spans = []
    for folder in folders:
        with (folder / "log.csv").open() as fh:
            accs = [float(r["test_accuracy"]) for r in csv.DictReader(fh)][-last:]
        spans.append(100 * (max(accs) - min(accs)))
    return f"{statistics.fmean(spans):.2f} pts"


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} +- {std:.2f} %"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="runs/gap", help="folder of the runs")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    p.add_argument("--bits", default="1,2,4", help="comma-separated bit widths")
    p.add_argument("--rows", default=",".join(r[0] for r in ROWS), help="rows to run and show")
    p.add_argument("--table-only", action="store_true", help="print the table, train nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    bits = tuple(int(b) for b in args.bits.split(","))
    rows = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(rows) - {r[0] for r in ROWS})
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; rows are {', '.join(r[0] for r in ROWS)}")
    if not args.table_only:
        out.mkdir(parents=True, exist_ok=True)
        todo = missing_runs(out, bits, rows)
        floats = [v for v in todo if v["quantizer"] == "none"]
        rest = [v for v in todo if v["quantizer"] != "none"]
        print(f"{len(todo)} run(s) to train in {out}", flush=True)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for phase in (floats, rest):  # fine-tuning rows need the float runs first
                for line in pool.map(train_one, phase):
                    print(line, flush=True)
    print(table(out, bits, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
