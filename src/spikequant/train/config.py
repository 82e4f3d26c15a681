"""Settings of one training run, from defaults, a TOML config file and command-line flags."""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FLOAT_BITS = 32  # the width metrics and sweeps report for float weights
LOSSES = ("mse", "ce")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """Everything that decides a run's result. Defaults follow Fang et al.'s published PLIF
    code where the study is silent (Adam, lr 1e-3, cosine schedule, MSE on firing rates)."""

    dataset: str = "ndigits"
    quantizer: str = "sigmoid"
    bits: int = 1
    levels: list[float] | None = None
    epochs: int = 10
    out: str = "runs/run"
    data_dir: str | None = None
    time_steps: int | None = None  # None: the dataset's default
    batch_size: int = 16
    seed: int = 0
    device: str = "cpu"
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    decay_quantizer_scales: bool = False
    scale_lr: float | None = None  # learning rate of the quantizers' scales; None: lr
    scale_lr_schedule: str = "cosine"  # or "constant": the scales' LR is never decayed
    grad_clip: float | None = None  # clip the gradients' global norm to this; None: no clip
    loss: str = "mse"
    amp: bool = False
    deterministic: bool = False
    # start from a trained network (float or another precision) instead of random weights
    init_from: str | None = None
    # temperature of the sigmoid quantizer; t0 / t_max None: the schedule's own defaults
    temperature_schedule: str = "geometric"
    t0: float | None = None
    t_max: float | None = None
    t_growth: float = 1.5
    t_ramp: float = 0.8
    temperature_per_step: bool = True  # T rises every step, not once an epoch
    gradient: str = "exact"  # the sigmoid quantizer's backward: "exact" or "reference"
    # the evaluated network: batch-norm statistics re-estimated with hard weights before each
    # evaluation (quantized runs), on a fixed slice of the training data of this many samples
    bn_recalibration: bool = True
    calibration_samples: int = 256
    # model selection: best.pt is chosen on a validation split carved from the training data
    val_fraction: float = 0.1
    val_seed: int = 0
    # network
    model: str | None = None  # registry name; None: the dataset's network
    model_overrides: dict[str, Any] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    layer_bits: dict[str, int] = field(default_factory=dict)  # e.g. {"conv1": 8}
    per_channel: bool = False
    state_bits: int | None = None  # fixed-point neuron state (e.g. 8..16); None: float
    # data
    num_workers: int = 0
    augment: bool = False
    split_by: str = "number"
    download: bool = False
    skip_bad: bool = False
    # bookkeeping
    resume: bool = False
    progress: bool = True
    tensorboard: bool = False
    max_batches: int | None = None  # cap batches per epoch (smoke tests)

    def validate(self) -> None:
        from ..quant import QUANTIZERS
        from ..quant.sigmoid import GRADIENTS

        if self.quantizer not in QUANTIZERS:
            raise ValueError(
                f"--quantizer must be one of {', '.join(QUANTIZERS)}, got {self.quantizer!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.scale_lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"--scale-lr-schedule must be one of {LR_SCHEDULES}, got {self.scale_lr_schedule!r}"
            )
        if self.gradient not in GRADIENTS:
            raise ValueError(f"--gradient must be one of {GRADIENTS}, got {self.gradient!r}")
        for flag, value in (("--grad-clip", self.grad_clip), ("--scale-lr", self.scale_lr)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{flag} must be a positive number, got {value}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.calibration_samples < 0:
            raise ValueError(
                f"--calibration-samples must be 0 or more, got {self.calibration_samples}"
            )
        self._validate_state_bits()
        if self.time_steps is not None and self.time_steps < 1:
            raise ValueError(f"--time-steps must be at least 1, got {self.time_steps}")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(
                    "--device cuda asked for, but this torch build sees no CUDA GPU; "
                    "use --device cpu or install a CUDA build of torch (README)"
                )

    def _validate_state_bits(self) -> None:
        from ..snn.fixed_point import check_state_bits

        try:
            check_state_bits(self.state_bits)
        except ValueError as err:
            raise ValueError(f"--state-bits: {err}") from None
        if self.state_bits is not None and (self.quantizer == "none" or self.exclude):
            raise ValueError(
                "--state-bits needs every conv / linear layer quantized (integer weights), but "
                + ("--quantizer none keeps them float" if self.quantizer == "none" else
                   f"--exclude {' '.join(self.exclude)} keeps some float")
                + "; give those layers their own precision with --layer-bits NAME=BITS instead"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "settings") -> TrainConfig:
        unknown = set(values) - cls.field_names()
        if unknown:
            raise ValueError(
                f"unknown setting(s) in {source}: {', '.join(sorted(unknown))}; "
                f"valid keys: {', '.join(sorted(cls.field_names()))}"
            )
        return cls(**values)


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from err


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The [train] table of a config file (or the whole file when it has no tables)."""
    data = read_toml(path)
    table = data.get("train", data)
    return {
        k.replace("-", "_"): v
        for k, v in table.items()
        if not isinstance(v, dict) or k.replace("-", "_") == "model_overrides"
    }
