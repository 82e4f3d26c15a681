"""Settings of one training run, from defaults, a TOML config file and command-line flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config_check import check_ranges, check_types, train_table
from .config_file import read_toml
from .resources import check_device
from .setting import (
    AT_LEAST_ONE,
    NOT_NEGATIVE,
    POSITIVE,
    Bounds,
    choices_of,
    parse_layer_bits,
    parse_levels,
    setting,
    where,
)

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


def _quantizers() -> tuple[str, ...]:
    from ..quant import quantizer_names

    return tuple(quantizer_names())


def _dataset_help() -> str:
    from ..data import DATASETS

    return f"dataset: {', '.join(DATASETS)} (ndigits is generated offline)"


def _split_modes() -> tuple[str, ...]:
    from ..data.frames import SPLIT_MODES

    return tuple(SPLIT_MODES)


def _neurons() -> tuple[str, ...]:
    from ..snn import NEURONS

    return NEURONS.names()


@dataclass
class TrainConfig:
    """Everything that decides a run's result. Defaults follow Fang et al.'s published PLIF
    code where the study is silent (Adam, lr 1e-3, cosine schedule, MSE on firing rates).
    Each field's metadata (train.setting) describes it for `spikequant train` and its checks."""

    plugins: list[str] = setting(
        flag="--plugin", repeat=True, metavar="MODULE", default_factory=list,
        help="import MODULE first (a module name or a .py file; repeatable): it registers "
        "quantizers, neurons, datasets or networks by name. Installed packages register "
        "through the spikequant.plugins entry point without it")
    dataset: str = setting("ndigits", short="-d", help=_dataset_help)
    quantizer: str = setting("sigmoid", short="-q", choices=_quantizers,
                             help="weight quantizer")
    bits: int = setting(1, short="-k", bounds=AT_LEAST_ONE,
                        help="bits a weight: 1 binary, 2 ternary, k: 2^k-1 levels")
    levels: list[float] | None = setting(
        None, parse=parse_levels, arg_type="str",
        help="custom level set instead of --bits, e.g. -4,-2,-1,0,1,2,4 (metrics report "
        "ceil(log2 L) bits)")
    epochs: int = setting(10, short="-e", bounds=AT_LEAST_ONE, help="training epochs")
    out: str = setting("runs/run", short="-o", help="run folder")
    data_dir: str | None = setting(
        None, metavar="D", default_text="$SPIKEQUANT_DATA, else ~/.cache/spikequant/data",
        help="dataset root, tonic's save_to layout")
    time_steps: int | None = setting(
        None, short="-T", metavar="T", bounds=AT_LEAST_ONE,
        default_text="the dataset's, e.g. 10 for N-MNIST", help="frames per sample")
    batch_size: int = setting(16, short="-b", metavar="B", bounds=AT_LEAST_ONE,
                              help="samples per batch")
    seed: int = setting(0, bounds=NOT_NEGATIVE, help="random seed")
    device: str = setting("cpu", arg_type="device", help="cpu, cuda or cuda:N")
    # optimisation
    optimizer: str = setting("adam", group="optimisation", choices=OPTIMIZERS,
                             help="optimiser")
    lr: float = setting(1e-3, group="optimisation", bounds=POSITIVE, help="learning rate")
    momentum: float = setting(0.9, group="optimisation", bounds=Bounds(0, high=1), cli=False,
                              help="SGD's momentum")
    weight_decay: float = setting(0.0, group="optimisation", bounds=NOT_NEGATIVE,
                                  help="weight decay of the weights")
    decay_quantizer_scales: bool = setting(
        False, group="optimisation", cli=False,
        help="apply the weight decay to the quantizers' scales too")
    scale_lr: float | None = setting(
        None, group="optimisation", bounds=POSITIVE, default_text="--lr",
        help="learning rate of the quantizers' scales (alpha, beta, step sizes)")
    scale_lr_schedule: str = setting(
        "cosine", group="optimisation", choices=LR_SCHEDULES,
        help="cosine: decays with the weights' LR; constant: never decayed")
    grad_clip: float | None = setting(
        None, group="optimisation", bounds=POSITIVE, metavar="NORM",
        default_text="no clipping", help="clip the gradients' global norm to NORM")
    loss: str = setting("mse", group="optimisation", choices=LOSSES,
                        help="mse: firing rates vs one-hot (the study's peers); ce: "
                        "cross-entropy on rates")
    amp: bool = setting(False, group="optimisation", help="CUDA mixed precision (float16)")
    deterministic: bool = setting(False, group="optimisation",
                                  help="deterministic algorithms (slower on CUDA)")
    # start from a trained network instead of random weights
    init_from: str | None = setting(
        None, metavar="CHECKPOINT",
        help="start from a trained network (float or another precision, same architecture) "
        "instead of random weights: its weights are copied and the quantizers' step "
        "positions and scales initialised from them, e.g. --init-from runs/fp/last.pt")
    # the components' own options
    quantizer_options: dict[str, Any] = setting(
        group="options of the quantizer and the neuron", flag="--quantizer-option",
        repeat=True, metavar="KEY=VALUE", options_of="quantizer", default_factory=dict,
        help="an option of the quantizer, e.g. --quantizer-option t0=2 (repeatable; each "
        "quantizer's options are listed at the end). In a config file: a "
        "[train.quantizer_options] table, or a table per quantizer "
        "([train.quantizer_options.sigmoid]) of which the run's quantizer's is used")
    neuron: str | None = setting(
        None, group="options of the quantizer and the neuron", choices=_neurons,
        default_text="the network's: plif", help="the spiking neuron of every layer")
    neuron_options: dict[str, Any] = setting(
        group="options of the quantizer and the neuron", flag="--neuron-option", repeat=True,
        metavar="KEY=VALUE", options_of="neuron", default_factory=dict,
        help="an option of the neuron, e.g. --neuron-option threshold=0.5 (repeatable; they "
        "replace the network's neuron settings; each neuron's options are listed at the end). "
        "In a config file: a [train.neuron_options] table")
    # the evaluated network and model selection
    bn_recalibration: bool = setting(
        True, group="evaluation and model selection", flag="--no-bn-recalibration",
        help="keep the batch-norm statistics gathered with training-mode (soft) weights")
    calibration_samples: int = setting(
        256, group="evaluation and model selection", bounds=NOT_NEGATIVE,
        help="training samples on which batch-norm statistics are re-estimated with hard "
        "weights before each evaluation, and hard-weight training accuracy is measured")
    val_fraction: float = setting(
        0.1, group="evaluation and model selection", bounds=Bounds(0, high=0.9),
        help="share of the training data held out (stratified, seeded) to choose best.pt; "
        "0: no validation split, best.pt is the last epoch")
    val_seed: int = setting(0, group="evaluation and model selection", cli=False,
                            help="seed of the validation split and the calibration slice")
    # network
    model: str | None = setting(None, group="network and data", default_text="the dataset's",
                                help="registered network")
    model_overrides: dict[str, Any] = setting(
        group="network and data", cli=False, default_factory=dict,
        help="a table of the network's own options, e.g. channels = 8")
    exclude: list[str] = setting(group="network and data", repeat=True, metavar="NAME",
                                 default_factory=list,
                                 help="keep this layer float (module name or glob; repeatable)")
    layer_bits: dict[str, int] = setting(
        group="network and data", repeat=True, metavar="NAME=BITS", parse=parse_layer_bits,
        default_factory=dict,
        help="give a layer its own precision, e.g. --layer-bits conv1=8 --layer-bits "
        "classifier=8 (module name or glob; repeatable; the others take --bits)")
    per_channel: bool = setting(False, group="network and data",
                                help="one scale per output channel")
    state_bits: int | None = setting(
        None, group="network and data", metavar="K", default_text="float state",
        help="keep the neuron state (membrane, threshold, leak, folded batch norm) in K-bit "
        "fixed point, 4..24 (e.g. 8, 12, 16), as neuromorphic hardware does: straight-through "
        "gradients in training, exact integer arithmetic in evaluation and in `infer`")
    # data
    num_workers: int = setting(0, group="network and data", bounds=NOT_NEGATIVE,
                               help="DataLoader workers")
    augment: bool = setting(False, group="network and data",
                            help="random crop, flip and roll")
    split_by: str = setting("number", group="network and data", cli=False, choices=_split_modes,
                            help="how a recording's events are cut into frames: equal event "
                            "counts (number) or equal durations (time)")
    download: bool = setting(False, group="network and data",
                             help="download the dataset via tonic")
    skip_bad: bool = setting(False, group="network and data",
                             help="skip (and count) unreadable event files instead of stopping")
    # bookkeeping
    resume: bool = setting(
        False, help="continue OUT/last.pt exactly (model, optimiser, schedules, RNG, epoch); "
        "only --epochs (the schedules are stretched to it), --out, --data-dir, --device and "
        "--num-workers may differ from the run's settings. An empty or new OUT starts fresh")
    progress: bool = setting(True, group="evaluation and model selection",
                             flag="--no-progress", help="no progress bars")
    tensorboard: bool = setting(False, group="evaluation and model selection",
                                help="also log to OUT/tensorboard")
    max_batches: int | None = setting(None, group="evaluation and model selection",
                                      bounds=AT_LEAST_ONE, hidden=True,
                                      help="cap batches per epoch (smoke tests)")

    def validate(self) -> None:
        """Check every setting (ConfigError naming the flag and the config key of the first
        problem) and put the names and the components' options in their resolved form: the
        registered spelling of each name, and every option of the run's quantizer."""
        from ..plugins import load_plugins
        from .component_options import canonical_names, check_neuron, resolve_quantizer_options

        check_types(type(self), {"plugins": self.plugins}, "the settings")
        load_plugins(self.plugins)
        canonical_names(self)
        for f in dataclasses.fields(self):
            choices = choices_of(f)
            value = getattr(self, f.name)
            if choices is not None and value is not None and value not in choices:
                raise ConfigError(
                    f"{where(f)} must be one of {', '.join(choices)}, got {value!r}")
        self._validate_state_bits()
        check_types(type(self), self.to_dict(), "the settings")
        check_ranges(self)
        resolve_quantizer_options(self)
        check_neuron(self)
        check_device(self.device)

    def _validate_state_bits(self) -> None:
        from ..models.fixed_point_rules import refuse_float_weights
        from ..snn.fixed_point import check_state_bits

        state_bits = where(self.field("state_bits"))
        try:
            if check_state_bits(self.state_bits) is not None:
                refuse_float_weights(self.quantizer, self.exclude)
        except ValueError as err:
            raise ConfigError(f"{state_bits}: {err}") from None

    @classmethod
    def field(cls, name: str) -> dataclasses.Field:
        return next(f for f in dataclasses.fields(cls) if f.name == name)

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


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The [train] table of a config file (or the whole file when it has no tables), after the
    base files it extends; any other table is an error (config_check.train_table)."""
    return train_table(read_toml(path), str(path), TrainConfig)
