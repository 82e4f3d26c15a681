"""Multi-step leaky integrate-and-fire neurons: LIF (fixed time constant) and PLIF (learnable
time constant, Fang et al. 2021, "Incorporating Learnable Membrane Time Constant to Enhance
Learning of Spiking Neural Networks").

Both are `SpikingNeuron`s (spikequant.snn.base) registered as "lif" and "plif": their `charge`
is the step below, and `forward` runs all T steps as one fused kernel with a hand-written
backward (spikequant.snn.functional; Triton on CUDA), which the tests check against the generic
autograd path (`run_steps`).

Neurons take [T, B, ...] tensors and keep no state between calls: every forward starts from the
resting potential, so nothing leaks from one batch to the next. To carry the membrane potential
across calls (streaming), use `forward_with_state(x_seq, v)` and pass the returned potential to
the next call yourself.

`set_state_bits(K)` keeps the membrane potential, threshold, leak and reset potential on a K-bit
fixed-point grid in the forward pass (spikequant.snn.fixed_point states the format), with the
float gradient in the backward pass (straight-through).

PLIF's decay is k = 1/tau = sigmoid(w) with w learned, initialised at w = -log(tau0 - 1) so
that k starts at 1/tau0; the sigmoid keeps tau > 1 for any w.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import SpikingNeuron, State
from .fixed_point import StateGrid, check_state_bits
from .functional import lif_multistep
from .surrogate import Surrogate


class BaseLIF(SpikingNeuron):
    """Shared options of LIF and PLIF: those of SpikingNeuron (threshold, v_reset,
    detach_reset, surrogate, store_v_seq) and

        decay_input: the input is scaled by 1/tau as well (h = v + (x - (v - v_reset)) / tau);
            False adds it undecayed (h = v - (v - v_reset) / tau + x).
    """

    def __init__(
        self,
        threshold: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = False,
        surrogate: str | Surrogate | None = "atan",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__(threshold, v_reset, detach_reset, surrogate, store_v_seq)
        self.decay_input = decay_input

    def set_state_bits(self, bits: int | None) -> None:
        """Keep the neuron state in `bits`-bit fixed point (None: float state)."""
        self.state_bits = check_state_bits(bits)

    def state_grid(self) -> StateGrid | None:
        """The fixed-point grid of the membrane, or None for float state."""
        bits = getattr(self, "state_bits", None)  # modules pickled before state bits existed
        return None if bits is None else StateGrid(bits, self.threshold)

    def decay(self) -> float | torch.Tensor:
        """k = 1/tau."""
        raise NotImplementedError

    def charge(self, x: torch.Tensor, state: State) -> torch.Tensor:
        v, k, rest = state["v"], self.decay(), self.rest
        if self.decay_input:
            return v + (x - (v - rest)) * k
        return v - (v - rest) * k + x

    def run_steps(self, x_seq: torch.Tensor, state: State | None = None
                  ) -> tuple[torch.Tensor, State]:
        if self.state_grid() is not None:
            raise ValueError(
                "run_steps is the float-state reference path; a neuron with state_bits runs "
                "its fixed-point state through forward / forward_with_state"
            )
        return super().run_steps(x_seq, state)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Spikes [T, B, ...] for input current [T, B, ...], starting from rest."""
        return self.forward_with_state(x_seq)[0]

    def forward_with_state(
        self, x_seq: torch.Tensor, v: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(spikes [T, B, ...], potential after the last step [B, ...]) starting from `v`
        (rest when None)."""
        grid = self.state_grid()
        decay, v_reset = self.decay(), self.v_reset
        if grid is not None:
            if x_seq.dtype in (torch.float16, torch.bfloat16):  # too coarse for a fine grid
                x_seq = x_seq.float()
            decay = grid.quantize_decay(decay)
            v_reset = None if v_reset is None else grid.to_int(v_reset) * grid.step
            v = None if v is None else _snap(v, grid)
        spikes, v_out = lif_multistep(
            x_seq,
            v,
            decay,
            self.threshold,
            v_reset,
            self.decay_input,
            self.detach_reset,
            self.surrogate.kind,
            self.surrogate.alpha,
            self.store_v_seq,
            grid,
        )
        if self.store_v_seq:
            self.v_seq = v_out
            v_out = v_out[-1]
        return spikes, v_out

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"hard to {self.v_reset:g}"
        state = getattr(self, "state_bits", None)
        return (
            f"threshold={self.threshold:g}, reset={reset}, decay_input={self.decay_input}, "
            f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r}"
            + ("" if state is None else f", state_bits={state}")
        )


def _snap(v: torch.Tensor, grid: StateGrid) -> torch.Tensor:
    """A given membrane potential on the grid (straight-through)."""
    on_grid = torch.floor(v.detach() / grid.step + 0.5).clamp_(grid.v_min, grid.v_max)
    return v + (on_grid * grid.step - v).detach()


class LIF(BaseLIF, name="lif"):
    """Leaky integrate-and-fire neuron with a fixed time constant `tau` (> 1)."""

    def __init__(self, tau: float = 2.0, **options) -> None:
        super().__init__(**options)
        if not tau > 1.0:
            raise ValueError(f"LIF tau must be > 1 (decay 1/tau < 1), got {tau}")
        self.tau = float(tau)

    def decay(self) -> float:
        return 1.0 / self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, {super().extra_repr()}"


class PLIF(BaseLIF, name="plif"):
    """Parametric LIF: 1/tau = sigmoid(w) with w learned (one per layer), tau starts at
    `init_tau` (> 1)."""

    tau_option = "init_tau"

    def __init__(self, init_tau: float = 2.0, **options) -> None:
        super().__init__(**options)
        if not init_tau > 1.0:
            raise ValueError(f"PLIF init_tau must be > 1, got {init_tau}")
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def decay(self) -> torch.Tensor:
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> float:
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def extra_repr(self) -> str:
        tau = "?" if self.w.is_meta else f"{self.tau:.4g}"
        return f"tau={tau}, {super().extra_repr()}"

