"""`spikequant eval`: accuracy of a checkpoint on a dataset split."""

from __future__ import annotations

import argparse
import json

from ._common import add_data_args, add_device_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint",
        description="Evaluate a training checkpoint (eval mode: every weight exactly at its "
        "quantization level) on a dataset split. Dataset, time steps and data folder "
        "default to the ones the run was trained with.",
    )
    p.add_argument("--checkpoint", "-c", required=True, help="DIR/last.pt or DIR/best.pt")
    p.add_argument("--dataset", "-d", default=None, help="default: the checkpoint's dataset")
    p.add_argument("--split", choices=("train", "test"), default="test")
    add_data_args(p)
    add_device_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from ..data import get_dataset
    from ..train import evaluate, load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    trained = ckpt.get("run", {})
    dataset = args.dataset or trained.get("dataset")
    if not dataset:
        raise ValueError("the checkpoint does not name its dataset; pass --dataset")
    time_steps = args.time_steps or trained.get("time_steps")
    data_dir = args.data_dir or trained.get("data_dir")
    data = get_dataset(
        dataset,
        args.split,
        data_dir=data_dir,
        time_steps=time_steps,
        split_by=trained.get("split_by", "number"),
    )
    loader = DataLoader(data, batch_size=args.batch_size or trained.get("batch_size", 16))
    model = model_from_checkpoint(ckpt, device=args.device)
    result = evaluate(model, loader, device=args.device, progress=True)
    summary = {
        "checkpoint": str(args.checkpoint),
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
