"""`spikequant train`: one training run, writing metrics.json, log.csv, last.pt and best.pt."""

from __future__ import annotations

import argparse
import json

from ..quant import QUANTIZERS
from ._common import add_data_args, add_device_arg, quantizer_help
from .argtypes import non_negative_float, non_negative_int, positive_float, positive_int

# Flags whose value differs from the TrainConfig field only by '-' vs '_'.
_FLAG_FIELDS = (
    "dataset",
    "quantizer",
    "bits",
    "epochs",
    "out",
    "data_dir",
    "time_steps",
    "batch_size",
    "seed",
    "device",
    "optimizer",
    "lr",
    "weight_decay",
    "loss",
    "t0",
    "t_max",
    "temperature_schedule",
    "num_workers",
    "model",
    "max_batches",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an SNN at a chosen weight precision",
        description="Train a spiking network with quantized weights (quantization-aware "
        "training). Writes OUT/metrics.json, OUT/log.csv (one row an epoch), "
        "OUT/last.pt (resumable) and OUT/best.pt. Settings come from the defaults, "
        "then --config FILE ([train] table of a TOML file), then the flags given.",
        epilog="Example: spikequant train --dataset ndigits --quantizer sigmoid --bits 1 "
        "--epochs 15 --batch-size 64 --lr 2e-3 --out runs/bin",
    )
    p.add_argument(
        "--dataset",
        "-d",
        default=None,
        help="ndigits (offline), nmnist, dvsgesture, cifar10dvs, ncaltech101 [default: ndigits]",
    )
    p.add_argument("--quantizer", "-q", choices=QUANTIZERS, default=None, help=quantizer_help())
    p.add_argument(
        "--bits",
        "-k",
        type=positive_int,
        default=None,
        help="bits a weight: 1 binary, 2 ternary, k: 2^k-1 levels [default: 1]",
    )
    p.add_argument(
        "--levels",
        type=str,
        default=None,
        help="custom level set instead of --bits, e.g. -4,-2,-1,0,1,2,4 (metrics report "
        "ceil(log2 L) bits)",
    )
    p.add_argument("--epochs", "-e", type=positive_int, default=None,
                   help="training epochs [default: 10]")
    p.add_argument("--out", "-o", default=None, help="run folder [default: runs/run]")
    add_data_args(p)
    p.add_argument("--seed", type=non_negative_int, default=None, help="random seed [default: 0]")
    add_device_arg(p, default=None)
    p.add_argument("--config", metavar="FILE", help="TOML file with a [train] table of settings")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT/last.pt exactly (model, optimiser, schedules, RNG, epoch); only "
        "--epochs (the schedules are stretched to it), --out, --data-dir, --device and "
        "--num-workers may differ from the run's settings. An empty or new OUT starts fresh",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=("adam", "sgd"), default=None, help="[default: adam]")
    g.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate [default: 1e-3]")
    g.add_argument("--weight-decay", type=non_negative_float, default=None, help="[default: 0]")
    g.add_argument(
        "--loss",
        choices=("mse", "ce"),
        default=None,
        help="mse: firing rates vs one-hot (the study's peers); ce: cross-entropy "
        "on rates [default: mse]",
    )
    g.add_argument("--amp", action="store_true", help="CUDA mixed precision (float16)")
    g.add_argument(
        "--deterministic", action="store_true", help="deterministic algorithms (slower on CUDA)"
    )
    g = p.add_argument_group("temperature of the sigmoid quantizer")
    g.add_argument(
        "--temperature-schedule",
        choices=("linear", "exponential", "cosine", "constant"),
        default=None,
        help="linear: T = t0 * (epoch + 1), the reference [default: linear]",
    )
    g.add_argument("--t0", type=positive_float, default=None,
                   help="initial temperature [default: 1]")
    g.add_argument("--t-max", type=positive_float, default=None,
                   help="temperature cap [default: 1000]")
    g.add_argument(
        "--temperature-per-step",
        action="store_true",
        help="raise T every step (fractional epochs), not once an epoch",
    )
    g = p.add_argument_group("network and data")
    g.add_argument("--model", default=None, help="registered network (default: the dataset's)")
    g.add_argument(
        "--exclude",
        action="append",
        default=None,
        metavar="NAME",
        help="keep this layer float (module name or glob; repeatable)",
    )
    g.add_argument("--per-channel", action="store_true", help="one scale per output channel")
    g.add_argument("--augment", action="store_true", help="random crop, flip and roll")
    g.add_argument("--num-workers", type=non_negative_int, default=None,
                   help="DataLoader workers [default: 0]")
    g.add_argument("--download", action="store_true", help="download the dataset via tonic")
    g.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip (and count) unreadable event files instead of stopping",
    )
    g.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    g.add_argument("--max-batches", type=positive_int, default=None, help=argparse.SUPPRESS)
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    from ..train.config import TrainConfig, load_config_file

    values = load_config_file(args.config) if args.config else {}
    for name in _FLAG_FIELDS:
        val = getattr(args, name, None)
        if val is not None:
            values[name] = val
    for flag in (
        "resume",
        "amp",
        "deterministic",
        "temperature_per_step",
        "per_channel",
        "augment",
        "download",
        "skip_bad",
        "tensorboard",
    ):
        if getattr(args, flag, False):
            values[flag] = True
    if args.levels:
        try:
            values["levels"] = [float(v) for v in args.levels.split(",")]
        except ValueError as err:
            raise ValueError(
                f"--levels must be comma-separated numbers, got {args.levels!r}"
            ) from err
    if args.exclude:
        values["exclude"] = args.exclude
    if args.no_progress:
        values["progress"] = False
    return TrainConfig.from_dict(values, source=args.config or "flags")


def run(args: argparse.Namespace) -> int:
    from ..train import fit

    metrics = fit(config_from_args(args))
    if metrics.get("world_size", 1) == 1 or int(__import__("os").environ.get("RANK", 0)) == 0:
        shown = {
            k: metrics[k]
            for k in (
                "dataset",
                "quantizer",
                "bits",
                "test_accuracy",
                "best_test_accuracy",
                "memory_savings",
                "train_seconds",
            )
        }
        print(json.dumps(shown, indent=2))
    return 0
