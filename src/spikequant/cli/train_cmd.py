"""`spikequant train`: one training run, writing metrics.json, log.csv, last.pt and best.pt.
Its options are generated from TrainConfig: each field's metadata (train.setting) gives the
flag, help, choices, group and type, and the dataclass gives the default shown."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import textwrap

from ..train.config import TrainConfig
from ..train.setting import GROUPS, default_shown, flag_of, help_of
from .setting_args import add_setting

SHOWN = ("dataset", "quantizer", "bits", "test_accuracy", "best_test_accuracy",
         "memory_savings", "train_seconds")


def parser_options() -> dict:
    """add_parser's keywords, made when the parser is built (after --plugin imports, so that
    the epilog lists the options of the components they register)."""
    return {
        "help": "train an SNN at a chosen weight precision",
        "description": textwrap.fill(
            "Train a spiking network with quantized weights (quantization-aware training). "
            "Writes OUT/metrics.json, OUT/log.csv (one row an epoch), OUT/last.pt (resumable) "
            "and OUT/best.pt. Settings come from the defaults, then --config FILE ([train] "
            "table of a TOML file), then the flags given.", 88),
        "epilog": textwrap.fill(
            _config_only_help() + " Example: spikequant train --dataset ndigits --quantizer "
            "sigmoid --bits 1 --epochs 15 --batch-size 64 --lr 2e-3 --out runs/bin", 88)
        + "\n\n" + component_options_help(),
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="TOML file with a [train] table of settings (`extends = \"FILE\"` at "
                   "its top takes another file's settings first)")
    groups = {title: p.add_argument_group(title) if title else p for title in GROUPS}
    for f in dataclasses.fields(TrainConfig):
        flag = flag_of(f)
        if flag is not None:
            add_setting(groups[f.metadata["group"]], f)


def _config_only_help() -> str:
    """The settings only a config file sets, with their defaults."""
    parts = []
    for f in dataclasses.fields(TrainConfig):
        if flag_of(f) is None:
            shown = default_shown(f)
            parts.append(f"{f.name} ({help_of(f)}"
                         + (f"; default {shown})" if shown else ")"))
    return "Settings only a --config file sets: " + ", ".join(parts) + "."


def component_options_help() -> str:
    """Every registered quantizer's and neuron's options, for the end of `train --help`."""
    from ..options import describe_options
    from ..quant import QUANTIZERS
    from ..snn import NEURONS

    lines = ["options of each quantizer (--quantizer-option KEY=VALUE; per-channel scales are "
             "--per-channel):"]
    for name, cls in QUANTIZERS.items():
        declared = {k: o for k, o in cls.declared_options().items() if k != "per_channel"}
        lines += [f"  {name}:", describe_options(declared)]
    lines += ["", textwrap.fill(
        "options of each neuron (--neuron-option KEY=VALUE): the defaults of the class; the "
        "study's networks use threshold 1, v_reset 0, detach_reset true and the network's tau "
        "and surrogate unless these options say otherwise:", 88)]
    for name, cls in NEURONS.items():
        lines += [f"  {name}:", describe_options(cls.declared_options())]
    return "\n".join(lines)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The settings of a run: defaults, then the --config file, then the flags given. The
    KEY=VALUE texts of --quantizer-option / --neuron-option are read by the types the run's
    quantizer / neuron declares and go over the config file's table."""
    from ..options import parse_assignments
    from ..train.component_options import parse_cli_options
    from ..train.config import load_config_file
    from ..train.setting import default_of

    values = load_config_file(args.config) if args.config else {}
    component_flags = []
    for f in dataclasses.fields(TrainConfig):
        given = getattr(args, f.name, None) if flag_of(f) else None
        if given is None:
            continue
        if f.metadata.get("options_of"):
            component_flags.append((f, parse_assignments(given, flag_of(f))))
            continue
        if f.name == "plugins":  # the config file's were imported too: the run used both
            given = list(dict.fromkeys([*values.get("plugins", []), *given]))
        parse = f.metadata.get("parse")
        values[f.name] = parse(given) if parse else given
    settings = {f.name: default_of(f) for f in dataclasses.fields(TrainConfig)} | values
    for f, texts in component_flags:
        parsed = parse_cli_options(f.metadata["options_of"], texts, settings, flag_of(f))
        values[f.name] = {**values.get(f.name, {}), **parsed}
    return TrainConfig.from_dict(values, source=args.config or "flags")


def run(args: argparse.Namespace) -> int:
    from ..train import fit

    metrics = fit(config_from_args(args))
    if metrics.get("world_size", 1) == 1 or int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({k: metrics[k] for k in SHOWN}, indent=2))
    return 0
