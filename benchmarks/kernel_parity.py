"""The Triton kernels against the torch implementation at given shapes: largest differences
and forward + backward time of each (run by `gpu_check.py` in its own process).

    python benchmarks/kernel_parity.py --device cuda      # the study's shapes
    TRITON_INTERPRET=1 python benchmarks/kernel_parity.py --device cpu --tiny

Prints one `@@parity {json}` line per case: torch_ms, triton_ms, the fraction of spikes that
differ, and for every other output the largest difference relative to its largest value; then
one `@@selfcheck {json}` line per first-use self-check the kernels ran (spikequant.kernel_check;
on CUDA the neuron also runs once in bfloat16 for it), which says whether each passed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

TINY = {"neuron_shapes": [(3, 2, 4, 6, 6)],
        "quant_cases": [((8, 300), 1, False), ((4, 3, 3, 3), 3, True)], "repeats": 1}
# first neuron layers of Gesture / CIFAR10-DVS and of N-MNIST; N-MNIST's FC weight and a
# 3-bit per-channel convolution
STUDY = {"neuron_shapes": [(20, 16, 128, 128, 128), (10, 16, 128, 34, 34)],
         "quant_cases": [((2048, 8192), 1, False), ((128, 128, 3, 3), 3, True)], "repeats": 10}


def compare_all(device_name: str, sizes: dict[str, Any]) -> int:
    import torch

    from spikequant._kernels import use_kernels
    from spikequant.quant import SigmoidQuantizer, symmetric_levels
    from spikequant.snn import PLIF

    device = torch.device(device_name)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn, repeats: int) -> tuple[Any, float]:
        result = fn()  # compiles / warms up
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - start) * 1e3)
        return result, sorted(times)[len(times) // 2]

    def compare(name: str, make_case, repeats: int) -> None:
        rows: dict[str, Any] = {}
        for mode in ("torch", "triton"):
            def once(mode=mode):
                with use_kernels(mode):
                    return make_case()
            rows[mode] = timed(once, repeats)
        (ref, ms_ref), (tri, ms_tri) = rows["torch"], rows["triton"]
        report = {"case": name, "torch_ms": ms_ref, "triton_ms": ms_tri}
        for key in ref:
            a, b = ref[key].float(), tri[key].float()
            if key == "spikes":
                report["spike_mismatch"] = float((a != b).float().mean())
            else:
                scale = float(a.abs().max()) or 1.0
                report[f"{key}_max_rel_diff"] = float((a - b).abs().max()) / scale
        print("@@parity " + json.dumps(report), flush=True)

    gen = torch.Generator().manual_seed(0)
    for shape in sizes["neuron_shapes"]:
        x = (torch.randn(*shape, generator=gen) * 1.5 + 0.3).to(device)
        neuron = PLIF(init_tau=2.0, detach_reset=True).to(device)

        def neuron_case(x=x, neuron=neuron):
            xi = x.clone().requires_grad_()
            neuron.w.grad = None
            spikes = neuron(xi)
            (spikes * x).sum().backward()
            return {"spikes": spikes.detach(), "grad_x": xi.grad, "grad_w": neuron.w.grad}
        compare(f"PLIF neuron fwd+bwd {list(shape)}", neuron_case, sizes["repeats"])

    for shape, bits, per_channel in sizes["quant_cases"]:
        w = (torch.randn(*shape, generator=gen) * 0.05).to(device)
        q = SigmoidQuantizer(symmetric_levels(bits) if bits > 1 else torch.tensor([-1.0, 1.0]),
                             temperature=5.0, per_channel=per_channel).to(device)
        q.reset(w)
        q.train()
        grad_out = torch.randn(*shape, generator=gen).to(device)

        def quant_case(w=w, q=q, grad_out=grad_out):
            wi = w.clone().requires_grad_()
            q.zero_grad(set_to_none=True)
            out = q(wi)
            (out * grad_out).sum().backward()
            return {"out": out.detach(), "grad_w": wi.grad, "grad_alpha": q.alpha.grad,
                    "grad_beta": q.beta.grad}
        kind = f"{bits}-bit {'per channel' if per_channel else 'per tensor'}"
        compare(f"sigmoid quantizer {kind} fwd+bwd {list(shape)}", quant_case,
                sizes["repeats"])

    if device.type == "cuda":  # Triton's interpreter has no bfloat16 (numpy lacks it)
        # the neuron in bfloat16, as AMP runs it: its first-use self-check is the point here
        x = (torch.randn(*sizes["neuron_shapes"][0], generator=gen) * 1.5 + 0.3).to(device)
        with use_kernels("triton"):
            PLIF(init_tau=2.0, detach_reset=True).to(device)(x.bfloat16())
    from spikequant import kernel_check

    for r in kernel_check.results():  # a failed check means "triton" above ran torch
        print("@@selfcheck " + json.dumps({"kernel": r.kernel, "device": r.device,
                                           "shape_class": r.shape_class, "passed": r.passed,
                                           "detail": r.detail}), flush=True)
    return 0




def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Triton kernels against the torch implementation: "
                                "differences and forward+backward time at the study's shapes.")
    p.add_argument("--device", default="cuda", help="cuda, or cpu under TRITON_INTERPRET=1")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (for the interpreter)")
    args = p.parse_args(argv)
    return compare_all(args.device, TINY if args.tiny else STUDY)


if __name__ == "__main__":
    sys.exit(main())
