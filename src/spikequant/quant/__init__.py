"""Weight quantizers (sigmoid and the baselines), level sets, temperature schedules, quantized
layers and the model-level `quantize_model` pass. Knows nothing of spikes."""

from .base import QuantizedWeight, WeightQuantizer

# isort: off
# The built-in quantizers register when their class is defined, in the order --quantizer
# lists them: float, the study's sigmoid, the baselines.
from .identity import IdentityQuantizer
from .sigmoid import SigmoidQuantizer
from .baselines import DorefaQuantizer, LsqQuantizer, PtqQuantizer, SteQuantizer, XnorQuantizer

# isort: on
from .layers import (
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
from .registry import (
    QUANTIZERS,
    quantizer_class,
    quantizer_names,
    quantizer_registered,
    register_quantizer,
    unregister_quantizer,
)
from .schedule import TemperatureSchedule, set_temperature

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
    "quantizer_class",
    "quantizer_names",
    "quantizer_registered",
    "register_quantizer",
    "resolve_levels",
    "set_temperature",
    "state_dict_follows",
    "symmetric_levels",
    "unregister_quantizer",
    "weight_quantizer",
]
