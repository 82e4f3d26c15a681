"""What is measured after each epoch, and which epoch becomes best.pt. The evaluated network
is first made to match the trained one (batch norm re-estimated with hard weights); every
accuracy then comes from `evaluate`, the same path `spikequant eval` takes."""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from ..quant.registry import is_float_quantizer
from .calibration import recalibrate_batch_norm, soft_hard_gap
from .distributed import all_reduce_sum
from .evaluation import evaluate
from .run import Run


def accuracy(run: Run, loader: DataLoader, sharded: bool = True) -> float:
    """Eval-mode (hard weights) accuracy over `loader`; a sharded loader is summed over ranks."""
    result = evaluate(run.net, loader, run.config.device, amp=run.config.amp)
    correct, total = result["correct"], result["total"]
    if sharded:
        correct, total = all_reduce_sum([correct, total], run.ctx, run.config.device)
    return correct / max(total, 1)


def evaluate_epoch(run: Run) -> dict[str, Any]:
    """Make the evaluated network match the trained one (batch norm re-estimated with hard
    weights), then measure it: hard-weight accuracy on the calibration slice of the training
    data, validation and test accuracy, and the share of weights not yet hard."""
    cfg, loaders = run.config, run.loaders
    quantized = not is_float_quantizer(cfg.quantizer)
    if cfg.bn_recalibration and quantized and loaders.calibration is not None:
        recalibrate_batch_norm(run.net, loaders.calibration, cfg.device, cfg.amp)
    row: dict[str, Any] = {"soft_hard_gap": soft_hard_gap(run.net)}
    if loaders.calibration is not None:
        row["hard_train_accuracy"] = accuracy(run, loaders.calibration, sharded=False)
    if loaders.val is not None:
        row["val_accuracy"] = accuracy(run, loaders.val)
    row["test_accuracy"] = accuracy(run, loaders.test)
    return row


def select(run: Run, row: dict[str, Any]) -> bool:
    """Whether the epoch just finished becomes best.pt: the best validation accuracy so far
    (ties go to the later epoch), or every epoch when there is no validation split."""
    best = run.selection.get("best_val_accuracy")
    val = row.get("val_accuracy")
    improved = val is None or best is None or val >= best
    if improved:
        run.selection = {
            "criterion": "val_accuracy" if val is not None else "last epoch (no validation)",
            "best_val_accuracy": val,
            "best_epoch": run.epoch,
            "test_accuracy_at_best_val": row["test_accuracy"],
        }
    return improved

