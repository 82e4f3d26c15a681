"""Inference from the packed model file against the fake-quant training checkpoint.

Both hold the same binary network: the checkpoint as the float weights plus their quantizers,
the packed file as bit-packed codes and scales (`spikequant.export`), loaded into a plain
float network. The script writes both files for a freshly built network (or takes a trained
checkpoint), checks that they give the same scores, and times file size, load time and
evaluation throughput. Both are evaluated the way `spikequant eval` and `spikequant infer` do,
with `spikequant.train.evaluate` (no_grad, eval mode, the checkpoint's weights quantized once
per evaluation under `parametrize.cached()`), over the same in-memory batches; the sources
take turns so machine load hits both alike.

    python benchmarks/bench_inference.py --network nmnist --batch 16 --time-steps 10
    python benchmarks/bench_inference.py --checkpoint runs/nmnist/sigmoid-1b/last.pt
"""

from __future__ import annotations

import argparse
import statistics
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
    set_threads,
    write_json,
)


def write_files(args: argparse.Namespace, folder: Path) -> tuple[Path, Path, str]:
    """(checkpoint, packed file, network name) in `folder`."""
    import torch

    from spikequant.export import save_packed
    from spikequant.train.checkpoint import (
        CHECKPOINT_VERSION,
        atomic_torch_save,
        model_from_checkpoint,
    )

    if args.checkpoint:
        ckpt_path = Path(args.checkpoint)
        model = model_from_checkpoint(ckpt_path)
    else:
        from spikequant.models import build

        torch.manual_seed(args.seed)
        model = build(args.network, quantizer=args.quantizer, bits=args.bits).eval()
        ckpt_path = folder / "model.pt"
        atomic_torch_save({"version": CHECKPOINT_VERSION, "model_config": model.config,
                           "model": model.state_dict()}, ckpt_path)
    packed_path = folder / "model.sqpk"
    save_packed(model, packed_path)
    network = model.config["name"]
    return ckpt_path, packed_path, network


def load_checkpoint_model(path: Path):
    from spikequant.train.checkpoint import model_from_checkpoint

    return model_from_checkpoint(path)


def load_packed_model(path: Path):
    from spikequant.export import load_packed

    return load_packed(path)[0]


def _timed(fn, *a) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*a)
    return (time.perf_counter() - start) * 1e3, out


def make_batches(network: str, args: argparse.Namespace) -> list[tuple[Any, Any]]:
    """`args.batches` reproducible (frames [B, T, C, H, W], labels) batches, as a loader
    yields them; 10 % of the pixels spike."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, args.time_steps, *input_shape(network))
    labels = torch.zeros(args.batch, dtype=torch.long)  # only counted towards accuracy
    return [((torch.rand(shape, generator=gen) < 0.1).float(), labels)
            for _ in range(args.batches)]


def quantize_once(model) -> None:
    """What parametrize.cached() does once per evaluation: every quantized weight computed."""
    import torch
    from torch.nn.utils import parametrize

    from spikequant.quant import quantized_layers

    with torch.no_grad(), parametrize.cached():
        for _, layer, _ in quantized_layers(model):
            layer.weight  # noqa: B018 - the access fills the cache


def score_difference(models: dict[str, Any], frames) -> float:
    """Largest difference between the sources' class scores on one batch."""
    import torch
    from torch.nn.utils import parametrize

    from spikequant.train.evaluation import to_time_major

    with torch.no_grad(), parametrize.cached():
        a, b = (m.eval()(to_time_major(frames)) for m in models.values())
    return float((a - b).abs().max())


def load_sources(args: argparse.Namespace) -> tuple[str, dict, dict, dict]:
    """(network, models, file sizes, load times in ms) of the two sources."""
    with tempfile.TemporaryDirectory(prefix="sq-bench-") as tmp:
        ckpt, packed, network = write_files(args, Path(tmp))
        loaders = {"fake-quant checkpoint": (load_checkpoint_model, ckpt),
                   "packed file": (load_packed_model, packed)}
        load_ms: dict[str, list[float]] = {k: [] for k in loaders}
        models = {}
        for _ in range(args.load_repeats):
            for name, (fn, path) in loaders.items():
                ms, models[name] = _timed(fn, path)
                load_ms[name].append(ms)
        sizes = {"fake-quant checkpoint": ckpt.stat().st_size,
                 "packed file": packed.stat().st_size}
    return network, models, sizes, load_ms


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from spikequant.train import evaluate

    network, models, sizes, load_ms = load_sources(args)
    batches = make_batches(network, args)
    eval_ms: dict[str, list[float]] = {k: [] for k in models}
    quantize_ms: dict[str, list[float]] = {k: [] for k in models}
    predictions = {}
    names = list(models)
    for r in range(args.warmup + args.repeats):
        for name in names[r % 2:] + names[:r % 2]:  # alternate who goes first
            ms, result = _timed(evaluate, models[name], batches)
            q_ms, _ = _timed(quantize_once, models[name])
            predictions[name] = result["predictions"]
            if r >= args.warmup:
                eval_ms[name].append(ms / len(batches))
                quantize_ms[name].append(q_ms)
    a, b = predictions.values()
    rows = []
    for name in models:
        med = statistics.median(eval_ms[name])
        rows.append({"source": name, "file_bytes": sizes[name],
                     "load_ms": statistics.median(load_ms[name]), "eval_ms_per_batch": med,
                     "eval_ms_all": eval_ms[name],
                     "quantize_once_ms": statistics.median(quantize_ms[name]),
                     "samples_per_s": args.batch / med * 1e3})
    settings = {"network": network, "batch": args.batch, "time_steps": args.time_steps,
                "batches": args.batches, "repeats": args.repeats, "warmup": args.warmup,
                "checkpoint": args.checkpoint or f"fresh {args.quantizer} {args.bits}-bit",
                "command": command_line()}
    return {"settings": settings, "machine": machine_info("cpu"), "rows": rows,
            "max_abs_score_difference": score_difference(models, batches[0][0]),
            "same_predictions": bool((a == b).all())}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [f"#### Inference, {s['network']} ({s['checkpoint']}), batch {s['batch']}, "
             f"T={s['time_steps']}, cpu (evaluations of {s['batches']} batches, median of "
             f"{s['repeats']} after {s['warmup']} warm-up)",
             "", markdown_header(result, s["command"]), "",
             "| loaded from | file KiB | load ms | quantize ms per evaluation | eval ms/batch "
             "| samples/s | vs checkpoint |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    ref = result["rows"][0]["eval_ms_per_batch"]
    for r in result["rows"]:
        lines.append(f"| {r['source']} | {r['file_bytes'] / 1024:.0f} | {r['load_ms']:.0f} | "
                     f"{r['quantize_once_ms']:.0f} | "
                     f"{r['eval_ms_per_batch']:.1f} | {r['samples_per_s']:.1f} | "
                     f"{ref / r['eval_ms_per_batch']:.2f}x |")
    lines += ["", "Both evaluated as `spikequant eval` / `spikequant infer` do "
              "(`train.evaluate`: no_grad, eval mode, `parametrize.cached()`); eval ms/batch is "
              f"one evaluation over {s['batches']} batches divided by {s['batches']}, so the "
              "checkpoint's one quantization of its weights per evaluation (timed on its own "
              "in the quantize column) is shared by those batches; a whole test set shares it "
              "among many more. Largest difference between the two sources' "
              f"class scores: {result['max_abs_score_difference']:.3g}; same predictions: "
              f"{'yes' if result['same_predictions'] else 'NO'}."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare inference from a packed model file (spikequant export) with "
        "inference from the fake-quant checkpoint: file size, load time, and evaluation "
        "throughput, both through spikequant.train.evaluate as `spikequant eval` and "
        "`spikequant infer` run them.")
    p.add_argument("--network", default="nmnist", help="network to build when no "
                   "--checkpoint is given (default nmnist)")
    p.add_argument("--checkpoint", default="", help="a trained checkpoint (DIR/last.pt) "
                   "instead of a freshly built network")
    p.add_argument("--quantizer", default="sigmoid", help="quantizer of the fresh network")
    p.add_argument("--bits", type=int, default=1, help="bits of the fresh network")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--time-steps", type=int, default=10, help="time steps T (default 10)")
    p.add_argument("--batches", type=int, default=4, help="batches per evaluation "
                   "(default 4); the checkpoint quantizes its weights once per evaluation")
    p.add_argument("--repeats", type=int, default=5, help="timed evaluations per source")
    p.add_argument("--warmup", type=int, default=1, help="untimed evaluations per source first")
    p.add_argument("--load-repeats", type=int, default=3, help="loads per source")
    add_threads_option(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if min(args.batch, args.time_steps, args.batches, args.repeats, args.load_repeats) < 1:
        p.error("--batch, --time-steps, --batches, --repeats and --load-repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    result = measure(args)
    print(markdown(result))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
