"""One short run that checks and times spikequant on a GPU, for when one is at hand.

    bash benchmarks/gpu_check.sh [--out gpu_check.md]     # one CUDA GPU, about 5-8 minutes
    bash benchmarks/gpu_check.sh --dry-run                # every step on the CPU, tiny sizes

Steps (each in its own process; a failing step is reported and the run goes on):

1. environment: Python, torch (CUDA build? which GPU?), triton, SpikingJelly, the checkout.
   Nothing is installed: the checkout is used from `src/` (PYTHONPATH), so a machine without
   internet works, given a CUDA torch and triton (a CUDA torch ships with one).
2. kernel tests: `tests/kernels/test_kernels_triton.py` (the Triton neuron and quantizer against the
   torch implementations) compiled on CUDA; with --dry-run under Triton's interpreter.
3. kernel parity and speed at the study's shapes (`benchmarks/kernel_parity.py`): the fused
   neuron (PLIF as the study's networks use it) and the binary / 3-bit quantizers, Triton
   against torch, forward + backward, and one line a kernel and shape class saying whether
   its first-use self-check against torch passed (the neuron also in bfloat16, as under AMP).
4. training step of the study's networks (batch 16; N-MNIST T=10, DVS128 Gesture and
   CIFAR10-DVS T=20) with AMP, for spikequant float, spikequant binary sigmoid and
   SpikingJelly (its automatic choice, the fastest backend it finds; skipped with a note where
   it is not installed): `benchmarks/bench_training.py`, peak CUDA memory included.

It writes one markdown report (`--out`) for BENCHMARKS.md. --dry-run runs every step except
the CUDA timing: kernels under the interpreter and the harness on the CPU at tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STUDY_NETWORKS = {"nmnist": 10, "dvsgesture": 20, "cifar10dvs": 20}
MODULES = ("numpy", "tqdm", "torch", "triton", "pytest", "spikingjelly")


def child_env(dry_run: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), str(HERE), env.get("PYTHONPATH", "")) if p)
    env["PYTHONWARNINGS"] = "ignore"
    if dry_run:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, float]:
    """(exit code, stdout + stderr, seconds) of a child; a timeout is exit code 124."""
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=timeout)
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        def text(b: Any) -> str:
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")

        code, out = 124, text(err.stdout) + text(err.stderr) + f"\n(timed out after {timeout} s)"
    return code, out, time.perf_counter() - start


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ------------------------------------------------------------------------- step 1: environment

PROBE = r"""
import importlib, json, platform, sys
from importlib import metadata
out = {"python": platform.python_version(), "modules": {}}
for name in sys.argv[1].split(","):
    try:
        mod = importlib.import_module(name)
        try:
            out["modules"][name] = metadata.version(name)
        except Exception:
            out["modules"][name] = getattr(mod, "__version__", "?")
    except Exception as err:
        out["modules"][name] = None
        out.setdefault("errors", {})[name] = f"{type(err).__name__}: {err}"
try:
    import torch
    out["cuda"] = torch.cuda.is_available()
    out["torch_cuda"] = torch.version.cuda
    if out["cuda"]:
        out["gpu"] = torch.cuda.get_device_name(0)
        out["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
except Exception:
    pass
try:
    import spikequant
    out["spikequant"] = spikequant.__file__
except Exception as err:
    out.setdefault("errors", {})["spikequant"] = f"{type(err).__name__}: {err}"
print("@@probe " + json.dumps(out))
"""


def probe_environment(env: dict[str, str]) -> dict[str, Any]:
    code, out, _ = run([sys.executable, "-c", PROBE, ",".join(MODULES)], env, 300)
    for line in out.splitlines():
        if line.startswith("@@probe "):
            return json.loads(line[len("@@probe "):])
    return {"errors": {"python": f"probe exited with {code}: {tail(out)}"}, "modules": {}}


def describe_environment(info: dict[str, Any]) -> list[str]:
    mods = info.get("modules", {})
    lines = [f"- Python {info.get('python', '?')}; " + ", ".join(
        f"{name} {mods.get(name) or 'MISSING'}" for name in MODULES)]
    if mods.get("torch"):
        gpu = info.get("gpu")
        where = f"{gpu} ({info.get('gpu_memory_gib')} GiB)" if gpu else "none"
        lines.append(f"- torch CUDA build: {info.get('torch_cuda') or 'no (CPU build)'}; "
                     f"GPU: {where}")
    for name, err in info.get("errors", {}).items():
        lines.append(f"- {name} does not import: {err}")
    if info.get("spikequant"):
        lines.append(f"- spikequant from {info['spikequant']}")
    return lines


# ------------------------------------------------------------------------ step 2: kernel tests


def kernel_tests(args: argparse.Namespace, env: dict[str, str], info: dict[str, Any]) -> list[str]:
    if not info["modules"].get("pytest"):
        return ["not run: pytest is not installed (step 3 still compares the kernels)"]
    cmd = [sys.executable, "-m", "pytest", "tests/kernels/test_kernels_triton.py", "-q", "-p",
           "no:cacheprovider", *args.pytest_args]
    code, out, took = run(cmd, env, args.step_timeout)
    verdict = "passed" if code == 0 else f"FAILED (exit code {code})"
    where = "CPU, Triton interpreter" if args.dry_run else "CUDA, compiled"
    return [f"`{' '.join(cmd[1:])}` ({where}): {verdict} in {took:.0f} s", "",
            "```", tail(out, 8 if code == 0 else 30), "```"]


# ------------------------------------------------------------- step 3: kernel parity and speed


def kernel_parity(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    device = "cpu" if args.dry_run else "cuda"
    cmd = [sys.executable, str(HERE / "kernel_parity.py"), "--device", device]
    if args.dry_run:
        cmd.append("--tiny")
    code, out, took = run(cmd, env, args.step_timeout)
    rows = [json.loads(line[len("@@parity "):]) for line in out.splitlines()
            if line.startswith("@@parity ")]
    lines = ["| case | torch ms | Triton ms | speed-up | spikes differing | largest relative "
             "difference |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        diffs = {k: v for k, v in r.items() if k.endswith("_max_rel_diff")}
        worst = max(diffs.items(), key=lambda kv: kv[1]) if diffs else ("—", 0.0)
        mismatch = f"{r['spike_mismatch']:.1e}" if "spike_mismatch" in r else "—"
        lines.append(f"| {r['case']} | {r['torch_ms']:.2f} | {r['triton_ms']:.2f} | "
                     f"{r['torch_ms'] / r['triton_ms']:.2f}x | {mismatch} | "
                     f"{worst[1]:.1e} ({worst[0].removesuffix('_max_rel_diff')}) |")
    checks = [json.loads(line[len("@@selfcheck "):]) for line in out.splitlines()
              if line.startswith("@@selfcheck ")]
    lines += ["", "First-use self-check of the kernels (spikequant.kernel_check; a kernel that "
              "fails it runs as torch, so its row above then compares torch with torch):", ""]
    lines += [f"- self-check {c['kernel']} on {c['device']} ({c['shape_class']}): "
              f"{'passed' if c['passed'] else 'FAILED: ' + c['detail']}" for c in checks]
    if not checks:
        lines.append("- self-check: no result reported")
    if code != 0:
        lines += ["", f"FAILED (exit code {code}) after {took:.0f} s:", "```", tail(out, 30),
                  "```"]
    return lines


# ------------------------------------------------------------------- step 4: training steps


def _times(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}x"


def step_timings(args: argparse.Namespace, env: dict[str, str],
                 info: dict[str, Any]) -> list[str]:
    contenders = ["spikequant-float", "spikequant-sigmoid1b"]
    notes = []
    if info["modules"].get("spikingjelly"):
        contenders.append("spikingjelly-float")
    else:
        notes.append("SpikingJelly is not installed here: its rows are missing "
                     "(`pip install --no-deps spikingjelly==2.0.0` adds them).")
    lines = ["| network | batch | T | contender | ms/step | min ms | vs SpikingJelly | "
             "vs spikequant float | CUDA peak MiB |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for network, steps in args.networks:
        cmd = [sys.executable, str(HERE / "bench_training.py"), "--network", network,
               "--batch", str(args.batch), "--time-steps", str(steps),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup),
               "--contenders", ",".join(contenders), "--json", str(args.json_dir /
                                                                  f"{network}.json")]
        if not args.dry_run:
            cmd += ["--device", "cuda"] + (["--amp"] if args.amp else [])
        code, out, took = run(cmd, env, args.step_timeout)
        print(f"[gpu_check] {network}: exit code {code} after {took:.0f} s", file=sys.stderr,
              flush=True)
        try:
            result = json.loads((args.json_dir / f"{network}.json").read_text())
        except (OSError, ValueError):
            lines.append(f"| {network} | {args.batch} | {steps} | failed (exit code {code}) "
                         f"| | | | | |")
            notes.append(f"{network}: {tail(out, 6)}")
            continue
        rows = {r["contender"]: r for r in result["rows"]}
        float_ms = rows.get("spikequant-float", {}).get("ms_median")
        for name, r in rows.items():
            if r.get("error") or "ms_median" not in r:
                lines.append(f"| {network} | {args.batch} | {steps} | {name} | failed: "
                             f"{r.get('error')} | | | | |")
                continue
            vs_sj = r.get("ms_median_vs_spikingjelly")
            vs_float = r["ms_median"] / float_ms if float_ms else None
            mem = r.get("cuda_peak_allocated_mib")
            lines.append(
                f"| {network} | {args.batch} | {steps} | {name} | {r['ms_median']:.1f} | "
                f"{r['ms_min']:.1f} | {_times(vs_sj)} | {_times(vs_float)} | "
                f"{'—' if mem is None else format(mem, '.0f')} |")
    return lines + ([""] + [f"- {n}" for n in notes] if notes else [])


# ------------------------------------------------------------------------------------ driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Check the Triton kernels against the torch "
                                "implementation on CUDA and time the study's training steps "
                                "(spikequant float / binary sigmoid / SpikingJelly, AMP); writes "
                                "one markdown report. --dry-run does every step on the CPU.")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU: kernels under Triton's interpreter, benchmarks on the CPU at "
                        "tiny sizes")
    p.add_argument("--out", default="gpu_check.md", help="markdown report (default "
                   "gpu_check.md)")
    p.add_argument("--networks", default="",
                   help="comma-separated NAME[:T] (default nmnist:10,dvsgesture:20,"
                        "cifar10dvs:20)")
    p.add_argument("--batch", type=int, default=0, help="batch size (default 16; dry run 1)")
    p.add_argument("--repeats", type=int, default=0, help="timed steps (default 20; dry run 1)")
    p.add_argument("--warmup", type=int, default=-1, help="untimed steps first (default 5; "
                   "dry run 1)")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="time in float32 instead of float16 autocast")
    p.add_argument("--skip", default="", help="comma-separated steps to skip: tests, parity, "
                   "timing")
    p.add_argument("--pytest-args", default="", help="extra arguments for the kernel tests, "
                   "e.g. \"-k quantizer\"")
    p.add_argument("--step-timeout", type=float, default=0, help="seconds per step before it "
                   "is stopped (default 240; dry run 600)")
    args = p.parse_args(argv)
    dry = args.dry_run
    args.batch = args.batch or (1 if dry else 16)
    args.repeats = args.repeats or (1 if dry else 20)
    args.warmup = args.warmup if args.warmup >= 0 else (1 if dry else 5)
    args.step_timeout = args.step_timeout or (600 if dry else 240)
    args.skip = {s for s in args.skip.split(",") if s}
    unknown = args.skip - {"tests", "parity", "timing"}
    if unknown:
        p.error(f"--skip takes tests, parity, timing; got {', '.join(sorted(unknown))}")
    networks = []
    for item in (args.networks.split(",") if args.networks else
                 [f"{n}:{t}" for n, t in STUDY_NETWORKS.items()]):
        name, _, steps = item.partition(":")
        networks.append((name, int(steps) if steps else (2 if dry else
                                                        STUDY_NETWORKS.get(name, 10))))
    if dry and not args.networks:
        networks = [(n, 2) for n, _ in networks]
    args.networks = networks
    args.pytest_args = shlex.split(args.pytest_args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    env = child_env(args.dry_run)
    out = Path(args.out)
    args.json_dir = out.parent / (out.stem + "_json")
    args.json_dir.mkdir(parents=True, exist_ok=True)
    mode = "dry run on the CPU (no CUDA timing)" if args.dry_run else "CUDA"
    command = "bash benchmarks/gpu_check.sh " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    info = probe_environment(env)
    title = info.get("gpu") or ("CPU dry run" if args.dry_run else "no GPU found")
    sections = [f"# spikequant GPU check: {title}", "",
                f"Command: `{command.strip()}` ({mode})  ",
                f"Date: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}", "", "## Environment", "",
                *describe_environment(info)]
    usable = bool(info["modules"].get("torch")) and "spikequant" in info
    if not usable:
        sections += ["", "Stopped: torch or the checkout does not import (above)."]
    elif not args.dry_run and not info.get("cuda"):
        usable = False
        sections += ["", "Stopped: torch sees no CUDA device. On a CPU machine run "
                     "`bash benchmarks/gpu_check.sh --dry-run`."]
    if usable and not info["modules"].get("triton"):
        sections += ["", "triton does not import: the Triton steps fail below, and "
                     "spikequant falls back to its torch implementation on CUDA."]
    steps = [("Kernel tests", "tests", lambda: kernel_tests(args, env, info)),
             ("Kernels against torch at the study's shapes", "parity",
              lambda: kernel_parity(args, env)),
             (f"Training step ({'AMP' if args.amp and not args.dry_run else 'float32'}; "
              f"median of {args.repeats} after {args.warmup} warm-up)", "timing",
              lambda: step_timings(args, env, info))]
    for title, key, step in steps if usable else []:
        print(f"[gpu_check] {title} ...", file=sys.stderr, flush=True)
        if key in args.skip:
            body = ["skipped (--skip)"]
        else:
            try:
                body = step()
            except Exception as err:  # noqa: BLE001 - report it and go on to the table
                body = [f"FAILED: {type(err).__name__}: {err}"]
        sections += ["", f"## {title}", "", *body]
    sections += ["", f"(wall time {time.perf_counter() - started:.0f} s)"]
    text = "\n".join(sections) + "\n"
    print(text)
    sys.path.insert(0, str(HERE))
    from machine import write_text

    write_text(out, text)
    shutil.rmtree(args.json_dir, ignore_errors=True)
    return 0 if usable and "FAILED" not in text else 1


if __name__ == "__main__":
    sys.exit(main())
