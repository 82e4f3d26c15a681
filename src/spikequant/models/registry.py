"""The registry of the study's networks and `build`, which makes one (optionally quantized)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..quant import quantize_model
from ..quant.registry import is_float_quantizer
from ..snn.fixed_point import check_state_bits
from .convnet import SpikingConvNet


@dataclass(frozen=True)
class ModelSpec:
    """A registered network: what it classifies and its default architecture knobs."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    time_steps: int  # default T for this benchmark
    description: str
    num_blocks: int
    defaults: dict[str, Any] = field(default_factory=dict)


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

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "ndigits", 10, (2, 34, 34), 8,
            "small PLIF CNN for the offline N-MNIST-format digits (2 conv blocks of 32, "
            "FC 2048-100, no dropout; trains on a CPU)",
            # No dropout: on 1,438 training samples and one FC layer it cost 1.1 points of
            # float test accuracy (95.8 % without, 94.7 % with 0.5; 12 epochs, seed 0).
            num_blocks=2, defaults={"channels": 32, "dropout": 0.0},
        ),
        ModelSpec(
            "nmnist", 10, (2, 34, 34), 10,
            "PLIF CNN of Fang et al. 2021 for N-MNIST (2 conv blocks, FC 8192-2048-100)",
            num_blocks=2, defaults={"hidden": 2048},
        ),
        ModelSpec(
            "dvsgesture", 11, (2, 128, 128), 20,
            "PLIF CNN of Fang et al. 2021 for DVS128 Gesture (5 conv blocks, FC 2048-512-110)",
            num_blocks=5, defaults={"hidden": 512},
        ),
        ModelSpec(
            "cifar10dvs", 10, (2, 128, 128), 20,
            "PLIF CNN for CIFAR10-DVS (4 conv blocks, FC 8192-512-100; hidden 512 as "
            "SpikingJelly's version, 2048 in Fang et al.'s code)",
            num_blocks=4, defaults={"hidden": 512},
        ),
        ModelSpec(
            "ncaltech101", 101, (2, 48, 48), 10,
            "PLIF CNN for N-Caltech101 at 48x48 (3 conv blocks, FC 4608-512-1010)",
            num_blocks=3, defaults={"hidden": 512},
        ),
    )
}


def list_models() -> list[str]:
    """Registered network names, in registry order."""
    return list(MODELS)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (each shared tensor once). For a quantized model this includes the
    quantizers' own parameters (e.g. alpha and beta of the sigmoid quantizer)."""
    return sum(p.numel() for p in model.parameters())


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def _input_size(value: int | Sequence[int]) -> list[int]:
    size = [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]
    if len(size) != 2:
        raise ValueError(f"input_size must be an int or (height, width), got {value!r}")
    return size


def _architecture(spec: ModelSpec, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(ARCH_KEYS) - set(QUANT_KEYS)
    if unknown:
        raise ValueError(
            f"unknown override(s) {', '.join(sorted(unknown))} for model {spec.name!r}; "
            f"allowed: {', '.join((*ARCH_KEYS, *QUANT_KEYS))}"
        )
    arch = {**COMMON_DEFAULTS, "input_size": list(spec.input_shape[1:]), **spec.defaults}
    arch.update({k: v for k, v in overrides.items() if k in ARCH_KEYS})
    arch["input_size"] = _input_size(arch["input_size"])
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
    spec = _spec(name)
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
    spec = _spec(name)
    arch = _architecture(spec, overrides)
    with torch.device("meta"):
        return _float_network(spec, arch)

