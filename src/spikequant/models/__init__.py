"""The study's spiking networks, by name: `build("nmnist", quantizer="sigmoid", bits=1)`.

Every network is the PLIF convolutional family of Fang et al. 2021 (see `convnet`): it takes a
float tensor [T, B, C, H, W] and returns class scores [B, num_classes], the output firing rates
averaged over time and over each class's voting neurons. Neuron state is reset by every forward
call.

Batch norm in quantized networks: BN layers stay float (running statistics and affine
parameters are not quantized; only conv and linear weights are). Export counts them as float
parameters. With fixed-point neuron state (`build(..., state_bits=K)`), evaluation folds each BN
with its layer's weight scale and neuron leak into per-channel integer multipliers and offsets
(`integer_program`), and the network computes that integer program exactly
(`fixed_point_forward`).
"""

from .convnet import SpikingConvNet
from .registry import (
    MODELS,
    ModelRecipe,
    build,
    build_float_on_meta,
    convnet_recipe,
    count_parameters,
    list_models,
    model_recipe,
    register_model,
    unregister_model,
)

__all__ = [
    "MODELS",
    "ModelRecipe",
    "SpikingConvNet",
    "build",
    "build_float_on_meta",
    "convnet_recipe",
    "count_parameters",
    "list_models",
    "model_recipe",
    "register_model",
    "unregister_model",
]
