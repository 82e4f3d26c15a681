"""Training step time and peak memory of the study's networks, spikequant beside its peers.

One training step = forward + backward + optimizer step (MSE loss on the voting rates, as the
study's configs) on a fixed random spike batch [T, B, C, H, W]. Every contender, ours and the
peers', gets the optimizer `spikequant train` builds (`train.optim.make_optimizer` with the
default TrainConfig: Adam, lr 1e-3, fused=True where torch has a fused Adam for the device).
Contenders:

    spikequant-float      spikequant.models.build(network)                      (quantizer none)
    spikequant-sigmoid1b  spikequant.models.build(network, quantizer="sigmoid", bits=1)
    spikequant-sigmoid2b, spikequant-sigmoid4b   the same at 2 and 4 bits
    spikequant-sigmoid2b-torchops, ...-4b-torchops   the same with SPIKEQUANT_KERNELS=torch
                          (the torch ops instead of the compiled kernels)
    spikingjelly-float    the same network from SpikingJelly 2.0 multi-step layers + PLIF
    snntorch-brevitas1b   snnTorch Leaky neurons + Brevitas binary QuantConv2d / QuantLinear

Each contender runs in its own worker process (so its peak RSS / CUDA memory is its own) and
the parent times them round-robin, one step each per round, rotating the order: load from
other processes on the machine then slows every contender alike, and the ratios hold.

    python benchmarks/bench_training.py --network nmnist --batch 4 --time-steps 4
    python benchmarks/bench_training.py --network dvsgesture --batch 16 --time-steps 20 \
        --device cuda --amp --json dvs.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from machine import (  # noqa: E402
    add_threads_option,
    machine_info,
    markdown_header,
    peak_rss_kib,
    reset_peak_rss,
    rss_kib,
    set_threads,
)

CONTENDERS = ("spikequant-float", "spikequant-sigmoid1b", "spikingjelly-float",
              "snntorch-brevitas1b", "spikequant-sigmoid2b", "spikequant-sigmoid4b",
              "spikequant-sigmoid2b-torchops", "spikequant-sigmoid4b-torchops")
DEFAULT_CONTENDERS = CONTENDERS[:4]
REFERENCE = "spikingjelly-float"
REPLY = "@@bench "  # worker replies start with this; anything else on stdout is passed through


# ----------------------------------------------------------------------------- worker side


def check_contender(name: str) -> None:
    if name not in CONTENDERS:
        raise ValueError(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}")


def build_contender(name: str, network: str):
    """The network of contender `name` (one of CONTENDERS), in spikequant's default setup."""
    check_contender(name)
    if name.startswith("spikequant-"):
        from spikequant.models import build

        if name == "spikequant-float":
            return build(network, quantizer="none")
        bits = int(name.removeprefix("spikequant-sigmoid").split("b")[0])
        return build(network, quantizer="sigmoid", bits=bits)
    from peers import build_peer

    if name == "spikingjelly-float":
        return build_peer("spikingjelly", network)
    if name == "snntorch-brevitas1b":
        return build_peer("snntorch-brevitas", network)
    raise AssertionError(f"no builder for contender {name!r}")


def make_optimizer(model):
    """The optimizer `spikequant train` builds with its default config, for any contender."""
    from spikequant.train import TrainConfig
    from spikequant.train.optim import make_optimizer as trainer_optimizer

    return trainer_optimizer(model, TrainConfig())


def optimizer_name(optimizer) -> str:
    fused = optimizer.defaults.get("fused")
    return f"{type(optimizer).__name__}(lr={optimizer.defaults['lr']:g}, fused={bool(fused)})"


def input_shape(network: str) -> tuple[int, int, int]:
    """(C, H, W) of one frame of `network`'s dataset."""
    from spikequant.models import MODELS

    if network in MODELS:
        return tuple(MODELS[network].input_shape)
    from peers import spec_for

    return spec_for(network).input_shape


def make_batch(network: str, batch: int, steps: int, classes: int, device, seed: int = 0):
    """A reproducible random spike batch (10 % of the pixels active) and labels."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(steps, batch, *input_shape(network), generator=gen) < 0.1).float()
    y = torch.randint(0, classes, (batch,), generator=gen)
    return x.to(device), y.to(device)


class Worker:
    """One contender: the network, an optimizer and a batch, ready to take steps."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        if args.mallopt:  # every contender alike, before its first large tensor
            from spikequant import keep_freed_memory

            keep_freed_memory()
        torch.manual_seed(args.seed)
        torch.backends.cudnn.benchmark = True  # every contender alike; no effect on CPU
        self.torch = torch
        self.device = torch.device(args.device)
        self.amp = args.amp
        model = build_contender(args.worker, args.network).to(self.device).train()
        if args.temperature is not None:  # the sigmoid quantizers' T (the run's start: 1)
            from spikequant.quant import set_temperature

            set_temperature(model, args.temperature)
        self.model = model
        self.optimizer = make_optimizer(model)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        classes = self._classes(args)
        self.x, self.y = make_batch(args.network, args.batch, args.time_steps, classes,
                                    self.device, args.seed)
        self.target = torch.nn.functional.one_hot(self.y, classes).float()
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.baseline_rss = rss_kib("VmRSS") or 0
        self.peak_reset = reset_peak_rss()
        self.params = sum(p.numel() for p in model.parameters())

    def _classes(self, args: argparse.Namespace) -> int:
        with self.torch.no_grad():
            probe = self.torch.zeros(1, 1, *input_shape(args.network), device=self.device)
            return int(self.model(probe).shape[-1])

    def step(self) -> tuple[float, float]:
        """One training step; (wall time, this process's CPU time) in ms."""
        torch = self.torch
        if self.cuda:
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            rates = self.model(self.x)
        loss = torch.nn.functional.mse_loss(rates.float(), self.target)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3, (time.process_time() - cpu_start) * 1e3

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "params": self.params,
            "peak_rss_mib": peak_rss_kib() / 1024,
            "baseline_rss_mib": self.baseline_rss / 1024,
            "peak_rss_reset": self.peak_reset,
            "optimizer": optimizer_name(self.optimizer),
        }
        if self.cuda:
            out["cuda_peak_allocated_mib"] = self.torch.cuda.max_memory_allocated() / 2**20
        return out


def serve(args: argparse.Namespace) -> int:
    """Worker loop: read commands on stdin ('step', 'stats', 'quit'), reply on stdout."""
    if args.sj_impl and args.worker == "spikingjelly-float":
        os.environ["SJ_PLIF_CUDA_IMPLEMENTATION"] = args.sj_impl
    if args.worker.endswith("-torchops"):
        os.environ["SPIKEQUANT_KERNELS"] = "torch"

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(REPLY + json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        worker = Worker(args)
    except Exception as err:  # noqa: BLE001 - report any build failure as the row's result
        reply({"error": f"{type(err).__name__}: {err}"})
        return 1
    reply({"ready": True})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "step":
            wall, cpu = worker.step()
            reply({"ms": wall, "cpu_ms": cpu})
        elif cmd == "stats":
            reply(worker.stats())
        elif cmd == "quit":
            break
    return 0


# ----------------------------------------------------------------------------- parent side


class WorkerProcess:
    """Parent's handle on one worker process."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
               *_forwarded(args)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        if args.thp:  # read once by torch's CPU allocator, so it must be set before start
            env["THP_MEM_ALLOC_ENABLE"] = "1"
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.error: str | None = None
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def ask(self, command: str | None) -> dict[str, Any]:
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
            sys.stderr.write(line)
        return {"error": f"worker exited with code {self.proc.wait()}"}

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            self.proc.wait(timeout=60)


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = ["--network", args.network, "--batch", str(args.batch), "--settle", str(args.settle),
           "--time-steps", str(args.time_steps), "--device", args.device,
           "--seed", str(args.seed)]
    if args.amp:
        out.append("--amp")
    if args.threads:
        out += ["--threads", str(args.threads)]
    if args.sj_impl:
        out += ["--sj-impl", args.sj_impl]
    if args.mallopt:
        out.append("--mallopt")
    if args.temperature is not None:
        out += ["--temperature", str(args.temperature)]
    return out


def _start(names: list[str], args: argparse.Namespace) -> list[WorkerProcess]:
    workers = [WorkerProcess(n, args) for n in names]
    for w in workers:
        reply = w.ask(None)
        w.error = reply.get("error")
    return workers


def _run_round(workers: list[WorkerProcess], offset: int, record: bool,
               settle: int = 0) -> None:
    """One turn per live worker: `settle` untimed steps, then one step (timed if `record`)."""
    live = [w for w in workers if w.error is None]
    for i in range(len(live)):
        w = live[(i + offset) % len(live)]
        for _ in range(settle):
            w.ask("step")
        reply = w.ask("step")
        if "error" in reply:
            w.error = reply["error"]
        elif record:
            w.times.append(reply["ms"])
            w.cpu_times.append(reply["cpu_ms"])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every contender round-robin; the results as a JSON-able dict."""
    names = args.contenders.split(",") if args.contenders else list(DEFAULT_CONTENDERS)
    for name in names:
        try:
            check_contender(name)
        except ValueError as err:
            raise SystemExit(str(err)) from None
    workers = _start([n for n in names for _ in range(args.processes)], args)
    try:
        for r in range(args.warmup):
            _run_round(workers, r, record=False)
        for r in range(args.repeats):
            _run_round(workers, r, record=True, settle=args.settle)
        stats = [w.ask("stats") if w.error is None else {} for w in workers]
    finally:
        for w in workers:
            w.close()
    rows = []
    for name in names:  # a contender's processes pooled: each process's allocator differs
        mine = [(w, st) for w, st in zip(workers, stats) if w.name == name]
        times = [t for w, _ in mine for t in w.times]
        cpu_times = [t for w, _ in mine for t in w.cpu_times]
        error = next((w.error for w, _ in mine if w.error), None)
        row: dict[str, Any] = {"contender": name, "error": error, **mine[0][1],
                               "processes": len(mine)}
        if len(mine) > 1 and error is None:
            row["peak_rss_mib"] = max(st["peak_rss_mib"] for _, st in mine)
            row["ms_median_by_process"] = [statistics.median(w.times) for w, _ in mine]
        if times and error is None:
            row["ms_median"] = statistics.median(times)
            row["ms_min"] = min(times)
            row["ms_all"] = times
            row["cpu_ms_median"] = statistics.median(cpu_times)
            row["cpu_ms_all"] = cpu_times
            row["samples_per_s"] = args.batch / (row["ms_median"] / 1e3)
        rows.append(row)
    ref = next((r for r in rows if r["contender"] == REFERENCE and "ms_median" in r), None)
    for row in rows:
        if ref is not None and "ms_median" in row:
            for key in ("ms_median", "ms_min", "cpu_ms_median"):
                row[f"{key}_vs_spikingjelly"] = row[key] / ref[key]
    return {"settings": _settings(args), "machine": machine_info(args.device), "rows": rows}


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"network": args.network, "batch": args.batch, "time_steps": args.time_steps,
            "repeats": args.repeats, "warmup": args.warmup, "settle": args.settle,
            "processes": args.processes, "temperature": args.temperature,
            "device": args.device,
            "amp": args.amp, "threads": args.threads,
            "thp": args.thp, "mallopt": args.mallopt,
            "sj_impl": args.sj_impl or "auto", "command": command_line()}


def command_line() -> str:
    rel = os.path.relpath(Path(sys.argv[0]).resolve(), Path.cwd())
    return " ".join(["python", rel, *sys.argv[1:]])


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "—" if value is None else format(value, spec) + suffix


def _ratios(row: dict[str, Any]) -> str:
    keys = ("ms_median", "ms_min", "cpu_ms_median")
    if f"{keys[0]}_vs_spikingjelly" not in row:
        return "—"
    return " / ".join(f"{row[f'{k}_vs_spikingjelly']:.2f}x" for k in keys)


def _processes_text(settings: dict[str, Any]) -> str:
    n = settings.get("processes", 1)
    return f", in each of {n} processes a contender" if n > 1 else ""


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    cuda = s["device"].startswith("cuda")
    mem_cols = ("CUDA max allocated MiB",) if cuda else ("peak RSS MiB", "RSS growth MiB")
    title = (f"Training step, {s['network']}, batch {s['batch']}, T={s['time_steps']}, "
             f"{s['device']}{' AMP' if s['amp'] else ''} (median of {s['repeats']} after "
             f"{s['warmup']} warm-up{_processes_text(s)})")
    lines = [f"#### {title}", "", markdown_header(result, s["command"]), "",
             "| contender | ms/step | min ms | CPU ms | samples/s | vs SpikingJelly float "
             "(median / min / CPU) | " + " | ".join(mem_cols) + " |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(mem_cols)]
    for r in result["rows"]:
        if r.get("error"):
            lines.append(f"| {r['contender']} | failed: {r['error']} |")
            continue
        mem = ([_fmt(r.get("cuda_peak_allocated_mib"), ".0f")] if cuda else
               [_fmt(r.get("peak_rss_mib"), ".0f"),
                _fmt(r["peak_rss_mib"] - r["baseline_rss_mib"], ".0f")])
        lines.append(
            f"| {r['contender']} | {_fmt(r.get('ms_median'), '.1f')} | "
            f"{_fmt(r.get('ms_min'), '.1f')} | {_fmt(r.get('cpu_ms_median'), '.0f')} | "
            f"{_fmt(r.get('samples_per_s'), '.2f')} | {_ratios(r)} | " + " | ".join(mem) + " |"
        )
    lines += ["", "ms/step: wall time of one step, median over the timed rounds; CPU ms: the "
              "contender process's CPU time for it (all its threads), less sensitive to other "
              "load; RSS growth: peak RSS during the steps less RSS after building the model "
              "and batch. " + optimizer_note(result["rows"])]
    return "\n".join(lines)


def optimizer_note(rows: list[dict[str, Any]]) -> str:
    used = {r["contender"]: r["optimizer"] for r in rows if r.get("optimizer")}
    if len(set(used.values())) == 1:
        return (f"Optimizer, the same for every contender (what `spikequant train` builds): "
                f"{next(iter(used.values()))}.")
    return "Optimizers (differ by device support): " + "; ".join(
        f"{name} {opt}" for name, opt in used.items()) + "."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time one training step (forward + backward + Adam) of a study network "
        "for spikequant (float and binary sigmoid), SpikingJelly and snnTorch+Brevitas, "
        "side by side, with their peak memory. Every contender gets the optimizer "
        "`spikequant train` builds (Adam, lr 1e-3, fused where torch supports it). Prints a "
        "markdown table.")
    p.add_argument("--network", default="nmnist",
                   help="nmnist, dvsgesture or cifar10dvs (peers exist for these); any "
                        "spikequant network name with --contenders limited to spikequant-*")
    p.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    p.add_argument("--time-steps", type=int, default=4, help="time steps T (default 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per contender")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per contender first")
    p.add_argument("--temperature", type=float, default=None,
                   help="set the sigmoid quantizers' temperature T (default: the start of a "
                        "run, T = 1; late in training T reaches 1000)")
    p.add_argument("--processes", type=int, default=1,
                   help="worker processes a contender, their steps pooled: a step's time "
                        "depends on how the process's allocator happens to lay out memory, "
                        "by up to ~10 %% on the CPU, so one process a contender is one draw")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--amp", action="store_true",
                   help="float16 autocast + GradScaler (CUDA only, as `spikequant train --amp`)")
    p.add_argument("--thp", action="store_true",
                   help="THP_MEM_ALLOC_ENABLE=1 for every contender: torch backs large CPU "
                        "tensors with 2 MiB pages, far fewer page faults per step")
    p.add_argument("--mallopt", action="store_true",
                   help="for every contender, what `spikequant` does when it starts "
                        "(spikequant.keep_freed_memory): glibc keeps freed large "
                        "buffers for reuse, so a step's fresh full-size tensors fault no pages")
    p.add_argument("--contenders", default="",
                   help=f"comma-separated subset of {','.join(CONTENDERS)} (default "
                        f"{','.join(DEFAULT_CONTENDERS)})")
    p.add_argument("--sj-impl", default="", choices=["", "auto", "cuda", "triton", "torch"],
                   help="SpikingJelly PLIF implementation on CUDA (sets "
                        "SJ_PLIF_CUDA_IMPLEMENTATION; default auto = its fastest available)")
    add_threads_option(p)
    p.add_argument("--settle", type=int, default=0,
                   help="untimed steps at the start of each contender's turn, before its "
                        "timed step (default 0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="also write the full results (every step "
                   "time) to this JSON file")
    p.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.amp and not args.device.startswith("cuda"):
        p.error("--amp needs --device cuda (CPU autocast is not what the study's runs use)")
    if min(args.batch, args.time_steps, args.repeats) < 1 or args.warmup < 0:
        p.error("--batch, --time-steps and --repeats must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.worker:
        return serve(args)
    result = measure(args)
    print(markdown(result))
    if args.json:
        from machine import write_json

        write_json(args.json, result)
    return 0 if all(not r.get("error") for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
