"""Level sets: binary, k-bit symmetric integers, powers of two, user lists, and their errors."""

import math

import numpy as np
import pytest
import torch

from spikequant.quant import bits_for_levels, power_of_two_levels, resolve_levels
from spikequant.quant.levels import nearest_level_index, symmetric_levels


def test_binary_is_minus_one_one():
    assert resolve_levels(1).tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("bits", range(2, 9))
def test_k_bits_give_2k_minus_1_symmetric_integers(bits):
    lv = resolve_levels(bits)
    qmax = 2 ** (bits - 1) - 1
    assert lv.numel() == 2**bits - 1
    assert lv.tolist() == [float(i) for i in range(-qmax, qmax + 1)]
    assert bits_for_levels(lv.numel()) == bits


def test_two_bits_is_ternary():
    assert resolve_levels(2).tolist() == [-1.0, 0.0, 1.0]


def test_numpy_integer_bits_are_accepted():
    assert symmetric_levels(np.int64(3)).numel() == 7


def test_power_of_two_levels():
    assert power_of_two_levels(2).tolist() == [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]
    assert power_of_two_levels(0).tolist() == [-1.0, 0.0, 1.0]


def test_custom_levels_pass_through():
    lv = resolve_levels(bits=None, levels=[-4, -2, -1, 0, 1, 2, 4])
    assert lv.dtype == torch.float32
    assert lv.tolist() == [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]
    assert bits_for_levels(7) == 3
    # levels take precedence over bits
    assert resolve_levels(bits=4, levels=[0.0, 1.0]).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("bits", [0, 9, -1, 1.5, 2.0, True, False, "2", None])
def test_invalid_bits_say_what_is_allowed(bits):
    with pytest.raises(ValueError, match=r"1 to 8|bits \(1\.\.8\)"):
        resolve_levels(bits)


@pytest.mark.parametrize(
    "levels, message",
    [
        ([1.0, -1.0], "sorted in increasing order"),
        ([-1.0, 0.0, 0.5, 0.2], "sorted in increasing order"),
        ([-1.0, 0.0, 0.0, 1.0], "must not repeat"),
        ([1.0], "at least two values"),
        ([], "at least two values"),
        ([-1.0, float("nan")], "finite"),
        ([-float("inf"), 1.0], "finite"),
        (["a", "b"], "list of numbers"),
        (list(range(257)), "at most 256 levels"),
    ],
)
def test_invalid_levels_raise_clear_errors(levels, message):
    with pytest.raises(ValueError, match=message):
        resolve_levels(levels=levels)


def test_unsorted_levels_suggest_the_sorted_list():
    with pytest.raises(ValueError, match=r"use \[-1.0, 0.0, 1.0\]"):
        resolve_levels(levels=[0, 1, -1])


@pytest.mark.parametrize("e", [-1, 7, 1.5])
def test_invalid_power_of_two_exponent(e):
    with pytest.raises(ValueError, match="max_exponent must be an integer from 0 to 6"):
        power_of_two_levels(e)


def test_nearest_level_ties_go_up():
    lv = torch.tensor([-1.0, 0.0, 1.0])
    v = torch.tensor([-0.5, 0.5, -0.51, 0.49, 3.0, -3.0])
    assert nearest_level_index(v, lv).tolist() == [1, 2, 0, 1, 2, 0]
    # binary: 0 goes to +1, as sign with ties up
    assert nearest_level_index(torch.tensor([0.0]), torch.tensor([-1.0, 1.0])).item() == 1


def test_bits_for_levels():
    assert [bits_for_levels(n) for n in (2, 3, 4, 5, 255, 256)] == [1, 2, 2, 3, 8, 8]
    assert bits_for_levels(7) == math.ceil(math.log2(7))
