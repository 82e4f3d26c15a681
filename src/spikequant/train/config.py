"""Settings of one training run, from defaults, a TOML config file and command-line flags."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..errors import ConfigError
from .config_check import check_ranges, check_types, train_table
from .resources import check_device

FLOAT_BITS = 32  # the width metrics and sweeps report for float weights
LOSSES = ("mse", "ce")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("cosine", "constant")


def weight_bits(quantizer: str, bits: int, levels: list[float] | None) -> int:
    """Bits a weight takes in the exported file: FLOAT_BITS for a float quantizer ("none"),
    ceil(log2 L) for a custom level set, else `bits`."""
    from ..quant.registry import is_float_quantizer

    if is_float_quantizer(quantizer):
        return FLOAT_BITS
    if levels:
        from ..quant.levels import bits_for_levels

        return bits_for_levels(len(levels))
    return bits


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
    gradient: str = "reference"  # the sigmoid quantizer's backward: "reference" or "exact"
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
        from ..quant import quantizer_names
        from ..quant.schedule import KINDS
        from ..quant.sigmoid import GRADIENTS

        if self.quantizer not in quantizer_names():
            raise ValueError(
                f"--quantizer must be one of {', '.join(quantizer_names())}, "
                f"got {self.quantizer!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.scale_lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"--scale-lr-schedule must be one of {LR_SCHEDULES}, got {self.scale_lr_schedule!r}"
            )
        if self.gradient not in GRADIENTS:
            raise ValueError(f"--gradient must be one of {GRADIENTS}, got {self.gradient!r}")
        if self.temperature_schedule not in KINDS:
            raise ValueError(
                f"--temperature-schedule must be one of {', '.join(KINDS)}, "
                f"got {self.temperature_schedule!r}"
            )
        self._validate_state_bits()
        check_types(type(self), self.to_dict(), "the settings")
        check_ranges(self)
        check_device(self.device)

    def _validate_state_bits(self) -> None:
        from ..snn.fixed_point import check_state_bits

        try:
            check_state_bits(self.state_bits)
        except ValueError as err:
            raise ValueError(f"--state-bits: {err}") from None
        from ..quant.registry import is_float_quantizer

        float_weights = is_float_quantizer(self.quantizer)
        if self.state_bits is not None and (float_weights or self.exclude):
            raise ValueError(
                "--state-bits needs every conv / linear layer quantized (integer weights), but "
                + (f"--quantizer {self.quantizer} keeps them float" if float_weights else
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
            raise ConfigError(
                f"unknown setting(s) in {source}: {', '.join(sorted(unknown))}; "
                f"valid keys: {', '.join(sorted(cls.field_names()))}"
            )
        check_types(cls, values, source)
        return cls(**values)


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from err


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The [train] table of a config file (or the whole file when it has no tables); any
    other table is an error (config_check.train_table)."""
    return train_table(read_toml(path), str(path), TrainConfig)
