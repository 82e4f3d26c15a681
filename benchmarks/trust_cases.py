"""Every bad input, hostile environment and interruption spikequant promises to survive, run as a
user meets it: the `spikequant` command in its own process (or the Python API in this one), a
real read-only mount, a real full file system, a real signal sent from outside. Each case
states the exit status it must end with and, where it matters, what must hold afterwards (no
temporary left, a run folder untouched, a resumed run bit-identical to an uninterrupted one);
a traceback, another status or a failed check is a problem the summary counts.

Groups: environment (SPIKEQUANT_* variables), caches (compiled kernels, frame cache), signals
(SIGINT / SIGTERM in train, export, sweep and frame caching; two processes on one cache), api
(the Python API misused), paths (spaces, non-ASCII, links, read-only folders, a full disk),
inputs (bad files, settings and command lines).

    python benchmarks/trust_cases.py --out trust.md          # every case, ~5 min on 2 cores
    python benchmarks/trust_cases.py --only api,environment  # some groups

Every run is tiny (the ndigits network with 4 channels, 2 time steps, 2 batches of 16, one or
a few epochs), so the cases test behaviour, not speed. How a case is run (the sandbox, read-only
folders and full disks, signals, the table) is benchmarks/trust_harness.py.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trust_harness import ROOT, Case, Outcome, Sandbox, clean, run_case, table, verdict

GROUPS = ("environment", "caches", "signals", "api", "paths", "inputs")
TRAIN = "spikequant train --config {tiny} --data-dir {data} -e 1"
NMNIST = "spikequant train --config {tiny} --dataset nmnist --model ndigits -e 1"


# ----------------------------------------------------------------------------- helpers


def temporaries(folder: Path) -> list[Path]:
    """The writers' temporaries (`.sq*.tmp`, `.*.part`) left under `folder`."""
    if not folder.exists():
        return []
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".part"))]


def no_temporaries(*places: str):
    """A check: no temporary left under the given {placeholder} folders."""
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        left = [p for place in places for p in temporaries(Path(sandbox.fill(place, here)))]
        return [f"temporary left: {sandbox.anonymous(str(p), here)}" for p in left]
    return check


def all_of(*checks):
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        return [problem for c in checks for problem in c(sandbox, here)]
    return check


def finished(folder: str, epochs: int = 1):
    """A check: `folder` holds a finished run of `epochs` epochs."""
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        import json

        metrics = Path(sandbox.fill(folder, here)) / "metrics.json"
        if not metrics.is_file():
            return [f"no {sandbox.anonymous(str(metrics), here)}"]
        done = json.loads(metrics.read_text()).get("epochs_completed")
        return [] if done == epochs else [f"{done} epochs completed, expected {epochs}"]
    return check


def digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (a file itself), but the lock: a refused `train`
    records itself in the lock file it took before it looked at the folder."""
    files = [folder] if folder.is_file() else sorted(folder.rglob("*"))
    return {str(p.relative_to(folder.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if p.is_file() and p.name != ".lock"}


def remember(place: str):
    """A setup noting the content of `place`; `unchanged(place)` checks it afterwards."""
    def setup(sandbox: Sandbox, here: Path) -> None:
        (here / ".before").write_text(repr(digest(Path(sandbox.fill(place, here)))))
    return setup


def unchanged(place: str):
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        before = (here / ".before").read_text()
        now = repr(digest(Path(sandbox.fill(place, here))))
        return [] if now == before else [f"{sandbox.shown(place)} changed"]
    return check


def copy(source: str, target: str):
    """A setup copying a {placeholder} file or folder to `target` (relative to the case)."""
    def setup(sandbox: Sandbox, here: Path) -> None:
        src, dst = Path(sandbox.fill(source, here)), here / target
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)
    return setup


def steps(*setups):
    def setup(sandbox: Sandbox, here: Path) -> None:
        for s in setups:
            s(sandbox, here)
    return setup


def link(target: str, name: str):
    """A setup making `name` (relative to the case) a symbolic link to `target`."""
    def setup(sandbox: Sandbox, here: Path) -> None:
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        (here / name).symlink_to(sandbox.fill(target, here))
    return setup


def folder(name: str):
    def setup(sandbox: Sandbox, here: Path) -> None:
        (here / name).mkdir(parents=True, exist_ok=True)
    return setup


def write(name: str, text: str | bytes):
    def setup(sandbox: Sandbox, here: Path) -> None:
        path = here / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = sandbox.fill(text, here) if isinstance(text, str) else text
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def damage(name: str, how: str):
    """A setup damaging the file `name` of the case: truncate, empty, or flip a byte."""
    def setup(sandbox: Sandbox, here: Path) -> None:
        path = here / name
        data = path.read_bytes()
        if how == "truncate":
            data = data[:len(data) // 2 - 1]
        elif how == "empty":
            data = b""
        else:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
        path.write_bytes(data)
    return setup


def first_recording(name: str) -> str:
    return f"{name}/NMNIST/Train/3/00004.bin"


def loads_or_absent(name: str):
    """A check: the packed model file `name` is absent or whole (its checksum passes)."""
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        path = here / name
        if not path.exists():
            return []
        from spikequant.export import load_packed

        try:
            load_packed(path)
        except Exception as err:  # noqa: BLE001 - any failure is the problem reported
            return [f"{name} is not whole: {err}"]
        return []
    return check


def whole_cache(place: str, shape: tuple[int, ...] = (2, 2, 34, 34)):
    """A check: every frame cache entry under `place` loads with the setting's shape."""
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        import numpy as np

        problems = []
        for entry in Path(sandbox.fill(place, here)).rglob("*.npy"):
            try:
                if np.load(entry).shape != shape:
                    problems.append(f"entry of another shape: {entry.name}")
            except Exception as err:  # noqa: BLE001 - a half-written entry
                problems.append(f"entry {entry.name} does not load: {err}")
        return problems + no_temporaries(place)(sandbox, here)
    return check


def has_entries(place: str):
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        found = list(Path(sandbox.fill(place, here)).rglob("*.npy"))
        return [] if found else [f"no frame cache entry under {sandbox.shown(place)}"]
    return check


def resumed_like_straight(out: str, epochs: int):
    """A check: `train --resume` of the stopped run finishes, and its weights and history are
    bit-identical to an uninterrupted run of the same settings."""
    def check(sandbox: Sandbox, here: Path) -> list[str]:
        import torch

        from spikequant.train import load_checkpoint

        line = f"{TRAIN.replace('-e 1', f'-e {epochs}')} --deterministic --seed 1"
        stopped = Path(sandbox.fill(out, here))
        done = subprocess.run(sandbox.argv(f"{line} --out {out} --resume", here), cwd=here,
                              env=sandbox.env({}, here), capture_output=True, text=True)
        if done.returncode:
            return [f"--resume failed: {done.stderr.strip().splitlines()[-1:]}"]
        straight = sandbox.root / f"straight-{epochs}"
        if not (straight / "last.pt").exists():
            subprocess.run(sandbox.argv(f"{line} --out {straight}", here), cwd=here,
                           env=sandbox.env({}, here), capture_output=True, check=True)
        a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(stopped / "last.pt")
        if a["epoch"] != b["epoch"]:
            return [f"resumed to epoch {b['epoch']}, the straight run to {a['epoch']}"]
        differ = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
        return [f"resumed weights differ: {', '.join(differ[:3])}"] if differ else []
    return check


def slow_plugin(name: str, module: str, function: str, calls: int = 1, seconds: float = 3.0):
    """A setup writing a --plugin file that makes `module.function` touch `{here}/.writing`
    and wait `seconds` on its `calls`-th call, so that a signal lands while it writes."""
    code = f"""
import os, time
import {module} as owner
real, calls = owner.{function}, []
def slowed(*args, **kwargs):
    calls.append(1)
    if len(calls) == {calls}:
        open({{marker!r}}, "w").close()
        time.sleep({seconds})
    return real(*args, **kwargs)
owner.{function} = slowed
"""

    def setup(sandbox: Sandbox, here: Path) -> None:
        (here / name).write_text(code.replace("{marker!r}", repr(str(here / ".writing"))))
    return setup


SWEEP = """[sweep]
datasets = ["ndigits"]
quantizers = ["none", "sigmoid"]
bits = [1]
seeds = [0]
out = "{here}/sweep"

[train]
epochs = 2
batch_size = 16
max_batches = 2
time_steps = 2
data_dir = "{data}"
progress = false
deterministic = true
calibration_samples = 16
model_overrides = {{channels = 4}}
"""


def sweep_again_finishes(sandbox: Sandbox, here: Path) -> list[str]:
    """After a stopped sweep: no results yet, no temporaries; running it again finishes."""
    problems = no_temporaries("{here}/sweep")(sandbox, here)
    if (here / "sweep" / "results.csv").exists():
        problems.append("results.csv written by the stopped sweep")
    done = subprocess.run(sandbox.argv("spikequant sweep --config {here}/sweep.toml", here),
                          cwd=here, env=sandbox.env({}, here), capture_output=True, text=True)
    if done.returncode or not (here / "sweep" / "results.csv").exists():
        problems.append(f"running the sweep again failed: {done.stderr.strip()[-200:]}")
    return problems


# ----------------------------------------------------------------------------- the cases


def environment_cases() -> list[Case]:
    g = "environment"
    bad = [("SPIKEQUANT_KERNELS", "banana", "spikequant models"),
           ("SPIKEQUANT_KERNELS", "banana", TRAIN + " --out {here}/out"),
           ("SPIKEQUANT_KERNELS", "banana", "spikequant export -c {ckpt} -o {here}/m.sqp"),
           ("SPIKEQUANT_KERNELS", "banana", "spikequant sweep --config {here}/s.toml --dry-run"),
           ("SPIKEQUANT_MALLOPT", "maybe", "spikequant datasets --data-dir {data}"),
           ("SPIKEQUANT_MALLOPT", "2", "spikequant infer -m {model}"),
           ("SPIKEQUANT_FUZZ_EXAMPLES", "lots", "spikequant eval -c {ckpt}"),
           ("SPIKEQUANT_FUZZ_EXAMPLES", "0", "spikequant report --network ndigits"),
           ("SPIKEQUANT_CPU_KERNEL_DIR", " ", "spikequant models")]
    cases = [Case(g, f"{name}={value!r}", line, "2" if value.strip() else "0",
                  env={name: value}, setup=write("s.toml", SWEEP),
                  check=no_temporaries("{here}"))
             for name, value, line in bad]
    cases += [
        Case(g, "accepted spelling in capitals", TRAIN + " --out {here}/out", "0",
             env={"SPIKEQUANT_KERNELS": "TORCH", "SPIKEQUANT_MALLOPT": "Off"},
             check=finished("{here}/out")),
        Case(g, "triton asked for on a machine without a GPU", TRAIN + " --out {here}/out", "2",
             env={"SPIKEQUANT_KERNELS": "triton"}, check=no_temporaries("{here}")),
        Case(g, "a SPIKEQUANT_ name with a typo", "spikequant models", "0",
             env={"SPIKEQUANT_KERNAL": "torch"}),
        Case(g, "SPIKEQUANT_DATA is a file", "spikequant datasets", "2",
             env={"SPIKEQUANT_DATA": "{file}"}),
        Case(g, "SPIKEQUANT_DATA where nothing can be created",
             "spikequant train --config {tiny} -e 1 --out {here}/out", "2",
             env={"SPIKEQUANT_DATA": "/proc/spikequant-data"}),
        Case(g, "SPIKEQUANT_DATA names the data folder",
             "spikequant train --config {tiny} -e 1 --out {here}/out", "0",
             env={"SPIKEQUANT_DATA": "{data}"}, check=finished("{here}/out")),
    ]
    return cases


def cache_cases() -> list[Case]:
    g = "caches"
    nm = copy("{nmnist}", "nm")
    run = NMNIST + " --data-dir {here}/nm --out {here}/out"
    return [
        Case(g, "kernel cache under a file", TRAIN + " --out {here}/out", "0",
             env={"SPIKEQUANT_CPU_KERNEL_DIR": "{file}/kernels"}, check=finished("{here}/out")),
        Case(g, "kernel cache where nothing can be created (XDG_CACHE_HOME)",
             TRAIN + " --out {here}/out", "0", env={"XDG_CACHE_HOME": "/proc/spikequant-cache"},
             check=finished("{here}/out")),
        Case(g, "kernel cache read-only", TRAIN + " --out {here}/out", "0",
             env={"SPIKEQUANT_CPU_KERNEL_DIR": "{here}/k"}, read_only="{here}/k",
             setup=folder("k"), check=finished("{here}/out")),
        Case(g, "kernel cache on a full disk", TRAIN + " --out {here}/out", "0",
             env={"SPIKEQUANT_CPU_KERNEL_DIR": "{here}/k"}, full="{here}/k",
             setup=folder("k"), check=all_of(finished("{here}/out"), no_temporaries("{here}/k"))),
        Case(g, "frame cache under a file", run, "0",
             env={"SPIKEQUANT_FRAME_CACHE": "{file}/frames"}, setup=nm,
             check=finished("{here}/out")),
        Case(g, "frame cache read-only", run, "0", env={"SPIKEQUANT_FRAME_CACHE": "{here}/fc"},
             read_only="{here}/fc", setup=steps(nm, folder("fc")), check=finished("{here}/out")),
        Case(g, "frame cache on a full disk", run, "0",
             env={"SPIKEQUANT_FRAME_CACHE": "{here}/fc"}, full="{here}/fc",
             setup=steps(nm, folder("fc")),
             check=all_of(finished("{here}/out"), whole_cache("{here}/fc"))),
        Case(g, "read-only data folder: frames cached under XDG_CACHE_HOME", run, "0",
             env={"XDG_CACHE_HOME": "{here}/xdg"}, read_only="{here}/nm", setup=nm,
             check=all_of(finished("{here}/out"), has_entries("{here}/xdg"))),
        Case(g, "read-only data folder and no usable cache home", run, "0",
             env={"XDG_CACHE_HOME": "/proc/spikequant-cache"}, read_only="{here}/nm", setup=nm,
             check=finished("{here}/out")),
        Case(g, "default data folder where nothing can be created",
             "spikequant train --config {tiny} -e 1 --out {here}/out", "2",
             env={"XDG_CACHE_HOME": "/proc/spikequant-cache"}),
        Case(g, "a truncated frame cache entry is rebuilt", run, "0",
             setup=steps(nm, lambda s, h: _fill_cache(s, h)),
             check=all_of(finished("{here}/out"), whole_cache("{here}/nm/frames_cache"))),
        Case(g, "two trainings filling one frame cache", run,
             "0, 0", kind="together", setup=nm,
             second=NMNIST + " --data-dir {here}/nm --out {here}/out2",
             check=all_of(finished("{here}/out"), finished("{here}/out2"),
                          whole_cache("{here}/nm/frames_cache"))),
        Case(g, "two trainings building one kernel cache", TRAIN + " --out {here}/out", "0, 0",
             kind="together", env={"SPIKEQUANT_CPU_KERNEL_DIR": "{here}/k"},
             second=TRAIN + " --out {here}/out2",
             check=all_of(finished("{here}/out"), finished("{here}/out2"),
                          no_temporaries("{here}/k"), _one_kernel)),
    ]


def _fill_cache(sandbox: Sandbox, here: Path, shape: tuple[int, ...] | None = None) -> None:
    """Fill the case's frame cache with a run, then spoil an entry: truncated, or (`shape`)
    counts of another shape."""
    import numpy as np

    line = NMNIST + " --data-dir {here}/nm --out {here}/first"
    subprocess.run(sandbox.argv(line, here), cwd=here, env=sandbox.env({}, here), check=True,
                   capture_output=True)
    entry = sorted((here / "nm" / "frames_cache").rglob("*.npy"))[0]
    if shape is None:
        entry.write_bytes(entry.read_bytes()[:100])
    else:
        np.save(entry, np.zeros(shape, dtype=np.uint16))


def big_run(sandbox: Sandbox, here: Path) -> None:
    """A setup training the full-width ndigits network (32 channels) into `big/`, whose
    packed file (~30 KiB) does not fit the full disk, and whose shape is not the tiny one's."""
    line = ("spikequant train --data-dir {data} -e 1 -T 2 --max-batches 1 --no-progress "
            "--calibration-samples 16 --out {here}/big")
    subprocess.run(sandbox.argv(line, here), cwd=here, env=sandbox.env({}, here), check=True,
                   capture_output=True)


def _one_kernel(sandbox: Sandbox, here: Path) -> list[str]:
    """A check: each compiled kernel (binary_sigmoid, lif) built once, as one file."""
    built = sorted(p.name.split("-")[0] for p in (here / "k").glob("*.so"))
    return [] if built and len(built) == len(set(built)) else [f"kernels built: {built}"]


def signal_cases() -> list[Case]:
    g = "signals"
    three = TRAIN.replace("-e 1", "-e 3") + " --deterministic --seed 1 --out {here}/out"
    cases = [
        Case(g, f"{name} while training, then --resume", three, code, kind="signal",
             signal=name, wait_for="{here}/out/last.pt",
             check=all_of(no_temporaries("{here}"), resumed_like_straight("{here}/out", 3)))
        for name, code in (("SIGTERM", "143"), ("SIGINT", "130"))]
    cases += [
        Case(g, "SIGINT while torch is imported", TRAIN + " --out {here}/out", "130",
             kind="signal", signal="SIGINT", delay=0.3, check=no_temporaries("{here}")),
        Case(g, "SIGTERM while an epoch is saved", TRAIN.replace("-e 1", "-e 3")
             + " --plugin {here}/slow.py --out {here}/out", "143", kind="signal",
             signal="SIGTERM", wait_for="{here}/.writing",
             setup=slow_plugin("slow.py", "spikequant.train.trainer", "atomic_torch_save"),
             check=all_of(no_temporaries("{here}"), finished("{here}/out"))),
        Case(g, "SIGTERM while export writes", "spikequant export -c {ckpt} -o {here}/m.sqp "
             "--plugin {here}/slow.py", "143", kind="signal", signal="SIGTERM",
             wait_for="{here}/.writing",
             setup=slow_plugin("slow.py", "spikequant.export.modelfile", "atomic_write_bytes"),
             check=all_of(no_temporaries("{here}"), loads_or_absent("m.sqp"))),
        Case(g, "SIGINT while export reads the checkpoint", "spikequant export -c {ckpt} -o "
             "{here}/m.sqp --plugin {here}/slow.py", "130", kind="signal", signal="SIGINT",
             wait_for="{here}/.writing",
             setup=slow_plugin("slow.py", "spikequant.train", "load_checkpoint"),
             check=all_of(no_temporaries("{here}"), loads_or_absent("m.sqp"))),
        Case(g, "SIGTERM mid-sweep, then the sweep again", "spikequant sweep --config "
             "{here}/sweep.toml", "143", kind="signal", signal="SIGTERM",
             wait_for="{here}/sweep/ndigits/float/seed0/last.pt", setup=write("sweep.toml", SWEEP),
             check=sweep_again_finishes),
        Case(g, "SIGTERM while frames are cached", NMNIST + " --data-dir {here}/nm --out "
             "{here}/out --plugin {here}/slow.py", "143", kind="signal", signal="SIGTERM",
             wait_for="{here}/.writing",
             setup=steps(copy("{nmnist}", "nm"),
                         slow_plugin("slow.py", "spikequant.data.cache", "atomic_write", calls=3)),
             check=whole_cache("{here}/nm/frames_cache")),
    ]
    return cases


def api_cases() -> list[Case]:
    g = "api"
    lin = "nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))"
    nan = f"(lambda m: (m[1].weight.data.fill_(float('nan')), m)[1])({lin})"
    inf = f"(lambda m: (m[3].weight.data.fill_(float('inf')), m)[1])({lin})"
    calls = [
        ("a model without Conv2d or Linear", "quantize_model(nn.Sequential(nn.ReLU()))",
         "ModelError"),
        ("float64 weights", f"quantize_model({lin}.double())", "ModelError"),
        ("half weights", f"quantize_model({lin}.half())", "ModelError"),
        ("NaN weights", f"quantize_model({nan})", "ModelError"),
        ("infinite weights, ste", f"quantize_model({inf}, quantizer='ste')", "ModelError"),
        ("bits=0", f"quantize_model({lin}, bits=0)", "ConfigError"),
        ("bits=9", f"quantize_model({lin}, bits=9)", "ConfigError"),
        ("bits=2.5", f"quantize_model({lin}, bits=2.5)", "ConfigError"),
        ("unknown quantizer", f"quantize_model({lin}, quantizer='binary')", "UnknownComponent"),
        ("unknown quantizer option", f"quantize_model({lin}, temprature=2.0)", "OptionError"),
        ("twice on the same model", f"quantize_model(quantize_model({lin}), bits=2)",
         "ModelError"),
        ("not a module", "quantize_model('a model')", "ConfigError"),
        ("models.build: unknown option", "build('ndigits', chanels=8)", "ConfigError"),
        ("models.build: negative size", "build('ndigits', channels=-3)", "ConfigError"),
        ("models.build: unknown network", "build('ndigitz')", "UnknownComponent"),
        ("models.build: impossible bits", "build('ndigits', quantizer='sigmoid', bits=0)",
         "ConfigError"),
        ("from_packed on a foreign safetensors file",
         "IntegerNetwork.from_packed('{here}/other.safetensors')", "ModelFileError"),
        ("load_packed on a text file", "load_packed('{here}/notes.sqp')", "ModelFileError"),
        ("from_packed on a missing file", "IntegerNetwork.from_packed('{here}/none.sqp')",
         "MissingFileError"),
        ("a well-formed call still works", f"quantize_model({lin}, bits=2)", "returns"),
    ]
    return [Case(g, what, line, expect if expect == "returns" else f"raises {expect}",
                 kind="python", setup=_foreign_files) for what, line, expect in calls]


def _foreign_files(sandbox: Sandbox, here: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3, 3)}, str(here / "other.safetensors"),
              metadata={"format": "pt"})
    (here / "notes.sqp").write_text("these are my notes, not a model\n" * 4)


def path_cases() -> list[Case]:
    g = "paths"
    ro = steps(folder("ro"))
    return [
        Case(g, "--out with spaces", TRAIN + " --out '{here}/with spaces/run'", "0",
             check=finished("{here}/with spaces/run")),
        Case(g, "--out non-ASCII", TRAIN + " --out '{here}/dønnées データ/run'", "0",
             check=finished("{here}/dønnées データ/run")),
        Case(g, "--data-dir with spaces and non-ASCII",
             "spikequant train --config {tiny} -e 1 --data-dir '{here}/my dätä' --out "
             "{here}/out", "0", setup=copy("{data}", "my dätä"), check=finished("{here}/out")),
        Case(g, "--config with spaces and non-ASCII",
             "spikequant train --config '{here}/my cönfig.toml' --data-dir {data} -e 1 --out "
             "{here}/out", "0", setup=copy("{tiny}", "my cönfig.toml"),
             check=finished("{here}/out")),
        Case(g, "--data-dir and --config as links",
             "spikequant train --config {here}/c.toml --data-dir {here}/d -e 1 --out "
             "{here}/out", "0", setup=steps(link("{data}", "d"), link("{tiny}", "c.toml")),
             check=finished("{here}/out")),
        Case(g, "--out a link onto a finished run", TRAIN + " --out {here}/linked", "2",
             setup=steps(link("{run}", "linked"), remember("{run}")), check=unchanged("{run}")),
        Case(g, "--out a link onto a run, --resume continues it there",
             TRAIN.replace("-e 1", "-e 2") + " --out {here}/linked --resume", "0",
             setup=steps(copy("{run}", "r"), link("{here}/r", "linked")),
             check=finished("{here}/r", epochs=2)),
        Case(g, "--out a broken link", TRAIN + " --out {here}/linked", "2",
             setup=link("{here}/nowhere", "linked")),
        Case(g, "--out a looping link", TRAIN + " --out {here}/linked", "2",
             setup=link("{here}/linked", "linked")),
        Case(g, "--out in a read-only folder", TRAIN + " --out {here}/ro/run", "2",
             read_only="{here}/ro", setup=ro),
        Case(g, "--out is a file", TRAIN + " --out {file}", "2"),
        Case(g, "--out under a file", TRAIN + " --out {file}/run", "2"),
        Case(g, "export into a read-only folder", "spikequant export -c {ckpt} -o "
             "{here}/ro/m.sqp", "2", read_only="{here}/ro", setup=ro),
        Case(g, "export to a full disk", "spikequant export -c {here}/big/last.pt -o "
             "{here}/full/m.sqp", "2", full="{here}/full", setup=steps(folder("full"), big_run),
             check=all_of(no_temporaries("{here}/full"), loads_or_absent("full/m.sqp"))),
        Case(g, "train onto a full disk", TRAIN + " --out {here}/full/run", "2",
             full="{here}/full", setup=folder("full"), check=no_temporaries("{here}/full")),
        Case(g, "a read-only data folder (ndigits)", "spikequant train --config {tiny} -e 1 "
             "--data-dir {here}/d --out {here}/out", "0", read_only="{here}/d",
             setup=copy("{data}", "d"), check=finished("{here}/out")),
        Case(g, "export and infer with non-ASCII names",
             "spikequant infer -m '{here}/mödel ü.sqp'", "0",
             setup=copy("{model}", "mödel ü.sqp")),
        Case(g, "eval a linked checkpoint", "spikequant eval -c {here}/ck.pt", "0",
             setup=link("{ckpt}", "ck.pt")),
    ]


def input_cases() -> list[Case]:
    g = "inputs"
    nm = copy("{nmnist}", "nm")
    run = NMNIST + " --data-dir {here}/nm --out {here}/out"
    bad_toml = [
        ("config TOML that does not parse", "[train\nepochs = 1\n"),
        ("config table misspelt", "[trian]\nepochs = 1\n"),
        ("config value of the wrong type", "[train]\nepochs = 1.5\n"),
        ("config key unknown", "[train]\nepoch = 1\n"),
        ("config extends a missing file", 'extends = "nowhere.toml"\n[train]\nepochs = 1\n'),
    ]
    cases = [Case(g, what, "spikequant train --config {here}/bad.toml --data-dir {data} --out "
                  "{here}/out", "2", setup=write("bad.toml", text)) for what, text in bad_toml]
    flags = [
        ("impossible bit width", "--bits 0"), ("bit width beyond 8", "--bits 99"),
        ("a level set of one level", "--levels 1"), ("epochs 0", "-e 0"),
        ("learning rate NaN", "--lr nan"), ("unknown quantizer", "--quantizer binary"),
        ("unknown quantizer option", "--quantizer-option temprature=2"),
        ("quantizer option of the wrong type", "--quantizer-option t0=hot"),
        ("unknown neuron option", "--neuron-option tau=banana"),
        ("unknown neuron", "--neuron izhikevich"),
        ("unknown dataset", "--dataset mnist"), ("unknown network", "--model resnet"),
        ("a device this machine lacks", "--device cuda"),
        ("time steps beyond memory", "--time-steps 100000"),
        ("--exclude matching no layer", "--exclude fc9"),
    ]
    cases += [Case(g, what, TRAIN + f" {flag} --out {{here}}/out", "2",
                   check=no_temporaries("{here}")) for what, flag in flags]
    cases += [
        Case(g, "missing dataset", "spikequant train --config {tiny} --dataset nmnist -e 1 "
             "--data-dir {here}/empty --out {here}/out", "2", setup=folder("empty")),
        Case(g, "a truncated event file", run, "2",
             setup=steps(nm, damage(first_recording("nm"), "truncate"))),
        Case(g, "a truncated event file, --skip-bad", run + " --skip-bad", "0",
             setup=steps(nm, damage(first_recording("nm"), "truncate")),
             check=finished("{here}/out")),
        Case(g, "an empty event file", run, "2",
             setup=steps(nm, damage(first_recording("nm"), "empty"))),
        Case(g, "datasets lists a truncated file", "spikequant datasets --data-dir {here}/nm",
             "0", setup=steps(nm, damage(first_recording("nm"), "truncate")),
             check=_listed_bad),
        Case(g, "a checkpoint with a flipped byte", "spikequant eval -c {here}/ck.pt", "2",
             setup=steps(copy("{ckpt}", "ck.pt"), damage("ck.pt", "flip"))),
        Case(g, "a text file as checkpoint", "spikequant eval -c {here}/ck.pt", "2",
             setup=write("ck.pt", "not a checkpoint\n")),
        Case(g, "a missing checkpoint", "spikequant export -c {here}/none.pt -o {here}/m.sqp",
             "2"),
        Case(g, "a truncated packed model", "spikequant infer -m {here}/m.sqp", "2",
             setup=steps(copy("{model}", "m.sqp"), damage("m.sqp", "truncate"))),
        Case(g, "a packed model with a flipped byte", "spikequant infer -m {here}/m.sqp", "2",
             setup=steps(copy("{model}", "m.sqp"), damage("m.sqp", "flip"))),
        Case(g, "--init-from a checkpoint of another shape", TRAIN + " --init-from "
             "{here}/big/last.pt --out {here}/out", "2", setup=big_run),
        Case(g, "a frame cache entry of another shape is rebuilt", NMNIST + " --data-dir "
             "{here}/nm --out {here}/out", "0",
             setup=steps(nm, lambda s, h: _fill_cache(s, h, shape=(3, 2, 34, 34))),
             check=all_of(finished("{here}/out"), whole_cache("{here}/nm/frames_cache"))),
        Case(g, "export over an existing file", "spikequant export -c {ckpt} -o {here}/m.sqp",
             "2", setup=write("m.sqp", "mine\n"), check=_still_mine),
        Case(g, "export over its own checkpoint, --force",
             "spikequant export -c {here}/ck.pt -o {here}/ck.pt --force", "2",
             setup=steps(copy("{ckpt}", "ck.pt"), remember("{here}/ck.pt")),
             check=unchanged("{here}/ck.pt")),
        Case(g, "--resume with a changed learning rate",
             TRAIN.replace("-e 1", "-e 2") + " --lr 0.5 --out {here}/r --resume", "2",
             setup=copy("{run}", "r")),
        Case(g, "--resume of a folder of other files", TRAIN + " --out {here}/r --resume", "2",
             setup=write("r/notes.txt", "mine\n")),
        Case(g, "a new run onto a finished run's folder", TRAIN + " --out {here}/r", "2",
             setup=steps(copy("{run}", "r"), remember("{here}/r")), check=unchanged("{here}/r")),
        Case(g, "two trainings on one --out", TRAIN + " --out {here}/out", "0, 2",
             kind="together", second=TRAIN + " --out {here}/out", check=finished("{here}/out")),
        Case(g, "a sweep file without [sweep]", "spikequant sweep --config {tiny}", "2"),
    ]
    return cases


def _listed_bad(sandbox: Sandbox, here: Path) -> list[str]:
    """A check: `datasets --json` lists the truncated file and calls N-MNIST not complete."""
    import json

    done = subprocess.run(sandbox.argv("spikequant datasets --data-dir {here}/nm --json", here),
                          cwd=here, env=sandbox.env({}, here), capture_output=True, text=True)
    entry = next(d for d in json.loads(done.stdout) if d["name"] == "nmnist")
    problems = [] if not entry["complete"] else ["N-MNIST listed as complete"]
    if not any("00004.bin" in str(bad) for bad in entry["bad_files"]):
        problems.append(f"the truncated file is not listed: {entry['bad_files']}")
    return problems


def _still_mine(sandbox: Sandbox, here: Path) -> list[str]:
    return [] if (here / "m.sqp").read_text() == "mine\n" else ["the existing file was replaced"]


BUILDERS = {"environment": environment_cases, "caches": cache_cases, "signals": signal_cases,
            "api": api_cases, "paths": path_cases, "inputs": input_cases}


def every_case(groups: tuple[str, ...] = GROUPS) -> list[Case]:
    return [case for g in groups for case in BUILDERS[g]()]


# ----------------------------------------------------------------------------- the run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the trust cases: every bad input, hostile environment and signal "
        "spikequant promises to survive, each in its own process as a user meets it, and print "
        "(or write) the Markdown table of command, exit status, first line of the message and "
        "verdict. Exits 1 when a case shows a traceback, an unexpected status, a wrong result "
        "or a lost file.", epilog=f"Groups: {', '.join(GROUPS)}. Example: python "
        "benchmarks/trust_cases.py --only api,paths --out trust.md")
    parser.add_argument("--out", metavar="FILE", help="write the Markdown table to FILE")
    parser.add_argument("--only", metavar="GROUP[,GROUP]", default="",
                        help="run only these groups (comma-separated; repeatable)",
                        action="append")
    parser.add_argument("--match", metavar="TEXT", default="",
                        help="run only the cases whose description contains TEXT")
    parser.add_argument("--list", action="store_true", help="list the cases, run nothing")
    parser.add_argument("--keep", metavar="DIR", help="build the sandbox in DIR and keep it")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that runs `spikequant` [default: this one]")
    args = parser.parse_args(argv)
    chosen = tuple(g for item in args.only for g in item.split(",") if g)
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    args.groups = chosen or GROUPS
    return args


def run(cases: list[Case], sandbox: Sandbox) -> list[Outcome]:
    outcomes = []
    for i, case in enumerate(cases, 1):
        start = time.monotonic()
        here = sandbox.root / f"case{i:02d}"
        try:
            got = run_case(case, sandbox, here)
        except Exception as err:  # noqa: BLE001 - a case that cannot be run is reported
            got = Outcome("not run", f"{type(err).__name__}: {err}", False,
                          [f"the case could not be run: {err}"])
        outcomes.append(got)
        print(f"[{i:>2}/{len(cases)}] {case.group}: {case.what}: exit {got.code} "
              f"({time.monotonic() - start:.1f} s) {verdict(got)} | {got.line[:120]}",
              flush=True)
        if not got.problems and not got.traceback:
            clean(here)
    return outcomes


def header(args: argparse.Namespace, count: int, minutes: float) -> str:
    """Where and when the table was made, and the command that makes it again."""
    import torch

    from machine import machine_info

    m = machine_info()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    only = f" --only {','.join(args.groups)}" if args.groups != GROUPS else ""
    return (f"Made by `python benchmarks/trust_cases.py{only} --out FILE` on "
            f"{m['date'][:10]}: {count} cases in {len(args.groups)} groups, {minutes:.1f} min "
            f"on {m['cpu']}, {m['cores']} cores, {gpu}, torch {m['torch']}, "
            f"as user {'root' if ROOT else 'non-root'} (read-only folders and full disks are "
            f"{'mounts' if ROOT else 'permissions and file-size limits'}).")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = [c for c in every_case(args.groups) if args.match in c.what]
    if args.list:
        for case in cases:
            print(f"{case.group}: {case.what}: {case.command}")
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="trust-"))
    sandbox = Sandbox(root, args.python)
    start = time.monotonic()
    print(f"preparing the sandbox in {root} ...", flush=True)
    sandbox.prepare()
    try:
        outcomes = run(cases, sandbox)
    finally:
        if not args.keep:
            clean(root)
    minutes = (time.monotonic() - start) / 60
    text = f"{header(args, len(cases), minutes)}\n\n{table(cases, outcomes, sandbox)}"
    print(f"\n{text}")
    if args.out:
        from spikequant._atomic import atomic_write_bytes

        atomic_write_bytes(args.out, text.encode())
    return 1 if any(o.problems or o.traceback for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
