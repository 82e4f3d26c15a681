"""Weight quantizers (sigmoid and the baselines), level sets, temperature schedules, quantized
layers and the model-level `quantize_model` pass. Knows nothing of spikes."""

from .base import QuantizedWeight, WeightQuantizer
from .baselines import (
    DorefaQuantizer,
    IdentityQuantizer,
    LsqQuantizer,
    PtqQuantizer,
    SteQuantizer,
    XnorQuantizer,
)
from .layers import (
    QUANTIZERS,
    QuantConv2d,
    QuantLinear,
    attach_quantizer,
    float_weight,
    make_quantizer,
    quantize_model,
    quantized_layers,
    quantized_weight,
    state_dict_follows,
    weight_quantizer,
)
from .levels import bits_for_levels, power_of_two_levels, resolve_levels, symmetric_levels
from .schedule import TemperatureSchedule, set_temperature
from .sigmoid import SigmoidQuantizer

__all__ = [
    "QUANTIZERS",
    "DorefaQuantizer",
    "IdentityQuantizer",
    "LsqQuantizer",
    "PtqQuantizer",
    "QuantConv2d",
    "QuantLinear",
    "QuantizedWeight",
    "SigmoidQuantizer",
    "SteQuantizer",
    "TemperatureSchedule",
    "WeightQuantizer",
    "XnorQuantizer",
    "attach_quantizer",
    "bits_for_levels",
    "float_weight",
    "make_quantizer",
    "power_of_two_levels",
    "quantize_model",
    "quantized_layers",
    "quantized_weight",
    "resolve_levels",
    "set_temperature",
    "state_dict_follows",
    "symmetric_levels",
    "weight_quantizer",
]
