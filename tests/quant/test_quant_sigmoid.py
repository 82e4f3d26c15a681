"""SigmoidQuantizer against the function in DESIGN.md: definition, initialisation, step
positions, eval steps, temperature limit, gradients, and numerical edge cases."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from spikequant.quant import SigmoidQuantizer, make_quantizer, power_of_two_levels
from spikequant.quant.staircase_torch import _SoftStaircase

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LEVEL_SETS = {
    "binary": torch.tensor([-1.0, 1.0]),
    "ternary": torch.tensor([-1.0, 0.0, 1.0]),
    "3bit": torch.arange(-3.0, 4.0),
    "pow2": power_of_two_levels(2),
}


def reference(q: SigmoidQuantizer, w: torch.Tensor) -> torch.Tensor:
    """Q(w) = alpha * (sum_i s_i sigmoid(T (beta w - b_i)) - o), written out in float64."""
    w = w.double()
    shape = (-1,) + (1,) * (w.dim() - 1)
    alpha = q.alpha.detach().double().reshape(shape if q.alpha.dim() else ())
    beta = q.beta.detach().double().reshape(shape if q.beta.dim() else ())
    lv = q.levels.double()
    heights, offset = lv[1:] - lv[:-1], -lv[0]
    t = float(q.temperature)
    total = sum(
        s * torch.sigmoid(t * (beta * w - b)) for s, b in zip(heights, q.positions.double())
    )
    return alpha * (total - offset)


@pytest.mark.parametrize("name", LEVEL_SETS)
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("boundaries", ["kmeans", "midpoints"])
def test_training_output_is_the_design_formula(name, per_channel, boundaries):
    torch.manual_seed(0)
    w = torch.randn(6, 3, 3, 3) * 0.2
    q = SigmoidQuantizer(LEVEL_SETS[name], temperature=3.0, boundaries=boundaries,
                         per_channel=per_channel)
    q.reset(w)
    q.train()
    torch.testing.assert_close(q(w).double(), reference(q, w), rtol=1e-5, atol=1e-6)


def test_far_below_and_above_the_steps_give_the_outer_levels():
    q = SigmoidQuantizer(LEVEL_SETS["pow2"], temperature=50.0, boundaries="midpoints")
    q.reset(torch.tensor([-1.0, 1.0]))
    alpha = q.alpha.item()
    out = q.soft(torch.tensor([-100.0, 100.0]))
    torch.testing.assert_close(out, torch.tensor([-4.0 * alpha, 4.0 * alpha]))


def test_scales_initialised_from_max_abs_weight():
    w = torch.tensor([[0.5, -2.0], [0.25, 0.1]])
    q = SigmoidQuantizer(LEVEL_SETS["3bit"])
    q.reset(w)
    # beta = 1.25 * max|q| / max|w| = 1.25 * 3 / 2
    assert q.beta.item() == pytest.approx(1.875)
    assert q.alpha.item() == pytest.approx(1 / 1.875)
    assert q.alpha.shape == q.beta.shape == torch.Size([])


def test_per_channel_scales_have_one_value_per_output_channel():
    w = torch.tensor([[0.5, -2.0], [0.25, 0.1], [0.0, 0.0]])
    q = SigmoidQuantizer(LEVEL_SETS["binary"], per_channel=True)
    q.reset(w)
    assert q.alpha.shape == q.beta.shape == torch.Size([3])
    # the all-zero channel falls back to max|w| = 1 instead of dividing by zero
    torch.testing.assert_close(q.beta.detach(), torch.tensor([1.25 / 2.0, 1.25 / 0.25, 1.25]))
    torch.testing.assert_close(q.alpha.detach(), 1 / q.beta.detach())


def test_midpoint_positions():
    q = SigmoidQuantizer(LEVEL_SETS["pow2"], boundaries="midpoints")
    q.reset(torch.randn(10))
    assert q.positions.tolist() == [-3.0, -1.5, -0.5, 0.5, 1.5, 3.0]
    assert q.heights.tolist() == [2.0, 1.0, 1.0, 1.0, 1.0, 2.0]


def test_kmeans_position_on_a_hand_computed_example():
    # beta = 1.25 / max|w| = 1.25, so beta*w = [-1.25, -1.125, 0.125, 0.25, 0.375].
    # Seeded at the levels {-1, 1}, the clusters are {-1.25, -1.125} (mean -1.1875) and
    # {0.125, 0.25, 0.375} (mean 0.25); the boundary is their midpoint, -0.46875.
    w = torch.tensor([-1.0, -0.9, 0.1, 0.2, 0.3])
    q = SigmoidQuantizer(LEVEL_SETS["binary"], boundaries="kmeans")
    q.reset(w)
    assert q.positions.tolist() == pytest.approx([-0.46875])
    # midpoints ignore the data
    q = SigmoidQuantizer(LEVEL_SETS["binary"], boundaries="midpoints")
    q.reset(w)
    assert q.positions.tolist() == [0.0]


@pytest.mark.parametrize("w", [torch.zeros(4, 5), torch.full((4, 5), 0.3)])
def test_kmeans_falls_back_to_midpoints_on_degenerate_weights(w):
    q = SigmoidQuantizer(LEVEL_SETS["ternary"], boundaries="kmeans")
    q.reset(w)
    assert q.positions.tolist() == [-0.5, 0.5]


@pytest.mark.parametrize("name", LEVEL_SETS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_eval_is_exact_unit_steps(name, per_channel):
    torch.manual_seed(1)
    w = torch.randn(5, 7) * 0.3
    q = SigmoidQuantizer(LEVEL_SETS[name], per_channel=per_channel)
    q.reset(w)
    q.eval()
    x = (q.beta.detach().reshape(-1, 1) if per_channel else q.beta.detach()) * w
    # unit step H(x - b_i) = 1 where x >= b_i, so the level index is the number of such steps
    index = (x.unsqueeze(-1) >= q.positions).sum(-1)
    alpha = q.alpha.detach().reshape(-1, 1) if per_channel else q.alpha.detach()
    assert torch.equal(q(w), alpha * q.levels[index])


def _weights_away_from_steps(q: SigmoidQuantizer, n: int, margin: float) -> torch.Tensor:
    """Weights whose scaled values keep `margin` from every step position of `q`."""
    gen = torch.Generator().manual_seed(3)
    top = 1.25 * q.levels.abs().max()
    x = (torch.rand(n, generator=gen) * 2 - 1) * top
    for b in q.positions:
        near = (x - b).abs() < margin
        x = torch.where(near, b + margin * torch.where(x >= b, 1.0, -1.0), x)
    return x / q.beta.detach()


TEMPERATURES = [0.5, 1, 2, 5, 10, 20, 50, 100, 300, 1e3, 3e3, 1e4]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 10.0), per_channel=st.booleans())
def test_binary_gap_to_hard_shrinks_monotonically(seed, scale, per_channel):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(8, 16, generator=gen) * scale
    q = SigmoidQuantizer(LEVEL_SETS["binary"], per_channel=per_channel)
    q.reset(w)
    hard = q.hard(w)
    gaps = []
    for t in TEMPERATURES:
        q.set_temperature(t)
        gaps.append((q.soft(w) - hard).abs().max().item())
    assert all(b <= a for a, b in zip(gaps, gaps[1:])), gaps


@pytest.mark.parametrize("name", ["ternary", "3bit", "pow2"])
def test_multilevel_gap_to_hard_shrinks_monotonically_to_zero(name):
    # With several steps one weight's gap is a difference of two sigmoids, which can grow at
    # T ~ 1 for a weight sitting next to a step; with a margin of 0.2 from every step the gap
    # falls monotonically once T >= 5 (where the nearest step dominates), down to ~0 at 1e4.
    q = SigmoidQuantizer(LEVEL_SETS[name], boundaries="midpoints")
    q.reset(torch.linspace(-1, 1, 50))
    w = _weights_away_from_steps(q, 2000, margin=0.2)
    hard = q.hard(w)
    gaps = []
    for t in [t for t in TEMPERATURES if t >= 5]:
        q.set_temperature(t)
        gaps.append((q.soft(w) - hard).abs().max().item())
    assert all(b <= a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[0] > 0.01 and gaps[-1] < 1e-6


@pytest.mark.parametrize("bits", [1, 2, 8])
def test_soft_staircase_gradcheck(bits):
    q = make_quantizer("sigmoid", bits=bits, boundaries="midpoints")
    gen = torch.Generator().manual_seed(0)
    top = float(q.levels.abs().max())
    x = ((torch.rand(12, generator=gen) * 2 - 1) * 1.25 * top).double().requires_grad_()
    t = torch.tensor(2.0)
    assert torch.autograd.gradcheck(
        lambda v: _SoftStaircase.apply(v, q.positions, q.heights, t), (x,)
    )


@pytest.mark.parametrize("bits, per_channel", [(1, False), (1, True), (2, True), (3, False)])
def test_gradcheck_weights_alpha_beta_in_double(bits, per_channel):
    torch.manual_seed(0)
    w = torch.randn(3, 4, dtype=torch.float64) * 0.5
    # the exact derivative (the default backward is Quantization Networks' surrogate)
    q = make_quantizer("sigmoid", bits=bits, per_channel=per_channel, temperature=3.0,
                       gradient="exact")
    q.reset(w)
    q.double()
    assert q.alpha.dtype == q.beta.dtype == torch.float64
    q.train()
    alpha = q.alpha.detach().clone().requires_grad_()
    beta = q.beta.detach().clone().requires_grad_()
    w.requires_grad_()

    def fn(w, alpha, beta):
        return functional_call(q, {"alpha": alpha, "beta": beta}, (w,))

    assert torch.autograd.gradcheck(fn, (w, alpha, beta))
    # the module's own parameters receive gradients too
    q(w).sum().backward()
    assert q.alpha.grad is not None and q.beta.grad is not None


def test_gradient_matches_autograd_of_the_formula():
    torch.manual_seed(2)
    w = (torch.randn(40) * 0.3).double()
    q = make_quantizer("sigmoid", bits=3, temperature=4.0, gradient="exact")
    q.reset(w)
    q.double().train()
    w1 = w.clone().requires_grad_()
    q(w1).pow(2).sum().backward()
    w2 = w.clone().requires_grad_()
    reference(q, w2).pow(2).sum().backward()
    torch.testing.assert_close(w1.grad, w2.grad)


@pytest.mark.parametrize("bits", [1, 2, 8])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("kind", ["random", "zeros", "constant"])
@pytest.mark.parametrize("temperature", [1.0, 1e2, 1e4])
def test_forward_and_backward_finite(bits, per_channel, kind, temperature):
    w = {"random": torch.randn(4, 3, 3, 3), "zeros": torch.zeros(4, 3, 3, 3),
         "constant": torch.full((4, 3, 3, 3), -0.7)}[kind]
    q = make_quantizer("sigmoid", bits=bits, per_channel=per_channel, temperature=temperature)
    q.reset(w)
    w = w.clone().requires_grad_()
    out = q(w)
    out.pow(2).sum().backward()
    for t in (out, w.grad, q.alpha.grad, q.beta.grad):
        assert torch.isfinite(t).all()
    q.eval()
    assert torch.isfinite(q(w)).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "hot", None])
def test_invalid_temperature(bad):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        SigmoidQuantizer(LEVEL_SETS["binary"], temperature=bad)
    q = SigmoidQuantizer(LEVEL_SETS["binary"])
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        q.set_temperature(bad)


def test_invalid_boundaries():
    with pytest.raises(ValueError, match="'kmeans' or 'midpoints'"):
        SigmoidQuantizer(LEVEL_SETS["binary"], boundaries="quantiles")


def test_fixed_scales_get_no_gradient():
    q = SigmoidQuantizer(LEVEL_SETS["binary"], learn_scales=False)
    w = torch.randn(5, 5, requires_grad=True)
    q.reset(w.detach())
    q(w).sum().backward()
    assert not q.alpha.requires_grad and q.alpha.grad is None
    assert w.grad is not None


def test_temperature_is_state():
    q = SigmoidQuantizer(LEVEL_SETS["binary"])
    q.set_temperature(42.0)
    fresh = SigmoidQuantizer(LEVEL_SETS["binary"])
    fresh.load_state_dict(q.state_dict())
    assert float(fresh.temperature) == 42.0
