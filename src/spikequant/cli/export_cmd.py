"""`spikequant export`: a checkpoint as a packed low-bit model file (and optionally NIR).

Write the eval-mode network of a training checkpoint as a packed model file: each quantized
weight as its level index, bit-packed at ceil(log2 L) bits (1 bit for binary), one float32 scale
a layer (or output channel) and the level set; batch norm, biases and PLIF time constants as
float32 (or float16). The container is safetensors with JSON metadata (architecture, run
settings, per-layer bits and levels) and a SHA-256 checked at load. `spikequant infer --model
FILE` evaluates it; prints the memory report.
"""

from __future__ import annotations

import argparse
import json

PARSER = {
    "help": "write a checkpoint as a packed low-bit model file",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-c", required=True, help="DIR/last.pt or DIR/best.pt")
    p.add_argument("--out", "-o", required=True, help="packed model file to write (e.g. model.sqp)")
    p.add_argument(
        "--float-dtype",
        choices=("float32", "float16"),
        default="float32",
        help="precision of the float parts (batch norm, biases, PLIF); float16 saves a few "
        "KiB but may change predictions [default: float32, exact]",
    )
    p.add_argument("--nir", metavar="FILE", help="also write the network as a NIR graph (HDF5)")
    p.add_argument("--force", "-f", action="store_true",
                   help="replace --out / --nir if they exist (never the checkpoint itself)")
    p.add_argument("--json", action="store_true", help="print the memory report as JSON")


def run(args: argparse.Namespace) -> int:
    from .._signals import deferred
    from ..export import format_report, memory_report_from_file, run_metadata, save_packed
    from ..train import load_checkpoint, model_from_checkpoint
    from .outputs import check_outputs

    check_outputs([("--out", args.out), ("--nir", args.nir)],
                  inputs=[("--checkpoint", args.checkpoint)], force=args.force)
    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt, source=args.checkpoint)
    metadata = run_metadata(ckpt.get("run"), ckpt.get("epoch"))
    with deferred():  # a SIGINT / SIGTERM waits until both files are written
        save_packed(model, args.out, metadata, float_dtype=args.float_dtype)
        if args.nir:
            from ..export import write_nir

            run_info = ckpt.get("run", {})
            write_nir(model, args.nir, time_steps=run_info.get("time_steps"))
    report = memory_report_from_file(args.out)
    if args.json:
        print(json.dumps({"out": str(args.out), "nir": args.nir, **report.as_dict()}, indent=2))
    else:
        print(format_report(report, title=f"wrote {args.out}"))
        if args.nir:
            print(f"wrote NIR graph {args.nir}")
    return 0
