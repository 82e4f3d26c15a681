"""Quantized layers and the model-level pass that swaps them in.

A quantizer is attached to a layer's `weight` as a torch parametrization: the float weight
stays the trained parameter (`layer.parametrizations.weight.original`) and every read of
`layer.weight` returns its quantized value. That keeps the layer's own class and forward, so
SpikingJelly's multi-step `layer.Conv2d` or any other subclass stays what it was.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from .base import WeightQuantizer
from .baselines import (
    DorefaQuantizer,
    IdentityQuantizer,
    LsqQuantizer,
    PtqQuantizer,
    SteQuantizer,
    XnorQuantizer,
)
from .levels import resolve_levels
from .sigmoid import SigmoidQuantizer

QUANTIZERS = ("none", "sigmoid", "ste", "xnor", "lsq", "dorefa", "ptq")


def make_quantizer(
    quantizer: str = "sigmoid",
    bits: int | None = 1,
    levels: Sequence[float] | torch.Tensor | None = None,
    **options: Any,
) -> WeightQuantizer:
    """A fresh quantizer by name. `options` go to its constructor (e.g. per_channel=True,
    temperature=..., boundaries='midpoints' for sigmoid)."""
    if quantizer not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {quantizer!r}; choose one of {', '.join(QUANTIZERS)}")
    if quantizer == "none":
        return IdentityQuantizer()
    if quantizer == "dorefa":
        if levels is not None:
            raise ValueError("dorefa uses its own 2^k evenly spaced levels; pass bits, not levels")
        resolve_levels(bits)  # validates bits
        return DorefaQuantizer(bits, **options)
    lv = resolve_levels(bits, levels)
    cls = {
        "sigmoid": SigmoidQuantizer,
        "ste": SteQuantizer,
        "xnor": XnorQuantizer,
        "lsq": LsqQuantizer,
        "ptq": PtqQuantizer,
    }[quantizer]
    return cls(lv, **options)


def attach_quantizer(layer: nn.Module, quantizer: WeightQuantizer) -> nn.Module:
    """Quantize `layer.weight` in place with `quantizer`, initialised from the current weights."""
    if weight_quantizer(layer) is not None:
        raise ValueError(f"{type(layer).__name__} already has a weight quantizer")
    quantizer.reset(layer.weight.detach())
    quantizer.to(layer.weight.device)
    parametrize.register_parametrization(layer, "weight", quantizer, unsafe=True)
    return layer


def weight_quantizer(layer: nn.Module) -> WeightQuantizer | None:
    """The quantizer attached to `layer.weight`, or None."""
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    for p in layer.parametrizations.weight:
        if isinstance(p, WeightQuantizer):
            return p
    return None


def float_weight(layer: nn.Module) -> torch.Tensor:
    """The trained float weight behind a (possibly quantized) layer."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


class QuantConv2d(nn.Conv2d):
    """nn.Conv2d whose weight goes through `weight_quantizer` (Brevitas-style injection)."""

    def __init__(self, *args: Any, weight_quantizer: WeightQuantizer | None = None, **kw: Any):
        super().__init__(*args, **kw)
        attach_quantizer(self, weight_quantizer or make_quantizer("sigmoid", bits=1))

    @property
    def weight_quantizer(self) -> WeightQuantizer:
        return weight_quantizer(self)


class QuantLinear(nn.Linear):
    """nn.Linear whose weight goes through `weight_quantizer`."""

    def __init__(self, *args: Any, weight_quantizer: WeightQuantizer | None = None, **kw: Any):
        super().__init__(*args, **kw)
        attach_quantizer(self, weight_quantizer or make_quantizer("sigmoid", bits=1))

    @property
    def weight_quantizer(self) -> WeightQuantizer:
        return weight_quantizer(self)


_TWINS: dict[type, type] = {nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear}

Exclude = Iterable[str] | Callable[[str, nn.Module], bool]


def _excluded(exclude: Exclude, name: str, module: nn.Module) -> bool:
    if callable(exclude):
        return bool(exclude(name, module))
    return any(name == pat or fnmatch.fnmatchcase(name, pat) for pat in exclude)


def _twin_of(module: nn.Module, quantizer: WeightQuantizer) -> nn.Module:
    """A QuantConv2d / QuantLinear holding the same float weights as a plain layer."""
    cls = _TWINS[type(module)]
    twin = cls.__new__(cls)
    nn.Module.__init__(twin)
    twin.__dict__.update({k: v for k, v in module.__dict__.items() if not k.startswith("_")})
    twin._parameters = dict(module._parameters)
    twin._buffers = dict(module._buffers)
    twin.train(module.training)
    attach_quantizer(twin, quantizer)
    return twin


def quantize_model(
    model: nn.Module,
    quantizer: str = "sigmoid",
    bits: int | None = 1,
    levels: Sequence[float] | torch.Tensor | None = None,
    exclude: Exclude = (),
    **options: Any,
) -> nn.Module:
    """Quantize the weights of every nn.Conv2d / nn.Linear of `model` in place; returns `model`.

    Plain nn.Conv2d / nn.Linear are swapped for QuantConv2d / QuantLinear; subclasses (such as
    SpikingJelly's multi-step layers) keep their class and get the quantizer attached to their
    weight. The trained float weights are kept. `exclude` is a list of module names or glob
    patterns (e.g. ["conv.0", "fc.*"]) or a predicate `(name, module) -> bool`.
    `quantizer="none"` leaves the model as it is.
    """
    make_quantizer(quantizer, bits, levels, **options)  # validate before touching the model
    if quantizer == "none":
        return model
    targets = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
        and weight_quantizer(m) is None
        and not _excluded(exclude, name, m)
    ]
    for name, m in targets:
        q = make_quantizer(quantizer, bits, levels, **options)
        if type(m) in _TWINS:
            _replace(model, name, _twin_of(m, q))
        else:
            attach_quantizer(m, q)
    return model


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantized_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module, WeightQuantizer]]:
    """(name, layer, quantizer) for every layer of `model` whose weight is quantized."""
    for name, m in model.named_modules():
        q = weight_quantizer(m)
        if q is not None and not isinstance(q, IdentityQuantizer):
            yield name, m, q
