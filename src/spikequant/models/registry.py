"""The registry of the study's networks and `build`, which makes one (optionally quantized)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.registry import DATASETS, DatasetInfo, dataset_info
from ..errors import ConfigError
from ..quant import quantize_model
from ..quant.registry import is_float_quantizer
from ..snn.fixed_point import check_state_bits
from .convnet import SpikingConvNet


@dataclass(frozen=True)
class ModelSpec:
    """A registered network: the dataset it classifies (the one of the same name, whose
    descriptor gives the input shape, default time steps and classes) and its architecture."""

    name: str
    description: str
    num_blocks: int
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> DatasetInfo:
        return dataset_info(self.name)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:  # (C, H, W)
        return self.dataset.frame_shape

    @property
    def time_steps(self) -> int:  # default T
        return self.dataset.default_time_steps


# Knobs shared by every network unless a spec or the caller overrides them.
COMMON_DEFAULTS: dict[str, Any] = {
    "channels": 128,
    "hidden": None,
    "neuron": "plif",
    "tau": 2.0,
    "surrogate": "atan",
    "dropout": 0.5,
    "votes": 10,
}
ARCH_KEYS = (*COMMON_DEFAULTS, "input_size")
QUANT_KEYS = ("exclude", "quant_options", "layer_bits")

DESCRIPTIONS = {
    "ndigits": "small PLIF CNN for the offline N-MNIST-format digits (2 conv blocks of 32, "
    "FC 2048-100, no dropout; trains on a CPU)",
    "nmnist": "PLIF CNN of Fang et al. 2021 for N-MNIST (2 conv blocks, FC 8192-2048-100)",
    "dvsgesture": "PLIF CNN of Fang et al. 2021 for DVS128 Gesture (5 conv blocks, FC "
    "2048-512-110)",
    "cifar10dvs": "PLIF CNN for CIFAR10-DVS (4 conv blocks, FC 8192-512-100; hidden 512 as "
    "SpikingJelly's version, 2048 in Fang et al.'s code)",
    "ncaltech101": "PLIF CNN for N-Caltech101 at 48x48 (3 conv blocks, FC 4608-512-1010)",
}
MODELS: dict[str, ModelSpec] = {
    name: ModelSpec(name, DESCRIPTIONS[name], num_blocks, defaults)
    for name, num_blocks, defaults in (
        # ndigits without dropout: on 1,438 training samples and one FC layer it cost 1.1
        # points of float test accuracy (95.8 % without, 94.7 % with 0.5; 12 epochs, seed 0).
        ("ndigits", 2, {"channels": 32, "dropout": 0.0}),
        ("nmnist", 2, {"hidden": 2048}),
        ("dvsgesture", 5, {"hidden": 512}),
        ("cifar10dvs", 4, {"hidden": 512}),
        ("ncaltech101", 3, {"hidden": 512}),
    )
}
# The network of a registered dataset without one of its own (e.g. a user's dataset).
GENERIC_DESCRIPTION = (
    "small PLIF CNN for a dataset without a network of its own (2 conv blocks of 32, one FC "
    "layer, no dropout)"
)
GENERIC_ARCHITECTURE = {"num_blocks": 2, "defaults": {"channels": 32, "dropout": 0.0}}


def list_models() -> list[str]:
    """Registered network names, in registry order (a dataset without a network of its own
    still gets the generic one from build)."""
    return list(MODELS)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (each shared tensor once). For a quantized model this includes the
    quantizers' own parameters (e.g. alpha and beta of the sigmoid quantizer)."""
    return sum(p.numel() for p in model.parameters())


def model_spec(name: str) -> ModelSpec:
    """The network `name`: a registered one, else the generic network of the registered
    dataset `name`; ValueError naming the choices."""
    if name in MODELS:
        return MODELS[name]
    if name in DATASETS:
        return ModelSpec(name, GENERIC_DESCRIPTION, **copy.deepcopy(GENERIC_ARCHITECTURE))
    raise ConfigError(
        f"unknown model {name!r}; choose one of {', '.join(dict.fromkeys([*MODELS, *DATASETS]))}"
    )


def _input_size(value: int | Sequence[int]) -> list[int]:
    size = [value] * 2 if isinstance(value, int) else list(value)
    if len(size) != 2:
        raise ConfigError(f"input_size must be an int or (height, width), got {value!r}")
    return size


def _check_counts(arch: dict[str, Any]) -> None:
    """ConfigError for a layer size that is not a whole number >= 1 (torch would say
    "negative dimension", or build a network of another size from 2.5)."""
    for key in ("channels", "hidden", "votes", "input_size"):
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


def _architecture(spec: ModelSpec, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(ARCH_KEYS) - set(QUANT_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown override(s) {', '.join(sorted(unknown))} for model {spec.name!r}; "
            f"allowed: {', '.join((*ARCH_KEYS, *QUANT_KEYS))}"
        )
    arch = {**COMMON_DEFAULTS, "input_size": list(spec.input_shape[1:]), **spec.defaults}
    arch.update({k: v for k, v in overrides.items() if k in ARCH_KEYS})
    arch["input_size"] = _input_size(arch["input_size"])
    _check_counts(arch)
    return arch


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


def _quant_options(options: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    options = dict(options or {})
    try:
        json.dumps(options)
    except TypeError as err:
        return options, f"quant_options are not JSON-serialisable ({err}); use plain values"
    return options, None


def build(
    name: str,
    quantizer: str = "none",
    bits: int | None = 1,
    levels: Sequence[float] | torch.Tensor | None = None,
    state_bits: int | None = None,
    **overrides: Any,
) -> SpikingConvNet:
    """A registered network, quantized with `quantizer` (default: float).

    `state_bits` (4..24, e.g. 8, 12, 16; default None: float) keeps the neuron state in that
    many bits of fixed point (spikequant.snn.fixed_point); evaluation then runs the exact
    integer arithmetic of the exported network. It needs every conv / linear layer quantized.

    Architecture overrides: channels (one width for every conv block, or a list with one
    per block), hidden (None: no hidden FC layer), input_size (int or
    (H, W)), neuron ('plif' | 'lif'), tau (initial PLIF / fixed LIF time constant), surrogate,
    dropout, votes (output neurons per class). Quantization overrides: `exclude` (module names,
    globs or a predicate for quantize_model; default: quantize every conv and linear layer,
    the first conv and the classifier included), `layer_bits` (bits of some layers, e.g.
    {"conv1": 8, "classifier": 8}; the others take `bits`) and `quant_options` (a dict of
    keyword options for quantize_model, e.g. {"per_channel": True}).

    `model.config` is a JSON-serialisable dict with `build(**model.config)` rebuilding the same
    architecture; it raises for a model built with a predicate exclude.
    """
    spec = model_spec(name)
    arch = _architecture(spec, overrides)
    _check_state_bits(state_bits, quantizer, overrides)
    exclude = overrides.get("exclude", ())
    exclude_names, exclude_problem = _exclude_list(exclude)
    options, options_problem = _quant_options(overrides.get("quant_options"))
    layer_bits = {str(k): v for k, v in (overrides.get("layer_bits") or {}).items()}
    model = _float_network(spec, arch)
    quantize_model(
        model, quantizer, bits, levels,
        exclude=exclude if exclude_problem else exclude_names, layer_bits=layer_bits,
        state_bits=state_bits, **options,
    )
    config = {
        "name": name,
        "quantizer": quantizer,
        "bits": bits,
        "levels": _levels_list(levels),
        **copy.deepcopy(arch),
        "exclude": exclude_names,
        "quant_options": options,
        "layer_bits": layer_bits,
        "state_bits": state_bits,
    }
    model.set_config(config, problem=exclude_problem or options_problem)
    return model


def _check_state_bits(state_bits: int | None, quantizer: str, overrides: dict[str, Any]) -> None:
    """Refuse, before building anything, fixed-point state on a network with float weights."""
    if check_state_bits(state_bits) is None:
        return
    float_weights = is_float_quantizer(quantizer)
    if float_weights or overrides.get("exclude"):
        raise ValueError(
            "fixed-point state (state_bits) needs every conv / linear layer quantized: "
            + (f"quantizer {quantizer!r} keeps float weights" if float_weights else
               f"exclude={overrides['exclude']!r} keeps some float")
            + "; give layers their own precision with layer_bits instead (e.g. "
            "--layer-bits conv1=8)"
        )


def _float_network(spec: ModelSpec, arch: dict[str, Any]) -> SpikingConvNet:
    return SpikingConvNet(
        in_channels=spec.input_shape[0],
        num_classes=spec.num_classes,
        num_blocks=spec.num_blocks,
        **arch,
    )


def build_float_on_meta(name: str, **overrides: Any) -> SpikingConvNet:
    """The float network (architecture overrides only) with parameters on the meta device: no
    memory and no initialisation cost, for counting parameters and printing structure."""
    spec = model_spec(name)
    arch = _architecture(spec, overrides)
    with torch.device("meta"):
        return _float_network(spec, arch)

