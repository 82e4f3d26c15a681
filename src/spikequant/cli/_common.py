"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from .argtypes import device


def add_device_arg(p: argparse.ArgumentParser, default: str | None = "cpu") -> None:
    """--device, checked against this machine when parsed. `default=None` lets a config file's
    device stand when the flag is not given."""
    p.add_argument("--device", default=default, type=device,
                   help="cpu, cuda or cuda:N (default: cpu)")


def quantizer_help() -> str:
    """`--quantizer`'s help: every registered quantizer with its summary."""
    from ..quant import quantizer_class, quantizer_names

    described = (
        f"{name} ({quantizer_class(name).summary})" if quantizer_class(name).summary else name
        for name in quantizer_names()
    )
    return "weight quantizer: " + ", ".join(described)


def add_evaluation_args(p: argparse.ArgumentParser) -> None:
    """Arguments of the commands that measure accuracy on a dataset split (eval, infer): the
    ones shared with `train` are generated from its settings (cli.setting_args)."""
    from .setting_args import add_settings

    add_settings(p, {
        "dataset": "dataset [default: the training run's]",
        "data_dir": None,
        "time_steps": "frames per sample [default: the training run's]",
        "batch_size": "samples per batch [default: the training run's]",
        "device": None,
        "skip_bad": "leave out recordings that cannot be decoded (every file is decoded once "
        "before evaluating) and report how many, instead of stopping at the first",
    })
    p.set_defaults(device="cpu", skip_bad=False)  # not the training run's: this machine's
    p.add_argument("--split", choices=("train", "test"), default="test",
                   help="the dataset split to measure [default: test]")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def report_accuracy(model, trained: dict, args: argparse.Namespace, source: dict,
                    desc: str) -> int:
    """Evaluate `model` on the split `args` names, with the dataset, time steps, data folder
    and batch size of the training run `trained` as defaults; print the accuracy."""
    import json

    from torch.utils.data import DataLoader

    from ..data import get_dataset
    from ..train import evaluate

    dataset = args.dataset or trained.get("dataset")
    if not dataset:
        raise ValueError(f"{next(iter(source.values()))} does not name its dataset; pass --dataset")
    time_steps = args.time_steps or trained.get("time_steps")
    batch_size = args.batch_size or trained.get("batch_size", 16)
    check_inference_memory(model, dataset, time_steps, batch_size, args.device)
    data = get_dataset(dataset, args.split, data_dir=args.data_dir or trained.get("data_dir"),
                       time_steps=time_steps, split_by=trained.get("split_by", "number"),
                       skip_bad=args.skip_bad)
    loader = DataLoader(data, batch_size=batch_size)
    result = evaluate(model, loader, device=args.device, progress=True, desc=desc)
    split_info = getattr(data, "split_info", None) or {}
    summary = {**source, "dataset": dataset, "split": args.split, "time_steps": time_steps,
               **{k: result[k] for k in ("accuracy", "correct", "total")},
               "skipped_files": split_info.get("skipped_files", 0),
               "skipped": split_info.get("skipped", [])}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        skipped = (f", {summary['skipped_files']} bad file(s) skipped"
                   if summary["skipped_files"] else "")
        print(f"{dataset} {args.split}: accuracy {result['accuracy']:.4f} "
              f"({result['correct']}/{result['total']}{skipped})")
    return 0


def check_inference_memory(model, dataset: str, time_steps: int | None, batch_size: int,
                           device: str) -> None:
    """ResourceError before any data is read when one batch would not fit in memory (a
    network spikequant.models did not build is not checked)."""
    from ..data import dataset_info
    from ..train.resources import check_memory

    config = getattr(model, "config", None)
    if not isinstance(config, dict) or not config.get("name") or not time_steps:
        return
    overrides = {k: v for k, v in config.items()
                 if k not in ("name", "quantizer", "bits", "levels")}
    check_memory(config["name"], overrides, dataset_info(dataset).frame_shape, time_steps,
                 batch_size, device, training=False)
