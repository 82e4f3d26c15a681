"""Quantized layers and the model-level pass that swaps them in.

A quantizer is attached to a layer's `weight` as a torch parametrization: the float weight
stays the trained parameter (`layer.parametrizations.weight.original`) and every read of
`layer.weight` returns its quantized value. That keeps the layer's own class and forward, so
SpikingJelly's multi-step `layer.Conv2d` or any other subclass stays what it was.
"""

from __future__ import annotations

import fnmatch
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError, ModelError
from .base import QuantizedWeight, WeightQuantizer
from .registry import quantizer_class


def make_quantizer(
    quantizer: str = "sigmoid",
    bits: int | None = 1,
    levels: Sequence[float] | torch.Tensor | None = None,
    **options: Any,
) -> WeightQuantizer:
    """A fresh quantizer by registered name. `options` go to its constructor (e.g.
    per_channel=True, temperature=..., boundaries='midpoints' for sigmoid); an option the
    quantizer does not take is an error that lists the ones it does. "none" (float weights)
    ignores bits/levels. Bad arguments are a spikequant.errors.ConfigError.

    Args:
        quantizer: a registered quantizer's name (`quantizer_names()`: "none", "sigmoid",
            "ste", "xnor", "lsq", "dorefa", "ptq" and any plugin's); case, '-' and '_' are
            ignored. Default "sigmoid".
        bits: the bit width, used when `levels` is None: the quantizer's symmetric levels of
            that width (`symmetric_levels`), or its own levels for one that makes them
            (dorefa). It must be one of the quantizer's `bit_widths` (1..8 for most; xnor
            takes only 1). Default 1 (binary).
        levels: an explicit level set instead of `bits`: 2 to 256 finite numbers in
            strictly increasing order, e.g. [-1, 0, 1]; refused by a quantizer that makes
            its own levels (dorefa). Default None.
        **options: the quantizer's constructor options (its `constructor_options()`).

    Returns:
        A new WeightQuantizer, not yet initialised from any weight (`attach_quantizer`
        does that).

    Raises:
        ConfigError: an unknown name, a bit width or level set the quantizer does not
            take, or an option it does not take or of the wrong type.
    """
    try:
        return quantizer_class(quantizer).from_spec(bits, levels, **options)
    except ConfigError:
        raise
    except ValueError as err:  # the registry's and the quantizers' own checks
        raise ConfigError(str(err)) from None


_deferred = threading.local()


@contextmanager
def state_dict_follows() -> Iterator[None]:
    """Inside this block, quantizers attached to layers skip their data-dependent
    initialisation (k-means boundaries, scales): for building a network whose state dict is
    loaded next, which overwrites all of it. That initialisation is most of the time it takes
    to rebuild a large quantized network from a checkpoint."""
    before = getattr(_deferred, "active", False)
    _deferred.active = True
    try:
        yield
    finally:
        _deferred.active = before


def attach_quantizer(layer: nn.Module, quantizer: WeightQuantizer) -> nn.Module:
    """Quantize `layer.weight` in place with `quantizer`, initialised from the current weights
    (unless inside `state_dict_follows()`).

    Args:
        layer: a module with a `weight` parameter (nn.Conv2d, nn.Linear or a subclass) and no
            weight quantizer yet; its weight becomes a torch parametrization, which gives
            the layer a class of its own (a subclass of its class).
        quantizer: the WeightQuantizer to attach (a fresh one, e.g. from `make_quantizer`);
            it is reset from the layer's current weight and moved to the weight's device.

    Returns:
        `layer` itself.

    Raises:
        ValueError: `layer` has a weight quantizer already.
    """
    if weight_quantizer(layer) is not None:
        raise ValueError(f"{type(layer).__name__} already has a weight quantizer")
    if not getattr(_deferred, "active", False):
        quantizer.reset(layer.weight.detach())
    quantizer.to(layer.weight.device)
    _register(layer, quantizer)
    return layer


def _register(layer: nn.Module, quantizer: WeightQuantizer) -> None:
    parametrize.register_parametrization(layer, "weight", quantizer, unsafe=True)
    # register_parametrization gives the layer a class of its own, which torch refuses to
    # pickle; teach that class to pickle as its plain class plus weight and quantizer, so
    # torch.save(model) of a whole quantized model works.
    type(layer).__reduce_ex__ = _reduce_quantized_layer


def _reduce_quantized_layer(layer: nn.Module, protocol: int) -> tuple:
    plain_cls = type(layer).__bases__[0]
    chain = layer.parametrizations
    if list(chain.keys()) != ["weight"] or len(chain.weight) != 1:
        raise RuntimeError(
            f"{plain_cls.__name__} has parametrizations besides its weight quantizer; "
            "save it with torch.save(model.state_dict()) instead"
        )
    state = dict(layer.__dict__)
    state["_modules"] = {k: v for k, v in layer._modules.items() if k != "parametrizations"}
    state["_parameters"] = {**layer._parameters, "weight": chain.weight.original}
    return _rebuild_quantized_layer, (plain_cls, state, chain.weight[0])


def _rebuild_quantized_layer(
    plain_cls: type, state: dict[str, Any], quantizer: WeightQuantizer
) -> nn.Module:
    layer = plain_cls.__new__(plain_cls)
    layer.__dict__.update(state)
    _register(layer, quantizer)  # no reset: the quantizer keeps its learned state
    return layer


def weight_quantizer(layer: nn.Module) -> WeightQuantizer | None:
    """The quantizer attached to `layer.weight`, or None.

    Args:
        layer: any module; None is returned when its `weight` is not parametrized or no
            parametrization of it is a WeightQuantizer.
    """
    if not parametrize.is_parametrized(layer, "weight"):
        return None
    for p in layer.parametrizations.weight:
        if isinstance(p, WeightQuantizer):
            return p
    return None


def float_weight(layer: nn.Module) -> torch.Tensor:
    """The trained float weight behind a (possibly quantized) layer.

    Args:
        layer: a module with a `weight`: for a quantized one, the parameter behind the
            parametrization (`layer.parametrizations.weight.original`) is returned, else
            `layer.weight`. The tensor itself, not a copy.
    """
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def quantized_weight(layer: nn.Module) -> QuantizedWeight:
    """The integer codes, levels and scale of a quantized layer's weight (what export stores);
    `.dequantize()` equals `layer.weight` in eval mode.

    Args:
        layer: a layer with a weight quantizer other than "none"; the codes are computed
            from its float weight without gradient.

    Raises:
        ValueError: `layer` has no quantizer, or the float quantizer "none".
    """
    q = weight_quantizer(layer)
    if q is None or q.is_float:
        raise ValueError(
            f"{type(layer).__name__} has float weights (no quantizer, or quantizer 'none'); "
            "quantize it first with quantize_model(...)"
        )
    with torch.no_grad():
        return q.quantize(float_weight(layer))


class _QuantizedWeightLayer:
    """What QuantConv2d and QuantLinear add to their torch base class: a quantizer attached
    to the weight at construction (binary sigmoid unless one is injected)."""

    def __init__(self, *args: Any, weight_quantizer: WeightQuantizer | None = None, **kw: Any):
        super().__init__(*args, **kw)
        attach_quantizer(self, weight_quantizer or make_quantizer("sigmoid", bits=1))

    @property
    def weight_quantizer(self) -> WeightQuantizer:
        return weight_quantizer(self)

    def quantized_weight(self) -> QuantizedWeight:
        """Integer codes, levels and scale of the weight."""
        return quantized_weight(self)


class QuantConv2d(_QuantizedWeightLayer, nn.Conv2d):
    """nn.Conv2d whose weight goes through `weight_quantizer` (Brevitas-style injection)."""


class QuantLinear(_QuantizedWeightLayer, nn.Linear):
    """nn.Linear whose weight goes through `weight_quantizer`."""


_TWINS: dict[type, type] = {nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear}

Exclude = str | Iterable[str] | Callable[[str, nn.Module], bool]


def _name_and_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _pattern_hits(pattern: str, name: str) -> bool:
    return any(fnmatch.fnmatchcase(n, pattern) for n in _name_and_parents(name))


def _exclusion(exclude: Exclude, layers: list[tuple[str, nn.Module]]) -> set[str]:
    """Names of the layers `exclude` leaves in float."""
    if callable(exclude):
        return {name for name, m in layers if exclude(name, m)}
    patterns = [exclude] if isinstance(exclude, str) else list(exclude)
    excluded = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"exclude takes module names or glob patterns, got {pattern!r}")
        excluded.update(_layers_matching(pattern, layers, "exclude"))
    return excluded


def _layers_matching(pattern: str, layers: list[tuple[str, nn.Module]], what: str) -> list[str]:
    """Names of the layers `pattern` (a module name or glob) selects; none is an error."""
    hits = [name for name, _ in layers if _pattern_hits(pattern, name)]
    if not hits:
        names = ", ".join(name or "<model>" for name, _ in layers) or "none"
        raise ValueError(
            f"{what} pattern {pattern!r} matches no Conv2d / Linear layer of the model; "
            f"its layers are: {names}"
        )
    return hits


def _twin_of(module: nn.Module, quantizer: WeightQuantizer) -> nn.Module:
    """A QuantConv2d / QuantLinear holding the same float weights as a plain layer."""
    cls = _TWINS[type(module)]
    twin = cls.__new__(cls)
    # every attribute (hooks, padding caches such as _reversed_padding_repeated_twice, ...);
    # hook dicts stay shared so that existing hook handles still remove their hooks, the
    # tensor dicts are copied because the parametrization edits the twin's own _parameters
    twin.__dict__.update(module.__dict__)
    for key in ("_parameters", "_buffers", "_modules"):
        twin.__dict__[key] = dict(module.__dict__[key])
    attach_quantizer(twin, quantizer)
    return twin


def quantize_model(
    model: nn.Module,
    quantizer: str = "sigmoid",
    bits: int | None = 1,
    levels: Sequence[float] | torch.Tensor | None = None,
    exclude: Exclude = (),
    layer_bits: Mapping[str, int] | None = None,
    state_bits: int | None = None,
    **options: Any,
) -> nn.Module:
    """Quantize the weights of every nn.Conv2d / nn.Linear of `model` in place; returns `model`.

    Plain nn.Conv2d / nn.Linear are swapped for QuantConv2d / QuantLinear; subclasses (such as
    SpikingJelly's multi-step layers) keep their class and get the quantizer attached to their
    weight. The trained float weights are kept. `exclude` is a module name or glob pattern, a
    list of them (e.g. ["conv.0", "fc.*"]; naming a container excludes every layer in it), or
    a predicate `(name, module) -> bool`. `layer_bits` gives some layers their own precision,
    e.g. {"conv1": 8, "classifier": 8} (names or globs, first match wins; those layers take
    the symmetric levels of their width instead of `levels`). Layers already quantized are
    left as they are, so a second call does not quantize twice. `quantizer="none"` (a float
    quantizer) leaves the weights as they are.

    `state_bits` (e.g. 8..16) also puts the neuron state on a fixed-point grid: every module
    with a `set_state_bits` method (spikequant's LIF and PLIF neurons, and the registered
    networks, which then evaluate in exact integer arithmetic) gets it, after the weights.

    Refused before the model is touched: bad arguments (spikequant.errors.ConfigError), and
    (ModelError) a model with no Conv2d / Linear layer, weights that are not float32 or not
    finite, and layers quantized already (by an earlier call: leave them out with `exclude`).

    Args:
        model: any torch.nn.Module (the model may itself be a Conv2d / Linear layer).
        quantizer: a registered quantizer's name, as in `make_quantizer`. Default "sigmoid".
        bits: the bit width of every quantized layer (1 binary, 2 ternary, ... up to 8),
            used when `levels` is None; it must be one the quantizer takes. None needs
            `levels`. Default 1.
        levels: an explicit level set for every layer instead of `bits` (2 to 256 numbers
            in increasing order). Default None.
        exclude: the layers to keep in float: names, glob patterns or a predicate, as
            described above; a pattern that matches no layer is an error. Default: none.
        layer_bits: {layer name or glob: bit width} for layers with their own width, as
            described above. Default None.
        state_bits: the neuron state's fixed-point width, an integer from 4 to 24, or None
            (default) for float state.
        **options: the quantizer's constructor options (e.g. per_channel=True), given to
            every layer's quantizer.

    Returns:
        `model`, changed in place.
    """
    # validate before touching the model
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"quantize_model: model must be a torch.nn.Module, got {type(model).__name__}"
        )
    is_float = make_quantizer(quantizer, bits, levels, **options).is_float
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers and not is_float:
        raise ModelError(f"quantize_model: model ({type(model).__name__}) has no nn.Conv2d or "
                         f"nn.Linear layer to quantize{_other_convs(model)}")
    excluded = _exclusion(exclude, layers)
    own_bits = _layer_bits(layer_bits or {}, layers, quantizer, options)
    stateful = _state_holders(model, state_bits)
    if is_float:
        _set_state_bits(stateful, state_bits)
        return model
    targets = [(n, m) for n, m in layers if n not in excluded]
    _check_targets(targets)
    if _other_convs(model):
        warnings.warn(f"quantize_model leaves some layers in float{_other_convs(model)}",
                      stacklevel=2)
    for name, m in targets:
        if name in own_bits:
            q = make_quantizer(quantizer, own_bits[name], None, **options)
        else:
            q = make_quantizer(quantizer, bits, levels, **options)
        if type(m) in _TWINS and name:
            _replace(model, name, _twin_of(m, q))
        else:  # a subclass, or the model is itself the layer: quantize it where it is
            attach_quantizer(m, q)
    _set_state_bits(stateful, state_bits)
    return model


def _other_convs(model: nn.Module) -> str:
    """', which holds ...' naming the convolutions quantize_model does not quantize, or ''."""
    others = [f"{name} ({type(m).__name__})" for name, m in model.named_modules()
              if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.Conv2d)]
    if not others:
        return ""
    return (f": {', '.join(others[:4])}{' ...' if len(others) > 4 else ''} "
            "(only nn.Conv2d and nn.Linear are quantized)")


def _check_targets(targets: list[tuple[str, nn.Module]]) -> None:
    """ModelError for a layer to be quantized that is quantized already or whose weights are
    not finite float32 numbers (k-means and the scales would be computed from them)."""
    done = [(name, m) for name, m in targets if weight_quantizer(m) is not None]
    if done:
        kind = type(weight_quantizer(done[0][1])).__name__
        names = ", ".join(repr(name or "<model>") for name, _ in done[:4])
        raise ModelError(
            f"quantize_model: layer(s) {names} are quantized already ({kind}), and would keep "
            "that quantizer rather than this call's: leave them out with exclude=[...], or "
            "start again from the float model"
        )
    for name, m in targets:
        w = float_weight(m)
        if w.dtype != torch.float32:
            raise ModelError(
                f"quantize_model: layer {name or '<model>'!r} has {w.dtype} weights; the "
                "quantizers take float32 weights: call model.float() first (mixed precision "
                "training keeps float32 weights, under torch.autocast)"
            )
        if w.device.type != "meta" and not bool(torch.isfinite(w.detach()).all()):
            raise ModelError(
                f"quantize_model: layer {name or '<model>'!r} has NaN or infinite weights; "
                "quantize a model whose weights are finite (a diverged training run's are not)"
            )


def _state_holders(model: nn.Module, state_bits: int | None) -> list[nn.Module]:
    """The modules that take `state_bits`, innermost first (the neurons before a network that
    checks them); an error when state bits are asked of a model that has none."""
    if state_bits is None:
        return []
    holders = [m for m in model.modules() if callable(getattr(m, "set_state_bits", None))]
    if not holders:
        raise ValueError(
            "state_bits: this model has no neuron with fixed-point state (spikequant.snn LIF "
            "and PLIF have it; SpikingJelly's and snnTorch's neurons do not)"
        )
    return holders[::-1]


def _set_state_bits(holders: list[nn.Module], state_bits: int | None) -> None:
    for m in holders:
        m.set_state_bits(state_bits)


def _layer_bits(
    layer_bits: Mapping[str, int],
    layers: list[tuple[str, nn.Module]],
    quantizer: str,
    options: dict[str, Any],
) -> dict[str, int]:
    """{layer name: bits} for the layers `layer_bits` names (first matching pattern wins)."""
    if not isinstance(layer_bits, Mapping):
        raise ValueError(
            f"layer_bits maps layer names or globs to bit widths, e.g. {{'conv1': 8}}; "
            f"got {layer_bits!r}"
        )
    chosen: dict[str, int] = {}
    for pattern, width in layer_bits.items():
        if not isinstance(pattern, str) or isinstance(width, bool) or not isinstance(width, int):
            raise ValueError(
                f"layer_bits takes name -> integer bits (e.g. 'conv1=8'), got {pattern!r}: "
                f"{width!r}"
            )
        if not quantizer_class(quantizer).is_float:
            make_quantizer(quantizer, width, None, **options)  # an impossible width fails here
        for name in _layers_matching(pattern, layers, "layer_bits"):
            chosen.setdefault(name, width)
    return chosen


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def quantized_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module, WeightQuantizer]]:
    """(name, layer, quantizer) for every layer of `model` whose weight is quantized."""
    for name, m in model.named_modules():
        q = weight_quantizer(m)
        if q is not None and not q.is_float:
            yield name, m, q
