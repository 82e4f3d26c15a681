"""`spikequant models`: the registered networks with their input, time steps, classes and size.

List every network `spikequant train --dataset NAME` can build: its input shape (channels x
height x width per time step), default number of time steps T, number of classes, number of
parameters of the float network (convolution and linear weights, batch norm, PLIF time
constants) and a short description. All are the PLIF convolutional networks of Fang et al. 2021;
in Python, spikequant.models.build(NAME, quantizer, bits, **overrides) makes one.
"""

from __future__ import annotations

import argparse
import json

PARSER = {
    "help": "list the registered networks (input shape, time steps, classes, parameters)",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _rows() -> list[dict]:
    from ..models import MODELS, build_float_on_meta, count_parameters

    rows = []
    for spec in MODELS.values():  # ModelRecipe
        rows.append(
            {
                "name": spec.name,
                "input_shape": list(spec.input_shape),
                "time_steps": spec.time_steps,
                "num_classes": spec.num_classes,
                "parameters": count_parameters(build_float_on_meta(spec.name)),
                "description": spec.description,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    rows = _rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (
        f"{'name':<12} {'input (CxHxW)':<14} {'T':>3} {'classes':>7} {'parameters':>11}  "
        "description"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        print(
            f"{r['name']:<12} {shape:<14} {r['time_steps']:>3} {r['num_classes']:>7} "
            f"{r['parameters']:>11,}  {r['description']}"
        )
    return 0
