"""QuantConv2d / QuantLinear, quantize_model, integer codes, and saving quantized models."""

import copy
import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from spikequant import quantize_model as top_level_quantize_model
from spikequant.errors import ModelError
from spikequant.quant import (
    IdentityQuantizer,
    QuantConv2d,
    QuantLinear,
    SigmoidQuantizer,
    float_weight,
    make_quantizer,
    power_of_two_levels,
    quantize_model,
    quantized_layers,
    quantized_weight,
    set_temperature,
    weight_quantizer,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Net(nn.Module):
    def __init__(self, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1, padding_mode=padding_mode), nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 5 * 5, 8), nn.ReLU())
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(self.head(self.features(x)))


def make_net(seed: int = 0, **kw) -> Net:
    torch.manual_seed(seed)
    return Net(**kw)


X = torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(9))

# (quantizer, bits, levels, options): every quantizer, several widths, per-channel, powers of two
CONFIGS = (
    [("sigmoid", b, None, {"per_channel": pc}) for b in (1, 2, 3, 4, 8) for pc in (False, True)]
    + [("sigmoid", None, power_of_two_levels(2), {"per_channel": pc}) for pc in (False, True)]
    + [("sigmoid", 2, None, {"boundaries": "midpoints"})]
    + [(q, b, None, {"per_channel": pc}) for q in ("ste", "lsq", "ptq")
       for b in (1, 2, 3, 8) for pc in (False, True)]
    + [(q, None, power_of_two_levels(2), {"per_channel": True}) for q in ("ste", "lsq", "ptq")]
    + [("xnor", 1, None, {"per_channel": pc}) for pc in (False, True)]
    + [("dorefa", b, None, {}) for b in (1, 2, 3, 8)]
)


def config_id(cfg):
    q, bits, levels, options = cfg
    width = "pow2" if levels is not None else f"{bits}b"
    return f"{q}-{width}" + ("-pc" if options.get("per_channel") else "")


def train_steps(model: nn.Module, steps: int = 3) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(X).pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_eval_weights_are_scale_times_a_level(cfg):
    name, bits, levels, options = cfg
    model = quantize_model(make_net(), name, bits=bits, levels=levels, **options)
    train_steps(model)
    model.eval()
    layers = list(quantized_layers(model))
    assert len(layers) == 4
    for _, layer, q in layers:
        qw = quantized_weight(layer)
        w = layer.weight
        assert qw.codes.dtype == torch.int64 and qw.codes.shape == w.shape
        assert 0 <= int(qw.codes.min()) and int(qw.codes.max()) < q.levels.numel()
        assert torch.equal(w, qw.dequantize())
        num_levels = qw.levels.numel()
        assert qw.bits == max(1, (num_levels - 1).bit_length())
        if qw.scale.dim() == 0:
            assert torch.unique(w).numel() <= num_levels
        else:
            assert qw.scale.shape == (w.shape[0],) + (1,) * (w.dim() - 1)
            for row in w.flatten(1):
                assert torch.unique(row).numel() <= num_levels
        ratio = (w / qw.scale).unsqueeze(-1)
        assert (ratio - qw.levels).abs().min(dim=-1).values.max() < 1e-5


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    out_channels=st.integers(1, 6),
    spread=st.floats(1e-3, 1e2),
    cfg=st.sampled_from(CONFIGS),
)
def test_any_weights_give_at_most_as_many_values_as_levels(seed, out_channels, spread, cfg):
    name, bits, levels, options = cfg
    torch.manual_seed(seed)
    layer = nn.Linear(5, out_channels)
    with torch.no_grad():
        layer.weight.mul_(spread)
    layer = quantize_model(layer, name, bits=bits, levels=levels, **options).eval()
    qw = quantized_weight(layer)
    assert torch.equal(layer.weight, qw.dequantize())
    assert torch.isfinite(layer.weight).all()
    for row in layer.weight:
        assert torch.unique(row).numel() <= qw.levels.numel()


def test_quantize_model_swaps_plain_layers_and_keeps_float_weights():
    model = make_net()
    before = {n: p for n, p in model.named_parameters()}
    out = quantize_model(model, "sigmoid", bits=1)
    assert out is model
    assert isinstance(model.features[0], QuantConv2d) and isinstance(model.features[2], QuantConv2d)
    assert isinstance(model.head[1], QuantLinear) and isinstance(model.classifier, QuantLinear)
    for name, layer in [("features.0", model.features[0]), ("classifier", model.classifier)]:
        assert float_weight(layer) is before[f"{name}.weight"]  # the trained tensor itself
        assert layer.bias is before[f"{name}.bias"]
        assert isinstance(weight_quantizer(layer), SigmoidQuantizer)
    # the optimiser sees the float weights and the quantizer's scales
    names = {n for n, _ in model.named_parameters()}
    assert "classifier.parametrizations.weight.original" in names
    assert "classifier.parametrizations.weight.0.alpha" in names
    # `import spikequant; spikequant.quantize_model(...)` (loaded on first use) does the same
    other = top_level_quantize_model(make_net(), "sigmoid", bits=1)
    assert isinstance(other.classifier, QuantLinear)


def test_quantized_model_learns():
    model = quantize_model(make_net(), "sigmoid", bits=1)
    w0 = float_weight(model.classifier).detach().clone()
    alpha0 = weight_quantizer(model.classifier).alpha.detach().clone()
    train_steps(model)
    assert not torch.equal(float_weight(model.classifier), w0)
    assert not torch.equal(weight_quantizer(model.classifier).alpha, alpha0)


def test_hard_output_matches_a_float_layer_with_the_eval_weights():
    model = quantize_model(make_net(padding_mode="reflect"), "sigmoid", bits=2).eval()
    conv = model.features[0]
    reference = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")
    with torch.no_grad():
        reference.weight.copy_(conv.weight)
        reference.bias.copy_(conv.bias)
    torch.testing.assert_close(conv(X), reference(X))


def test_subclasses_keep_their_class():
    class MultiStepConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    model = nn.Sequential(MultiStepConv(2, 3, 3))
    quantize_model(model, "ste", bits=2)
    assert isinstance(model[0], MultiStepConv) and weight_quantizer(model[0]) is not None
    assert model(torch.randn(4, 2, 2, 5, 5)).shape == (4, 2, 3, 3, 3)


def test_a_bare_layer_is_quantized_in_place():
    layer = nn.Linear(4, 3)
    assert quantize_model(layer, "lsq", bits=3) is layer
    assert isinstance(weight_quantizer(layer), make_quantizer("lsq", 3).__class__)


def test_hooks_survive_the_swap():
    model = make_net()
    seen = []
    handle = model.classifier.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    quantize_model(model)
    model(X)
    assert seen == [torch.Size([3, 3])]
    handle.remove()  # the old handle still controls the hook
    model(X)
    assert len(seen) == 1


def test_layers_built_directly_take_an_injected_quantizer():
    q = make_quantizer("lsq", bits=2, per_channel=True)
    conv = QuantConv2d(2, 4, 3, weight_quantizer=q)
    assert conv.weight_quantizer is q and q.step_size.shape == (4,)
    assert conv(X).shape == (3, 4, 3, 3)
    lin = QuantLinear(5, 2)  # default: binary sigmoid
    assert isinstance(lin.weight_quantizer, SigmoidQuantizer) and lin.weight_quantizer.bits == 1
    lin.eval()
    assert torch.equal(lin.weight, lin.quantized_weight().dequantize())
    assert torch.unique(lin.weight).numel() == 2  # binary: both levels in use


@pytest.mark.parametrize(
    "exclude, float_layers",
    [
        (["features.0"], {"features.0"}),
        ("classifier", {"classifier"}),
        (["features.*"], {"features.0", "features.2"}),
        (["features"], {"features.0", "features.2"}),  # a container excludes its layers
        (["head.1", "classifier"], {"head.1", "classifier"}),
        (lambda name, m: isinstance(m, nn.Linear), {"head.1", "classifier"}),
    ],
)
def test_exclude(exclude, float_layers):
    model = quantize_model(make_net(), "sigmoid", bits=1, exclude=exclude)
    quantized = {n for n, _, _ in quantized_layers(model)}
    all_layers = {"features.0", "features.2", "head.1", "classifier"}
    assert quantized == all_layers - float_layers
    for name in float_layers:
        layer = model.get_submodule(name)
        assert type(layer) in (nn.Conv2d, nn.Linear) and weight_quantizer(layer) is None


def test_exclude_pattern_that_matches_nothing_is_an_error():
    with pytest.raises(ValueError, match="matches no Conv2d / Linear.*features.0, features.2"):
        quantize_model(make_net(), exclude=["fc1"])
    with pytest.raises(ValueError, match="module names or glob patterns"):
        quantize_model(make_net(), exclude=[3])


def test_quantizing_twice_is_refused_unless_the_quantized_layers_are_left_out():
    """A second call would leave the quantized layers with the first call's quantizer, not the
    one it asks for: refused, the model untouched; `exclude` quantizes the rest."""
    model = quantize_model(make_net(), "sigmoid", bits=1, exclude=["classifier"])
    first = weight_quantizer(model.features[0])
    w = float_weight(model.features[0])
    with pytest.raises(ModelError, match="'features.0', 'features.2', 'head.1' are quantized "
                                         "already \\(SigmoidQuantizer\\).*exclude"):
        quantize_model(model, "ste", bits=2)
    assert type(model.classifier) is nn.Linear
    quantize_model(model, "ste", bits=2, exclude=["features", "head"])
    assert weight_quantizer(model.features[0]) is first
    assert len(model.features[0].parametrizations.weight) == 1
    assert float_weight(model.features[0]) is w
    assert isinstance(weight_quantizer(model.classifier), make_quantizer("ste").__class__)


def test_none_leaves_the_model_alone():
    model = make_net()
    quantize_model(model, "none", bits=1)
    assert type(model.classifier) is nn.Linear and not list(quantized_layers(model))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"quantizer": "binary"}, "unknown quantizer 'binary'; choose one of none, sigmoid"),
        ({"quantizer": None}, "unknown quantizer None"),
        ({"bits": 0}, "bits must be an integer from 1 to 8"),
        ({"bits": 9}, "bits must be an integer from 1 to 8"),
        ({"bits": 1.5}, "bits must be an integer from 1 to 8"),
        ({"bits": True}, "bits must be an integer from 1 to 8"),
        ({"bits": None}, "give either bits"),
        ({"levels": [1, 0, -1]}, "sorted in increasing order"),
        ({"levels": [-1, 1, 1]}, "must not repeat"),
        ({"levels": [0.5]}, "at least two values"),
        ({"levels": [0, float("nan")]}, "finite"),
        ({"quantizer": "xnor", "bits": 2}, "only bits=1"),
        ({"quantizer": "dorefa", "levels": [-1, 0, 1]}, "not levels"),
        ({"quantizer": "dorefa", "bits": 0}, "1 to 8"),
        ({"temperature": -1.0}, "temperature must be a positive finite number"),
        ({"boundaries": "kmedians"}, "boundaries.*one of 'kmeans', 'midpoints'"),
        ({"per_chanel": True}, "no option.*per_chanel.*options are: temperature, boundaries"),
        ({"quantizer": "dorefa", "bits": 2, "per_channel": True}, "options are: none"),
    ],
)
def test_invalid_arguments_raise_before_touching_the_model(kwargs, message):
    model = make_net()
    with pytest.raises(ValueError, match=message):
        quantize_model(model, **kwargs)
    assert not list(quantized_layers(model)) and type(model.classifier) is nn.Linear


def test_none_is_the_float_quantizer():
    assert isinstance(make_quantizer("none"), IdentityQuantizer)


def test_float_layers_have_no_codes():
    with pytest.raises(ValueError, match="float weights"):
        quantized_weight(nn.Linear(2, 2))


def test_set_temperature_reaches_every_sigmoid_quantizer():
    model = quantize_model(make_net(), "sigmoid", bits=1, exclude=["classifier"])
    quantize_model(model, "ste", bits=1, exclude=["features", "head"])  # a baseline ignores T
    set_temperature(model, 123.0)
    temps = [float(q.temperature) for _, _, q in quantized_layers(model) if hasattr(q, "alpha")]
    assert temps == [123.0] * 3
    with pytest.raises(ValueError, match="positive finite"):
        set_temperature(model, -1.0)


# ---- saving and loading ------------------------------------------------------------------

SAVE_CONFIGS = [c for c in CONFIGS if c[1] in (1, 2) or c[2] is not None]


def _eval_out(model):
    model.eval()
    with torch.no_grad():
        return model(X)


@pytest.mark.parametrize("cfg", SAVE_CONFIGS, ids=config_id)
def test_state_dict_round_trip_into_a_fresh_model(cfg):
    name, bits, levels, options = cfg
    trained = quantize_model(make_net(0), name, bits=bits, levels=levels, **options)
    train_steps(trained)
    set_temperature(trained, 7.0)
    state = trained.state_dict()
    fresh = quantize_model(make_net(1), name, bits=bits, levels=levels, **options)
    fresh_state = fresh.state_dict()
    assert fresh_state.keys() == state.keys()
    for key, value in state.items():  # reset() re-creates scales with the saved shapes
        assert fresh_state[key].shape == value.shape, key
    fresh.load_state_dict(state)
    assert torch.equal(_eval_out(fresh), _eval_out(trained))


@pytest.mark.parametrize("name", ["sigmoid", "ste", "lsq"])
def test_a_quantizer_that_was_never_reset_loads_per_channel_scales(name):
    source = make_quantizer(name, bits=2, per_channel=True)
    source.reset(torch.randn(6, 4))
    target = make_quantizer(name, bits=2, per_channel=True)
    target.load_state_dict(source.state_dict())
    w = torch.randn(6, 4)
    assert torch.equal(target.eval()(w), source.eval()(w))


@pytest.mark.parametrize("cfg", SAVE_CONFIGS[::2], ids=config_id)
def test_deepcopy_and_whole_model_save(cfg, tmp_path):
    name, bits, levels, options = cfg
    model = quantize_model(make_net(padding_mode="reflect"), name, bits=bits, levels=levels,
                           **options)
    train_steps(model)
    expected = _eval_out(model)

    clone = copy.deepcopy(model)
    assert torch.equal(_eval_out(clone), expected)
    assert float_weight(clone.classifier) is not float_weight(model.classifier)
    train_steps(clone)  # the copy trains on its own
    assert torch.equal(_eval_out(model), expected)

    path = tmp_path / "model.pt"
    torch.save(model, path)
    loaded = torch.load(path, weights_only=False)
    assert torch.equal(_eval_out(loaded), expected)
    assert weight_quantizer(loaded.classifier) is not None
    assert [n for n, _, _ in quantized_layers(loaded)] == [n for n, _, _ in quantized_layers(model)]
    buffer = io.BytesIO()
    torch.save(loaded, buffer)  # a loaded model saves again
    buffer.seek(0)
    assert torch.equal(_eval_out(torch.load(buffer, weights_only=False)), expected)
    train_steps(loaded)


def test_whole_model_save_of_a_quantized_subclass_and_bare_layer(tmp_path):
    layer = quantize_model(nn.Linear(4, 3), "sigmoid", bits=1)
    torch.save(layer, tmp_path / "layer.pt")
    loaded = torch.load(tmp_path / "layer.pt", weights_only=False)
    x = torch.randn(2, 4)
    assert torch.equal(loaded.eval()(x), layer.eval()(x))
    assert isinstance(loaded, nn.Linear) and weight_quantizer(loaded) is not None


# ---- no host synchronisation in the hot path --------------------------------------------


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c[1] in (1, 2, 3)], ids=config_id)
def test_forward_and_backward_never_read_tensor_values_on_the_host(cfg):
    # Meta tensors have no values: any .item() / .tolist() / float(tensor) raises. A forward
    # and backward that run on them cannot stall a GPU with a device-to-host copy.
    # (ptq's eval searches its scale with host-side decisions, once per weight version.)
    name, bits, levels, options = cfg
    model = quantize_model(make_net(), name, bits=bits, levels=levels, **options).to("meta")
    x = torch.empty(3, 2, 5, 5, device="meta")
    model.train()
    model(x).sum().backward()
    assert float_weight(model.classifier).grad.device.type == "meta"
    if name != "ptq":
        model.eval()
        model(x)


def test_reset_without_a_weight_keeps_the_learned_state():
    model = quantize_model(make_net(), "sigmoid", bits=2, per_channel=True)
    train_steps(model)
    before = copy.deepcopy(model.state_dict())
    for _, _, q in quantized_layers(model):
        q.reset()  # what "reset every module" helpers such as SpikingJelly's reset_net call
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)

