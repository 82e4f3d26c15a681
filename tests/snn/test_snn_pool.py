"""MaxPool2x2: the same maxima as nn.MaxPool2d(2, 2) without autograd (its fast path), and
nn.MaxPool2d itself with autograd (same gradient)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikequant.snn import MaxPool2x2


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 7, 9), (1, 1, 2, 2), (5, 2, 34, 34)])
@pytest.mark.parametrize("spikes", [True, False])
def test_inference_equals_max_pool(shape, spikes):
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=gen)
    x = (x < 0.3).float() if spikes else x * 2 - 1
    with torch.no_grad():
        got, want = MaxPool2x2()(x), nn.MaxPool2d(2, 2)(x)
    assert got.shape == want.shape and torch.equal(got, want)


def test_training_takes_max_pool_and_its_gradient():
    x = (torch.rand(2, 3, 6, 6) < 0.5).float().requires_grad_()  # many ties in each window
    weights = torch.rand(2, 3, 3, 3)
    (MaxPool2x2()(x) * weights).sum().backward()
    got = x.grad.clone()
    x.grad = None
    (nn.MaxPool2d(2, 2)(x) * weights).sum().backward()
    assert torch.equal(got, x.grad)


def test_the_study_network_pools_with_it():
    from spikequant.models import build

    net = build("ndigits", quantizer="none")
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert pools and all(isinstance(m, MaxPool2x2) for m in pools)
