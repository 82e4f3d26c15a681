"""Run-time memory and throughput of integer-only inference against float inference.

One packed file of a binary network trained with (here: given) fixed-point state is evaluated
two ways, each in a fresh worker process so that its peak resident memory is its own:

    float     what `spikequant infer` does for a float-state file: load_packed rebuilds the
              float network and expands every weight to float32 (scale * levels[codes])
    integer   what `spikequant infer --integer` does: IntegerNetwork keeps the weights as the
              file's packed codes, unpacks a slice of a layer at a time, integer arithmetic

Each worker imports everything and builds its input batches first, then resets the peak-RSS
counter (/proc/self/clear_refs), loads the file and evaluates the batches; the table gives the
peak resident memory and how much of it came after that baseline (the network and its
inference), the weights each keeps resident, load time and throughput. The file's network is
freshly built with batch-norm statistics estimated on the input batches (so every layer fires);
weights' values do not change memory or time.

    python benchmarks/bench_integer_infer.py --network nmnist --batch 16 --time-steps 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_training import command_line, input_shape  # noqa: E402
from machine import (  # noqa: E402
    add_threads_option,
    machine_info,
    markdown_header,
    peak_rss_kib,
    reset_peak_rss,
    rss_kib,
    set_threads,
    write_json,
)

MODES = ("float", "integer")
REPLY = "@@bench "


def make_batches(network: str, args: argparse.Namespace) -> list[tuple[Any, Any]]:
    """`args.batches` reproducible (frames [B, T, C, H, W], labels) batches; 10 % of the
    pixels hold one event."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, args.time_steps, *input_shape(network))
    labels = torch.zeros(args.batch, dtype=torch.long)
    return [((torch.rand(shape, generator=gen) < 0.1).float(), labels)
            for _ in range(args.batches)]


def write_model(args: argparse.Namespace, path: Path) -> int:
    """A binary network with `args.state_bits`-bit state, batch norm fitted to the inputs."""
    import torch

    from spikequant.export import save_packed
    from spikequant.models import build
    from spikequant.train.calibration import recalibrate_batch_norm

    torch.manual_seed(args.seed)
    model = build(args.network, quantizer="sigmoid", bits=1, state_bits=args.state_bits)
    recalibrate_batch_norm(model, make_batches(args.network, args)[:1])
    return save_packed(model.eval(), path, {"run": {"dataset": args.network}})


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Runs in its own process: load the file one way, evaluate, report memory and time."""
    import torch

    from spikequant.export import load_packed
    from spikequant.export.integer_infer import IntegerNetwork
    from spikequant.train import evaluate

    set_threads(args.threads)
    batches = make_batches(args.network, args)
    reset_peak_rss()
    baseline = rss_kib("VmRSS")
    start = time.perf_counter()
    if args.worker == "float":
        model = load_packed(args.model)[0]
        resident = sum(4 * p.numel() for p in model.parameters())
    else:
        model = IntegerNetwork.from_packed(args.model)
        resident = sum(model.resident_bytes().values())
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(model, batches)
    eval_s = time.perf_counter() - start
    return {"mode": args.worker, "baseline_rss_mib": baseline / 1024,
            "peak_rss_mib": peak_rss_kib() / 1024, "weights_resident_bytes": resident,
            "load_s": load_s, "eval_s": eval_s,
            "samples_per_s": args.batch * args.batches / eval_s,
            "predictions": result["predictions"].tolist(), "threads": torch.get_num_threads()}


def run_worker(args: argparse.Namespace, mode: str, model: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--model", str(model),
           "--network", args.network, "--batch", str(args.batch), "--time-steps",
           str(args.time_steps), "--batches", str(args.batches), "--seed", str(args.seed),
           "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    replies = [line[len(REPLY):] for line in done.stdout.splitlines() if line.startswith(REPLY)]
    if done.returncode != 0 or not replies:
        raise RuntimeError(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(replies[-1])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sq-int-") as tmp:
        model = Path(tmp) / "model.sqp"
        file_bytes = write_model(args, model)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for r in range(args.repeats):
            for mode in MODES[r % 2:] + MODES[:r % 2]:  # alternate who goes first
                runs[mode].append(run_worker(args, mode, model))
    rows = []
    for mode in MODES:
        first = runs[mode][0]
        rows.append({
            "mode": mode, "weights_resident_bytes": first["weights_resident_bytes"],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs[mode]),
            "above_baseline_mib": max(r["peak_rss_mib"] - r["baseline_rss_mib"]
                                      for r in runs[mode]),
            "baseline_rss_mib": first["baseline_rss_mib"],
            "load_s": statistics.median(r["load_s"] for r in runs[mode]),
            "samples_per_s": statistics.median(r["samples_per_s"] for r in runs[mode]),
            "samples_per_s_all": [r["samples_per_s"] for r in runs[mode]],
        })
    same = [a == b for a, b in zip(runs["float"][0]["predictions"],
                                   runs["integer"][0]["predictions"])]
    settings = {"network": args.network, "batch": args.batch, "time_steps": args.time_steps,
                "batches": args.batches, "repeats": args.repeats, "state_bits": args.state_bits,
                "file_bytes": file_bytes, "command": command_line(),
                "threads": runs["float"][0]["threads"]}
    machine = {**machine_info("cpu"), "torch_threads": settings["threads"]}  # the workers'
    return {"settings": settings, "machine": machine, "rows": rows,
            "same_prediction_share": sum(same) / max(len(same), 1)}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    rows = {r["mode"]: r for r in result["rows"]}
    ratio = rows["integer"]["above_baseline_mib"] / rows["float"]["above_baseline_mib"]
    lines = [f"#### Integer-only inference, {s['network']} (binary weights, "
             f"{s['state_bits']}-bit state), batch {s['batch']}, T={s['time_steps']}, cpu "
             f"({s['batches']} batches, {s['repeats']} worker run(s) a mode)",
             "", markdown_header(result, s["command"]), "",
             "| inference | weights resident | peak RSS MiB | above baseline MiB | vs float "
             "| load s | samples/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for mode, label in (("float", "float (`infer`, float32 weights)"),
                        ("integer", "integer (`infer --integer`, packed codes)")):
        r = rows[mode]
        lines.append(
            f"| {label} | {r['weights_resident_bytes'] / 2**20:.2f} MiB | "
            f"{r['peak_rss_mib']:.0f} | {r['above_baseline_mib']:.0f} | "
            f"{r['above_baseline_mib'] / rows['float']['above_baseline_mib']:.2f}x | "
            f"{r['load_s']:.2f} | {r['samples_per_s']:.1f} |")
    lines += ["", f"Baseline: the worker's resident memory after importing torch and spikequant "
              f"and building its input batches ({rows['float']['baseline_rss_mib']:.0f} MiB), "
              "before loading the file; above baseline is the peak minus it: the network and "
              f"its inference. Integer inference needs {100 * ratio:.0f} % of float's memory "
              f"above baseline (goal: at most 25 %). Packed file: "
              f"{s['file_bytes'] / 2**20:.2f} MiB. The two compute different arithmetic (float "
              f"state against {s['state_bits']}-bit state) on random input: same predictions on "
              f"{100 * result['same_prediction_share']:.0f} % of the samples."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Peak resident memory and throughput of integer-only inference "
        "(`spikequant infer --integer`: packed weight codes, integer arithmetic) against float "
        "inference (`spikequant infer`: float32 weights) of the same packed file, each in its "
        "own worker process.")
    p.add_argument("--network", default="nmnist", help="registered network (default nmnist)")
    p.add_argument("--state-bits", type=int, default=16, help="neuron state bits of the "
                   "file's network (default 16)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--time-steps", type=int, default=10, help="time steps T (default 10)")
    p.add_argument("--batches", type=int, default=3, help="batches evaluated (default 3)")
    p.add_argument("--repeats", type=int, default=1, help="worker runs a mode (default 1)")
    p.add_argument("--seed", type=int, default=0)
    add_threads_option(p)
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.batch, args.time_steps, args.batches, args.repeats) < 1:
        p.error("--batch, --time-steps, --batches and --repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(REPLY + json.dumps(worker(args)), flush=True)
        return 0
    result = measure(args)
    print(markdown(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
