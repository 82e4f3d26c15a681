"""The quantizer registry: what a class must declare to register, and that everything that
used to list quantizer names by hand now reads the declarations."""

from __future__ import annotations

import pytest
import torch

from spikequant.cli import main
from spikequant.errors import ConfigError
from spikequant.quant import (
    QUANTIZERS,
    QuantizedWeight,
    SigmoidQuantizer,
    WeightQuantizer,
    make_quantizer,
    quantizer_class,
    quantizer_names,
    quantizer_registered,
    register_quantizer,
)
from spikequant.train import TrainConfig
from spikequant.train.config import FLOAT_BITS, weight_bits


class _Sign(WeightQuantizer, register=False):
    name = "test_sign"

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.hard(weight)

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        return QuantizedWeight((weight >= 0).long(), self.levels, torch.ones(()))


def test_builtin_names_in_their_listed_order():
    assert QUANTIZERS.names() == quantizer_names() == (
        "none", "sigmoid", "ste", "xnor", "lsq", "dorefa", "ptq")
    assert [quantizer_class(n).name for n in QUANTIZERS] == list(QUANTIZERS)
    assert [n for n in QUANTIZERS if quantizer_class(n).is_float] == ["none"]


@pytest.mark.parametrize("name", [n for n in QUANTIZERS if n != "none"])
def test_each_builds_at_exactly_the_bit_widths_it_declares(name):
    cls = quantizer_class(name)
    for bits in range(1, 9):
        if bits in cls.bit_widths:
            assert make_quantizer(name, bits=bits).bits == bits
        else:
            with pytest.raises(ValueError, match=f"{name} allows only bits="):
                make_quantizer(name, bits=bits)
    if cls.takes_levels:
        assert make_quantizer(name, levels=[-1.0, 1.0]).levels.tolist() == [-1.0, 1.0]
    else:
        with pytest.raises(ValueError, match="not levels"):
            make_quantizer(name, levels=[-1.0, 1.0])


def test_registering_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match="'sigmoid' .* already taken by .*SigmoidQuantizer"):
        class Again(_Sign):
            name = "sigmoid"
    with pytest.raises(ValueError, match="must implement quantize"):
        class NoCodes(WeightQuantizer):
            name = "test_no_codes"

            def forward(self, weight):
                return weight
    with pytest.raises(ValueError, match="lower-case letters"):
        class Spaced(_Sign):
            name = "two words"
    with pytest.raises(ValueError, match="bit_widths must be a tuple of bit widths from 1 to 8"):
        class TooWide(_Sign):
            name = "test_too_wide"
            bit_widths = (1, 16)
    assert not any(n.startswith("test_") or " " in n for n in quantizer_names())


def test_classes_without_a_name_of_their_own_do_not_register():
    before = quantizer_names()

    class Intermediate(WeightQuantizer):  # abstract, nameless: a base for others
        pass

    class SlowerSigmoid(SigmoidQuantizer):  # a variant keeping its parent's name
        pass

    assert quantizer_names() == before and quantizer_class("sigmoid") is SigmoidQuantizer


def test_registered_for_a_block_then_gone_even_after_an_error():
    with pytest.raises(RuntimeError):
        with quantizer_registered(_Sign):
            assert isinstance(make_quantizer("test_sign", bits=1), _Sign)
            raise RuntimeError
    assert "test_sign" not in quantizer_names()
    with quantizer_registered(_Sign):
        assert register_quantizer(_Sign) is _Sign  # registering the same class again is fine


def test_help_lists_every_registered_quantizer_with_its_summary(capsys):
    with quantizer_registered(_Sign), pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("weight quantizer: none (float), sigmoid (the study's differentiable function), "
            "ste (sign/round + straight-through, BinaryConnect), xnor (sign x mean|w|), "
            "lsq (learned step size), dorefa, ptq (round a float model after training), "
            "test_sign") in text.replace("- ", "-")


@pytest.mark.parametrize("settings, message", [
    ({"quantizer": "xnor", "bits": 2},
     "--bits / bits in the config file: xnor allows only bits=1, got bits=2"),
    ({"quantizer": "dorefa", "levels": [-1.0, 0.0, 1.0]},
     "--levels / levels in the config file: dorefa uses its own levels"),
    ({"quantizer": "sigmoid", "bits": 9},
     "--bits / bits in the config file: bits must be an integer from 1 to 8"),
])
def test_settings_are_checked_against_the_quantizer(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings).validate()
    TrainConfig(quantizer="none", bits=9).validate()  # float: bits do not matter


def test_float_bits_come_from_the_declaration():
    assert weight_bits("none", 1, None) == FLOAT_BITS
    assert weight_bits("sigmoid", 2, None) == 2
    assert weight_bits("sigmoid", 1, [-2.0, -1.0, 0.0, 1.0, 2.0]) == 3

    class Floaty(_Sign, register=False):
        name = "test_floaty"
        is_float = True

    with quantizer_registered(Floaty):
        assert weight_bits("test_floaty", 1, None) == FLOAT_BITS
