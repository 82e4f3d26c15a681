"""What is measured after an epoch, how often, and which epoch becomes best.pt.

An evaluated epoch first makes the evaluated network match the trained one (batch norm
re-estimated with hard weights; that pass also gives the hard-weight accuracy on the
calibration slice), then measures validation accuracy, and test accuracy when it is due.
Every accuracy comes from `evaluate`, the same path `spikequant eval` takes. Epochs are
evaluated every `eval_every` epochs and always after the last one; test accuracy is measured
after the last epoch, every `test_every` epochs if asked, and once for best.pt at the end.
Nothing is ever chosen on the test set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from ..quant.registry import is_float_quantizer
from .calibration import batch_norms, recalibrate_batch_norm, soft_hard_gap
from .distributed import all_reduce_sum
from .evaluation import evaluate
from .run import Run

# The automatic cadence: an epoch's evaluation may forward one sample for every
# EVAL_SHARE_INVERSE that it trains (a forward costs about a third of a training step, so
# evaluation stays near 4 % of the training time); more would make it evaluate less often.
EVAL_SHARE_INVERSE = 8


def accuracy(run: Run, loader: DataLoader, sharded: bool = True, net=None) -> float:
    """Eval-mode (hard weights) accuracy over `loader`; a sharded loader is summed over ranks."""
    result = evaluate(net or run.net, loader, run.config.device, amp=run.config.amp)
    correct, total = result["correct"], result["total"]
    if sharded:
        correct, total = all_reduce_sum([correct, total], run.ctx, run.config.device)
    return correct / max(total, 1)


def reestimates(run: Run) -> bool:
    """Whether an evaluation starts with the batch-norm re-estimation pass."""
    cfg = run.config
    return (cfg.bn_recalibration and not is_float_quantizer(cfg.quantizer)
            and run.loaders.calibration is not None and bool(batch_norms(run.net)))


def samples_of(loader: DataLoader | None) -> int:
    return 0 if loader is None else len(loader.sampler)


def eval_every(run: Run) -> int:
    """The evaluation cadence in epochs: --eval-every, else the fewest epochs between
    evaluations for which an evaluation (re-estimation and validation) forwards at most one
    sample for every EVAL_SHARE_INVERSE that those epochs train."""
    cfg = run.config
    if cfg.eval_every is not None:
        return cfg.eval_every
    loaders = run.loaders
    trained = samples_of(loaders.train)
    if cfg.max_batches is not None:
        trained = min(trained, cfg.max_batches * cfg.batch_size)
    forwarded = samples_of(loaders.val)
    if reestimates(run):
        forwarded += samples_of(loaders.calibration)
    return max(1, math.ceil(EVAL_SHARE_INVERSE * forwarded / max(trained, 1)))


def due(run: Run) -> tuple[bool, bool]:
    """(evaluate, test) for the epoch now ending (run.epoch, 0-based, not yet counted)."""
    cfg, number = run.config, run.epoch + 1
    last = number >= cfg.epochs
    test = last or (cfg.test_every > 0 and number % cfg.test_every == 0)
    return last or test or number % eval_every(run) == 0, test


def evaluate_epoch(run: Run) -> dict[str, Any]:
    """The measurements of the epoch now ending. Always the share of weights not yet hard;
    on an evaluated epoch also the hard-weight accuracy on the calibration slice (from the
    re-estimation pass) and validation accuracy, and test accuracy when due. A value not
    measured this epoch is None, so log.csv leaves its cell empty. `evaluated` says which
    kind of epoch it was (the trainer takes it out of the row)."""
    evaluated, test = due(run)
    row: dict[str, Any] = {"soft_hard_gap": soft_hard_gap(run.net), "evaluated": evaluated,
                           "hard_train_accuracy": None, "val_accuracy": None,
                           "test_accuracy": None}
    if not evaluated:
        return row
    cfg, loaders = run.config, run.loaders
    if reestimates(run):
        counts = [0, 0]

        def count(scores, labels) -> None:
            counts[0] += int((scores.argmax(1).cpu() == labels).sum())
            counts[1] += labels.numel()

        recalibrate_batch_norm(run.net, loaders.calibration, cfg.device, cfg.amp,
                               on_batch=count)
        row["hard_train_accuracy"] = counts[0] / max(counts[1], 1)
    elif loaders.calibration is not None and not is_float_quantizer(cfg.quantizer):
        row["hard_train_accuracy"] = accuracy(run, loaders.calibration, sharded=False)
    if loaders.val is not None:
        row["val_accuracy"] = accuracy(run, loaders.val)
    if test:
        row["test_accuracy"] = accuracy(run, loaders.test)
    return row


def select(run: Run, row: dict[str, Any], evaluated: bool = True) -> bool:
    """Whether the epoch just finished becomes best.pt: among the evaluated epochs, the best
    validation accuracy so far (ties go to the later epoch), or every evaluated epoch when
    there is no validation split."""
    if not evaluated:
        return False
    best = run.selection.get("best_val_accuracy")
    val = row.get("val_accuracy")
    improved = val is None or best is None or val >= best
    if improved:
        run.selection = {
            "criterion": "val_accuracy" if val is not None else "last epoch (no validation)",
            "best_val_accuracy": val,
            "best_epoch": run.epoch,
            "test_accuracy_at_best_val": row.get("test_accuracy"),
        }
    return improved


def test_best(run: Run, out: Path) -> None:
    """At the end of the run, the test accuracy of best.pt when its epoch did not measure it
    (best.pt as `spikequant eval` loads it), into the run's selection record."""
    selection = run.selection
    if not selection or selection.get("test_accuracy_at_best_val") is not None:
        return
    from .checkpoint import model_from_checkpoint

    best = model_from_checkpoint(out / "best.pt", device=run.config.device)
    selection["test_accuracy_at_best_val"] = accuracy(run, run.loaders.test, net=best)
