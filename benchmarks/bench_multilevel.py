"""The training step of 2- and 4-bit sigmoid-quantized networks against the binary one, side by
side in one run.

    python benchmarks/bench_multilevel.py                      # N-MNIST network, batch 8, T=10
    python benchmarks/bench_multilevel.py --no-torch-ops --repeats 5

The contenders are bench_training.py's: spikequant-sigmoid1b (the binary kernel),
spikequant-sigmoid2b and -4b (the multi-level kernel, csrc/multilevel_sigmoid.c) and, unless
`--no-torch-ops`, the same two with SPIKEQUANT_KERNELS=torch (the quantizer's torch ops, what
ran before the kernel). Each runs in its own process, timed round-robin one step a round with
the order rotating (bench_training.measure), so load from elsewhere slows all alike. The table
gives each one's median step and its ratio to the binary step (wall and CPU time).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_training  # noqa: E402
from machine import markdown_header  # noqa: E402

BASELINE = "spikequant-sigmoid1b"
KERNEL_CONTENDERS = (BASELINE, "spikequant-sigmoid2b", "spikequant-sigmoid4b")
TORCH_CONTENDERS = ("spikequant-sigmoid2b-torchops", "spikequant-sigmoid4b-torchops")


def ratios_to_binary(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each contender's median wall and CPU ms over the binary contender's."""
    rows = {r["contender"]: r for r in result["rows"] if "ms_median" in r}
    if BASELINE not in rows:
        return {}
    base = rows[BASELINE]
    return {name: {"wall": r["ms_median"] / base["ms_median"],
                   "cpu": r["cpu_ms_median"] / base["cpu_ms_median"]}
            for name, r in rows.items()}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    ratios = ratios_to_binary(result)
    temperature = s.get("temperature")
    lines = [f"#### Multi-level sigmoid quantizer, training step, {s['network']}, batch "
             f"{s['batch']}, T={s['time_steps']} time steps, quantizer temperature "
             f"{1 if temperature is None else temperature:g}, {s['device']} (median of "
             f"{s['repeats']} "
             f"after {s['warmup']} warm-up{bench_training._processes_text(s)})", "",
             markdown_header(result, s["command"]), "",
             "| contender | ms/step | CPU ms | vs binary (wall) | vs binary (CPU) |",
             "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        name = r["contender"]
        if r.get("error") or name not in ratios:
            lines.append(f"| {name} | failed: {r.get('error')} | | | |")
            continue
        lines.append(f"| {name} | {r['ms_median']:.1f} | {r['cpu_ms_median']:.0f} | "
                     f"{ratios[name]['wall']:.2f}x | {ratios[name]['cpu']:.2f}x |")
    lines += ["", "-torchops: the same network with SPIKEQUANT_KERNELS=torch (the quantizer's "
              "torch ops; the neuron too). " + bench_training.optimizer_note(result["rows"])]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--network", default="nmnist", help="the study's network to time")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--time-steps", type=int, default=10, help="time steps T")
    p.add_argument("--repeats", type=int, default=9, help="timed rounds")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--processes", type=int, default=1,
                   help="worker processes a contender, their steps pooled")
    p.add_argument("--temperature", type=float, default=None,
                   help="the quantizers' temperature T (default 1, a run's start; the 2- and "
                        "4-bit kernels take one exp a weight while T * max|b_i| <= 40)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads a contender (0: torch's default)")
    p.add_argument("--no-torch-ops", action="store_true",
                   help="leave out the torch-ops contenders (they take seconds a step)")
    p.add_argument("--json", default="", help="also write the full results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    contenders = KERNEL_CONTENDERS + (() if args.no_torch_ops else TORCH_CONTENDERS)
    forwarded = ["--network", args.network, "--batch", str(args.batch), "--time-steps",
                 str(args.time_steps), "--repeats", str(args.repeats), "--warmup",
                 str(args.warmup), "--processes", str(args.processes),
                 "--contenders", ",".join(contenders)]
    if args.threads:
        forwarded += ["--threads", str(args.threads)]
    if args.temperature is not None:
        forwarded += ["--temperature", str(args.temperature)]
    bench_args = bench_training.parse_args(forwarded)
    result = bench_training.measure(bench_args)
    result["settings"]["command"] = bench_training.command_line()
    result["ratios_to_binary"] = ratios_to_binary(result)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
