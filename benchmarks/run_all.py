"""Run every benchmark at its CPU size and print the markdown for BENCHMARKS.md (`make bench`).

Each benchmark runs as its own process; its markdown is collected in order. GPU rows are
listed with the command that measures them when no GPU is present (or with --device cuda
they are run).

    python benchmarks/run_all.py                 # CPU sizes, a few minutes on 2 cores
    python benchmarks/run_all.py --out bench.md  # also write the markdown to a file
    python benchmarks/run_all.py --device cuda   # the study's sizes on a GPU
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (title, script, arguments): the CPU sizes are small enough for 2 cores; they are stated in
# every table the scripts print. The training steps run with --mallopt, the allocator setting
# `spikequant` applies when it starts, given to every contender alike.
CPU_RUNS: list[tuple[str, str, list[str]]] = [
    ("Training step, N-MNIST network (CPU size)", "bench_training.py",
     ["--network", "nmnist", "--batch", "4", "--time-steps", "4", "--repeats", "7",
      "--warmup", "2", "--mallopt"]),
    ("Training step, DVS128 Gesture network (CPU size)", "bench_training.py",
     ["--network", "dvsgesture", "--batch", "2", "--time-steps", "4", "--repeats", "9",
      "--warmup", "2", "--mallopt"]),
    ("Training step, N-MNIST network (study size: batch 16, T=10)", "bench_training.py",
     ["--network", "nmnist", "--batch", "16", "--time-steps", "10", "--repeats", "5",
      "--warmup", "1", "--mallopt"]),
    ("Training step, N-MNIST network (issue 12 goal: batch 8, T=10)", "bench_training.py",
     ["--network", "nmnist", "--batch", "8", "--time-steps", "10", "--repeats", "9",
      "--warmup", "2", "--mallopt", "--contenders",
      "spikequant-float,spikequant-sigmoid1b,spikingjelly-float"]),
    ("`spikequant train` epochs end to end (ndigits)", "bench_epoch.py",
     ["--datasets", "ndigits", "--epochs", "3"]),
    ("Inference: packed file against fake-quant checkpoint", "bench_inference.py",
     ["--network", "nmnist", "--batch", "16", "--time-steps", "10"]),
    ("Integer-only inference: run-time memory against float", "bench_integer_infer.py",
     ["--network", "nmnist", "--batch", "16", "--time-steps", "10"]),
    ("Event-to-frame conversion", "bench_frames.py", []),
]
THREADED = ("bench_training.py", "bench_inference.py", "bench_integer_infer.py", "bench_epoch.py")

# The study's sizes, for a GPU.
CUDA_RUNS: list[tuple[str, str, list[str]]] = [
    ("Training step, N-MNIST network (study size, GPU)", "bench_training.py",
     ["--network", "nmnist", "--batch", "16", "--time-steps", "10", "--repeats", "20",
      "--warmup", "5", "--device", "cuda"]),
    ("Training step, DVS128 Gesture network (study size, GPU)", "bench_training.py",
     ["--network", "dvsgesture", "--batch", "16", "--time-steps", "20", "--repeats", "20",
      "--warmup", "5", "--device", "cuda"]),
    ("Training step, CIFAR10-DVS network (study size, GPU, AMP)", "bench_training.py",
     ["--network", "cifar10dvs", "--batch", "16", "--time-steps", "20", "--repeats", "20",
      "--warmup", "5", "--device", "cuda", "--amp"]),
]


def command(script: str, extra: list[str]) -> str:
    return " ".join(["python", f"benchmarks/{script}", *extra])


def run_one(title: str, script: str, extra: list[str]) -> str:
    path = HERE / script
    if not path.is_file():
        return f"### {title}\n\nnot run: benchmarks/{script} does not exist yet.\n"
    start = time.perf_counter()
    print(f"[run_all] {command(script, extra)}", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, str(path), *extra], capture_output=True, text=True,
                          cwd=HERE.parent)
    took = time.perf_counter() - start
    body = done.stdout.strip()
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        body += f"\n\n(exit code {done.returncode}; last lines of its stderr:)\n```\n{tail}\n```"
    return f"### {title}\n\n{body}\n\n(wall time {took:.0f} s)\n"


def not_measured(title: str, script: str, extra: list[str]) -> str:
    return (f"### {title}\n\nnot measured (no GPU on this machine). Measure with:\n\n"
            f"    {command(script, extra)}\n\nor everything a GPU run needs at once: "
            f"`bash benchmarks/gpu_check.sh`\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run spikequant's benchmarks and print markdown "
                                "tables (command, machine and date with each).")
    p.add_argument("--device", default="cpu", help="cpu (CPU sizes; GPU rows listed with "
                   "their commands) or cuda (the study's sizes on the GPU as well)")
    p.add_argument("--out", default="", help="also write the markdown to this file")
    p.add_argument("--only", default="", help="run only the benchmarks whose title "
                   "contains this text (case-insensitive)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads for the "
                   "benchmarks (default: one per core; 1 gives steadier numbers on a machine "
                   "that is busy with other work)")
    args = p.parse_args(argv)
    runs = [(r, True) for r in CPU_RUNS]
    runs += [(r, args.device.startswith("cuda")) for r in CUDA_RUNS]
    sections = []
    for (title, script, extra), measured in runs:
        if args.only and args.only.lower() not in title.lower():
            continue
        if args.threads and script in THREADED and measured and "--device" not in extra:
            extra = [*extra, "--threads", str(args.threads)]
        sections.append(run_one(title, script, extra) if measured
                        else not_measured(title, script, extra))
    text = "\n".join(sections)
    print(text)
    if args.out:
        from machine import write_text

        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
