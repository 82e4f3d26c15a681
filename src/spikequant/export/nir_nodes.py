"""The NIR nodes spikequant writes, in the one form snnTorch, Norse and Sinabs all read.

Every exported graph is a chain of five primitives: nir.Input, nir.Conv2d, nir.Affine,
nir.Flatten, nir.LIF and nir.Output. Each is read by `snntorch.import_nir.import_from_nir`,
`norse.torch.from_nir` and `sinabs.from_nir` (nir.Linear, nir.SumPool2d, nir.AvgPool2d,
nir.Threshold and nir.Scale are each missing from at least one of them), and the LIF
parameters are normalised to what all three honour:

    r = 1, v_leak = 0, v_reset = 0, one tau and one v_threshold a layer.

Norse ignores `r`, snnTorch and Sinabs refuse a nonzero `v_leak`, Norse and snnTorch reset to 0
whatever `v_reset` says, and snnTorch reads a single threshold and a single input gain a layer.
So a neuron's input gain and offset (folded batch norm, or the integer multipliers of a
fixed-point network) become their own node, a *gain node*: a 1x1 nir.Conv2d whose kernel is
diagonal in the channels (weight[c, c] = gain[c], bias = offset) on feature maps, a diagonal
nir.Affine on vectors. Per-channel operations are written as dense convolutions with a
channel-diagonal kernel, never as grouped (depthwise) ones: nir's shape inference and the
snnTorch and Norse importers read a Conv2d's input channels from weight.shape[1] and so
misread groups > 1. A gain shared by the whole layer with no offset is instead divided out of the
threshold (the membrane is then measured in units of the gain), which needs no node.

Time: a network step is `dt` seconds (NIR's time unit), and each LIF's tau = dt / k for the
decay k = 1/tau_steps, so the Euler step of NIR's LIF equation, tau dv/dt = (v_leak - v) + r I,
is exactly the network's update v <- v + k (I - v). The default dt is 1e-4 s because snnTorch's
importer assumes that time step and cannot be told another one.

Max pooling of spikes (binary maps) is a channel-diagonal nir.Conv2d with a kernel of ones (the
number of spikes in each window) followed by a memoryless LIF (tau = dt, so k = 1) with
threshold 0.5: it fires exactly when the window holds a spike, which is the window's maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_DT = 1e-4
POOL_THRESHOLD = 0.5

CONVENTIONS = (
    "chain of nir.Conv2d / nir.Affine / nir.Flatten / nir.LIF; LIF in Euler steps of dt: "
    "v += dt/tau * (v_leak - v + r*I), with r = 1, v_leak = v_reset = 0, v starts at 0, "
    "spike when v >= v_threshold (NIR says >: they differ only for v exactly at threshold), "
    "then v = v_reset; batch norm and per-channel gains are 1x1 nir.Conv2d with a "
    "channel-diagonal kernel (diagonal nir.Affine on vectors); max pooling of spikes is a "
    "channel-diagonal nir.Conv2d of ones followed by a LIF with tau = dt and threshold 0.5; "
    "nir.Flatten's start_dim counts from the sample's first axis (no batch axis); "
    "input frames [C, H, W] per time step"
)


def f32(values: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))


def channel_diagonal(per_channel: np.ndarray, kernel: tuple[int, int],
                     dtype=np.float32) -> np.ndarray:
    """A (C, C, kh, kw) kernel that applies per_channel[c] * ones(kernel) to channel c only."""
    values = np.asarray(per_channel).reshape(-1)
    weight = np.zeros((values.size, values.size, int(kernel[0]), int(kernel[1])), dtype=dtype)
    idx = np.arange(values.size)
    weight[idx, idx] = values.astype(dtype)[:, None, None]
    return weight


def conv_node(weight: np.ndarray, in_shape: tuple[int, ...], bias: np.ndarray | None = None,
              stride=(1, 1), padding=(0, 0), dilation=(1, 1),
              metadata: dict | None = None) -> Any:
    """nir.Conv2d; `in_shape` is (H, W); a missing bias becomes zeros (every reader needs one)."""
    import nir

    if bias is None:
        bias = np.zeros(weight.shape[0], dtype=np.float32 if weight.dtype.kind == "f"
                        else weight.dtype)
    return nir.Conv2d(input_shape=tuple(int(s) for s in in_shape), weight=weight,
                      stride=tuple(int(s) for s in stride),
                      padding=padding if isinstance(padding, str)
                      else tuple(int(p) for p in padding),
                      dilation=tuple(int(d) for d in dilation), groups=1, bias=bias,
                      metadata=metadata or {})


def affine_node(weight: np.ndarray, bias: np.ndarray | None = None,
                metadata: dict | None = None) -> Any:
    """nir.Affine; a missing bias becomes zeros (Sinabs reads no nir.Linear)."""
    import nir

    if bias is None:
        bias = np.zeros(weight.shape[0], dtype=np.float32 if weight.dtype.kind == "f"
                        else weight.dtype)
    return nir.Affine(weight=weight, bias=bias, metadata=metadata or {})


def flatten_node(shape: tuple[int, ...]) -> Any:
    import nir

    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def gain_node(gain: np.ndarray, offset: np.ndarray, shape: tuple[int, ...],
              metadata: dict | None = None) -> Any:
    """y = gain[c] * x + offset[c] per channel of a (C, H, W) map or an (N,) vector."""
    gain, offset = f32(gain).reshape(-1), f32(offset).reshape(-1)
    channels = shape[0]
    if gain.size != channels or offset.size != channels:
        raise ValueError(f"gain of {gain.size} / offset of {offset.size} values for "
                         f"{channels} channels")
    meta = {"role": "per-channel gain", **(metadata or {})}
    if len(shape) == 3:
        return conv_node(channel_diagonal(gain, (1, 1)), shape[1:], bias=offset, metadata=meta)
    if len(shape) == 1:
        return affine_node(np.diag(gain), offset, metadata=meta)
    raise ValueError(f"a gain node needs a (C, H, W) or (N,) shape, got {shape}")


def lif_node(shape: tuple[int, ...], tau_steps: float, threshold: float, dt: float,
             metadata: dict | None = None) -> Any:
    """nir.LIF in the normalised form: r = 1, v_leak = v_reset = 0, tau = tau_steps * dt."""
    import nir

    full = np.ones(shape, dtype=np.float32)
    zeros = np.zeros(shape, dtype=np.float32)
    return nir.LIF(tau=full * np.float32(tau_steps * dt), r=full.copy(), v_leak=zeros,
                   v_threshold=full * np.float32(threshold), v_reset=zeros.copy(),
                   metadata=metadata or {})


def if_node(shape: tuple[int, ...], threshold: float, dt: float,
            metadata: dict | None = None) -> Any:
    """nir.IF for v <- v + I a step: dv/dt = r I with r = 1/dt, v_reset = 0."""
    import nir

    full = np.ones(shape, dtype=np.float32)
    return nir.IF(r=full / np.float32(dt), v_threshold=full * np.float32(threshold),
                  v_reset=np.zeros(shape, dtype=np.float32), metadata=metadata or {})


def neuron_nodes(name: str, shape: tuple[int, ...], tau_steps: float, threshold: float,
                 gain: np.ndarray, offset: np.ndarray, dt: float,
                 metadata: dict | None = None, gain_name: str | None = None
                 ) -> list[tuple[str, Any]]:
    """[(gain node)?, LIF] for a neuron whose input is gain[c] * I + offset[c].

    A uniform positive gain with no offset is divided out of the threshold instead of a node
    (the membrane is then measured in units of that gain: the same spikes)."""
    gain = np.asarray(gain, dtype=np.float64).reshape(-1)
    offset = np.asarray(offset, dtype=np.float64).reshape(-1)
    nodes: list[tuple[str, Any]] = []
    uniform = bool(np.all(gain == gain[0])) and gain[0] > 0 and not np.any(offset)
    if uniform:
        threshold = threshold / float(gain[0])
    else:
        nodes.append((gain_name or f"{name}_gain", gain_node(gain, offset, shape)))
    nodes.append((name, lif_node(shape, tau_steps, threshold, dt, metadata)))
    return nodes


def spike_pool_nodes(name: str, in_shape: tuple[int, ...], kernel, stride, padding, dt: float,
                     weight_dtype=np.float32) -> tuple[list[tuple[str, Any]], tuple[int, ...]]:
    """Max pooling of a (C, H, W) spike map: window-sum conv, then a memoryless LIF at 0.5."""
    channels, height, width = in_shape
    out = (channels, conv_out(height, kernel[0], stride[0], padding[0]),
           conv_out(width, kernel[1], stride[1], padding[1]))
    ones = channel_diagonal(np.ones(channels), kernel, dtype=weight_dtype)
    count = conv_node(ones, in_shape[1:], stride=stride, padding=padding,
                      metadata={"role": "max pool of spikes: spikes in each window"})
    fire = lif_node(out, 1.0, POOL_THRESHOLD, dt,
                    metadata={"role": "max pool of spikes: fires when the window holds one"})
    return [(name, count), (f"{name}_spike", fire)], out


def chain_graph(nodes: list[tuple[str, Any]], in_shape: tuple[int, ...],
                out_shape: tuple[int, ...], metadata: dict[str, Any]) -> Any:
    """Input -> nodes -> Output as a type-checked nir.NIRGraph."""
    import nir

    names = [n for n, _ in nodes]
    if len(set(names)) != len(names) or {"input", "output"} & set(names):
        raise ValueError(f"NIR node names must be unique and not input/output: {names}")
    node_dict = {"input": nir.Input(input_type={"input": np.array(in_shape)})}
    node_dict.update(dict(nodes))
    node_dict["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    order = list(node_dict)
    return nir.NIRGraph(nodes=node_dict, edges=list(zip(order[:-1], order[1:])),
                        metadata=metadata, type_check=True)
