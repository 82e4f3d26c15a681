"""What `--resume` may change, and fitting the schedules to a new number of epochs.

A resumed run continues exactly the run in last.pt, so every setting that shapes the result
(quantizer, levels, per-channel scales, excluded layers, optimiser, learning rate, batch
size...) must be the one it was started with; a changed one is refused with the list of
differences rather than ignored or half-applied. What may change: where things are (--out,
--data-dir, --device, workers), how it is shown and how often it is evaluated, and --epochs,
for which the learning-rate and temperature schedules are rebuilt over the new length.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import RunFolderError

RESUMABLE = frozenset({
    "epochs", "out", "data_dir", "device", "num_workers", "progress", "tensorboard", "resume",
    "download", "skip_bad", "deterministic",
    # how often a run is measured: evaluation draws nothing from the training's random state,
    # so the trained weights do not depend on it
    "eval_every", "test_every",
})


def check_resume(ckpt: dict[str, Any], cfg: Any, time_steps: int, path: os.PathLike) -> None:
    """RunFolderError when `cfg` can't continue the run of checkpoint `ckpt`."""
    saved = ckpt.get("run") or {}
    now = {**cfg.to_dict(), "time_steps": time_steps}
    changed = [k for k in now if k in saved and k not in RESUMABLE and saved[k] != now[k]]
    if changed:
        diffs = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise RunFolderError(
            f"cannot resume {path}: the run's settings differ ({diffs}); these can't change on "
            "resume (--epochs, --out, --data-dir, --device, --num-workers, --eval-every, "
            "--test-every and display options may); use the run's settings or a new --out folder"
        )
    done = ckpt.get("epoch", 0)
    if isinstance(done, int) and cfg.epochs < done:
        raise RunFolderError(
            f"cannot resume {path} with --epochs {cfg.epochs}: it has already trained {done} "
            f"epochs; give --epochs {done} or more"
        )


def fit_schedules_to_epochs(run: Any) -> None:
    """After loading a checkpoint, possibly trained for another number of epochs: the
    learning-rate factors read the run's --epochs (train.optim), so each group's rate is set
    to the new curve at the current epoch (loading the old rate would leave it at 0 once the
    old length is reached), and the temperature schedule is told the new length. With the
    run's own --epochs both come out exactly as they were saved."""
    from .optim import sync_learning_rates

    sync_learning_rates(run.lr_scheduler)
    if getattr(run.temperature, "total_epochs", None) is not None:
        run.temperature.total_epochs = run.config.epochs
