"""`spikequant demo`: the offline end-to-end job: float, binary sigmoid and binary STE SNNs on
ndigits, compared in one table.

The offline end-to-end demo: generates the ndigits event dataset (scikit-learn's handwritten
digits seen by a simulated event camera), trains a float SNN, fine-tunes a binary SNN with the
sigmoid quantizer and one with sign+STE from it (train --init-from), and prints test accuracy,
drop against float, memory savings and time. Every run uses `spikequant train`'s defaults.
Finished runs in OUT are reused; about 2.5 minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .argtypes import device, non_negative_int, positive_int

# (label, quantizer, bits) in table order. The float network is trained first; the binary
# ones are fine-tuned from it (`train --init-from`), each with train's default recipe.
DEMO_RUNS = (
    ("float (32-bit)", "none", 1),
    ("binary sigmoid", "sigmoid", 1),
    ("binary STE", "ste", 1),
)
DEMO_EPOCHS = 8  # the float network's
DEMO_FINE_TUNE_EPOCHS = 3  # each binary network's, from the float one


PARSER = {
    "help": "train a float SNN on ndigits, then fine-tune binary ones from it (offline)",
    "formatter_class": argparse.ArgumentDefaultsHelpFormatter,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", default="runs/demo", help="folder for the three runs")
    p.add_argument("--epochs", "-e", type=positive_int, default=DEMO_EPOCHS,
                   help="epochs of the float network")
    p.add_argument("--fine-tune-epochs", type=positive_int, default=DEMO_FINE_TUNE_EPOCHS,
                   help="epochs of each binary network, fine-tuned from the float one")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
    p.add_argument("--data-dir", default=argparse.SUPPRESS,
                   help="where ndigits is generated (default: $SPIKEQUANT_DATA, else "
                        "~/.cache/spikequant/data)")
    p.add_argument("--device", default="cpu", type=device, help="cpu, cuda or cuda:N")
    p.add_argument("--fresh", action="store_true", help="retrain even if OUT holds finished runs")


def demo_config(args: argparse.Namespace, quantizer: str, bits: int):
    from ..train import TrainConfig

    tag = "float" if quantizer == "none" else f"{quantizer}-{bits}b"
    out = Path(args.out)
    fine_tune = quantizer != "none"
    return TrainConfig(
        dataset="ndigits",
        quantizer=quantizer,
        bits=bits,
        epochs=args.fine_tune_epochs if fine_tune else args.epochs,
        init_from=str(out / "float" / "best.pt") if fine_tune else None,
        seed=args.seed,
        data_dir=getattr(args, "data_dir", None),
        device=args.device,
        out=str(out / tag),
        resume=True,
    )


def run(args: argparse.Namespace) -> int:
    import shutil

    from ..train import fit
    from ..train.runfiles import atomic_write_text, read_metrics
    from ..train.sweep import is_finished

    start = time.perf_counter()
    results = []
    for label, quantizer, bits in DEMO_RUNS:
        cfg = demo_config(args, quantizer, bits)
        if args.fresh and Path(cfg.out).exists():
            shutil.rmtree(cfg.out)
        metrics = read_metrics(cfg.out)
        if not is_finished(metrics, cfg.epochs):
            print(f"== training {label} on ndigits ({cfg.epochs} epochs) -> {cfg.out}")
            metrics = fit(cfg)
        else:
            print(f"== {label}: finished run found in {cfg.out}, reused (--fresh retrains)")
        results.append((label, metrics))
    table = demo_table(results)
    print("\n" + table)
    atomic_write_text(Path(args.out) / "demo.md", table)
    print(
        f"demo done in {time.perf_counter() - start:.0f} s; table in {Path(args.out) / 'demo.md'}"
    )
    return 0


def demo_table(results: list[tuple[str, dict]]) -> str:
    """Final-epoch test accuracy of each run (nothing picked on the test set)."""
    float_acc = results[0][1]["test_accuracy"]
    lines = [
        "| network (ndigits) | epochs | test accuracy | vs float | memory savings | "
        "model bytes | train time |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, m in results:
        drop = 100 * (m["test_accuracy"] - float_acc)
        epochs = f"{m['epochs']} from float" if m.get("init_from") else str(m["epochs"])
        lines.append(
            f"| {label} | {epochs} | {100 * m['test_accuracy']:.2f} % | {drop:+.2f} pts | "
            f"{m['memory_savings']:.1f}x | {m['model_bytes_quantized']:,} | "
            f"{m['train_seconds']:.0f} s |"
        )
    return "\n".join(lines) + "\n"
