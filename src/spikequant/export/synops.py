"""Synaptic operations from measured spikes, and the energy they cost, as SNN papers report them.

A synaptic operation (SynOp) is one input event reaching one synapse: for every Conv / Linear
layer, sum over its inputs of (input != 0) x that input's fan-out, counted exactly (a conv
border has fewer outgoing synapses). Counted with forward hooks on the layers while the network
runs on real data, and given per sample (all time steps together).

A layer whose every input was 0 or 1 (spikes) does an accumulate (AC) per SynOp; a layer fed
real values (the first layer, on event-count frames) does a multiply-accumulate (MAC) per
non-zero input and synapse.

Energy per operation, 45 nm CMOS, Horowitz, "Computing's energy problem (and what we can do
about it)", ISSCC 2014, table of arithmetic energies:
    fp32 add 0.9 pJ, fp32 mult 3.7 pJ  -> fp32 MAC 4.6 pJ, fp32 AC 0.9 pJ
    int32 add 0.1 pJ, int8 add 0.03 pJ, int8 mult 0.2 pJ
Assumed for quantized weights (same table):
- spike input: the synapse adds its integer level (its code's value; the float scale is applied
  once per neuron, or folded into batch norm) into an integer accumulator: one int32 add,
  0.1 pJ. 32 bits is conservative: a binary layer of fan-in 10^4 needs a 15-bit accumulator.
- real-valued input with levels in {-1, 0, 1}: the product is the input or its negation, so
  one fp32 add (0.9 pJ); other level sets: a full fp32 MAC (4.6 pJ), nothing saved.
Batch norm, scale and membrane updates (a few operations per neuron and step, the same in the
float and the quantized network) are left out of both, as is memory access energy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..quant import bits_for_levels, weight_quantizer
from .hooks import forward_hooks


@dataclass(frozen=True)
class EnergyCosts:
    """Picojoules per operation (defaults: 45 nm, Horowitz 2014).

    Args:
        mac_fp32: pJ of a float32 multiply-accumulate: a SynOp on real-valued input with
            float weights, or with quantized levels outside {-1, 0, 1}; also what the dense
            ANN estimate pays per MAC. Default 4.6.
        ac_fp32: pJ of a float32 add: a SynOp on spike input with float weights, or on
            real-valued input with levels within {-1, 0, 1}. Default 0.9.
        ac_int: pJ of an integer (int32) add: a SynOp on spike input with quantized weights.
            Default 0.1.
        source: where the numbers come from, in words; format_synops prints it.
    """

    mac_fp32: float = 4.6
    ac_fp32: float = 0.9
    ac_int: float = 0.1  # int32 add
    source: str = "Horowitz, ISSCC 2014, 45 nm"


@dataclass
class LayerOps:
    name: str
    kind: str  # "conv" or "linear"
    bits: int | None  # None: float weights
    unit_levels: bool  # levels within {-1, 0, 1}
    spiking_input: bool = True
    input_values: int = 0
    input_events: int = 0
    synops: int = 0
    dense_macs: int = 0

    @property
    def input_rate(self) -> float:
        return self.input_events / max(self.input_values, 1)


def _levels_info(layer: nn.Module, levels: torch.Tensor | None) -> tuple[int | None, bool]:
    if levels is None:
        q = weight_quantizer(layer)
        if q is None or q.is_float:
            return None, False
        levels = q.levels
    levels = levels.detach().cpu()
    unit = bool(((levels == -1) | (levels == 0) | (levels == 1)).all())
    return bits_for_levels(levels.numel()), unit


def levels_from_packed(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """{layer name: level set} of a packed model file, for pricing a network loaded from it
    (load_packed gives float layers that no longer know their levels)."""
    from .modelfile import read_packed

    info, tensors = read_packed(path)
    return {e["key"].removesuffix(".weight"): tensors[f"q:{e['key']}:levels"]
            for e in info["layers"]}


@torch.no_grad()
def _conv_events(layer: nn.Conv2d, x: torch.Tensor) -> int:
    """Exact count of (non-zero input, synapse) pairs: every output position's receptive
    field is counted once per output channel of its group."""
    active = (x != 0).to(torch.float32)
    groups = layer.groups
    ones = torch.ones(groups, layer.in_channels // groups, *layer.kernel_size, device=x.device)
    per_group = F.conv2d(active, ones, stride=layer.stride, padding=layer.padding,
                         dilation=layer.dilation, groups=groups)
    return int(per_group.sum().round()) * (layer.out_channels // groups)


class SynOpsCounter:
    """Context manager counting SynOps of every Conv2d / Linear of `model` while it runs.

    `levels`: {layer name: level set} for layers whose quantization the model does not carry
    (a network loaded from a packed file); other layers are read from their quantizers."""

    def __init__(self, model: nn.Module, levels: dict[str, torch.Tensor] | None = None) -> None:
        self.model = model
        self.levels = levels or {}
        self.layers: dict[str, LayerOps] = {}
        self.samples = 0
        self._hooks: Any = None

    def __enter__(self) -> SynOpsCounter:
        hooks = {}
        for name, m in self.model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bits, unit = _levels_info(m, self.levels.get(name))
                kind = "conv" if isinstance(m, nn.Conv2d) else "linear"
                self.layers[name] = LayerOps(name, kind, bits, unit)
                hooks[m] = self._hook(name)
        self._hooks = forward_hooks(hooks)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)

    def _hook(self, name: str):
        def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0]
            ops = self.layers[name]
            ops.spiking_input &= bool(((x == 0) | (x == 1)).all())
            ops.input_values += x.numel()
            ops.input_events += int((x != 0).sum())
            if isinstance(module, nn.Conv2d):
                ops.synops += _conv_events(module, x)
                per_output = module.in_channels // module.groups * module.weight[0, 0].numel()
                ops.dense_macs += output.numel() * per_output
            else:
                ops.synops += int((x != 0).sum()) * module.out_features
                ops.dense_macs += x.numel() * module.out_features
        return count


@dataclass
class SynOpsReport:
    """SynOps counted per layer over a run, and their energy (what `measure_synops` returns).

    Args:
        layers: one entry per Conv2d / Linear layer, in module order, its counts (input
            values, non-zero inputs, SynOps, dense MACs) summed over every sample.
        samples: how many samples were run; the per-sample figures are the counts divided
            by it.
        time_steps: T of the frames the samples had, as recorded in the totals (the counts
            cover all time steps whatever it is); None when not given.
        costs: the energy of each operation; EnergyCosts() (45 nm, Horowitz 2014) by default.
    """

    layers: list[LayerOps]
    samples: int
    time_steps: int | None
    costs: EnergyCosts = field(default_factory=EnergyCosts)

    def per_sample(self, value: int) -> float:
        return value / max(self.samples, 1)

    def layer_energy_pj(self, ops: LayerOps, quantized: bool) -> float:
        """Energy of a layer per sample, pricing its weights as float32 or as quantized."""
        c, n = self.costs, self.per_sample(ops.synops)
        if not quantized or ops.bits is None:
            return n * (c.ac_fp32 if ops.spiking_input else c.mac_fp32)
        if ops.spiking_input:
            return n * c.ac_int
        return n * (c.ac_fp32 if ops.unit_levels else c.mac_fp32)

    def totals(self) -> dict[str, Any]:
        ac = sum(self.per_sample(o.synops) for o in self.layers if o.spiking_input)
        mac = sum(self.per_sample(o.synops) for o in self.layers if not o.spiking_input)
        dense = sum(self.per_sample(o.dense_macs) for o in self.layers)
        fp = sum(self.layer_energy_pj(o, quantized=False) for o in self.layers)
        q = sum(self.layer_energy_pj(o, quantized=True) for o in self.layers)
        return {"samples": self.samples, "time_steps": self.time_steps,
                "synops_per_sample": ac + mac, "ac_per_sample": ac, "mac_per_sample": mac,
                "dense_macs_per_sample": dense, "energy_fp32_weights_uj": fp * 1e-6,
                "energy_quantized_uj": q * 1e-6, "energy_ann_uj": dense * self.costs.mac_fp32
                * 1e-6, "energy_saving_vs_fp32": fp / q if q else float("nan")}

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for o in self.layers:
            rows.append({**asdict(o), "input_rate": o.input_rate,
                         "synops_per_sample": self.per_sample(o.synops),
                         "energy_fp32_weights_pj": self.layer_energy_pj(o, False),
                         "energy_quantized_pj": self.layer_energy_pj(o, True)})
        return {"layers": rows, "totals": self.totals(), "costs_pj": asdict(self.costs)}


@torch.no_grad()
def measure_synops(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    costs: EnergyCosts | None = None,
    time_steps: int | None = None,
    levels: dict[str, torch.Tensor] | None = None,
) -> SynOpsReport:
    """Run `model` (eval mode) on `batches` of [T, B, C, H, W] frames and count SynOps.
    `levels` as for SynOpsCounter.

    The model is put back in training mode afterwards if it was in it. `batches` must be on
    the model's device.

    Args:
        model: the network to run.
        batches: the inputs, each a [T, B, C, H, W] tensor; B of each adds to the sample count.
        costs: the energy of each operation; None (the default): EnergyCosts().
        time_steps: T, recorded in the report only; None (the default): not recorded.
        levels: {layer name: level set} for layers whose quantization the model does not
            carry (a network loaded from a packed file, see levels_from_packed).

    Returns:
        The counts per layer, with `costs` to price them.
    """
    was_training = model.training
    model.eval()
    try:
        with SynOpsCounter(model, levels) as counter:
            for x in batches:
                model(x)
                counter.samples += x.shape[1]
    finally:
        model.train(was_training)
    return SynOpsReport(list(counter.layers.values()), counter.samples, time_steps,
                        costs or EnergyCosts())


def format_synops(rep: SynOpsReport, title: str = "synaptic operations and energy") -> str:
    """A plain-text table per layer, then totals (per sample, all time steps).

    Args:
        rep: the report to show (from `measure_synops`).
        title: the first line, to which the sample count is added.
    """
    c = rep.costs
    lines = [f"{title} ({rep.samples} samples, per sample, all time steps)", "",
             f"{'layer':<24}{'input':>6}{'in rate':>9}{'SynOps':>15}{'bits':>5}"
             f"{'E fp32 (nJ)':>13}{'E quant (nJ)':>14}"]
    for o in rep.layers:
        lines.append(
            f"{o.name:<24}{'spike' if o.spiking_input else 'real':>6}{o.input_rate:>9.4f}"
            f"{rep.per_sample(o.synops):>15,.0f}{o.bits if o.bits else 32:>5}"
            f"{rep.layer_energy_pj(o, False) / 1e3:>13,.2f}"
            f"{rep.layer_energy_pj(o, True) / 1e3:>14,.2f}")
    t = rep.totals()
    lines += [
        "",
        f"SynOps (AC, spike input)   {t['ac_per_sample']:>16,.0f}",
        f"MACs (real-valued input)   {t['mac_per_sample']:>16,.0f}",
        f"dense MACs (same net, ANN) {t['dense_macs_per_sample']:>16,.0f}",
        f"energy, float32 weights    {t['energy_fp32_weights_uj']:>16.3f} uJ",
        f"energy, quantized weights  {t['energy_quantized_uj']:>16.3f} uJ   "
        f"({t['energy_saving_vs_fp32']:.1f}x less)",
        f"energy, ANN (dense MACs)   {t['energy_ann_uj']:>16.3f} uJ",
        f"costs ({c.source}): MAC fp32 {c.mac_fp32} pJ, AC fp32 {c.ac_fp32} pJ, "
        f"AC int32 {c.ac_int} pJ",
    ]
    return "\n".join(lines)
