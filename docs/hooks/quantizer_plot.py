"""The figure of the method page: Q(w) of spikequant's own SigmoidQuantizer at several
temperatures, and the two backward passes it offers, drawn at every docs build."""

from __future__ import annotations

import io

TEMPERATURES = (1.0, 4.0, 16.0, 64.0)
GRADIENT_TEMPERATURE = 16.0


def _ternary_quantizer(gradient: str = "reference"):
    import torch

    from spikequant.quant import SigmoidQuantizer, symmetric_levels

    quantizer = SigmoidQuantizer(symmetric_levels(2), boundaries="midpoints", gradient=gradient)
    with torch.no_grad():  # alpha = beta = 1: the plot shows the function of beta * w
        quantizer.alpha.fill_(1.0)
        quantizer.beta.fill_(1.0)
    return quantizer


def quantizer_figure_png() -> bytes:
    """A PNG: left, Q(w) for ternary levels {-1, 0, 1} at each temperature and in eval mode;
    right, dQ/dw at one temperature with the exact and the reference gradient."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    w = torch.linspace(-2.0, 2.0, 801)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    quantizer = _ternary_quantizer().train()
    with torch.no_grad():
        for t in TEMPERATURES:
            quantizer.set_temperature(t)
            left.plot(w, quantizer(w), label=f"T = {t:g}")
        left.plot(w, quantizer.eval()(w), "k--", linewidth=1, label="eval (unit steps)")
    left.set(title="Q(w), ternary levels {-1, 0, 1}", xlabel="beta * w", ylabel="Q(w) / alpha")
    left.legend(fontsize=8)
    for gradient in ("exact", "reference"):
        q = _ternary_quantizer(gradient).train()
        q.set_temperature(GRADIENT_TEMPERATURE)
        x = w.clone().requires_grad_(True)
        q(x).sum().backward()
        right.plot(w, x.grad, label=f'gradient="{gradient}"')
    right.set(title=f"dQ/dw at T = {GRADIENT_TEMPERATURE:g}", xlabel="beta * w",
              ylabel="dQ/dw", yscale="log", ylim=(1e-3, 1e1))
    right.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
