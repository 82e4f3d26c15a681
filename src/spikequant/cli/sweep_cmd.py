"""`spikequant sweep`: a grid of runs and the tables and plot that compare them.

Run every combination in a TOML file's [sweep] table (datasets, quantizers, bits, seeds, out)
with the settings of its [train] table. Finished runs are skipped and partial ones resumed, so
an interrupted sweep is continued by running it again. Writes OUT/results.csv (one row a run),
OUT/results.md (mean ± std over seeds, drop against float, memory savings) and
OUT/accuracy_vs_bits.png.
"""

from __future__ import annotations

import argparse

PARSER = {
    "help": "run a grid of dataset x quantizer x bits x seeds",
    "epilog": "Example: spikequant sweep --config configs/ndigits/sweep.toml",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", required=True, metavar="FILE", help="sweep TOML file")
    p.add_argument("--out", "-o", default=None, help="override the [sweep] out folder")
    p.add_argument("--dry-run", action="store_true", help="list the runs, train nothing")


def run(args: argparse.Namespace) -> int:
    from ..train import fit
    from ..train.sweep import load_sweep, run_sweep, write_results

    spec = load_sweep(args.config, args.out)
    if args.dry_run:
        for point in spec.points():
            print(point.run_dir(spec.out))
        return 0
    rows = run_sweep(spec, fit)
    paths = write_results(rows, spec.out)
    print(paths["markdown"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
