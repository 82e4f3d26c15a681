"""`spikequant infer`: accuracy of a packed model file on a dataset split.

Evaluate a packed model file (written by `spikequant export`) on a dataset split, from the file
alone: the network is rebuilt from the file's architecture with the weights scale *
levels[codes]. Gives the same accuracy as `spikequant eval` on the checkpoint it came from. A
network trained with --state-bits runs integer-only (see --integer), which is how it was
evaluated. Dataset, time steps and data folder default to the training run's, stored in the
file.
"""

from __future__ import annotations

import argparse

from ._common import add_evaluation_args, report_accuracy

PARSER = {
    "help": "evaluate a packed model file",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="packed model file")
    p.add_argument(
        "--integer",
        action="store_true",
        help="integer-only inference: weight codes stay bit-packed and are unpacked a slice "
        "of a layer at a time, batch norm and scales are folded into per-channel integer "
        "multipliers, accumulation and membrane update are integer. The default for files "
        "trained with --state-bits (it reproduces their evaluation exactly); a file trained "
        "with float state needs --state-bits too",
    )
    p.add_argument(
        "--state-bits",
        type=int,
        default=None,
        metavar="K",
        help="run integer-only with K-bit neuron state, folding the file's float parameters "
        "now (post-training: predictions may differ from the float network's) [default: the "
        "state bits the file was trained with]",
    )
    add_evaluation_args(p)


def run(args: argparse.Namespace) -> int:
    from ..export import load_packed
    from ..export.integer_infer import file_state_bits

    trained_bits = file_state_bits(args.model)
    if args.integer or args.state_bits is not None or trained_bits is not None:
        return _run_integer(args, trained_bits)
    model, metadata = load_packed(args.model, device=args.device)
    trained = (metadata or {}).get("run") or {}
    return report_accuracy(model, trained, args, {"model": str(args.model)}, desc="infer")


def _run_integer(args: argparse.Namespace, trained_bits: int | None) -> int:
    from ..export.integer_infer import IntegerNetwork

    net = IntegerNetwork.from_packed(args.model, state_bits=args.state_bits).to(args.device)
    trained = net.metadata.get("run") or {}
    folded = "as trained" if args.state_bits in (None, trained_bits) else "folded after training"
    source = {"model": str(args.model),
              "arithmetic": f"integer, {net.state_bits}-bit neuron state ({folded})",
              **{f"resident_{k}_bytes": v for k, v in net.resident_bytes().items()}}
    if not args.json:
        print(f"integer-only inference: {source['arithmetic']}; resident weight codes "
              f"{source['resident_weight_codes_bytes']:,} B")
    return report_accuracy(net, trained, args, source, desc="infer (integer)")
