"""What a run needs from the machine, checked before any data is read: a device that exists
here, and memory for one batch. `--time-steps 100000` is refused in a second with an estimate
and the flag to lower, rather than killed by the OOM killer after minutes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import ResourceError

GIB = 1024**3
# Training keeps about 1.5x the bytes of every layer's output for the backward pass (autograd's
# saved tensors plus the neurons' membrane state): measured 0.89 MiB a sample and time step on
# the ndigits network against 0.59 MiB of layer outputs (T=64 and 128, batch 16, CPU).
TRAIN_SAVED_FACTOR = 1.5
# Bytes a parameter costs in training: the weight, its gradient and Adam's two moments.
TRAIN_BYTES_PER_PARAMETER = 16
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|mps)$")


def check_device(device: str) -> str:
    """`device` when this machine has it, else ResourceError saying what there is."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ResourceError(
            f"--device {device}: not a device name; use cpu, cuda or cuda:N"
        )
    import torch

    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if not (mps and mps.is_available()):
            raise ResourceError(
                "--device mps: this machine has no Apple GPU (MPS); use --device cpu"
            )
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ResourceError(
                f"--device {device}: this torch build sees no CUDA GPU; "
                "use --device cpu or install a CUDA build of torch (README)"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ResourceError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    return device


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def available_memory(device: str) -> int | None:
    """Bytes a run may use on `device`: a GPU's total memory, or the memory the system says is
    available (capped by a container's limit); None when it can't be told."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_properties(int(device.partition(":")[2] or 0)).total_memory
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except OSError:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    limit = _cgroup_limit()
    if free is None:
        return limit
    return min(free, limit) if limit else free


def activation_elements(model_name: str, overrides: dict) -> tuple[int, int, int]:
    """(sum, largest) of the output elements of every leaf layer for one sample and one time
    step, and the parameter count, measured on the meta device (no memory, no compute)."""
    import torch

    from ..models.registry import build_float_on_meta, model_recipe

    recipe = model_recipe(model_name)
    arch = {k: v for k, v in overrides.items() if k in recipe.options}
    height, width = recipe.architecture(arch).get("input_size") or recipe.input_shape[1:]
    model = build_float_on_meta(model_name, **arch)
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel()))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, recipe.input_shape[0], height, width, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return sum(sizes), max(sizes, default=0), sum(p.numel() for p in model.parameters())


def estimate_bytes(model_name: str, overrides: dict, input_shape: tuple[int, int, int],
                   time_steps: int, batch_size: int, training: bool) -> int:
    """Bytes one batch needs: the input frames, the layer outputs kept for backward (training)
    or the two largest alive at once (inference), and the parameters' training state."""
    total, largest, params = activation_elements(model_name, overrides)
    channels, height, width = input_shape
    per_step = channels * height * width  # float32 frames
    if training:
        per_step += TRAIN_SAVED_FACTOR * total
        fixed = TRAIN_BYTES_PER_PARAMETER * params
    else:
        per_step += 2 * largest
        fixed = 4 * params
    return int(4 * per_step * time_steps * batch_size + fixed)


def check_memory(model_name: str, overrides: dict, input_shape: tuple[int, int, int],
                 time_steps: int, batch_size: int, device: str, training: bool) -> None:
    """ResourceError when one batch would need more memory than `device` has."""
    need = estimate_bytes(model_name, overrides, input_shape, time_steps, batch_size, training)
    have = available_memory(device)
    if have is None or need <= have:
        return
    where = f"GPU memory on {device}" if device.startswith("cuda") else "available memory"
    raise ResourceError(
        f"--time-steps {time_steps} with --batch-size {batch_size} needs about "
        f"{need / GIB:,.1f} GiB for one batch of the {model_name} network "
        f"({'training' if training else 'inference'}), more than the {have / GIB:,.1f} GiB "
        f"of {where}; lower --time-steps or --batch-size"
    )
