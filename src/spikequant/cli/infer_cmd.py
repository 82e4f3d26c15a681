"""`spikequant infer`: accuracy of a packed model file on a dataset split."""

from __future__ import annotations

import argparse

from ._common import add_evaluation_args, report_accuracy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer",
        help="evaluate a packed model file",
        description="Evaluate a packed model file (written by `spikequant export`) on a "
        "dataset split, from the file alone: the network is rebuilt from the file's "
        "architecture with the weights scale * levels[codes]. Gives the same accuracy as "
        "`spikequant eval` on the checkpoint it came from. Dataset, time steps and data "
        "folder default to the training run's, stored in the file.",
    )
    p.add_argument("--model", "-m", required=True, help="packed model file")
    add_evaluation_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import load_packed

    model, metadata = load_packed(args.model, device=args.device)
    trained = (metadata or {}).get("run") or {}
    return report_accuracy(model, trained, args, {"model": str(args.model)}, desc="infer")
