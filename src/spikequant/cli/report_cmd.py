"""`spikequant report`: memory table of a network, and optionally SynOps and energy.

Per layer: weights, bits and bytes of the packed model file; the float parts (batch norm,
biases, PLIF); totals: fp32 bytes, bytes on disk, saving ratio. The network comes from a
checkpoint, a packed file, or a registered architecture (random weights: sizes do not depend on
the values). With --synops it also runs the network on data and reports synaptic operations from
the measured spikes and an energy estimate (45 nm costs, Horowitz 2014), float32 against
quantized weights.
"""

from __future__ import annotations

import argparse
import json

from ..quant import quantizer_names
from ._common import add_device_arg, check_inference_memory, quantizer_help
from .argtypes import positive_int

PARSER = {
    "help": "memory (and SynOps / energy) report of a network",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", "-c", help="training checkpoint (DIR/last.pt)")
    src.add_argument("--model", "-m", help="packed model file (from spikequant export)")
    src.add_argument("--network", "-n", help="registered network: ndigits, nmnist, ...")
    p.add_argument("--quantizer", "-q", choices=quantizer_names(), default="sigmoid",
                   help=f"with --network: {quantizer_help()} [default: sigmoid]")
    p.add_argument("--bits", "-k", type=positive_int, default=1,
                   help="with --network [default: 1]")
    p.add_argument("--float-dtype", choices=("float32", "float16"), default="float32",
                   help="precision of the float parts in the file [default: float32]")
    g = p.add_argument_group("SynOps and energy")
    g.add_argument("--synops", action="store_true", help="measure SynOps on a dataset")
    g.add_argument("--dataset", "-d", help="default: the run's dataset, else the network's")
    g.add_argument("--data-dir", metavar="D", help="dataset root (default: $SPIKEQUANT_DATA)")
    g.add_argument("--split", choices=("train", "test"), default="test")
    g.add_argument("--num-samples", type=positive_int, default=256,
                   help="samples to run [default: 256]")
    g.add_argument("--time-steps", "-T", type=positive_int, default=None,
                   help="frames per sample")
    g.add_argument("--batch-size", "-b", type=positive_int, default=16)
    add_device_arg(p)
    p.add_argument("--json", action="store_true", help="print the report(s) as JSON")


def _load(args: argparse.Namespace):
    """(model, run info, memory report, level sets for SynOps pricing, title)."""
    from ..export import memory_report, memory_report_from_file

    if args.model:
        from ..export import load_packed
        from ..export.synops import levels_from_packed

        model, meta = load_packed(args.model)
        return (model, (meta or {}).get("run") or {}, memory_report_from_file(args.model),
                levels_from_packed(args.model), f"packed file {args.model}")
    if args.checkpoint:
        from ..export import run_metadata
        from ..train import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(ckpt, source=args.checkpoint)
        metadata = run_metadata(ckpt.get("run"), ckpt.get("epoch"))
        title = f"checkpoint {args.checkpoint}"
    else:
        from ..models import build

        model = build(args.network, quantizer=args.quantizer, bits=args.bits).eval()
        metadata = {"run": {"dataset": args.network}}
        title = f"{args.network}, quantizer {args.quantizer}, {args.bits} bit"
    # the same metadata as `export` writes, so the sizes are those of the exported file
    report = memory_report(model, metadata, float_dtype=args.float_dtype)
    return model, metadata["run"], report, None, title


def _synops(args: argparse.Namespace, model, run_info: dict, levels):
    import torch
    from torch.utils.data import DataLoader, Subset

    from ..data import get_dataset
    from ..export import measure_synops
    from ..train.evaluation import to_time_major

    dataset = args.dataset or run_info.get("dataset") or args.network
    if not dataset:
        raise ValueError("pass --dataset for --synops")
    from ..data import dataset_info

    time_steps = dataset_info(dataset).time_steps(args.time_steps or run_info.get("time_steps"))
    check_inference_memory(model, dataset, time_steps, args.batch_size, args.device)
    data = get_dataset(dataset, args.split, data_dir=args.data_dir or run_info.get("data_dir"),
                       time_steps=time_steps, split_by=run_info.get("split_by", "number"))
    data = Subset(data, range(min(args.num_samples, len(data))))
    if getattr(model, "state_bits", None) is not None:
        # counting hooks see the module-by-module forward, not the integer evaluation; its
        # float-state twin fires nearly the same spikes
        model.set_state_bits(None)
    model = model.to(args.device)
    batches = (to_time_major(x.to(args.device)).float()
               for x, _ in DataLoader(data, batch_size=args.batch_size))
    with torch.no_grad():
        return measure_synops(model, batches, time_steps=time_steps, levels=levels)


def run(args: argparse.Namespace) -> int:
    from ..export import format_report, format_synops

    model, run_info, report, levels, title = _load(args)
    synops = _synops(args, model, run_info, levels) if args.synops else None
    if args.json:
        out = {"source": title, "memory": report.as_dict()}
        if synops is not None:
            out["synops"] = synops.as_dict()
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(format_report(report, title=f"memory report: {title}"))
    if synops is not None:
        print()
        print(format_synops(synops))
    return 0
