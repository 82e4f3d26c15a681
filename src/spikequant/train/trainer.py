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
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..quant import TemperatureSchedule, WeightQuantizer
from .checkpoint import CHECKPOINT_VERSION, atomic_torch_save
from .config import TrainConfig, weight_bits
from .distributed import DistContext, all_reduce_sum, barrier, init_distributed, shutdown
from .evaluation import to_time_major
from .guards import check_finite, prepare_run
from .resume import fit_schedules_to_epochs
from .runfiles import write_log, write_metrics
from .state import EpochShuffleSampler, ShardSampler, capture_rng, restore_rng, seed_everything


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
    train_loader: DataLoader
    test_loader: DataLoader
    split_info: dict[str, Any]
    time_steps: int
    epoch: int = 0
    best_accuracy: float = 0.0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def net(self) -> nn.Module:
        """The network without its DDP wrapper."""
        return getattr(self.model, "module", self.model)


def loss_fn(rates: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(rates, F.one_hot(labels, rates.shape[1]).to(rates.dtype))
    return F.cross_entropy(rates, labels)


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Weight decay on weights only: not on quantizer scales (unless asked), biases, batch-norm
    affine parameters or neuron time constants."""
    quant_params = {
        id(p) for m in model.modules() if isinstance(m, WeightQuantizer) for p in m.parameters()
    }
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_scale = id(p) in quant_params
        is_weight = p.dim() > 1 or name.endswith("original")
        if (is_scale and cfg.decay_quantizer_scales) or (is_weight and not is_scale):
            decay.append(p)
        else:
            no_decay.append(p)
    return [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    try:  # one fused kernel for the whole update: several times faster than the loop
        return torch.optim.Adam(groups, lr=cfg.lr, fused=True)
    except RuntimeError:  # devices without a fused Adam
        return torch.optim.Adam(groups, lr=cfg.lr)


def make_loaders(cfg: TrainConfig, ctx: DistContext):
    from ..data import get_dataset

    common = dict(
        data_dir=cfg.data_dir,
        time_steps=cfg.time_steps,
        download=cfg.download,
        skip_bad=cfg.skip_bad,
        split_by=cfg.split_by,
        progress=cfg.progress and ctx.is_main,
    )
    train_set = get_dataset(cfg.dataset, "train", augment=cfg.augment, **common)
    test_set = get_dataset(cfg.dataset, "test", **common)
    pin = cfg.device.startswith("cuda")
    train_loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        sampler=EpochShuffleSampler(len(train_set), cfg.seed, ctx.rank, ctx.world_size),
        drop_last=False,
    )
    test_loader = DataLoader(
        test_set,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        pin_memory=pin,
        sampler=ShardSampler(len(test_set), ctx.rank, ctx.world_size),
    )
    split_info = dict(getattr(train_set, "split_info", {}) or {})
    split_info.setdefault("train_size", len(train_set))
    split_info.setdefault("test_size", len(test_set))
    return train_loader, test_loader, split_info


def default_time_steps(cfg: TrainConfig) -> int:
    from ..data import dataset_info

    return cfg.time_steps or dataset_info(cfg.dataset).default_time_steps


def build_model(cfg: TrainConfig) -> nn.Module:
    from ..models import build

    options = {"per_channel": True} if cfg.per_channel else {}
    overrides = dict(cfg.model_overrides)
    if cfg.exclude:
        overrides["exclude"] = list(cfg.exclude)
    if options:
        overrides["quant_options"] = options
    return build(
        cfg.model or cfg.dataset,
        quantizer=cfg.quantizer,
        bits=cfg.bits,
        levels=cfg.levels,
        **overrides,
    )


def setup(cfg: TrainConfig) -> Run:
    cfg.validate()
    if cfg.amp and not cfg.device.startswith("cuda"):
        raise ValueError("--amp (mixed precision) needs --device cuda")
    ctx = init_distributed(cfg.device)
    device = f"cuda:{ctx.local_rank}" if cfg.device == "cuda" and ctx.enabled else cfg.device
    seed_everything(cfg.seed, cfg.deterministic)
    cfg.time_steps = default_time_steps(cfg)
    train_loader, test_loader, split_info = make_loaders(cfg, ctx)
    model = build_model(cfg).to(device)
    if ctx.enabled:
        ids = [ctx.local_rank] if device.startswith("cuda") else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    optimizer = make_optimizer(model, cfg)
    lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    temperature = TemperatureSchedule(
        cfg.temperature_schedule,
        t0=cfg.t0,
        t_max=cfg.t_max,
        growth=cfg.t_growth,
        total_epochs=cfg.epochs,
        per_step=cfg.temperature_per_step,
    )
    scaler = torch.amp.GradScaler("cuda") if cfg.amp else None
    cfg.device = device
    return Run(
        cfg,
        ctx,
        model,
        optimizer,
        lr_scheduler,
        temperature,
        scaler,
        train_loader,
        test_loader,
        split_info,
        cfg.time_steps,
    )


def checkpoint_state(run: Run) -> dict[str, Any]:
    return {
        "version": CHECKPOINT_VERSION,
        "model_config": run.net.config,
        "model": run.net.state_dict(),
        "run": run.config.to_dict(),
        "epoch": run.epoch,
        "optimizer": run.optimizer.state_dict(),
        "lr_scheduler": run.lr_scheduler.state_dict(),
        "temperature": run.temperature.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else None,
        "rng": capture_rng(),
        "best_accuracy": run.best_accuracy,
        "train_seconds": run.train_seconds,
        "history": run.history,
    }


def resume_from(run: Run, ckpt: dict[str, Any]) -> None:
    """Load a verified checkpoint whose settings runfolder.claim_run_folder checked."""
    run.net.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
    run.temperature.load_state_dict(ckpt["temperature"])
    fit_schedules_to_epochs(run)  # a resumed run may be given more epochs
    if run.scaler and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    restore_rng(ckpt["rng"])
    run.epoch = ckpt["epoch"]
    run.best_accuracy = ckpt["best_accuracy"]
    run.train_seconds = ckpt.get("train_seconds", 0.0)
    run.history = list(ckpt.get("history", []))


def train_epoch(run: Run, tb=None) -> dict[str, float]:
    cfg, model = run.config, run.model
    model.train()
    run.train_loader.sampler.set_epoch(run.epoch)
    steps = (
        len(run.train_loader)
        if cfg.max_batches is None
        else min(len(run.train_loader), cfg.max_batches)
    )
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(
        run.train_loader,
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
            run.scaler.step(run.optimizer)
            run.scaler.update()
        else:
            loss.backward()
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


@torch.no_grad()
def test_accuracy(run: Run) -> float:
    net = run.net
    net.eval()
    correct, total = 0, 0
    with parametrize.cached():  # quantize each weight once, not once a batch
        for frames, labels in run.test_loader:
            with torch.autocast("cuda", dtype=torch.float16, enabled=run.config.amp):
                scores = net(to_time_major(frames.to(run.config.device)).float())
            correct += int((scores.argmax(1).cpu() == labels).sum())
            total += labels.numel()
    correct, total = all_reduce_sum([correct, total], run.ctx, run.config.device)
    return correct / max(total, 1)


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
    return {
        "dataset": cfg.dataset,
        "quantizer": cfg.quantizer,
        "bits": weight_bits(cfg.quantizer, cfg.bits, cfg.levels),
        "levels": cfg.levels,
        "model": cfg.model or cfg.dataset,
        "epochs": cfg.epochs,
        "epochs_completed": run.epoch,
        "finished": final,
        "time_steps": run.time_steps,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "loss": cfg.loss,
        "test_accuracy": last.get("test_accuracy"),
        "best_test_accuracy": run.best_accuracy,
        "train_accuracy": last.get("train_accuracy"),
        "final_temperature": last.get("temperature"),
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
            accuracy = test_accuracy(run)
            run.epoch += 1
            seconds = time.perf_counter() - start
            run.train_seconds += seconds
            improved = accuracy > run.best_accuracy or run.epoch == 1
            run.best_accuracy = max(run.best_accuracy, accuracy)
            row.update(
                epoch=run.epoch,
                test_accuracy=accuracy,
                best_test_accuracy=run.best_accuracy,
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
        tqdm.write(
            f"epoch {row['epoch']}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
            f"train {row['train_accuracy']:.4f}  test {row['test_accuracy']:.4f}  "
            f"best {row['best_test_accuracy']:.4f}  T {row['temperature']:g}  "
            f"{row['epoch_seconds']:.1f}s"
        )
    if tb is not None:
        for key in ("train_loss", "train_accuracy", "test_accuracy", "temperature", "lr"):
            tb.add_scalar(key, row[key], row["epoch"])
        tb.flush()
