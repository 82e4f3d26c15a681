"""The training loop: epochs of optimisation steps, each followed by evaluation, model
selection and the run's files (checkpoints, log, metrics)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._signals import deferred
from ..errors import TrainingDiverged
from .checkpoint import atomic_torch_save
from .config import TrainConfig
from .distributed import all_reduce_sum, barrier, shutdown
from .epoch_eval import evaluate_epoch, select, test_best
from .epoch_log import log_epoch, open_tensorboard
from .guards import check_finite, prepare_run
from .metrics import metrics_of
from .optim import clip_gradients
from .run import Run, checkpoint_state, resume_from, setup
from .runfiles import write_log, write_metrics


def loss_fn(rates: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(rates, F.one_hot(labels, rates.shape[1]).to(rates.dtype))
    return F.cross_entropy(rates, labels)


def _update_temperature(run: Run, step: int, steps: int) -> float | None:
    return None if run.temperature is None else run.temperature.update(
        run.net, run.epoch, step, steps)


def train_epoch(run: Run) -> dict[str, float | None]:
    cfg, model = run.config, run.model
    model.train()
    loader = run.loaders.train
    loader.sampler.set_epoch(run.epoch)
    steps = len(loader) if cfg.max_batches is None else min(len(loader), cfg.max_batches)
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(
        loader,
        total=steps,
        desc=f"epoch {run.epoch + 1}/{cfg.epochs}",
        leave=False,
        disable=not (cfg.progress and run.ctx.is_main),
        dynamic_ncols=True,
    )
    temperature = _update_temperature(run, 0, steps)
    per_step = run.temperature is not None and run.temperature.per_step
    for step, (frames, labels) in enumerate(bar):
        if step >= steps:
            break
        if per_step:
            temperature = _update_temperature(run, step, steps)
        frames = frames.to(cfg.device, non_blocking=True).float()  # [T, B, ...] already
        labels = labels.to(cfg.device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=cfg.amp):
            rates = model(frames)
            loss = loss_fn(rates.float(), labels, cfg.loss)
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(
                f"training loss became {loss.item()} at epoch {run.epoch + 1} "
                f"step {step}; lower --lr or check the data"
            )
        run.optimizer.zero_grad(set_to_none=True)
        if run.scaler:
            run.scaler.scale(loss).backward()
            if cfg.grad_clip:
                run.scaler.unscale_(run.optimizer)
                clip_gradients(model, cfg.grad_clip)
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            loss.backward()
            clip_gradients(model, cfg.grad_clip)
            run.optimizer.step()
        total_loss += loss.item() * labels.numel()
        correct += int((rates.argmax(1) == labels).sum())
        seen += labels.numel()
        shown = {"T": f"{temperature:g}"} if temperature is not None else {}
        bar.set_postfix(  # shown at the bar's next refresh, not redrawn every step
            loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", **shown, refresh=False,
        )
    loss_sum, correct_sum, seen_sum = all_reduce_sum(
        [total_loss, correct, seen], run.ctx, cfg.device
    )
    return {
        "train_loss": loss_sum / max(seen_sum, 1),
        "train_accuracy": correct_sum / max(seen_sum, 1),
        "temperature": temperature,
    }


def save_epoch(run: Run, out: Path, improved: bool) -> dict[str, Any]:
    """Write the checkpoints, log and metrics of the epoch just finished; returns the metrics.
    A SIGINT / SIGTERM meanwhile waits until all four agree on the epoch."""
    with deferred():
        state = checkpoint_state(run)
        # best.pt first: if a write fails (disk full) last.pt still holds the epoch before, so
        # the resumed run redoes this epoch and writes best.pt again
        if improved:
            atomic_torch_save(state, out / "best.pt")
        atomic_torch_save(state, out / "last.pt")
        write_log(out, run.history)
        metrics = metrics_of(run, final=run.epoch >= run.config.epochs)
        write_metrics(out, metrics)
    return metrics


def fit(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume) a run and return its metrics (also in OUT/metrics.json).

    Args:
        cfg: the run's settings (spikequant.train.TrainConfig), checked by `cfg.validate()`
            before any data is read or network built. `cfg.out` is the run folder, which
            gets last.pt, best.pt, log.csv and metrics.json; a folder that already holds a
            run (a last.pt) is continued with `cfg.resume` and refused without it.

    Returns:
        The final metrics, as written to OUT/metrics.json.

    Raises:
        ConfigError: a setting that is not valid.
        RunFolderError: a run folder that can't be used.
        TrainingDiverged: the loss or a parameter stopped being finite.
    """
    claim = prepare_run(cfg)  # settings, device, memory, the run folder: before any data
    try:
        return _fit(cfg, claim.checkpoint)
    finally:
        claim.release()


def _fit(cfg: TrainConfig, resume_state: dict[str, Any] | None) -> dict[str, Any]:
    run = setup(cfg)
    out = Path(cfg.out)
    try:
        if resume_state is not None:
            resume_from(run, resume_state)
        tb = open_tensorboard(out) if cfg.tensorboard and run.ctx.is_main else None
        metrics = None  # the last epoch's, written by rank 0; packing the model is not free
        while run.epoch < cfg.epochs:
            start = time.perf_counter()
            row = train_epoch(run)
            run.lr_scheduler.step()
            row.update(evaluate_epoch(run))
            evaluated = row.pop("evaluated", True)
            run.epoch += 1
            improved = select(run, row, evaluated)
            if run.epoch >= cfg.epochs:
                test_best(run, out)
            seconds = time.perf_counter() - start
            run.train_seconds += seconds
            row.update(
                epoch=run.epoch,
                lr=run.optimizer.param_groups[0]["lr"],
                epoch_seconds=round(seconds, 3),
            )
            run.history.append(row)
            check_finite(run.net, run.epoch)
            if run.ctx.is_main:
                metrics = save_epoch(run, out, improved)
                log_epoch(row, cfg, tb)
            barrier(run.ctx)
        if metrics is None:  # no epoch left to run (a finished run resumed), or not rank 0
            metrics = metrics_of(run, final=True)
            if run.ctx.is_main:  # again: the last epoch's writes may not have finished
                write_log(out, run.history)
                write_metrics(out, metrics)
        return metrics
    finally:
        shutdown(run.ctx)

