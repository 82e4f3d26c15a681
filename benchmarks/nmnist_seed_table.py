"""Binary against float on an N-MNIST-format folder of N-MNIST's size, over seeds 0-2.

    python benchmarks/nmnist_seed_table.py --out runs/nmnist-seeds --jobs 2  # train missing runs
    python benchmarks/nmnist_seed_table.py --out runs/nmnist-seeds --table-only

The folder (1,400 train / 349 test recordings) is written once by make_nmnist_digits.py with
`--distort 1 --noise 200` into OUT/data: handwriting-like variation and background noise, so
that the task is not saturated by float and the gap to binary shows. Every run is
`spikequant train --dataset nmnist --data-dir OUT/data --epochs 3 --time-steps 10
--batch-size 16 --seed S` with the defaults; float adds `--quantizer none`, binary changes
nothing (the sigmoid quantizer at 1 bit is the default). Runs are named KIND_sSEED in OUT;
finished ones are skipped and interrupted ones resume. Each process uses one torch thread, so
`--jobs` runs side by side. The table reports the final test accuracy of each run (the
selection is made on the validation split, never the test set) and binary's drop against the
float run of the same seed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from gap_ablation import read_finished, train_one  # noqa: E402

SEEDS = (0, 1, 2)
KINDS: dict[str, dict] = {"float": {"quantizer": "none"}, "binary": {}}
RECIPE = {"dataset": "nmnist", "epochs": 3, "time_steps": 10, "batch_size": 16}
FOLDER_OPTIONS = ["--distort", "1", "--noise", "200"]


def run_name(kind: str, seed: int) -> str:
    return f"{kind}_s{seed}"


def settings_of(kind: str, seed: int, out: Path) -> dict:
    return {**RECIPE, **KINDS[kind], "data_dir": str(out / "data"), "seed": seed,
            "progress": False, "resume": True, "out": str(out / run_name(kind, seed))}


def make_folder(out: Path) -> None:
    if (out / "data" / "NMNIST").is_dir():
        return
    subprocess.check_call([sys.executable, str(HERE / "make_nmnist_digits.py"),
                           "--out", str(out / "data"), *FOLDER_OPTIONS])


def missing_runs(out: Path) -> list[dict]:
    plan = [settings_of(k, s, out) for s in SEEDS for k in KINDS]
    return [v for v in plan if read_finished(Path(v["out"])) is None]


def table(out: Path) -> str:
    """Markdown table of the finished runs in OUT: one row a seed with both kinds, then the
    mean +- std over those seeds."""
    found = {(k, s): m["test_accuracy"] * 100 for k in KINDS for s in SEEDS
             if (m := read_finished(out / run_name(k, s)))}
    lines = ["| seed | float test accuracy | binary test accuracy | binary's drop |",
             "|---:|---:|---:|---:|"]
    rows = [s for s in SEEDS if ("float", s) in found and ("binary", s) in found]
    for s in rows:
        f, b = found[("float", s)], found[("binary", s)]
        lines.append(f"| {s} | {f:.2f} % | {b:.2f} % | {f - b:+.2f} pts |")
    if rows:
        fl = [found[("float", s)] for s in rows]
        bi = [found[("binary", s)] for s in rows]
        drops = [f - b for f, b in zip(fl, bi)]
        lines.append(f"| mean +- std ({len(rows)} seeds) | {_mean_std(fl)} % | {_mean_std(bi)} % "
                     f"| {_mean_std(drops, signed=True)} pts |")
    return "\n".join(lines) + "\n"


def _mean_std(values: list[float], signed: bool = False) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    mean = f"{statistics.fmean(values):+.2f}" if signed else f"{statistics.fmean(values):.2f}"
    return f"{mean} +- {std:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="runs/nmnist-seeds", help="folder of the data and runs")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    p.add_argument("--table-only", action="store_true", help="print the table, train nothing")
    args = p.parse_args(argv)
    out = Path(args.out)
    if not args.table_only:
        out.mkdir(parents=True, exist_ok=True)
        make_folder(out)
        todo = missing_runs(out)
        print(f"{len(todo)} run(s) to train in {out}", flush=True)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for line in pool.map(train_one, todo):
                print(line, flush=True)
    print(table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
