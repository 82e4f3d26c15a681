"""`spikequant eval`: accuracy of a checkpoint on a dataset split.

Evaluate a training checkpoint (eval mode: every weight exactly at its quantization level) on a
dataset split. Dataset, time steps and data folder default to the ones the run was trained with.
"""

from __future__ import annotations

import argparse

from ._common import add_evaluation_args, report_accuracy

PARSER = {
    "help": "evaluate a checkpoint",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", "-c", required=True, help="DIR/last.pt or DIR/best.pt")
    add_evaluation_args(p)


def run(args: argparse.Namespace) -> int:
    from ..train import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(ckpt, device=args.device, source=args.checkpoint)
    source = {"checkpoint": str(args.checkpoint)}
    return report_accuracy(model, ckpt.get("run", {}), args, source, desc="eval")
