"""The study's spiking networks, by name: `build("nmnist", quantizer="sigmoid", bits=1)`.

Every network is the PLIF convolutional family of Fang et al. 2021 (see `convnet`): it takes a
float tensor [T, B, C, H, W] and returns class scores [B, num_classes], the output firing rates
averaged over time and over each class's voting neurons. Neuron state is reset by every forward
call.

Batch norm in quantized networks: BN layers stay float (running statistics and affine
parameters are not quantized; only conv and linear weights are). Export counts them as float
parameters. BN directly follows each convolution, so at inference it could be folded into a
per-channel scale and a threshold shift; the study's method quantizes weights only, so we keep
BN as it is.
"""

from .convnet import SpikingConvNet
from .registry import (
    MODELS,
    ModelSpec,
    build,
    build_float_on_meta,
    count_parameters,
    list_models,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "SpikingConvNet",
    "build",
    "build_float_on_meta",
    "count_parameters",
    "list_models",
]
