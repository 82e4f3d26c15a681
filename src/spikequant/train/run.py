"""A training run's state and how it is built: settings checked, data loaders, network,
optimiser, schedules; and its checkpoint, written after every epoch and loaded to resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..quant import TemperatureSchedule
from ..quant.registry import quantizer_class
from .checkpoint import CHECKPOINT_VERSION
from .component_options import network_overrides, quantizer_training_options
from .config import TrainConfig
from .distributed import DistContext, init_distributed
from .loaders import Loaders, make_loaders
from .optim import load_lr_scheduler_state, lr_scheduler_state, make_lr_scheduler, make_optimizer
from .resume import fit_schedules_to_epochs
from .state import capture_rng, restore_rng, seed_everything


@dataclass
class Run:
    """Everything a run holds between epochs."""

    config: TrainConfig
    ctx: DistContext
    model: nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    temperature: TemperatureSchedule | None  # None: the quantizer has no schedule
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


def build_model(cfg: TrainConfig) -> nn.Module:
    """The network of a validated `cfg`, quantized as it says."""
    from ..models import build

    return build(
        cfg.model or cfg.dataset,
        quantizer=cfg.quantizer,
        bits=cfg.bits,
        levels=cfg.levels,
        state_bits=cfg.state_bits,
        **network_overrides(cfg),
    )


def make_temperature(cfg: TrainConfig) -> TemperatureSchedule | None:
    """The schedule the run's quantizer follows (None for one without)."""
    return quantizer_class(cfg.quantizer).training_schedule(quantizer_training_options(cfg),
                                                            cfg.epochs)


def setup(cfg: TrainConfig) -> Run:
    cfg.validate()
    if cfg.amp and not cfg.device.startswith("cuda"):
        raise ValueError("--amp (mixed precision) needs --device cuda")
    ctx = init_distributed(cfg.device)
    device = f"cuda:{ctx.local_rank}" if cfg.device == "cuda" and ctx.enabled else cfg.device
    seed_everything(cfg.seed, cfg.deterministic)
    from ..data import dataset_info

    cfg.time_steps = dataset_info(cfg.dataset).time_steps(cfg.time_steps)
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
        "temperature": run.temperature.state_dict() if run.temperature else None,
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
    if run.temperature is not None and ckpt.get("temperature") is not None:
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

