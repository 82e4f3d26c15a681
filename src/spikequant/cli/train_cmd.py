"""`spikequant train`: one training run, writing metrics.json, log.csv, last.pt and best.pt."""

from __future__ import annotations

import argparse
import json

from ..quant import quantizer_names
from ..quant.schedule import KINDS
from ..quant.sigmoid import GRADIENTS
from ..train.config import LR_SCHEDULES
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
    "init_from",
    "gradient",
    "grad_clip",
    "scale_lr",
    "scale_lr_schedule",
    "t_ramp",
    "val_fraction",
    "calibration_samples",
    "state_bits",
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
    p.add_argument("--quantizer", "-q", choices=quantizer_names(), default=None,
                   help=quantizer_help())
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
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        default=None,
        help="start from a trained network (float or another precision, same architecture): "
        "its weights are copied and the quantizers' step positions and scales initialised "
        "from them, e.g. --init-from runs/fp/last.pt",
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
    g.add_argument(
        "--grad-clip",
        type=positive_float,
        default=None,
        metavar="NORM",
        help="clip the gradients' global norm to NORM [default: no clipping]",
    )
    g.add_argument(
        "--scale-lr",
        type=positive_float,
        default=None,
        help="learning rate of the quantizers' scales (alpha, beta, step sizes) [default: --lr]",
    )
    g.add_argument(
        "--scale-lr-schedule",
        choices=LR_SCHEDULES,
        default=None,
        help="cosine: decays with the weights' LR; constant: never decayed [default: cosine]",
    )
    g.add_argument("--amp", action="store_true", help="CUDA mixed precision (float16)")
    g.add_argument(
        "--deterministic", action="store_true", help="deterministic algorithms (slower on CUDA)"
    )
    g = p.add_argument_group("temperature of the sigmoid quantizer")
    g.add_argument(
        "--temperature-schedule",
        choices=KINDS,
        default=None,
        help="geometric: from t0 to t_max by a constant factor, reaching t_max after "
        "--t-ramp of the run, whatever --epochs is; reference: Quantization Networks' "
        "T = 10 * (epoch + 1) capped at 2000; linear: T = t0 * (epoch + 1) "
        "[default: geometric]",
    )
    g.add_argument(
        "--t0", type=positive_float, default=None,
        help="first temperature [default: 1; reference: 10]"
    )
    g.add_argument(
        "--t-max",
        type=positive_float,
        default=None,
        help="temperature cap [default: 1000; reference: 2000]",
    )
    g.add_argument(
        "--t-ramp",
        type=positive_float,
        default=None,
        help="geometric: share of the run over which T rises to t_max [default: 0.8]",
    )
    g.add_argument(
        "--gradient",
        choices=GRADIENTS,
        default=None,
        help="sigmoid quantizer's backward: exact (derivative at T) or reference "
        "(Quantization Networks: the T = 1 derivative scaled by T) [default: exact]",
    )
    g.add_argument(
        "--temperature-per-epoch",
        action="store_true",
        help="raise T once an epoch instead of every step (fractional epochs)",
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
    g.add_argument(
        "--layer-bits",
        action="append",
        default=None,
        metavar="NAME=BITS",
        help="give a layer its own precision, e.g. --layer-bits conv1=8 --layer-bits "
        "classifier=8 (module name or glob; repeatable; the others take --bits)",
    )
    g.add_argument("--per-channel", action="store_true", help="one scale per output channel")
    g.add_argument(
        "--state-bits",
        type=int,
        default=None,
        metavar="K",
        help="keep the neuron state (membrane, threshold, leak, folded batch norm) in K-bit "
        "fixed point, 4..24 (e.g. 8, 12, 16), as neuromorphic hardware does: straight-through "
        "gradients in training, exact integer arithmetic in evaluation and in `infer` "
        "[default: float state]",
    )
    g.add_argument("--augment", action="store_true", help="random crop, flip and roll")
    g.add_argument("--num-workers", type=non_negative_int, default=None,
                   help="DataLoader workers [default: 0]")
    g.add_argument("--download", action="store_true", help="download the dataset via tonic")
    g.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip (and count) unreadable event files instead of stopping",
    )
    g = p.add_argument_group("evaluation and model selection")
    g.add_argument(
        "--val-fraction",
        type=non_negative_float,
        default=None,
        help="share of the training data held out (stratified, seeded) to choose best.pt; "
        "0: no validation split, best.pt is the last epoch [default: 0.1]",
    )
    g.add_argument(
        "--calibration-samples",
        type=non_negative_int,
        default=None,
        help="training samples on which batch-norm statistics are re-estimated with hard "
        "weights before each evaluation, and hard-weight training accuracy is measured "
        "[default: 256]",
    )
    g.add_argument(
        "--no-bn-recalibration",
        action="store_true",
        help="keep the batch-norm statistics gathered with training-mode (soft) weights",
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
    if args.layer_bits:
        values["layer_bits"] = parse_layer_bits(args.layer_bits)
    if args.no_bn_recalibration:
        values["bn_recalibration"] = False
    if args.temperature_per_epoch:
        values["temperature_per_step"] = False
    if args.no_progress:
        values["progress"] = False
    return TrainConfig.from_dict(values, source=args.config or "flags")


def parse_layer_bits(items: list[str]) -> dict[str, int]:
    """['conv1=8', 'classifier=8'] (or 'conv1=8,classifier=8') -> {'conv1': 8, ...}."""
    chosen: dict[str, int] = {}
    for item in (part for entry in items for part in entry.split(",")):
        name, sep, width = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            chosen[name.strip()] = int(width)
        except ValueError:
            raise ValueError(
                f"--layer-bits takes NAME=BITS (e.g. conv1=8), got {item!r}"
            ) from None
    return chosen


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
