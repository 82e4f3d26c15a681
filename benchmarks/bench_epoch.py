"""What a user waits for: the wall time of `spikequant train`'s epochs against the sum of their
training steps (forward + backward + optimizer), so the rest (reading and caching the data,
turning events into frames, evaluation, checkpoints, logging) shows as the overhead over them,
and where each epoch's time goes (epoch_split.py: steps, loading, batch-norm re-estimation,
calibration-slice accuracy, validation, test).

Each run is `spikequant train ... --epochs N` (default 3: the defaults evaluate a small dataset
every few epochs and always after the last, so one epoch alone is all final evaluation) through
the CLI's own entry point, in a fresh process (so the CLI's allocator setting applies), with
hooks that time every phase. Two runs per dataset: "cold" (an empty frame cache: events are read
and converted) and "warm" (the cache the cold run wrote).

    python benchmarks/bench_epoch.py                       # ndigits and a 1,400-recording folder
    python benchmarks/bench_epoch.py --datasets nmnist --recordings 1400 --phases cold
    python benchmarks/bench_epoch.py --datasets ndigits --train-flags="--eval-every 1"

The N-MNIST-format folder is generated: random events (N-MNIST's 34x34 sensor, ~300 ms, about
4,000 events a recording, as the real recordings) written as ATIS .bin files under
NMNIST/Train/<digit>/ and NMNIST/Test/<digit>/, split 6:1 as N-MNIST's 60,000 / 10,000. It is
not learnable (random events); benchmarks/make_nmnist_digits.py writes one that is.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from epoch_split import PHASES, summarize  # noqa: E402
from machine import add_threads_option, machine_info, markdown_header  # noqa: E402

REPLY = "@@epoch "


def write_atis_bin(path: Path, x, y, t_us, p) -> None:
    """Events as N-MNIST's 5-byte ATIS records (x, y, polarity bit + 23-bit timestamp)."""
    import numpy as np

    raw = np.empty((len(x), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p.astype(np.int64) << 7) | ((t_us >> 16) & 0x7F)
    raw[:, 3] = (t_us >> 8) & 0xFF
    raw[:, 4] = t_us & 0xFF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def make_nmnist_folder(root: Path, recordings: int, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    test = recordings // 7
    for split, count in (("Train", recordings - test), ("Test", test)):
        for i in range(count):
            n = int(rng.integers(3000, 5000))
            t = np.sort(rng.integers(0, 300_000, n))
            write_atis_bin(root / "NMNIST" / split / str(i % 10) / f"{i:05d}.bin",
                           rng.integers(0, 34, n), rng.integers(0, 34, n), t,
                           rng.integers(0, 2, n))


# ----------------------------------------------------------------------------- child side


def run_child(argv: list[str]) -> int:
    """Run `spikequant train argv` with every phase of its epochs timed; report one JSON
    line."""
    import importlib

    # first: the CLI sets torch's allocator option in the environment before torch loads
    cli_main = importlib.import_module("spikequant.cli").main
    import epoch_split

    split = epoch_split.install()
    start = time.perf_counter()
    code = cli_main(["train", *argv])
    wall = time.perf_counter() - start
    sys.stdout.write(REPLY + json.dumps({"exit_code": code, "wall_s": wall,
                                         "split": split.as_dict()}) + "\n")
    return int(code or 0)


# ---------------------------------------------------------------------------- parent side


def one_run(train_args: list[str], out: Path, threads: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--",
           *train_args, "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    process_s = time.perf_counter() - start
    reply = next((json.loads(line[len(REPLY):]) for line in done.stdout.splitlines()
                  if line.startswith(REPLY)), None)
    if reply is None or reply["exit_code"] != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        return {"error": f"exit code {done.returncode}: {tail}"}
    with (out / "log.csv").open() as fh:
        epoch_seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(fh)]
    split = summarize(reply["split"], epoch_seconds)
    step_sum = sum(e["steps"] for e in split["epochs"])
    epoch_s = sum(epoch_seconds)
    return {"process_s": process_s, "wall_s": reply["wall_s"], "epoch_s": epoch_s,
            "steps": sum(e["steps_count"] for e in split["epochs"]), "step_sum_s": step_sum,
            "overhead": reply["wall_s"] / step_sum - 1 if step_sum else None,
            "epoch_overhead": epoch_s / step_sum - 1 if step_sum else None, "split": split}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_epoch_") as tmp:
        for dataset in args.datasets.split(","):
            data = Path(tmp) / f"data_{dataset}"
            if dataset == "nmnist":
                make_nmnist_folder(data, args.recordings)
            train = ["--dataset", dataset, "--epochs", str(args.epochs), "--data-dir",
                     str(data), "--quantizer", args.quantizer, "--bits", "1", "--seed", "0",
                     "--batch-size", str(args.batch_size), *args.train_flags.split()]
            if args.time_steps:
                train += ["--time-steps", str(args.time_steps)]
            for phase in args.phases.split(","):  # the cold run writes the frame cache
                row = one_run(train, Path(tmp) / f"run_{dataset}_{phase}", args.threads)
                rows.append({"dataset": dataset, "cache": phase, **row})
                print(f"[bench_epoch] {dataset} {phase}: {row}", file=sys.stderr, flush=True)
    settings = {"datasets": args.datasets, "recordings": args.recordings,
                "batch_size": args.batch_size, "time_steps": args.time_steps,
                "quantizer": args.quantizer, "phases": args.phases, "epochs": args.epochs,
                "train_flags": args.train_flags, "command": command_line()}
    machine = machine_info("cpu")
    if args.threads:  # the children's setting, not this parent's
        machine["torch_threads"] = args.threads
    return {"settings": settings, "machine": machine, "rows": rows}


def command_line() -> str:
    rel = os.path.relpath(Path(sys.argv[0]).resolve(), Path.cwd())
    return " ".join(["python", rel, *sys.argv[1:]])


def dataset_name(row: dict[str, Any], settings: dict[str, Any]) -> str:
    return ("ndigits" if row["dataset"] == "ndigits" else
            f"{row['dataset']} format, {settings['recordings']:,} recordings")


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    flags = f", {s['train_flags']}" if s.get("train_flags") else ""
    epochs = "epoch" if s["epochs"] == 1 else f"{s['epochs']} epochs"
    lines = [f"#### `spikequant train`, {epochs}, against the sum of its steps "
             f"(quantizer {s['quantizer']}, batch {s['batch_size']}{flags})", "",
             markdown_header(result, s["command"]), "",
             "| dataset | frame cache | steps | sum of steps s | epochs s (log.csv) | "
             "whole command s | overhead: epochs | overhead: whole command |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        name = dataset_name(r, s)
        if r.get("error"):
            lines.append(f"| {name} | {r['cache']} | failed: {r['error'][-200:]} |")
            continue
        lines.append(f"| {name} | {r['cache']} | {r['steps']} | {r['step_sum_s']:.1f} | "
                     f"{r['epoch_s']:.1f} | {r['wall_s']:.1f} | {r['epoch_overhead']:+.1%} | "
                     f"{r['overhead']:+.1%} |")
    lines += ["", "A step: the network's forward in training mode to the end of its optimizer "
              "step (hooks in the `spikequant train` process). Epochs s: training and "
              "evaluation as log.csv records them (epoch_seconds, summed); whole command: "
              "`spikequant train` from parsing its arguments to its return (model build, data "
              "scan, frame caching, the epochs, checkpoints, metrics), without Python's and "
              "torch's start-up.", "", *split_table(result)]
    return "\n".join(lines)


def split_table(result: dict[str, Any]) -> list[str]:
    """Each epoch's seconds by phase (epoch_split.py), as a share of its steps' sum."""
    lines = ["Where each epoch goes, seconds (share of the epoch's step time):", "",
             "| dataset | frame cache | epoch | " + " | ".join(PHASES) +
             " | other | epoch s | overhead |",
             "|---|---|---:|" + "---:|" * (len(PHASES) + 3)]
    for r in result["rows"]:
        if r.get("error"):
            continue
        for e in r["split"]["epochs"]:
            steps = e["steps"] or float("nan")
            cells = [f"{e['steps']:.2f}"] + [
                f"{e[p]:.2f} ({e[p] / steps:.1%})" if e[p] else "0" for p in (*PHASES[1:], "other")
            ]
            lines.append(f"| {dataset_name(r, result['settings'])} | {r['cache']} | "
                         f"{e['epoch']} | " + " | ".join(cells) +
                         f" | {e['epoch_s']:.2f} | {e['epoch_s'] / steps - 1:+.1%} |")
    lines += ["", "loading: waiting for the next training batch; re-estimation: batch-norm "
              "statistics with hard weights over the calibration slice; calibration accuracy, "
              "validation, test: each evaluation pass with its own data loading; soft-hard "
              "gap: the share of weights not yet hard (each quantizer run soft and hard); "
              "other: the rest of the epoch as log.csv times it (progress bar, temperature "
              "updates, loss bookkeeping)."]
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Wall time of one `spikequant train` epoch against "
                                "the sum of its training steps (data, caching, evaluation and "
                                "logging show as the overhead).")
    p.add_argument("--datasets", default="ndigits,nmnist",
                   help="comma-separated: ndigits (generated offline) and/or nmnist (a "
                        "generated N-MNIST-format folder of --recordings recordings)")
    p.add_argument("--recordings", type=int, default=1400,
                   help="recordings in the N-MNIST-format folder (train and test, 6:1)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--time-steps", type=int, default=0, help="T (default: the dataset's)")
    p.add_argument("--quantizer", default="sigmoid")
    p.add_argument("--phases", default="cold,warm", choices=["cold,warm", "cold"],
                   help="runs per dataset: an empty frame cache, then (default) a second run "
                        "reading the cache the first wrote")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each run")
    p.add_argument("--train-flags", default="",
                   help="more `spikequant train` flags, as one string, e.g. '--eval-every 1'")
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    add_threads_option(p)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("train_args", nargs="*", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args.train_args)
    result = measure(args)
    print(markdown(result))
    if args.json:
        from machine import write_json

        write_json(args.json, result)
    return 0 if all(not r.get("error") for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
