"""The registry of networks by name, and `build`, which makes one (optionally quantized).

A network is one `ModelRecipe`: how to build its float version for its dataset, and every
option that builder takes with its default. `register_model(recipe)` makes it known by name
to `build`, `spikequant train --model`, `spikequant models` and the export / infer path (which
rebuild a network from its recorded `model.config`). The study's networks are recipes of the
PLIF convolutional family (`convnet`); a registered dataset without a network of its own gets
that family's small generic member.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from ..data.registry import DATASETS, DatasetInfo, dataset_info
from ..errors import ConfigError, UnknownComponent
from ..quant import quantize_model
from ..registry import Registry
from ..snn.fixed_point import check_state_bits
from .convnet import SpikingConvNet
from .fixed_point_rules import refuse_float_weights


@dataclass(frozen=True)
class ModelRecipe:
    """A registered network.

    Args:
        name: the registered name (`build(name)`, `--model name`).
        description: one line for `spikequant models`.
        build: `build(dataset, **options)` returns the float network for `dataset` (a
            DatasetInfo): its forward takes [T, B, C, H, W] and returns [B, num_classes].
        options: every keyword option `build` takes, with its default; `build(name, **...)`
            overrides them. An `input_size` of None means the dataset's frame height and width.
        dataset: the dataset the network classifies (None: the one of the same name).
    """

    name: str
    description: str
    build: Callable[..., nn.Module]
    options: Mapping[str, Any] = field(default_factory=dict)
    dataset: str | None = None

    @property
    def dataset_info(self) -> DatasetInfo:
        return dataset_info(self.dataset or self.name)

    @property
    def num_classes(self) -> int:
        return self.dataset_info.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:  # (C, H, W)
        return self.dataset_info.frame_shape

    @property
    def time_steps(self) -> int:  # default T
        return self.dataset_info.default_time_steps

    def architecture(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The recipe's options with `overrides` applied; ConfigError for an unknown one or a
        layer size that is not a whole number >= 1."""
        unknown = set(overrides) - set(self.options)
        if unknown:
            raise ConfigError(
                f"unknown override(s) {', '.join(sorted(unknown))} for model {self.name!r}; "
                f"allowed: {', '.join((*self.options, *QUANT_KEYS))}"
            )
        arch = copy.deepcopy(dict(self.options))
        arch.update(copy.deepcopy(dict(overrides)))
        if "input_size" in arch:
            if arch["input_size"] is None:
                arch["input_size"] = list(self.input_shape[1:])
            arch["input_size"] = _input_size(arch["input_size"])
        _check_counts(arch)
        return arch

    def float_network(self, arch: Mapping[str, Any]) -> nn.Module:
        """The float network of the checked architecture `arch` (from `architecture`)."""
        return self.build(self.dataset_info, **arch)


MODELS: Registry[ModelRecipe] = Registry(
    "network",
    "register one: spikequant.models.register_model(ModelRecipe(...)), imported with "
    "--plugin MODULE or installed as a spikequant.plugins entry point",
)
# keys of build() that quantize the network rather than shape it
QUANT_KEYS = ("exclude", "quant_options", "layer_bits")


def register_model(recipe: ModelRecipe) -> ModelRecipe:
    """Make the network `recipe` known by its name; returns it."""
    if not isinstance(recipe, ModelRecipe):
        raise TypeError(f"register_model takes a ModelRecipe, not {type(recipe).__name__}")
    return MODELS.register(recipe.name, recipe)


def unregister_model(name: str) -> ModelRecipe | None:
    """Forget the network `name` (a test's own, after the test); returns it."""
    return MODELS.unregister(name)


# ------------------------------------------------------------------ the PLIF CNN family

# Knobs shared by every network of the family unless a recipe or the caller overrides them.
COMMON_DEFAULTS: dict[str, Any] = {
    "channels": 128,
    "hidden": None,
    "neuron": "plif",
    "tau": 2.0,
    "surrogate": "atan",
    "dropout": 0.5,
    "votes": 10,
    "input_size": None,
    "neuron_options": {},
}
# the architecture keys of the family (and of a model_config of one of its networks)
ARCH_KEYS = tuple(COMMON_DEFAULTS)


def _build_convnet(dataset: DatasetInfo, *, num_blocks: int, **arch: Any) -> SpikingConvNet:
    return SpikingConvNet(in_channels=dataset.frame_shape[0], num_classes=dataset.num_classes,
                          num_blocks=num_blocks, **arch)


def convnet_recipe(name: str, description: str, num_blocks: int, dataset: str | None = None,
                   **defaults: Any) -> ModelRecipe:
    """A network of the PLIF CNN family (`SpikingConvNet`) with `num_blocks` conv blocks and
    its own defaults over COMMON_DEFAULTS.

    Args:
        name: the network's name, as `register_model` will register it (`build(name)`,
            `--model name`).
        description: one line for `spikequant models`.
        num_blocks: the number of conv blocks (see SpikingConvNet).
        dataset: the registered dataset the network classifies, which gives its input
            channels, frame size and classes; None (default): the dataset called `name`.
        **defaults: the recipe's own defaults of the family's options (the keys of
            COMMON_DEFAULTS: channels, hidden, neuron, tau, surrogate, dropout, votes,
            input_size, neuron_options).

    Returns:
        The ModelRecipe; it is not registered (pass it to `register_model`).

    Raises:
        ValueError: a key of `defaults` that is not one of the family's options.
    """
    unknown = set(defaults) - set(COMMON_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))} for a SpikingConvNet; "
                         f"its options are {', '.join(COMMON_DEFAULTS)}")
    return ModelRecipe(name, description, partial(_build_convnet, num_blocks=num_blocks),
                       {**COMMON_DEFAULTS, **defaults}, dataset)


for _recipe in (
    # ndigits without dropout: on 1,438 training samples and one FC layer it cost 1.1 points of
    # float test accuracy (95.8 % without, 94.7 % with 0.5; 12 epochs, seed 0).
    convnet_recipe("ndigits", "small PLIF CNN for the offline N-MNIST-format digits (2 conv "
                   "blocks of 32, FC 2048-100, no dropout; trains on a CPU)", 2,
                   channels=32, dropout=0.0),
    convnet_recipe("nmnist", "PLIF CNN of Fang et al. 2021 for N-MNIST (2 conv blocks, FC "
                   "8192-2048-100)", 2, hidden=2048),
    convnet_recipe("dvsgesture", "PLIF CNN of Fang et al. 2021 for DVS128 Gesture (5 conv "
                   "blocks, FC 2048-512-110)", 5, hidden=512),
    convnet_recipe("cifar10dvs", "PLIF CNN for CIFAR10-DVS (4 conv blocks, FC 8192-512-100; "
                   "hidden 512 as SpikingJelly's version, 2048 in Fang et al.'s code)", 4,
                   hidden=512),
    convnet_recipe("ncaltech101", "PLIF CNN for N-Caltech101 at 48x48 (3 conv blocks, FC "
                   "4608-512-1010)", 3, hidden=512),
):
    MODELS.register(_recipe.name, _recipe, builtin=True)


def generic_recipe(dataset: str) -> ModelRecipe:
    """The network of a registered dataset without one of its own (e.g. a user's dataset)."""
    return convnet_recipe(dataset, "small PLIF CNN for a dataset without a network of its "
                          "own (2 conv blocks of 32, one FC layer, no dropout)", 2,
                          channels=32, dropout=0.0)


def list_models() -> list[str]:
    """Registered network names, in registry order (a dataset without a network of its own
    still gets the generic one from build)."""
    return list(MODELS)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (each shared tensor once). For a quantized model this includes the
    quantizers' own parameters (e.g. alpha and beta of the sigmoid quantizer).

    Args:
        model: any torch.nn.Module (on any device, the meta device included); its buffers
            are not counted.
    """
    return sum(p.numel() for p in model.parameters())


def model_recipe(name: str) -> ModelRecipe:
    """The network `name` (any spelling): a registered one, else the generic network of the
    registered dataset `name`; UnknownComponent (a ValueError) naming the choices."""
    recipe = MODELS.find(name)
    if recipe is not None:
        return recipe
    if isinstance(name, str) and name in DATASETS:
        return generic_recipe(DATASETS.canonical(name))
    try:
        return MODELS.get(name)  # loads installed plugins once before giving up
    except UnknownComponent:
        if isinstance(name, str) and name in DATASETS:
            return generic_recipe(DATASETS.canonical(name))
        choices = ", ".join(dict.fromkeys([*MODELS, *DATASETS]))
        raise UnknownComponent(f"unknown model {name!r}; choose one of {choices} "
                               f"({MODELS.how_to_add})") from None


def _input_size(value: int | Sequence[int]) -> list[int]:
    size = [value] * 2 if isinstance(value, int) else list(value)
    if len(size) != 2:
        raise ConfigError(f"input_size must be an int or (height, width), got {value!r}")
    return size


def _check_counts(arch: Mapping[str, Any]) -> None:
    """ConfigError for a layer size that is not a whole number >= 1 (torch would say
    "negative dimension", or build a network of another size from 2.5)."""
    for key in ("channels", "hidden", "votes", "input_size"):
        if key not in arch:
            continue
        value = arch[key]
        if key == "hidden" and value in (None, 0):  # no hidden layer (TOML has no None)
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                             for v in values):
            raise ConfigError(f"{key} must be a whole number >= 1"
                              f"{' (or a list of them)' if key == 'channels' else ''}"
                              f"{' (0 or None: no hidden layer)' if key == 'hidden' else ''}"
                              f", got {value!r}")


def _levels_list(levels: Sequence[float] | torch.Tensor | None) -> list[float] | None:
    if levels is None:
        return None
    if isinstance(levels, torch.Tensor):
        levels = levels.detach().flatten().tolist()
    return [float(v) for v in levels]


def _exclude_list(exclude: Any) -> tuple[list[str] | None, str | None]:
    """(names/globs, None), or (None, why the model can't have a config)."""
    if callable(exclude):
        return None, (
            "the model was built with a predicate `exclude`, which can't be written to a "
            "config; pass module names or glob patterns (e.g. ['conv1', 'classifier']) instead"
        )
    if isinstance(exclude, str):
        return [exclude], None
    return [str(e) for e in exclude], None


def _json_problem(what: str, value: Any) -> str | None:
    try:
        json.dumps(value)
    except TypeError as err:
        return f"{what} are not JSON-serialisable ({err}); use plain values"
    return None


def build(
    name: str,
    quantizer: str = "none",
    bits: int | None = 1,
    levels: Sequence[float] | torch.Tensor | None = None,
    state_bits: int | None = None,
    **overrides: Any,
) -> nn.Module:
    """A registered network, quantized with `quantizer` (default: float).

    Args:
        name: a registered network (`spikequant models` lists them) or a registered dataset
            without one of its own (it gets the generic small CNN); any spelling of it.
        quantizer: a registered quantizer ("none", "sigmoid", "ste", ...).
        bits: bits a weight (1 binary, 2 ternary, k: 2^k - 1 levels); ignored by "none".
        levels: an explicit level set instead of `bits`.
        state_bits: keep the neuron state in that many bits of fixed point (4..24, e.g. 8,
            12, 16; None: float), so evaluation runs the exact integer arithmetic of the
            exported network. Needs every conv / linear layer quantized.
        overrides: the network's own options (for the study's networks: channels, one width
            or one per conv block; hidden, None for no hidden FC layer; input_size, an int or
            (H, W); neuron, a registered neuron; neuron_options, that neuron's own options;
            tau; surrogate; dropout; votes, output neurons per class), and how to quantize:
            `exclude` (module names, globs or a predicate kept float), `layer_bits` ({name:
            bits} of some layers, e.g. {"conv1": 8}) and `quant_options` (the quantizer's
            constructor options, e.g. {"per_channel": True}).

    `model.config` is a JSON-serialisable dict with `build(**model.config)` rebuilding the same
    architecture; it raises for a model built with a predicate exclude.
    """
    recipe = model_recipe(name)
    arch = recipe.architecture({k: v for k, v in overrides.items() if k not in QUANT_KEYS})
    _check_state_bits(state_bits, quantizer, overrides)
    exclude = overrides.get("exclude", ())
    exclude_names, exclude_problem = _exclude_list(exclude)
    options = dict(overrides.get("quant_options") or {})
    layer_bits = {str(k): v for k, v in (overrides.get("layer_bits") or {}).items()}
    model = recipe.float_network(arch)
    quantize_model(
        model, quantizer, bits, levels,
        exclude=exclude if exclude_problem else exclude_names, layer_bits=layer_bits,
        state_bits=state_bits, **options,
    )
    config = {
        "name": recipe.name,
        "quantizer": quantizer,
        "bits": bits,
        "levels": _levels_list(levels),
        **copy.deepcopy(arch),
        "exclude": exclude_names,
        "quant_options": options,
        "layer_bits": layer_bits,
        "state_bits": state_bits,
    }
    problem = (exclude_problem or _json_problem("quant_options", options)
               or _json_problem("the network's options", arch))
    record_config(model, config, problem)
    return model


def record_config(model: nn.Module, config: dict[str, Any], problem: str | None) -> None:
    """Give `model` its `config` (how build made it), or the `problem` why it has none."""
    if hasattr(model, "set_config"):
        model.set_config(config, problem=problem)
    elif problem is None:
        model.config = config


def _check_state_bits(state_bits: int | None, quantizer: str, overrides: dict[str, Any]) -> None:
    """Refuse, before building anything, fixed-point state on a network with float weights."""
    if check_state_bits(state_bits) is not None:
        refuse_float_weights(quantizer, overrides.get("exclude"))


def check_components(config: Mapping[str, Any], plugins: Sequence[str] | None,
                     source: str, quantizer: bool = True) -> None:
    """UnknownComponent when the network, quantizer (unless `quantizer` is False: a packed
    file's weights need none) or neuron a recorded `config` names is not registered in this
    process, saying which plugins the run was trained with (so which `--plugin` to pass) when
    it recorded them."""
    from ..quant import QUANTIZERS
    from ..snn import NEURONS

    if not isinstance(config, Mapping):
        return
    wanted = [("network", config.get("name"), lambda n: n in MODELS or n in DATASETS),
              ("quantizer", config.get("quantizer") if quantizer else None,
               lambda n: n in QUANTIZERS),
              ("neuron", config.get("neuron"), lambda n: n in NEURONS)]
    missing = [(kind, name) for kind, name, known in wanted
               if isinstance(name, str) and not known(name)]
    if not missing:
        return
    from ..plugins import load_installed_plugins

    load_installed_plugins()
    missing = [(kind, name) for kind, name, known in wanted
               if isinstance(name, str) and not known(name)]
    if not missing:
        return
    names = ", ".join(f"{kind} {name!r}" for kind, name in missing)
    given = list(plugins or ())
    how = (f"it was trained with {' '.join(f'--plugin {p}' for p in given)}: pass the same"
           if given else "import the module that registers it with --plugin MODULE")
    raise UnknownComponent(f"{source} uses {names}, which nothing in this process registers; "
                           f"{how}")


def architecture_keys(name: str) -> tuple[str, ...]:
    """The options that shape the network `name` (the keys of its model_config besides the
    quantization ones)."""
    return tuple(model_recipe(name).options)


def build_float_on_meta(name: str, **overrides: Any) -> nn.Module:
    """The float network (architecture overrides only) with parameters on the meta device: no
    memory and no initialisation cost, for counting parameters and printing structure.

    Args:
        name: a registered network or a registered dataset without one of its own, any
            spelling of it, as in `build`.
        **overrides: the network's own options (see `build`); the quantization keys
            (exclude, layer_bits, quant_options) are refused.

    Raises:
        ConfigError: an unknown name (UnknownComponent) or option, or a layer size that is
            not a whole number >= 1.
    """
    recipe = model_recipe(name)
    arch = recipe.architecture(overrides)
    with torch.device("meta"):
        return recipe.float_network(arch)
