"""`spikequant infer`: accuracy of a packed model file on a dataset split."""

from __future__ import annotations

import argparse
import json

from ._common import add_data_args, add_device_arg


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
    p.add_argument("--dataset", "-d", default=None, help="default: the run's dataset")
    p.add_argument("--split", choices=("train", "test"), default="test")
    add_data_args(p)
    add_device_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from ..data import get_dataset
    from ..export import load_packed
    from ..train import evaluate

    model, metadata = load_packed(args.model, device=args.device)
    trained = (metadata or {}).get("run") or {}
    dataset = args.dataset or trained.get("dataset")
    if not dataset:
        raise ValueError(f"{args.model} does not name its dataset; pass --dataset")
    time_steps = args.time_steps or trained.get("time_steps")
    data = get_dataset(
        dataset,
        args.split,
        data_dir=args.data_dir or trained.get("data_dir"),
        time_steps=time_steps,
        split_by=trained.get("split_by", "number"),
    )
    loader = DataLoader(data, batch_size=args.batch_size or trained.get("batch_size", 16))
    result = evaluate(model, loader, device=args.device, progress=True, desc="infer")
    summary = {
        "model": str(args.model),
        "dataset": dataset,
        "split": args.split,
        "time_steps": time_steps,
        "accuracy": result["accuracy"],
        "correct": result["correct"],
        "total": result["total"],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{dataset} {args.split}: accuracy {result['accuracy']:.4f} "
            f"({result['correct']}/{result['total']})"
        )
    return 0
