"""Where spikequant's training step spends its time: the whole step, then each part alone.

Parts, each timed alone (forward + backward where it has one) on the shapes the step uses:
    optimizer   the optimizer step `spikequant train` takes (fused Adam where supported)
    quantizers  every weight quantizer on its float weight
    neurons     every spiking neuron on a random input of its layer's shape
    rest        step - (the three above): conv / linear / batch norm / pooling / autograd
The parts are timed interleaved with the whole step, so machine load hits all alike.

    python benchmarks/profile_step.py --network nmnist --batch 4 --time-steps 4
    python benchmarks/profile_step.py --quantizer sigmoid --torch-profile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_training import command_line, make_batch, make_optimizer  # noqa: E402
from machine import add_threads_option, machine_info, markdown_header, set_threads  # noqa: E402


def _timer(fn: Callable[[], object]) -> Callable[[], float]:
    def timed() -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    return timed


def make_parts(args: argparse.Namespace) -> dict[str, Callable[[], float]]:
    import torch

    from spikequant.models import build
    from spikequant.quant import float_weight, quantized_layers
    from spikequant.snn import BaseLIF

    torch.manual_seed(args.seed)
    model = build(args.network, quantizer=args.quantizer, bits=args.bits).train()
    opt = make_optimizer(model)
    x, y = make_batch(args.network, args.batch, args.time_steps, model.num_classes, "cpu")
    target = torch.nn.functional.one_hot(y, model.num_classes).float()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), target).backward()
        opt.step()

    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.__setitem__(m, i[0].shape))
             for m in model.modules() if isinstance(m, BaseLIF)]
    step()
    for h in hooks:
        h.remove()
    neuron_inputs = {m: torch.randn(s) * 1.5 + 0.5 for m, s in shapes.items()}

    def neurons() -> None:
        for m, inp in neuron_inputs.items():
            inp = inp.requires_grad_(True)
            m(inp).sum().backward()
            inp.grad = None

    layers = [(q, float_weight(layer)) for _, layer, q in quantized_layers(model)]

    def quantizers() -> None:
        for q, w in layers:
            q(w).sum().backward()

    return {"step": _timer(step), "optimizer": _timer(opt.step), "neurons": _timer(neurons),
            "quantizers": _timer(quantizers), "_model": model, "_step": step}


def measure(args: argparse.Namespace) -> dict:
    parts = make_parts(args)
    model, step = parts.pop("_model"), parts.pop("_step")
    times: dict[str, list[float]] = {k: [] for k in parts}
    for r in range(args.warmup + args.repeats):
        for name, fn in parts.items():
            ms = fn()
            if r >= args.warmup:
                times[name].append(ms)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["rest"] = med["step"] - med["optimizer"] - med["neurons"] - med["quantizers"]
    if args.torch_profile:
        print_profile(step)
    return {"settings": {"network": args.network, "quantizer": args.quantizer,
                         "bits": args.bits, "batch": args.batch,
                         "time_steps": args.time_steps, "repeats": args.repeats,
                         "command": command_line(),
                         "params": sum(p.numel() for p in model.parameters())},
            "machine": machine_info("cpu"), "median_ms": med, "all_ms": times}


def print_profile(step: Callable[[], None]) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20),
          file=sys.stderr)


def markdown(result: dict) -> str:
    s, med = result["settings"], result["median_ms"]
    quant = "float" if s["quantizer"] == "none" else f"{s['quantizer']} {s['bits']}-bit"
    lines = [f"#### Step profile, {s['network']} {quant}, batch {s['batch']}, "
             f"T={s['time_steps']}, cpu (median of {s['repeats']})", "",
             markdown_header(result, s["command"]), "",
             "| part | ms | share of step |", "|---|---:|---:|"]
    for name in ("step", "optimizer", "quantizers", "neurons", "rest"):
        lines.append(f"| {name} | {med[name]:.1f} | {med[name] / med['step']:.0%} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Break spikequant's training step down into "
                                "optimizer, weight quantizers, neurons and the rest.")
    p.add_argument("--network", default="nmnist")
    p.add_argument("--quantizer", default="sigmoid", help="none, sigmoid, ste, ...")
    p.add_argument("--bits", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--time-steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-profile", action="store_true",
                   help="also print torch.profiler's top operators (to stderr)")
    p.add_argument("--mallopt", action="store_true",
                   help="keep freed large buffers for reuse, as `spikequant` does when it "
                        "starts (spikequant.keep_freed_memory)")
    add_threads_option(p)
    args = p.parse_args(argv)
    if args.mallopt:
        from spikequant import keep_freed_memory

        keep_freed_memory()
    set_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> int:
    print(markdown(measure(parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
