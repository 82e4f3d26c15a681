"""What every benchmark table states: the machine, the software, the date, the command."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

PACKAGES = ("spikequant", "spikingjelly", "snntorch", "brevitas")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def set_threads(threads: int) -> None:
    """Use `threads` intra-op threads (0: torch's default, one per core)."""
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def add_threads_option(parser: Any) -> None:
    parser.add_argument(
        "--threads", type=int, default=0,
        help="torch CPU threads (default: one per core). On a machine shared with other "
        "work, --threads 1 keeps timings steady: with every core in use, one thread "
        "descheduled stalls the others at each operator")


def machine_info(device: str = "cpu") -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "packages": software_versions(PACKAGES),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def markdown_header(result: dict[str, Any], command: str) -> str:
    m = result["machine"]
    where = m.get("gpu") or f"{m['cpu']}, {m['cores']} cores, torch threads: {m['torch_threads']}"
    versions = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items())
    return (f"Command: `{command}`  \nMachine: {where}; torch {m['torch']}, "
            f"Python {m['python']}; {versions}  \nDate: {m['date']}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically."""
    write_text(path, json.dumps(obj, indent=1) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically (temporary file beside `path`, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rss_kib(field: str) -> int | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in KiB; None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Make VmHWM restart from the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_kib() -> int:
    """Peak RSS of this process in KiB (since reset_peak_rss where that worked)."""
    hwm = rss_kib("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def software_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `packages` (absent ones say so)."""
    from importlib import metadata

    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


if __name__ == "__main__":
    json.dump(machine_info(sys.argv[1] if len(sys.argv) > 1 else "cpu"), sys.stdout, indent=1)
