"""Fixed-point neuron state: the membrane potential, threshold, leak and input of a LIF / PLIF
neuron as integers, the way neuromorphic hardware keeps them.

The format, for K state bits (4..24):

    membrane   v = V * step with V a signed K-bit integer, saturating at
               [-2^(K-1), 2^(K-1) - 1]; step = threshold / 2^(K-3), so the threshold is the
               integer THETA = 2^(K-3) and the membrane spans [-4, 4) thresholds
    leak       k = 1/tau as the unsigned fraction L / 2^K, L = round(k * 2^K)
    reset      the reset potential R = round(v_reset / step) (0 in the study's networks)
    input      D[t] = round(L / 2^K * x[t] / step) with decay_input, round(x[t] / step) without
    one step   H = V - round(L * (V - R) / 2^K) + D[t];  H = clamp(H, -2^(K-1), 2^(K-1) - 1)
               spike = H >= THETA;  V = R where it spiked (hard reset; H - THETA for a soft
               reset), else H;  V starts at R
    rounding   round(y) = floor(y + 1/2) everywhere (half up), so that an arithmetic shift
               does it: round(P / 2^s) = (P + 2^(s-1)) >> s

`StateGrid` holds the pieces the fused neuron (`functional.lif_multistep(state_grid=...)`) uses
to put a float membrane on that grid in the forward pass while its backward stays the float
one (straight-through). `IntegerNeuron` runs the same update on integer tensors; with the
input given as a per-channel fixed-point product, `fixed_point_drive`, it is what the
integer-only network executes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MIN_STATE_BITS, MAX_STATE_BITS = 4, 24
# The membrane spans +-2^HEADROOM_BITS thresholds: the threshold sits HEADROOM_BITS + 1 bits
# below the sign bit.
HEADROOM_BITS = 2


def check_state_bits(bits: int | None) -> int | None:
    """`bits` if it is None (float state) or an integer in [MIN_STATE_BITS, MAX_STATE_BITS]."""
    if bits is None:
        return None
    if isinstance(bits, bool) or not isinstance(bits, int) or not (
        MIN_STATE_BITS <= bits <= MAX_STATE_BITS
    ):
        raise ValueError(
            f"state bits must be an integer from {MIN_STATE_BITS} to {MAX_STATE_BITS} "
            f"(e.g. 8, 12 or 16), or None for float neuron state; got {bits!r}"
        )
    return bits


def round_half_up(t: torch.Tensor) -> torch.Tensor:
    """floor(t + 1/2), the rounding rule of the fixed-point format."""
    return torch.floor(t + 0.5)


def round_shift(p: torch.Tensor, shift: int) -> torch.Tensor:
    """round(p / 2^shift) of an integer tensor, half up: (p + 2^(shift-1)) >> shift."""
    if shift == 0:
        return p
    return (p + (1 << (shift - 1))) >> shift


def quantize_fraction(k: float, bits: int) -> int:
    """round(k * 2^bits), clamped to [0, 2^bits]: a fraction in [0, 1] as an integer."""
    return min(max(math.floor(k * (1 << bits) + 0.5), 0), 1 << bits)


class _SignedState:
    """The saturation range of a `bits`-bit signed membrane."""

    bits: int

    @property
    def v_min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def v_max(self) -> int:
        return (1 << (self.bits - 1)) - 1


@dataclass(frozen=True)
class StateGrid(_SignedState):
    """The fixed-point grid of one neuron layer's membrane (see the module docstring)."""

    bits: int
    threshold: float

    @property
    def step(self) -> float:
        return self.threshold / (1 << (self.bits - HEADROOM_BITS - 1))

    @property
    def threshold_int(self) -> int:
        return 1 << (self.bits - HEADROOM_BITS - 1)

    def to_int(self, v: float) -> int:
        """A potential (e.g. the reset potential) as the nearest grid integer."""
        return math.floor(v / self.step + 0.5)

    def quantize_decay(self, k: float | torch.Tensor) -> float | torch.Tensor:
        """k rounded to a K-bit fraction; a tensor keeps k's gradient (straight-through)."""
        scale = float(1 << self.bits)
        if not isinstance(k, torch.Tensor):
            return quantize_fraction(k, self.bits) / scale
        k_hat = round_half_up(k.detach() * scale).clamp_(0, scale) / scale
        return k + (k_hat - k).detach()

    # Used inside the fused neuron's forward pass, on float tensors whose values lie on the
    # grid (v = V * step exactly: step is a power of two times the threshold).
    def drive(self, x_seq: torch.Tensor, k, decay_input: bool) -> torch.Tensor:
        """step * D[t] for every step, a fresh tensor (it becomes the charged potentials)."""
        gain = k / self.step if decay_input else 1.0 / self.step
        return round_half_up(x_seq * gain).mul_(self.step)

    def leak(self, v: torch.Tensor, k, rest: float) -> torch.Tensor:
        """step * round(L * (V - R) / 2^K)."""
        return round_half_up((v - rest) * (k / self.step)).mul_(self.step)

    def clamp_(self, h: torch.Tensor) -> torch.Tensor:
        return h.clamp_(self.v_min * self.step, self.v_max * self.step)


@dataclass(frozen=True)
class IntegerNeuron(_SignedState):
    """One neuron layer's integer update (the module docstring's `one step`)."""

    bits: int
    leak: int  # L: k = L / 2^bits
    threshold: int
    rest: int  # R, the resting and (hard reset) reset potential
    hard_reset: bool = True

    def run(self, drive: torch.Tensor) -> torch.Tensor:
        """Spikes (bool [T, ...]) for integer input drive D ([T, ...], int64, clamped in place
        to where it saturates the membrane), from rest."""
        # V - leak lies within +-2^(K+1), so an input beyond +-2^(K+2) saturates H either way:
        # clamping it there changes nothing and lets K <= 15 run in int32.
        reach = 1 << (self.bits + 2)
        dtype = torch.int32 if self.bits <= 15 else torch.int64
        drive = drive.clamp_(-reach, reach).to(dtype)
        spikes = torch.empty(drive.shape, dtype=torch.bool, device=drive.device)
        v = torch.full_like(drive[0], self.rest)
        for t in range(drive.shape[0]):
            h = v - round_shift(self.leak * (v - self.rest), self.bits) + drive[t]
            h.clamp_(self.v_min, self.v_max)
            fired = h >= self.threshold
            spikes[t] = fired
            if self.hard_reset:
                v = h.masked_fill_(fired, self.rest)
            else:
                v = h.sub_(fired.to(h.dtype) * self.threshold)
        return spikes


def fixed_point_drive(
    acc: torch.Tensor, mult: torch.Tensor, offset: torch.Tensor, shift: int
) -> torch.Tensor:
    """D = round((mult * acc + offset) / 2^shift) per output channel (dim 1 of `acc`), all
    int64: the input current in membrane steps, from an integer accumulator (overwritten)."""
    view = (1, -1) + (1,) * (acc.dim() - 2)
    half = (1 << shift) >> 1
    acc.mul_(mult.view(view)).add_(offset.view(view) + half)
    return acc.bitwise_right_shift_(shift)
