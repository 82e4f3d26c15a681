"""Each baseline against its paper's definition, on small tensors computed by hand."""

import math

import pytest
import torch

from spikequant.quant import (
    DorefaQuantizer,
    IdentityQuantizer,
    LsqQuantizer,
    PtqQuantizer,
    SteQuantizer,
    XnorQuantizer,
    make_quantizer,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BINARY = torch.tensor([-1.0, 1.0])
TERNARY = torch.tensor([-1.0, 0.0, 1.0])
THREE_BIT = torch.arange(-3.0, 4.0)
W = torch.tensor([[0.5, -1.5], [2.0, -0.1]])


def grad_of(q, w, upstream):
    w = w.clone().requires_grad_()
    out = q(w)
    (out * upstream).sum().backward()
    return out.detach(), w.grad


def test_none_keeps_float_weights_and_has_no_codes():
    q = IdentityQuantizer()
    assert q(W) is W
    with pytest.raises(TypeError, match="keeps float weights"):
        q.quantize(W)


# ---- XNOR-Net: w_hat = mean|w| * sign(w); dL/dw = (1/n) sum_i g_i sign(w_i) sign(w)
#      + g * alpha * 1{|w| <= 1} -------------------------------------------------------------


def test_xnor_per_tensor_forward_and_gradient():
    q = XnorQuantizer(BINARY)
    g = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out, grad = grad_of(q, W, g)
    # mean|w| = (0.5 + 1.5 + 2.0 + 0.1) / 4 = 1.025
    torch.testing.assert_close(out, torch.tensor([[1.025, -1.025], [1.025, -1.025]]))
    # sum g*sign(w) = 1 - 2 + 3 - 4 = -2, so the scale term is -2/4 * sign(w);
    # the sign term passes g * 1.025 where |w| <= 1 (0.5 and -0.1) and is cancelled elsewhere
    expected = torch.tensor([[-0.5 + 1.025, 0.5], [-0.5, 0.5 + 4 * 1.025]])
    torch.testing.assert_close(grad, expected)


def test_xnor_per_channel_forward():
    q = XnorQuantizer(BINARY, per_channel=True)
    q.eval()
    # row means: (0.5 + 1.5) / 2 = 1.0 and (2.0 + 0.1) / 2 = 1.05
    torch.testing.assert_close(q(W), torch.tensor([[1.0, -1.0], [1.05, -1.05]]))
    qw = q.quantize(W)
    assert qw.codes.tolist() == [[1, 0], [1, 0]]
    assert qw.scale.shape == (2, 1)


def test_xnor_zero_binarizes_to_plus_one_in_train_and_eval():
    q = XnorQuantizer(BINARY)
    w = torch.tensor([0.0, -2.0])
    assert q.train()(w).tolist() == [1.0, -1.0]
    assert q.eval()(w).tolist() == [1.0, -1.0]


def test_xnor_refuses_more_than_one_bit():
    with pytest.raises(ValueError, match="only bits=1"):
        make_quantizer("xnor", bits=2)
    with pytest.raises(ValueError, match="only bits=1"):
        make_quantizer("xnor", levels=[-1, 0, 1])


# ---- BinaryConnect / STE: w_hat = H * nearest_level(w / H), H fixed at initialisation;
#      identity gradient inside the clip range, zero outside ---------------------------------


def test_ste_binary_forward_and_gradient_cancellation():
    w = torch.tensor([0.1, -0.2, 0.3, -2.0])
    q = SteQuantizer(BINARY)
    q.reset(w)
    # H = mean|w| = 2.6 / 4 = 0.65; w/H = [0.15, -0.31, 0.46, -3.08]; the clip range for
    # binary is |w/H| <= 2 (half a step, 1, beyond the outer levels), so -2.0 gets no gradient
    assert q.scale.item() == pytest.approx(0.65)
    out, grad = grad_of(q, w, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(out, torch.tensor([0.65, -0.65, 0.65, -0.65]))
    torch.testing.assert_close(grad, torch.tensor([1.0, 2.0, 3.0, 0.0]))


def test_ste_ternary_rounds_and_clips():
    q = SteQuantizer(TERNARY)
    q.reset(torch.tensor([0.2, -0.9, 0.5, 1.0]))  # H = max|w| / max|q| = 1.0
    w = torch.tensor([0.2, -0.9, 0.6, 1.6])
    out, grad = grad_of(q, w, torch.ones(4))
    torch.testing.assert_close(out, torch.tensor([0.0, -1.0, 1.0, 1.0]))
    # clip range |w/H| <= 1.5: 1.6 is outside
    torch.testing.assert_close(grad, torch.tensor([1.0, 1.0, 1.0, 0.0]))
    assert q.eval()(w).tolist() == [0.0, -1.0, 1.0, 1.0]


# ---- LSQ (Esser et al. 2020): v = clip(w / s, Qn, Qp), w_hat = s * round(v);
#      dw_hat/ds = round(v) - v inside, Qn or Qp outside, scaled by 1 / sqrt(N * Qp) ------------


def _lsq_with_step(levels, step):
    q = LsqQuantizer(levels)
    q.step_size.data.fill_(step)
    return q


def test_lsq_three_bit_forward_and_step_gradient():
    q = _lsq_with_step(THREE_BIT, 0.25)
    w = torch.tensor([0.1, 0.3, -0.6, 1.0])
    out, grad = grad_of(q, w, torch.ones(4))
    # v = [0.4, 1.2, -2.4, 4.0 -> clipped to 3]; round -> [0, 1, -2, 3]
    torch.testing.assert_close(out, torch.tensor([0.0, 0.25, -0.5, 0.75]))
    # (0 - 0.4) + (1 - 1.2) + (-2 + 2.4) + 3 = 2.8, times 1/sqrt(4 * 3)
    assert q.step_size.grad.item() == pytest.approx(2.8 / math.sqrt(12), rel=1e-5)
    torch.testing.assert_close(grad, torch.tensor([1.0, 1.0, 1.0, 0.0]))


def test_lsq_binary_forward_and_step_gradient():
    q = _lsq_with_step(BINARY, 0.5)
    w = torch.tensor([0.2, -0.3, 0.9, -2.0])
    out, grad = grad_of(q, w, torch.ones(4))
    # v = [0.4, -0.6, 1 (clipped), -1 (clipped)] -> sign -> s * [1, -1, 1, -1]
    torch.testing.assert_close(out, torch.tensor([0.5, -0.5, 0.5, -0.5]))
    # (1 - 0.4) + (-1 + 0.6) + Qp + Qn = 0.6 - 0.4 + 1 - 1 = 0.2, times 1/sqrt(4 * 1)
    assert q.step_size.grad.item() == pytest.approx(0.1, rel=1e-5)
    torch.testing.assert_close(grad, torch.tensor([1.0, 1.0, 0.0, 0.0]))


def test_lsq_step_size_initialisation():
    w = torch.tensor([0.1, -0.3, 0.6, -1.0])  # mean|w| = 0.5
    q = LsqQuantizer(THREE_BIT)
    q.reset(w)
    assert q.step_size.item() == pytest.approx(2 * 0.5 / math.sqrt(3))  # 2<|w|>/sqrt(Qp)
    q = LsqQuantizer(BINARY)
    q.reset(w)
    assert q.step_size.item() == pytest.approx(0.5)  # mean|w|: the best scale for sign(w)


def test_lsq_per_channel_gradient_scale_counts_weights_per_channel():
    q = LsqQuantizer(BINARY, per_channel=True)
    q.reset(torch.ones(2, 4))
    assert q.step_size.shape == (2,)
    q.step_size.data = torch.tensor([0.5, 0.5])
    w = torch.tensor([[0.2, -0.3, 0.9, -2.0], [0.2, -0.3, 0.9, -2.0]])
    grad_of(q, w, torch.ones(2, 4))
    # each channel's sum is 0.2 (as above) and N is 4 weights per channel
    torch.testing.assert_close(q.step_size.grad, torch.tensor([0.1, 0.1]))


# ---- DoReFa-Net: k > 1: w_n = tanh(w) / (2 max|tanh w|) + 1/2,
#      w_hat = 2 round((2^k - 1) w_n) / (2^k - 1) - 1; k = 1: E|w| * sign(w) ------------------


def test_dorefa_two_bit_forward():
    q = DorefaQuantizer(2)
    w = torch.tensor([0.1, -0.3, 0.5, -1.0, 2.0])
    # tanh: [0.0997, -0.2913, 0.4621, -0.7616, 0.9640]; w_n = tanh/(2*0.9640) + 0.5 =
    # [0.5517, 0.3489, 0.7397, 0.1050, 1.0]; * 3 = [1.655, 1.047, 2.219, 0.315, 3.0]
    # round: [2, 1, 2, 0, 3]; 2 * r / 3 - 1:
    expected = torch.tensor([1 / 3, -1 / 3, 1 / 3, -1.0, 1.0])
    out, grad = grad_of(q, w, torch.ones(5))
    torch.testing.assert_close(out, expected)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    torch.testing.assert_close(q.eval()(w), expected)
    assert q.quantize(w).codes.tolist() == [2, 1, 2, 0, 3]
    assert q.levels.tolist() == pytest.approx([-1.0, -1 / 3, 1 / 3, 1.0])


def test_dorefa_one_bit_is_mean_abs_times_sign_with_straight_gradient():
    q = DorefaQuantizer(1)
    w = torch.tensor([0.5, -1.5, 2.0, -0.1])
    out, grad = grad_of(q, w, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(out, torch.tensor([1.025, -1.025, 1.025, -1.025]))
    # E|w| is a constant in the backward pass, the sign passes straight through (no clipping)
    torch.testing.assert_close(grad, 1.025 * torch.tensor([1.0, 2.0, 3.0, 4.0]))


def test_dorefa_takes_bits_not_levels():
    with pytest.raises(ValueError, match="pass bits=1..8, not levels"):
        make_quantizer("dorefa", bits=2, levels=[-1, 0, 1])
    with pytest.raises(ValueError, match="1 to 8"):
        DorefaQuantizer(9)


# ---- post-training quantization: float in training, nearest level at the MSE-optimal scale --


def test_ptq_picks_the_mse_optimal_scale():
    # ternary, w = [0, 0.1, 1.0, 1.2]. Rounding {1.0, 1.2} to 1 and {0, 0.1} to 0 gives the best
    # scale (1.0 + 1.2) / 2 = 1.1 with error 3 * 0.1^2 = 0.03; the max scale 1.2 gives 0.05,
    # and rounding 0.1 to 1 as well (best s = 2.3 / 3) gives about 0.69.
    q = PtqQuantizer(TERNARY)
    w = torch.tensor([0.0, 0.1, 1.0, 1.2])
    assert q.best_scale(w).item() == pytest.approx(1.1, abs=1e-6)
    torch.testing.assert_close(q.eval()(w), torch.tensor([0.0, 0.0, 1.1, 1.1]))
    assert q.train()(w) is w  # no training: float weights while training


def test_ptq_binary_scale_is_mean_abs():
    q = PtqQuantizer(BINARY, per_channel=True)
    w = torch.tensor([[0.5, -1.5], [2.0, -0.1]])
    torch.testing.assert_close(q.best_scale(w), torch.tensor([[1.0], [1.05]]))


def test_ptq_scale_is_recomputed_when_the_weight_changes():
    w = torch.nn.Parameter(torch.tensor([0.0, 0.1, 1.0, 1.2]))
    q = PtqQuantizer(TERNARY).eval()
    assert q(w)[-1].item() == pytest.approx(1.1)
    with torch.no_grad():
        w.mul_(2)
    assert q(w)[-1].item() == pytest.approx(2.2)
