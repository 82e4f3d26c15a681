"""A grid of runs (dataset x quantizer x bits x seed) and the tables and plot that compare them."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import atomic_path
from .._signals import deferred
from .config import FLOAT_BITS, TrainConfig, read_toml
from .config_check import check_sweep_file
from .runfiles import atomic_write_text, read_metrics

RESULT_COLUMNS = (
    "dataset",
    "quantizer",
    "bits",
    "seed",
    "test_accuracy",
    "best_test_accuracy",
    "memory_savings",
    "model_bytes_quantized",
    "train_seconds",
    "run_dir",
)


@dataclass(frozen=True)
class SweepPoint:
    dataset: str
    quantizer: str
    bits: int
    seed: int

    def run_dir(self, root: Path) -> Path:
        tag = "float" if _is_float(self.quantizer) else f"{self.quantizer}-{self.bits}b"
        return root / self.dataset / tag / f"seed{self.seed}"


@dataclass
class SweepSpec:
    datasets: list[str]
    quantizers: list[str]
    bits: list[int]
    seeds: list[int]
    out: Path
    train: dict[str, Any]
    # fine-tune every quantized run from the float run of its dataset and seed
    init_from_float: bool = False
    fine_tune_epochs: int | None = None  # the quantized runs' epochs when fine-tuning

    def points(self) -> Iterator[SweepPoint]:
        """Every combination, float once per dataset and seed (first, so that quantized runs
        can start from it), each quantizer only at the bit widths it allows (xnor: 1)."""
        from ..quant.registry import allows_bits

        quantizers = sorted(self.quantizers, key=lambda q: not _is_float(q))
        for dataset in self.datasets:
            for quantizer in quantizers:
                widths = [FLOAT_BITS] if _is_float(quantizer) else self.bits
                for bits in widths:
                    if not allows_bits(quantizer, bits):
                        continue
                    for seed in self.seeds:
                        yield SweepPoint(dataset, quantizer, bits, seed)

    def config(self, point: SweepPoint) -> TrainConfig:
        values = dict(self.train)
        values.update(
            dataset=point.dataset,
            quantizer=point.quantizer,
            seed=point.seed,
            bits=1 if _is_float(point.quantizer) else point.bits,
            out=str(point.run_dir(self.out)),
            resume=True,
        )
        if self.init_from_float and not _is_float(point.quantizer):
            float_run = SweepPoint(point.dataset, "none", FLOAT_BITS, point.seed)
            values["init_from"] = str(float_run.run_dir(self.out) / "best.pt")
            if self.fine_tune_epochs:
                values["epochs"] = self.fine_tune_epochs
        return TrainConfig.from_dict(values, source="the sweep's [train] table")


def _is_float(quantizer: str) -> bool:
    from ..quant.registry import is_float_quantizer

    return is_float_quantizer(quantizer)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_sweep(path: str | Path, out: str | None = None) -> SweepSpec:
    data = read_toml(path)
    if "sweep" not in data:
        raise ValueError(f"{path} has no [sweep] table (datasets, quantizers, bits, seeds, out)")
    grid = data["sweep"]
    known = {"datasets", "quantizers", "bits", "seeds", "out", "init_from_float",
             "fine_tune_epochs"}
    unknown = set(grid) - known
    if unknown:
        raise ValueError(
            f"unknown key(s) in [sweep] of {path}: {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(sorted(known))}"
        )
    train = check_sweep_file(data, str(path), TrainConfig)
    quantizers = _as_list(grid.get("quantizers", ["none", "sigmoid"]))
    init_from_float = grid.get("init_from_float", False)
    if not isinstance(init_from_float, bool):
        raise ValueError(f"init_from_float in [sweep] of {path} must be true or false")
    if init_from_float and "none" not in quantizers:
        raise ValueError(
            f"init_from_float in [sweep] of {path} fine-tunes from the float runs: "
            'add "none" to quantizers'
        )
    fine_tune_epochs = grid.get("fine_tune_epochs")
    if fine_tune_epochs is not None and (
        isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, int)
        or fine_tune_epochs < 1
    ):
        raise ValueError(f"fine_tune_epochs in [sweep] of {path} must be an integer >= 1")
    return SweepSpec(
        datasets=_as_list(grid.get("datasets", ["ndigits"])),
        quantizers=quantizers,
        bits=[int(b) for b in _as_list(grid.get("bits", [1]))],
        seeds=[int(s) for s in _as_list(grid.get("seeds", [0]))],
        out=Path(out or grid.get("out", "runs/sweep")),
        train=train,
        init_from_float=init_from_float,
        fine_tune_epochs=fine_tune_epochs,
    )


def is_finished(metrics: dict[str, Any] | None, epochs: int) -> bool:
    return bool(metrics and metrics.get("finished") and metrics.get("epochs") == epochs)


def run_sweep(spec: SweepSpec, fit: Callable[[TrainConfig], dict], log=print) -> list[dict]:
    """Run every point that has not finished (partial runs resume); returns the result rows."""
    rows = []
    points = list(spec.points())
    for i, point in enumerate(points, 1):
        cfg = spec.config(point)
        metrics = read_metrics(cfg.out)
        if is_finished(metrics, cfg.epochs):
            log(f"[{i}/{len(points)}] {point} finished already, skipped")
        else:
            log(f"[{i}/{len(points)}] {point} -> {cfg.out}")
            metrics = fit(cfg)
        rows.append(result_row(point, metrics, cfg.out))
    return rows


def result_row(point: SweepPoint, metrics: dict[str, Any], run_dir: str) -> dict[str, Any]:
    row = {k: metrics.get(k) for k in RESULT_COLUMNS}
    row.update(
        dataset=point.dataset,
        quantizer=point.quantizer,
        bits=point.bits,
        seed=point.seed,
        run_dir=run_dir,
    )
    return row


def write_results(rows: list[dict[str, Any]], out: Path) -> dict[str, Path]:
    """results.csv, results.md and the plot, each atomically; a SIGINT / SIGTERM meanwhile
    waits until all three agree."""
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    plot = out / "accuracy_vs_bits.png"
    with deferred():
        atomic_write_text(out / "results.csv", buf.getvalue())
        atomic_write_text(out / "results.md", results_markdown(rows))
        plot_accuracy_vs_bits(rows, plot)
    return {"csv": out / "results.csv", "markdown": out / "results.md", "plot": plot}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (dataset, quantizer, bits), with the drop against float."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["quantizer"], r["bits"])].append(r)
    float_mean = {
        key[0]: statistics.fmean(100 * r["test_accuracy"] for r in rs)
        for key, rs in groups.items()
        if _is_float(key[1])
    }
    summary = []
    for (dataset, quantizer, bits), rs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], not _is_float(kv[0][1]), kv[0][1], kv[0][2])
    ):
        accs = [100 * r["test_accuracy"] for r in rs]
        mean = statistics.fmean(accs)
        summary.append(
            {
                "dataset": dataset,
                "quantizer": quantizer,
                "bits": bits,
                "seeds": len(rs),
                "mean": mean,
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "drop": float_mean[dataset] - mean if dataset in float_mean else None,
                "memory_savings": statistics.fmean(r["memory_savings"] for r in rs),
            }
        )
    return summary


def results_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | quantizer | bits | seeds | test accuracy (%) | drop vs float (pts) "
        "| memory savings |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in summarise(rows):
        bits = f"{FLOAT_BITS} (float)" if _is_float(s["quantizer"]) else str(s["bits"])
        drop = "" if s["drop"] is None else f"{s['drop']:+.2f}"
        lines.append(
            f"| {s['dataset']} | {s['quantizer']} | {bits} | {s['seeds']} | "
            f"{s['mean']:.2f} ± {s['std']:.2f} | {drop} | {s['memory_savings']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_bits(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(rows)
    datasets = sorted({s["dataset"] for s in summary})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for quantizer in sorted({s["quantizer"] for s in summary if s["dataset"] == dataset}):
            pts = sorted(
                (s["bits"], s["mean"], s["std"])
                for s in summary
                if s["dataset"] == dataset and s["quantizer"] == quantizer
            )
            if _is_float(quantizer):
                ax.axhline(pts[0][1], color="black", linestyle="--", label="float (32 bit)")
                continue
            bits, mean, std = zip(*pts)
            ax.errorbar(bits, mean, yerr=std, marker="o", capsize=3, label=quantizer)
        ax.set(title=dataset, xlabel="bits per weight", ylabel="test accuracy (%)")
        ax.set_xticks(sorted({s["bits"] for s in summary if not _is_float(s["quantizer"])} or {1}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
