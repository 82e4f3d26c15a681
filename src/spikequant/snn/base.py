"""The generic multi-step spiking neuron, and the registry of neurons by name.

A neuron is a subclass of `SpikingNeuron` that says how one time step charges its membrane;
the base class runs every step of a [T, B, ...] input under plain autograd:

    charge   h[t] = self.charge(x[t], state)              any dynamics, any extra state
    fire     s[t] = surrogate(h[t] - theta),  theta = self.firing_threshold(state)
    reset    v[t] = h[t] - theta * s[t]                   (soft reset, v_reset=None)
             v[t] = v_reset * s[t] + (1 - s[t]) * h[t]    (hard reset)

`state` is a dict of [B, ...] tensors: "v" (the membrane after the previous step's reset),
"spike" (the previous step's spikes) and whatever `initial_state` adds; `charge` may update
the extra entries. With `detach_reset` the spike is a constant in the reset's backward.

A subclass registers itself under the name given as a class keyword
(`class ALIF(SpikingNeuron, name="alif")`); `make_neuron(name, ...)` builds one and `NEURONS`
lists them, so a network's `neuron` option accepts it. LIF and PLIF (spikequant.snn.neuron)
override `forward` with their fused kernel; their generic path is what the tests check it
against.
"""

from __future__ import annotations

from typing import Any

import torch

from ..options import Option, check_options, constructor_options
from ..registry import Registry
from .fixed_point import check_state_bits
from .functional import check_sequence
from .layer import MultiStepModule
from .surrogate import Surrogate, as_surrogate

State = dict[str, torch.Tensor]

# name -> neuron class, in registration order
NEURONS: Registry[type[SpikingNeuron]] = Registry(
    "neuron",
    "register one: a subclass of spikequant.snn.SpikingNeuron with a name=... class keyword, "
    "imported with --plugin MODULE or installed as a spikequant.plugins entry point",
)


class SpikingNeuron(MultiStepModule):
    """A multi-step neuron: [T, B, ...] input current -> [T, B, ...] spikes, from rest at
    every call (nothing leaks from one batch to the next).

    Subclasses implement `charge` and may override `initial_state` (extra state),
    `firing_threshold` (e.g. an adaptive one), `fire` and `reset`.

    Args:
        threshold: firing threshold.
        v_reset: potential after a spike (hard reset); None subtracts the threshold instead
            (soft reset).
        detach_reset: treat the spike as a constant in the reset during backward.
        surrogate: a registered surrogate's name ('atan' default, see
            spikequant.snn.surrogate.SURROGATES) or a Surrogate with its own alpha.
        store_v_seq: keep the membrane potential after every step in `self.v_seq`
            (for monitoring; [T, ...], after reset).
    """

    neuron_name: str | None = None  # the registered name; None for abstract bases
    # the constructor parameter `make` fills with the network's time constant
    tau_option: str | None = "tau"

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.neuron_name = name
        if name is not None:
            NEURONS.register(name, cls, builtin=cls.__module__.startswith("spikequant."))

    def __init__(
        self,
        threshold: float = 1.0,
        v_reset: float | None = 0.0,
        detach_reset: bool = False,
        surrogate: str | Surrogate | None = "atan",
        store_v_seq: bool = False,
    ) -> None:
        super().__init__()
        self.threshold = float(threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.detach_reset = detach_reset
        self.surrogate = as_surrogate(surrogate)
        self.store_v_seq = store_v_seq
        self.v_seq: torch.Tensor | None = None
        self.state_bits: int | None = None

    @classmethod
    def declared_options(cls) -> dict[str, Option]:
        """The options a network's `neuron_options` (and `--neuron-option KEY=VALUE`) may set:
        the constructor's keyword parameters (types from their annotations, help from the
        class docstrings' `Args:`), except the time constant, which is the network's `tau`."""
        return constructor_options(cls, exclude=(cls.tau_option,) if cls.tau_option else ())

    @classmethod
    def make(cls, tau: float, **options: Any) -> SpikingNeuron:
        """The neuron `make_neuron(name, tau, **options)` returns: `tau` is the network's time
        constant option (the fixed or initial one; a neuron without one ignores it), every
        other option is checked against `declared_options()` (OptionError otherwise)."""
        check_options(f"neuron {cls.neuron_name or cls.__name__!r}", cls.declared_options(),
                      options)
        if cls.tau_option is None:
            return cls(**options)
        return cls(**{cls.tau_option: tau}, **options)

    @property
    def rest(self) -> float:
        """The resting potential: v_reset, or 0 with a soft reset."""
        return 0.0 if self.v_reset is None else self.v_reset

    # ------------------------------------------------------------------ one time step

    def initial_state(self, x: torch.Tensor) -> State:
        """The state at rest for one time step's input `x` [B, ...]."""
        return {"v": torch.full_like(x, self.rest), "spike": torch.zeros_like(x)}

    def charge(self, x: torch.Tensor, state: State) -> torch.Tensor:
        """h[t], the membrane potential after input current `x` = x[t], from `state` (after
        step t-1); may update the state's extra entries (not "v" or "spike")."""
        raise NotImplementedError(f"{type(self).__name__} must define charge(x, state)")

    def firing_threshold(self, state: State) -> float | torch.Tensor:
        return self.threshold

    def fire(self, h: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
        return self.surrogate(h - threshold)

    def reset(self, h: torch.Tensor, spike: torch.Tensor, threshold: float | torch.Tensor
              ) -> torch.Tensor:
        if self.detach_reset:
            spike = spike.detach()
        if self.v_reset is None:
            return h - spike * threshold
        return spike * self.v_reset + (1 - spike) * h

    # ------------------------------------------------------------------ the time loop

    def run_steps(self, x_seq: torch.Tensor, state: State | None = None
                  ) -> tuple[torch.Tensor, State]:
        """(spikes [T, B, ...], state after the last step) for input current [T, B, ...],
        starting from `state` (entries not given start at rest), one autograd node per op.
        Pass the returned state back to continue a sequence in chunks."""
        check_sequence(x_seq, None if state is None else state.get("v"))
        state = {**self.initial_state(x_seq[0]), **(state or {})}
        spikes, potentials = [], []
        for x in x_seq:
            h = self.charge(x, state)
            threshold = self.firing_threshold(state)
            spike = self.fire(h, threshold)
            state["v"] = self.reset(h, spike, threshold)
            state["spike"] = spike
            spikes.append(spike)
            if self.store_v_seq:
                potentials.append(state["v"])
        if self.store_v_seq:
            self.v_seq = torch.stack(potentials)
        return torch.stack(spikes), state

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Spikes [T, B, ...] for input current [T, B, ...], starting from rest."""
        return self.run_steps(x_seq)[0]

    def set_state_bits(self, bits: int | None) -> None:
        """Fixed-point neuron state: only neurons that implement it (LIF, PLIF) accept bits."""
        if check_state_bits(bits) is not None:
            raise ValueError(
                f"neuron {self.neuron_name or type(self).__name__!r} keeps float state; "
                f"fixed-point state (state_bits) is implemented for the LIF family "
                f"({', '.join(n for n, c in NEURONS.items() if _has_fixed_point(c))})"
            )
        self.state_bits = None

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"hard to {self.v_reset:g}"
        return (f"threshold={self.threshold:g}, reset={reset}, "
                f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r}")


def _has_fixed_point(cls: type[SpikingNeuron]) -> bool:
    return cls.set_state_bits is not SpikingNeuron.set_state_bits


def make_neuron(kind: str, tau: float = 2.0, **options: Any) -> SpikingNeuron:
    """A registered neuron by name; `tau` is its fixed (LIF) or initial (PLIF) time
    constant, `options` the base options (threshold, v_reset, detach_reset, surrogate...).

    Args:
        kind: a registered neuron's name ("lif", "plif", or one a plugin registers; see
            `NEURONS`); case, '-' and '_' are ignored.
        tau: the time constant in time steps, given to the neuron's `tau_option` parameter
            (LIF's `tau`, PLIF's `init_tau`; both need tau > 1); a neuron without one
            ignores it. Default 2.0.
        **options: the neuron's other constructor options (`declared_options()`).

    Raises:
        ValueError: (UnknownComponent) an unknown `kind`; (OptionError) an option the
            neuron does not take, or a value of the wrong type.
    """
    return NEURONS.get(kind).make(tau, **options)


def unregister_neuron(name: str) -> None:
    """Remove a neuron registered outside spikequant (the built-in ones stay).

    Args:
        name: the neuron's registered name (case, '-' and '_' ignored); a name that is not
            registered is ignored.

    Raises:
        ValueError: `name` is a built-in neuron ("lif", "plif").
    """
    NEURONS.unregister(name)

