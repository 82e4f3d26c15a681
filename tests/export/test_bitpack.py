"""Bit packing of weight codes: exact round trip at every width, exact size, layout."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikequant.export.bitpack import pack_bits, packed_size, unpack_bits


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(1, 8), count=st.integers(0, 300), seed=st.integers(0, 2**31))
def test_round_trip_any_width_and_size(bits, count, seed):
    codes = np.random.default_rng(seed).integers(0, 1 << bits, size=count)
    packed = pack_bits(codes, bits)
    assert packed.dtype == np.uint8
    assert packed.size == packed_size(count, bits) == -(-count * bits // 8)
    assert np.array_equal(unpack_bits(packed, bits, count), codes)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_round_trip_across_chunks(bits, monkeypatch):
    import spikequant.export.bitpack as bp

    monkeypatch.setattr(bp, "CHUNK", 16)  # many chunks, the last one partial
    codes = np.random.default_rng(bits).integers(0, 1 << bits, size=16 * 5 + 3)
    assert np.array_equal(unpack_bits(pack_bits(codes, bits), bits, codes.size), codes)


def test_layout_is_little_endian_within_bytes():
    assert pack_bits(np.array([1, 0, 0, 0, 0, 0, 0, 1]), 1).tolist() == [0b10000001]
    assert pack_bits(np.array([1, 2, 3]), 2).tolist() == [0b00111001]
    assert pack_bits(np.array([5, 3]), 3).tolist() == [0b00011101]


def test_torch_input_and_one_bit_density():
    codes = torch.randint(0, 2, (64, 3, 3, 3))
    packed = pack_bits(codes, 1)
    assert packed.size == codes.numel() // 8
    assert np.array_equal(unpack_bits(torch.from_numpy(packed), 1, codes.numel()),
                          codes.flatten().numpy())


def test_rejects_codes_out_of_range_and_bad_bits():
    with pytest.raises(ValueError, match="codes must lie in"):
        pack_bits(np.array([0, 4]), 2)
    with pytest.raises(ValueError, match="codes must lie in"):
        pack_bits(np.array([-1]), 2)
    for bits in (0, 9, 1.5, True):
        with pytest.raises(ValueError, match="bits must be"):
            pack_bits(np.array([0]), bits)


def test_unpack_detects_short_data():
    packed = pack_bits(np.ones(20, dtype=int), 3)
    with pytest.raises(ValueError, match="truncated"):
        unpack_bits(packed[:-1], 3, 20)
