"""Per-node builders of `nir_import`: a NIR node's parameters checked and turned into the
torch module (nn.Linear, nn.Conv2d, nn.Flatten, a LIF neuron, or the batch norm / pooling layer a
spikequant-written node stands for). Every refusal is a NIRGraphError naming the node."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import NIRGraphError
from ..snn import BaseLIF


def as_str(value: Any) -> str:
    """A NIR string field (bytes when read from HDF5) as str."""
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


class StepDecayLIF(BaseLIF):
    """A LIF neuron with a fixed decay a step `decay` (k = 1/tau_steps) in [0, 1]: k = 1 is
    memoryless, k = 0 (with decay_input=False) an integrate-and-fire neuron. Built by
    `import_nir`; other options as for spikequant.snn.LIF."""

    tau_option = None

    def __init__(self, decay: float, **options: Any) -> None:
        super().__init__(**options)
        decay = float(decay)
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay a step must be in [0, 1], got {decay}")
        if decay == 0.0 and self.decay_input:
            raise ValueError("decay 0 needs decay_input=False (an integrate-and-fire neuron)")
        self.k = decay

    def decay(self) -> float:
        return self.k

    @property
    def tau(self) -> float:
        return math.inf if self.k == 0 else 1.0 / self.k

    def extra_repr(self) -> str:
        return f"decay={self.k:g}, {super().extra_repr()}"


# ---------------------------------------------------------------------- parameters


def _array(name: str, node: Any, field: str) -> np.ndarray:
    value = getattr(node, field, None)
    if value is None:
        raise NIRGraphError(f"node {name!r} ({type(node).__name__}): missing parameter {field!r}")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise NIRGraphError(f"node {name!r}: parameter {field!r} is not numeric") from None
    if not np.all(np.isfinite(arr)):
        raise NIRGraphError(f"node {name!r}: parameter {field!r} has values that are not finite")
    return arr


def _one_value(name: str, node: Any, field: str, shape: tuple[int, ...]) -> float:
    arr = _array(name, node, field)
    if arr.ndim and tuple(arr.shape) != shape and arr.size != 1:
        raise NIRGraphError(f"node {name!r}: {field} has shape {tuple(arr.shape)}, but the layer "
                            f"before gives {shape}")
    flat = arr.reshape(-1)
    if flat.size == 0:
        raise NIRGraphError(f"node {name!r}: {field} is empty")
    if not np.allclose(flat, flat[0], rtol=1e-6, atol=0):
        raise NIRGraphError(f"node {name!r}: {field} differs between neurons (from {flat.min():g} "
                            f"to {flat.max():g}); spikequant's neurons share one a layer")
    return float(flat[0])


def _tuple(name: str, node: Any, field: str, dims: int) -> Any:
    value = getattr(node, field, None)
    if value is None:
        raise NIRGraphError(f"node {name!r} ({type(node).__name__}): missing parameter {field!r}")
    if isinstance(value, (str, bytes)):
        value = as_str(value)
        if value not in ("same", "valid"):
            raise NIRGraphError(f"node {name!r}: {field} {value!r} is not 'same' or 'valid'")
        return value
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, dims)
    if arr.size != dims:
        raise NIRGraphError(f"node {name!r}: {field} has {arr.size} values, expected {dims}")
    return tuple(int(v) for v in arr)


# ---------------------------------------------------------------------- layers


def linear_layer(name: str, node: Any, shape: tuple[int, ...], with_bias: bool):
    weight = _array(name, node, "weight")
    if weight.ndim != 2:
        raise NIRGraphError(f"node {name!r}: weight has shape {weight.shape}, expected "
                            "(out_features, in_features)")
    out_f, in_f = weight.shape
    if len(shape) != 1 or shape[0] != in_f:
        raise NIRGraphError(f"node {name!r}: takes {in_f} inputs, but the layer before gives "
                            f"shape {shape}" + (" (a nir.Flatten is missing)" if
                                                math.prod(shape) == in_f else ""))
    bias = _array(name, node, "bias") if with_bias else None
    if bias is not None and bias.shape not in ((out_f,), ()):
        raise NIRGraphError(f"node {name!r}: bias has shape {bias.shape}, expected ({out_f},)")
    layer = nn.Linear(in_f, out_f, bias=bias is not None and bool(np.any(bias)))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(np.broadcast_to(bias, (out_f,)).copy()))
    return layer, (out_f,)


def conv2d_layer(name: str, node: Any, shape: tuple[int, ...]):
    from .nir_nodes import conv_out

    weight = _array(name, node, "weight")
    if weight.ndim != 4:
        raise NIRGraphError(f"node {name!r}: Conv2d weight has shape {weight.shape}, expected "
                            "(out_channels, in_channels / groups, kh, kw)")
    groups = int(getattr(node, "groups", 1) or 1)
    out_c, in_per_group, kh, kw = weight.shape
    if len(shape) != 3 or shape[0] != in_per_group * groups:
        raise NIRGraphError(f"node {name!r}: takes (C={in_per_group * groups}, H, W) maps, but "
                            f"the layer before gives shape {shape}")
    declared = getattr(node, "input_shape", None)
    declared = None if declared is None else tuple(int(s) for s in np.asarray(declared).flat)
    if declared is not None and declared != shape[1:]:
        raise NIRGraphError(f"node {name!r}: input_shape {declared} but the layer before gives "
                            f"(H, W) = {shape[1:]}")
    stride = _tuple(name, node, "stride", 2)
    padding = _tuple(name, node, "padding", 2)
    dilation = _tuple(name, node, "dilation", 2)
    bias = _array(name, node, "bias")
    if bias.shape not in ((out_c,), ()):
        raise NIRGraphError(f"node {name!r}: bias has shape {bias.shape}, expected ({out_c},)")
    if isinstance(padding, str):
        if padding == "same" and any(s != 1 for s in stride):
            raise NIRGraphError(f"node {name!r}: padding 'same' needs stride 1, got {stride}")
        pads = (0, 0) if padding == "valid" else None
    else:
        pads = padding
    if pads is None:
        out = (out_c, shape[1], shape[2])
    else:
        out = (out_c, conv_out(shape[1], kh, stride[0], pads[0], dilation[0]),
               conv_out(shape[2], kw, stride[1], pads[1], dilation[1]))
    if out[1] < 1 or out[2] < 1:
        raise NIRGraphError(f"node {name!r}: a {kh}x{kw} kernel does not fit the "
                            f"{shape[1]}x{shape[2]} input")
    layer = nn.Conv2d(shape[0], out_c, (kh, kw), stride=stride, padding=padding,
                      dilation=dilation, groups=groups, bias=bool(np.any(bias)))
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if layer.bias is not None:
            layer.bias.copy_(torch.from_numpy(np.broadcast_to(bias, (out_c,)).copy()))
    return layer, out


def flatten_layer(name: str, node: Any, shape: tuple[int, ...]):
    start, end = getattr(node, "start_dim", None), getattr(node, "end_dim", None)
    if start is None or end is None:
        raise NIRGraphError(f"node {name!r}: Flatten needs start_dim and end_dim")
    rank = len(shape)
    s, e = int(start) % rank if rank else 0, int(end) % rank if rank else 0
    if not (-rank <= int(start) < rank and -rank <= int(end) < rank) or s > e:
        raise NIRGraphError(f"node {name!r}: cannot flatten dims {start}..{end} of shape {shape}")
    out = shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]
    # the module runs on [T*B, ...]: one axis more than the sample
    return nn.Flatten(s + 1, e + 1), out


def neuron_layer(name: str, node: Any, shape: tuple[int, ...], dt: float, source: str | None,
            surrogate: str):
    import nir

    def value(field: str) -> float:
        return _one_value(name, node, field, shape)

    r, v_th = value("r"), value("v_threshold")
    v_reset = 0.0 if getattr(node, "v_reset", None) is None else value("v_reset")
    if not r > 0:
        raise NIRGraphError(f"node {name!r}: r = {r:g}; an importable neuron has r > 0")
    if isinstance(node, nir.IF):
        gain = r if source == "norse" else r * dt
        return StepDecayLIF(0.0, threshold=(v_th - v_reset) / gain, v_reset=0.0,
                            decay_input=False, surrogate=surrogate)
    tau, v_leak = value("tau"), value("v_leak")
    if not tau > 0:
        raise NIRGraphError(f"node {name!r}: tau = {tau:g}; a time constant must be > 0")
    k = dt * dt / tau if source == "norse" else dt / tau
    if k > 1.0 + 1e-6:
        raise NIRGraphError(f"node {name!r}: tau = {tau:g} s is shorter than the time step "
                            f"dt = {dt:g} s (decay {k:g} a step); pass the dt the graph was "
                            "written with (source='norse' for a graph Norse 1.1 wrote)")
    if not math.isclose(v_leak, v_reset, rel_tol=1e-6, abs_tol=1e-9):
        raise NIRGraphError(f"node {name!r}: v_leak = {v_leak:g} differs from v_reset = "
                            f"{v_reset:g}; spikequant's neurons leak to their reset potential")
    return StepDecayLIF(min(k, 1.0), threshold=(v_th - v_reset) / r, v_reset=0.0,
                        decay_input=True, surrogate=surrogate)


def _role(node: Any) -> str:
    meta = getattr(node, "metadata", None) or {}
    return " ".join(as_str(meta.get(key, "")) for key in ("role", "from"))


def _is_channel_diagonal(weight: np.ndarray) -> bool:
    off = weight.copy()
    idx = np.arange(min(weight.shape[:2]))
    off[idx, idx] = 0
    return weight.shape[0] == weight.shape[1] and not np.any(off)


def spikequant_layer(name: str, node: Any, nxt: Any, shape: tuple[int, ...]):
    """The layer a spikequant-written structural node stands for (batch norm, pooling), so
    that it is not quantized as a weight layer: (module, shape, skips the next node) or None.
    Only where the node's metadata says so and its weights are exactly that layer's."""
    import nir

    role = _role(node)
    if not role.strip() or not isinstance(node, (nir.Conv2d, nir.Affine)):
        return None
    if getattr(node, "weight", None) is None:
        return None
    weight = _array(name, node, "weight")
    bias = None if getattr(node, "bias", None) is None else _array(name, node, "bias")
    if "BatchNorm" in role and weight.ndim in (2, 4) and _is_channel_diagonal(weight) \
            and (weight.ndim == 2 or weight.shape[2:] == (1, 1)) and bias is not None:
        gain = np.diagonal(weight[..., 0, 0] if weight.ndim == 4 else weight).copy()
        if weight.ndim == 4 and len(shape) != 3 or weight.ndim == 2 and len(shape) != 1 \
                or shape[0] != gain.size:
            return None
        bn = (nn.BatchNorm2d if weight.ndim == 4 else nn.BatchNorm1d)(gain.size)
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(gain))
            bn.bias.copy_(torch.from_numpy(bias.reshape(-1)))
            bn.running_var.fill_(1.0 - bn.eps)  # rsqrt(var + eps) = 1: y = gain x + bias
        return bn, shape, False
    if not isinstance(node, nir.Conv2d) or weight.ndim != 4 or not _is_channel_diagonal(weight) \
            or len(shape) != 3 or bias is not None and np.any(bias):
        return None
    layer, out = conv2d_layer(name, node, shape)
    diag = np.diagonal(weight, axis1=0, axis2=1)  # (kh, kw, C)
    if isinstance(layer.padding, str) or layer.dilation != (1, 1):
        return None
    kernel, stride, padding = layer.kernel_size, layer.stride, layer.padding
    if "max pool of spikes" in role and np.all(diag == 1) and isinstance(nxt, nir.LIF) \
            and "max pool of spikes" in _role(nxt):
        if not (np.allclose(nxt.v_threshold, 0.5) and np.allclose(nxt.r, 1)
                and np.allclose(nxt.v_reset, 0) and np.allclose(nxt.v_leak, 0)):
            return None
        return nn.MaxPool2d(kernel, stride, padding), out, True
    if "AvgPool2d" in role and np.allclose(diag, 1.0 / (kernel[0] * kernel[1])):
        return nn.AvgPool2d(kernel, stride, padding), out, False
    return None
