"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="D",
        default=None,
        help="dataset root, tonic's save_to layout (default: $SPIKEQUANT_DATA, "
        "else ~/.cache/spikequant/data)",
    )
    p.add_argument(
        "--time-steps",
        "-T",
        type=int,
        default=None,
        metavar="T",
        help="frames per sample (default: the dataset's, e.g. 10 for N-MNIST)",
    )
    p.add_argument(
        "--batch-size", "-b", type=int, default=None, metavar="B", help="samples per batch"
    )


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")


def quantizer_help() -> str:
    return (
        "weight quantizer: none (float), sigmoid (the study's differentiable function), "
        "ste (sign/round + straight-through, BinaryConnect), xnor (sign x mean|w|), "
        "lsq (learned step size), dorefa, ptq (round a float model after training)"
    )
