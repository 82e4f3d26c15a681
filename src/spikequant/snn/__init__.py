"""Multi-step spiking neurons (LIF, PLIF), surrogate gradients and helpers for [T, B, ...]
networks. Depends on nothing else in spikequant: a neuron knows nothing of quantization."""

from . import functional, surrogate
from .functional import fold_time, lif_multistep, lif_multistep_reference, unfold_time
from .layer import MultiStepModule, SpikingSequential, TimeFolded, TimeSharedDropout
from .neuron import LIF, NEURONS, PLIF, BaseLIF, make_neuron
from .surrogate import Surrogate, as_surrogate

__all__ = [
    "LIF",
    "NEURONS",
    "PLIF",
    "BaseLIF",
    "MultiStepModule",
    "SpikingSequential",
    "Surrogate",
    "TimeFolded",
    "TimeSharedDropout",
    "as_surrogate",
    "fold_time",
    "functional",
    "lif_multistep",
    "lif_multistep_reference",
    "make_neuron",
    "surrogate",
    "unfold_time",
]
