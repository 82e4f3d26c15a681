"""One training run: data, network, optimiser, temperature schedule, epochs, checkpoints."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..quant import TemperatureSchedule
from ..quant.registry import is_float_quantizer, quantizer_class
from ..quant.schedule import KIND_CAP
from .calibration import recalibrate_batch_norm, soft_hard_gap
from .checkpoint import CHECKPOINT_VERSION, atomic_torch_save
from .config import TrainConfig, weight_bits
from .distributed import DistContext, all_reduce_sum, barrier, init_distributed, shutdown
from .evaluation import evaluate, to_time_major
from .guards import check_finite, prepare_run
from .loaders import Loaders, make_loaders
from .optim import (
    clip_gradients,
    load_lr_scheduler_state,
    lr_scheduler_state,
    make_lr_scheduler,
    make_optimizer,
)
from .resume import fit_schedules_to_epochs
from .runfiles import write_log, write_metrics
from .state import capture_rng, restore_rng, seed_everything


@dataclass
class Run:
    """Everything a run holds between epochs."""

    config: TrainConfig
    ctx: DistContext
    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    temperature: TemperatureSchedule
    scaler: torch.amp.GradScaler | None
    loaders: Loaders
    time_steps: int
    init_info: dict[str, Any] | None = None
    epoch: int = 0
    # model selection: the epoch whose validation accuracy is best (best.pt)
    selection: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def split_info(self) -> dict[str, Any]:
        return self.loaders.split_info

    @property
    def net(self) -> nn.Module:
        """The network without its DDP wrapper."""
        return getattr(self.model, "module", self.model)


def loss_fn(rates: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(rates, F.one_hot(labels, rates.shape[1]).to(rates.dtype))
    return F.cross_entropy(rates, labels)


def default_time_steps(cfg: TrainConfig) -> int:
    from ..data import dataset_info

    return cfg.time_steps or dataset_info(cfg.dataset).default_time_steps


def build_model(cfg: TrainConfig) -> nn.Module:
    from ..models import build

    options: dict[str, Any] = {"per_channel": True} if cfg.per_channel else {}
    if "gradient" in quantizer_class(cfg.quantizer).option_names():
        options["gradient"] = cfg.gradient
    overrides = dict(cfg.model_overrides)
    if cfg.exclude:
        overrides["exclude"] = list(cfg.exclude)
    if cfg.layer_bits:
        overrides["layer_bits"] = dict(cfg.layer_bits)
    if options:
        overrides["quant_options"] = options
    return build(
        cfg.model or cfg.dataset,
        quantizer=cfg.quantizer,
        bits=cfg.bits,
        levels=cfg.levels,
        state_bits=cfg.state_bits,
        **overrides,
    )


def make_temperature(cfg: TrainConfig) -> TemperatureSchedule:
    return TemperatureSchedule(
        cfg.temperature_schedule,
        t0=cfg.t0,
        t_max=KIND_CAP if cfg.t_max is None else cfg.t_max,
        growth=cfg.t_growth,
        total_epochs=cfg.epochs,
        per_step=cfg.temperature_per_step,
        ramp=cfg.t_ramp,
    )


def setup(cfg: TrainConfig) -> Run:
    cfg.validate()
    if cfg.amp and not cfg.device.startswith("cuda"):
        raise ValueError("--amp (mixed precision) needs --device cuda")
    ctx = init_distributed(cfg.device)
    device = f"cuda:{ctx.local_rank}" if cfg.device == "cuda" and ctx.enabled else cfg.device
    seed_everything(cfg.seed, cfg.deterministic)
    cfg.time_steps = default_time_steps(cfg)
    loaders = make_loaders(cfg, ctx)
    model = build_model(cfg)
    init_info = None
    if cfg.init_from and not (cfg.resume and (Path(cfg.out) / "last.pt").is_file()):
        from .init_from import init_from_checkpoint

        init_info = init_from_checkpoint(model, cfg.init_from)
    model = model.to(device)
    if ctx.enabled:
        ids = [ctx.local_rank] if device.startswith("cuda") else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    optimizer = make_optimizer(model, cfg)
    lr_scheduler = make_lr_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp else None
    cfg.device = device
    return Run(
        cfg,
        ctx,
        model,
        optimizer,
        lr_scheduler,
        make_temperature(cfg),
        scaler,
        loaders,
        cfg.time_steps,
        init_info,
    )


def checkpoint_state(run: Run) -> dict[str, Any]:
    return {
        "version": CHECKPOINT_VERSION,
        "model_config": run.net.config,
        "model": run.net.state_dict(),
        "run": run.config.to_dict(),
        "epoch": run.epoch,
        "optimizer": run.optimizer.state_dict(),
        "lr_scheduler": lr_scheduler_state(run.lr_scheduler),
        "temperature": run.temperature.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "rng": capture_rng(),
        "selection": run.selection,
        "init_from": run.init_info,
        "train_seconds": run.train_seconds,
        "history": run.history,
    }


def resume_from(run: Run, ckpt: dict[str, Any]) -> None:
    """Load a verified checkpoint whose settings runfolder.claim_run_folder checked."""
    run.net.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    load_lr_scheduler_state(run.lr_scheduler, ckpt["lr_scheduler"])
    run.temperature.load_state_dict(ckpt["temperature"])
    fit_schedules_to_epochs(run)  # a resumed run may be given more epochs
    if run.scaler and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    restore_rng(ckpt["rng"])
    run.epoch = ckpt["epoch"]
    run.selection = dict(ckpt.get("selection") or {})
    run.init_info = ckpt.get("init_from")
    run.train_seconds = ckpt.get("train_seconds", 0.0)
    run.history = list(ckpt.get("history", []))


def train_epoch(run: Run, tb=None) -> dict[str, float]:
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
    temperature = run.temperature.update(run.net, run.epoch, 0, steps)
    for step, (frames, labels) in enumerate(bar):
        if step >= steps:
            break
        if cfg.temperature_per_step:
            temperature = run.temperature.update(run.net, run.epoch, step, steps)
        frames = to_time_major(frames.to(cfg.device, non_blocking=True)).float()
        labels = labels.to(cfg.device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.float16, enabled=cfg.amp):
            rates = model(frames)
            loss = loss_fn(rates.float(), labels, cfg.loss)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(
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
        bar.set_postfix(
            loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", T=f"{temperature:g}"
        )
    loss_sum, correct_sum, seen_sum = all_reduce_sum(
        [total_loss, correct, seen], run.ctx, cfg.device
    )
    return {
        "train_loss": loss_sum / max(seen_sum, 1),
        "train_accuracy": correct_sum / max(seen_sum, 1),
        "temperature": temperature,
    }


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


def size_metrics(run: Run) -> dict[str, Any]:
    """Memory figures: the fp32 size against the exact size of the file that `spikequant
    export` writes for this run's checkpoint (run settings and epoch included)."""
    from ..export import count_weights, fp32_model_bytes, packed_model_bytes, run_metadata

    meta = run_metadata(run.config.to_dict(), run.epoch)
    fp32, packed = fp32_model_bytes(run.net), packed_model_bytes(run.net, meta)
    return {
        "num_weights": count_weights(run.net),
        "model_bytes_fp32": fp32,
        "model_bytes_quantized": packed,
        "memory_savings": fp32 / packed,
    }


def metrics_of(run: Run, final: bool) -> dict[str, Any]:
    cfg = run.config
    last = run.history[-1] if run.history else {}
    tests = [row["test_accuracy"] for row in run.history]
    return {
        "dataset": cfg.dataset,
        "quantizer": cfg.quantizer,
        "bits": weight_bits(cfg.quantizer, cfg.bits, cfg.levels),
        "levels": cfg.levels,
        "layer_bits": dict(cfg.layer_bits),
        "state_bits": cfg.state_bits,  # None: float neuron state
        "model": cfg.model or cfg.dataset,
        "epochs": cfg.epochs,
        "epochs_completed": run.epoch,
        "finished": final,
        "time_steps": run.time_steps,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "loss": cfg.loss,
        "init_from": run.init_info,
        # the final epoch's network (last.pt)
        "test_accuracy": last.get("test_accuracy"),
        "val_accuracy": last.get("val_accuracy"),
        # best.pt: the epoch chosen on the validation split, never on the test set
        "best_epoch": run.selection.get("best_epoch"),
        "best_val_accuracy": run.selection.get("best_val_accuracy"),
        "best_test_accuracy": run.selection.get("test_accuracy_at_best_val"),
        "selection": run.selection.get("criterion"),
        # only for comparison with papers that report it: chosen on the test set
        "max_test_accuracy_over_epochs": max(tests) if tests else None,
        "train_accuracy": last.get("train_accuracy"),
        "hard_train_accuracy": last.get("hard_train_accuracy"),
        "soft_hard_gap": last.get("soft_hard_gap"),
        "final_temperature": last.get("temperature"),
        "bn_recalibration": bool(cfg.bn_recalibration and not is_float_quantizer(cfg.quantizer)),
        "train_seconds": round(run.train_seconds, 3),
        "world_size": run.ctx.world_size,
        "split": run.split_info,
        "device": str(cfg.device),
        **size_metrics(run),
    }


def save_epoch(run: Run, out: Path, improved: bool) -> dict[str, Any]:
    """Write the checkpoints, log and metrics of the epoch just finished; returns the metrics."""
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
    """Train (or resume) a run and return its metrics (also in OUT/metrics.json)."""
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
            run.epoch += 1
            seconds = time.perf_counter() - start
            run.train_seconds += seconds
            improved = select(run, row)
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


def open_tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install tensorboard"
        ) from err
    return SummaryWriter(str(out / "tensorboard"))


def log_epoch(row: dict[str, Any], cfg: TrainConfig, tb) -> None:
    if cfg.progress:
        parts = [
            f"epoch {row['epoch']}/{cfg.epochs}",
            f"loss {row['train_loss']:.4f}",
            f"train {row['train_accuracy']:.4f}",
        ]
        if row.get("hard_train_accuracy") is not None and not is_float_quantizer(cfg.quantizer):
            parts.append(f"train(hard) {row['hard_train_accuracy']:.4f}")
        if row.get("val_accuracy") is not None:
            parts.append(f"val {row['val_accuracy']:.4f}")
        parts.append(f"test {row['test_accuracy']:.4f}")
        if row.get("soft_hard_gap") is not None:
            parts.append(f"T {row['temperature']:g}  not hard {100 * row['soft_hard_gap']:.1f}%")
        parts.append(f"{row['epoch_seconds']:.1f}s")
        tqdm.write("  ".join(parts))
    if tb is not None:
        for key in ("train_loss", "train_accuracy", "hard_train_accuracy", "val_accuracy",
                    "test_accuracy", "soft_hard_gap", "temperature", "lr"):
            if row.get(key) is not None:
                tb.add_scalar(key, row[key], row["epoch"])
        tb.flush()
