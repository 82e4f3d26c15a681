"""Binary weights with float against fixed-point neuron state on ndigits: the README table.

Trains `spikequant train --dataset ndigits --quantizer sigmoid --bits 1 --seed S
[--state-bits K]` for every state width (float, 16, 12, 8 by default) and seed (0, 1, 2), with
`spikequant train`'s defaults otherwise (or a --config file's [train] table, and --set
overrides), then prints one markdown table: final-epoch test accuracy (mean +- sample std over
the seeds), the drop against float state, best.pt's test accuracy (the epoch chosen on the
validation split), the membrane memory a sample at run time (neurons x state bits) and the
model file. Runs live in OUT/state-<K>/seed<S>; a finished run is not trained again, an
interrupted one resumes, so the command can be rerun until the table is complete.

    python benchmarks/state_bits_table.py --out runs/state-bits
    python benchmarks/state_bits_table.py --out runs/state-bits --config my_recipe.toml
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_training import command_line  # noqa: E402
from machine import machine_info, markdown_header, write_json  # noqa: E402

FLOAT = "float"
BAR_BITS, BAR_POINTS = 12, 0.5  # issue 14: 12-bit state within 0.5 points of float state
FIXED = {"dataset": "ndigits", "quantizer": "sigmoid", "bits": 1}


def parse_width(text: str) -> str | int:
    if text == FLOAT:
        return FLOAT
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a state width is 'float' or an integer, got {text!r}") from None


def parse_setting(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE read as TOML (numbers, true/false, strings, lists)."""
    from spikequant.train.config_file import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE (e.g. epochs=20), got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word: a string
    return key.strip().replace("-", "_"), parsed


def run_dir(out: Path, width: str | int, seed: int) -> Path:
    return out / f"state-{width}" / f"seed{seed}"


def base_settings(args: argparse.Namespace) -> dict[str, Any]:
    from spikequant.train.config import load_config_file

    values = load_config_file(args.config) if args.config else {}
    values.update(dict(args.set or []))
    fixed = set(FIXED) | {"seed", "state_bits", "out", "resume"}
    clash = sorted(fixed & set(values))
    if clash:
        raise ValueError(f"{', '.join(clash)} are set by the table itself; drop them from "
                         "--config / --set")
    if args.data_dir:
        values["data_dir"] = args.data_dir
    return values


def config_for(args: argparse.Namespace, width: str | int, seed: int):
    from spikequant.train import TrainConfig

    values = {**base_settings(args), **FIXED, "seed": seed,
              "state_bits": None if width == FLOAT else width,
              "out": str(run_dir(Path(args.out), width, seed)), "resume": True,
              "progress": args.progress}
    return TrainConfig.from_dict(values, source="the table's settings")


def finished(path: Path, epochs: int) -> dict[str, Any] | None:
    metrics = path / "metrics.json"
    if not metrics.is_file():
        return None
    data = json.loads(metrics.read_text())
    return data if data.get("finished") and data.get("epochs") == epochs else None


def train_all(args: argparse.Namespace) -> dict[tuple[str | int, int], dict[str, Any]]:
    from spikequant.train import fit

    results = {}
    for width in args.state_bits:
        for seed in args.seeds:
            cfg = config_for(args, width, seed)
            done = finished(Path(cfg.out), cfg.epochs)
            if done is None:
                print(f"[state_bits_table] training state {width}, seed {seed} -> {cfg.out}",
                      file=sys.stderr, flush=True)
                done = fit(cfg)
            results[(width, seed)] = done
    return results


def neurons_per_sample(args: argparse.Namespace) -> int:
    """Neurons of the trained network (one membrane potential each, per sample in flight)."""
    import torch

    from spikequant.snn import BaseLIF
    from spikequant.train.run import build_model

    cfg = config_for(args, FLOAT, args.seeds[0])
    model = build_model(cfg).eval()
    count = 0

    def hook(module, inputs, output):
        nonlocal count
        count += output[0, 0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, BaseLIF)]
    with torch.no_grad():
        model(torch.zeros(1, 1, *model.input_shape))  # one time step of one sample
    for h in handles:
        h.remove()
    return count


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(args: argparse.Namespace, results: dict) -> dict[str, Any]:
    neurons = neurons_per_sample(args)
    rows = []
    float_test = None
    for width in args.state_bits:
        runs = [results[(width, s)] for s in args.seeds]
        test = [100 * r["test_accuracy"] for r in runs]
        best = [100 * r["best_test_accuracy"] for r in runs if r.get("best_test_accuracy")
                is not None]
        bits = 32 if width == FLOAT else width
        row = {"state": width, "seeds": list(args.seeds), "test_accuracy": test,
               "test_mean": _mean_std(test)[0], "test_std": _mean_std(test)[1],
               "best_test_mean": _mean_std(best)[0] if best else None,
               "best_test_std": _mean_std(best)[1] if best else None,
               "membrane_bytes_per_sample": neurons * bits / 8,
               "model_file_bytes": statistics.mean(r["model_bytes_quantized"] for r in runs),
               "train_seconds": sum(r["train_seconds"] for r in runs)}
        if width == FLOAT:
            float_test = test
        rows.append(row)
    for row in rows:
        if float_test is not None and row["state"] != FLOAT:
            row["drop_points"] = statistics.mean(float_test) - row["test_mean"]
            row["paired_drops"] = [f - t for f, t in zip(float_test, row["test_accuracy"])]
    settings = {"fixed": FIXED, "seeds": list(args.seeds), "state_bits": list(args.state_bits),
                "settings": base_settings(args), "neurons_per_sample": neurons,
                "command": command_line(), "out": args.out}
    return {"settings": settings, "machine": machine_info("cpu"), "rows": rows}


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    changed = ", ".join(f"{k}={v}" for k, v in s["settings"].items()) or "none"
    lines = [f"#### ndigits: binary weights (sigmoid, 1 bit) with float and fixed-point neuron "
             f"state, seeds {', '.join(map(str, s['seeds']))}", "",
             markdown_header(result, s["command"]), "",
             f"Settings: `spikequant train` defaults; changed: {changed}.", "",
             "| neuron state | test accuracy, final epoch (%) | drop vs float state (pts) "
             "| best.pt test accuracy (%) | membrane a sample | model file |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        name = "float (32-bit)" if r["state"] == FLOAT else f"{r['state']}-bit fixed point"
        drop = "—" if "drop_points" not in r else f"{r['drop_points']:+.2f}"
        best = "—" if r["best_test_mean"] is None else (
            f"{r['best_test_mean']:.2f} ± {r['best_test_std']:.2f}")
        lines.append(f"| {name} | {r['test_mean']:.2f} ± {r['test_std']:.2f} | {drop} | {best} "
                     f"| {_kib(r['membrane_bytes_per_sample'])} | "
                     f"{_kib(r['model_file_bytes'])} |")
    lines += ["", "Mean ± sample standard deviation over the seeds; drop = float state's mean "
              "minus this row's (positive: worse). Membrane a sample: "
              f"{s['neurons_per_sample']:,} neurons x the state width (the membrane potentials "
              "held for each sample in flight); model file: the packed file `spikequant export` "
              "writes (weights at 1 bit, plus the integer neuron parameters with fixed-point "
              "state)."]
    bar = next((r for r in result["rows"] if r["state"] == BAR_BITS and "drop_points" in r), None)
    if bar is not None:
        verdict = "yes" if bar["drop_points"] <= BAR_POINTS else "NO"
        lines.append(f"\n{BAR_BITS}-bit state against float state: {bar['drop_points']:+.2f} "
                     f"points (bar: within {BAR_POINTS}): {verdict}.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train ndigits with binary weights and float / fixed-point neuron state "
        "over seeds (spikequant train's defaults otherwise) and print the README table: test "
        "accuracy mean ± std, drop against float state, run-time memory. Rerunning skips "
        "finished runs and resumes interrupted ones.")
    p.add_argument("--out", default="runs/state-bits", help="folder of the runs "
                   "(default runs/state-bits)")
    p.add_argument("--state-bits", nargs="+", type=parse_width,
                   default=[FLOAT, 16, 12, 8], metavar="K",
                   help="state widths, 'float' for float state (default: float 16 12 8)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="default 0 1 2")
    p.add_argument("--config", help="TOML file whose [train] table changes the defaults "
                   "(as spikequant train --config)")
    p.add_argument("--set", action="append", type=parse_setting, metavar="KEY=VALUE",
                   help="change one training setting, e.g. --set epochs=20 --set lr=2e-3 "
                   "(repeatable; TOML values)")
    p.add_argument("--data-dir", help="dataset folder (default: spikequant's)")
    p.add_argument("--progress", action="store_true", help="progress bars while training")
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = train_all(args)
    result = summarize(args, results)
    print(markdown(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
