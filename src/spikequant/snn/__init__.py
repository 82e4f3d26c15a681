"""Multi-step spiking neurons (a generic base, LIF, PLIF), surrogate gradients and helpers for
[T, B, ...] networks. Depends on nothing else in spikequant: a neuron knows nothing of
quantization."""

from . import functional, surrogate
from .base import NEURONS, SpikingNeuron, make_neuron, unregister_neuron
from .functional import lif_multistep
from .layer import MaxPool2x2, MultiStepModule, SpikingSequential, TimeFolded, TimeSharedDropout
from .neuron import LIF, PLIF, BaseLIF
from .surrogate import (
    SURROGATES,
    Surrogate,
    SurrogateRecord,
    as_surrogate,
    register_surrogate,
    unregister_surrogate,
)

__all__ = [
    "LIF",
    "NEURONS",
    "PLIF",
    "SURROGATES",
    "BaseLIF",
    "MaxPool2x2",
    "MultiStepModule",
    "SpikingNeuron",
    "SpikingSequential",
    "Surrogate",
    "SurrogateRecord",
    "TimeFolded",
    "TimeSharedDropout",
    "as_surrogate",
    "functional",
    "lif_multistep",
    "make_neuron",
    "register_surrogate",
    "surrogate",
    "unregister_neuron",
    "unregister_surrogate",
]
