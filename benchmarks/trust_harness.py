"""How benchmarks/trust_cases.py runs a case: a sandbox of prepared inputs, commands run as a
user runs them (their own process, the environment given), read-only folders and full disks
made real, signals sent from outside, and the Markdown table of the outcomes.

A read-only folder is a read-only bind mount and a full disk a small tmpfs, each in a mount
namespace of its own (`unshare -m`) when this runs as root, where permissions stop nothing;
otherwise the folder's write permission is taken away, and a full disk is a file-size limit.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
TIMEOUT = 600


@dataclass
class Case:
    """One input tried. `command` is a shell-like line with {placeholders} of the sandbox
    (shown with them as NAMES); `kind` is "run", "signal" (`signal` sent once `wait_for`
    exists, or after `delay` s), "together" (two commands at once, `command` and `second`)
    or "python" (`command` is a Python expression evaluated in-process)."""

    group: str
    what: str
    command: str
    expect: str
    env: dict[str, str] = field(default_factory=dict)
    kind: str = "run"
    read_only: str | None = None  # a {placeholder} folder made read-only for the command
    full: str | None = None  # a {placeholder} folder replaced by a nearly full file system
    setup: Callable[[Sandbox, Path], None] | None = None
    check: Callable[[Sandbox, Path], list[str]] | None = None
    signal: str = ""
    wait_for: str = ""
    delay: float = 0.0
    second: str = ""


@dataclass
class Outcome:
    code: str
    line: str
    traceback: bool
    problems: list[str]


class Sandbox:
    """The prepared inputs every case may use, under one temporary folder."""

    def __init__(self, root: Path, python: str = sys.executable):
        self.root, self.python = root, python
        self.places = {
            "data": root / "data", "nmnist": root / "nmnist", "tiny": root / "tiny.toml",
            "run": root / "run", "ckpt": root / "run" / "last.pt",
            "model": root / "model.sqp", "file": root / "a-file",
        }

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.places["file"].write_text("not a folder\n")
        self.places["tiny"].write_text(
            "[train]\nmodel_overrides = {channels = 4}\ncalibration_samples = 16\n"
            "time_steps = 2\nbatch_size = 16\nmax_batches = 2\nprogress = false\n")
        write_nmnist(self.places["nmnist"], train=20, test=3)
        for line in ("spikequant train --config {tiny} --data-dir {data} -e 1 --out {run}",
                     "spikequant export -c {ckpt} -o {model}"):
            done = subprocess.run(self.argv(line, self.root), capture_output=True, text=True,
                                  timeout=TIMEOUT, env=self.env({}, self.root))
            if done.returncode:
                raise SystemExit(f"preparing the sandbox failed: {line}\n{done.stderr}")

    def paths(self, here: Path) -> dict[str, str]:
        return {**{k: str(v) for k, v in self.places.items()}, "here": str(here)}

    def fill(self, text: str, here: Path) -> str:
        return text.format(**self.paths(here))

    def argv(self, line: str, here: Path) -> list[str]:
        words = [self.fill(w, here) for w in shlex.split(line)]
        if words and words[0] == "spikequant":
            words = [self.python, "-m", "spikequant", *words[1:]]
        return words

    def env(self, extra: dict[str, str], here: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKEQUANT_")}
        env.update({k: self.fill(v, here) for k, v in extra.items()})
        return env

    def shown(self, text: str) -> str:
        names = {k: k.upper() for k in self.places} | {"here": "."}
        names.update(tiny="TINY.toml", ckpt="RUN/last.pt", model="MODEL.sqp", file="A_FILE")
        return text.format(**names)

    def anonymous(self, text: str, here: Path) -> str:
        """`text` with the sandbox's paths replaced by the names the table uses."""
        pairs = [(str(here) + "/", ""), (str(here), ".")]
        pairs += sorted(((str(v), self.shown("{" + k + "}")) for k, v in self.places.items()),
                        key=lambda p: -len(p[0]))
        pairs += [(str(self.root), "SANDBOX")]
        for real, name in pairs:
            text = text.replace(real, name)
        return text


def write_nmnist(root: Path, train: int, test: int) -> None:
    """N-MNIST-format recordings (40-bit events: x, y, polarity and a 23-bit time)."""
    rng = np.random.default_rng(0)
    for split, count in (("Train", train), ("Test", test)):
        for digit in range(10):
            for k in range(count):
                n = int(rng.integers(200, 400))
                x, y = rng.integers(0, 34, n), rng.integers(0, 34, n)
                t, p = np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 2, n)
                raw = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF],
                               axis=1).astype(np.uint8)
                path = root / "NMNIST" / split / str(digit) / f"{k:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(raw.tobytes())


def _wrapped(argv: list[str], case: Case, sandbox: Sandbox, here: Path) -> list[str]:
    """argv run with the case's folder read-only or full (a mount namespace as root)."""
    if not ROOT or not (case.read_only or case.full):
        return argv
    if case.read_only:
        folder = shlex.quote(sandbox.fill(case.read_only, here))
        mount = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} {folder}"
    else:
        folder = shlex.quote(sandbox.fill(case.full, here))
        mount = f"mkdir -p {folder} && mount -t tmpfs -o size=24k,mode=0755 tmpfs {folder}"
    return ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "_", *argv]


def _limits(case: Case) -> Callable[[], None]:
    def limit() -> None:
        # as in a terminal: a shell running this in the background (`&`, nohup) ignores
        # SIGINT, and a command keeps an ignored signal ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if ROOT or not case.full:
            return
        import resource  # a full disk as a non-root user can make one: a file-size limit

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

    return limit


def _message(err: str, out: str) -> str:
    # no progress bars; the sandbox's small N-MNIST copy is always partial: that warning says
    # nothing of the case
    lines = [ln.strip() for ln in err.splitlines()
             if ln.strip() and "%|" not in ln and "using a partial copy" not in ln]
    ours = [ln for ln in lines if ln.startswith("spikequant")]
    errors = [ln for ln in ours if ": error: " in ln or ": interrupted " in ln]
    if errors or ours:
        return (errors or ours)[0]
    if lines:
        return lines[0]
    printed = " ".join(out.split())  # what a command that succeeds prints (JSON for train)
    return printed[:100] + " ..." if len(printed) > 100 else printed or "(none)"


def run_case(case: Case, sandbox: Sandbox, here: Path) -> Outcome:
    here.mkdir(parents=True, exist_ok=True)
    if case.setup:
        case.setup(sandbox, here)
    if case.kind == "python":
        return _run_python(case, sandbox, here)
    chmodded = None
    if case.read_only and not ROOT:
        chmodded = Path(sandbox.fill(case.read_only, here))
        chmodded.chmod(0o555)
    try:
        if case.kind == "together":
            codes, err, out = _together(case, sandbox, here)
        else:
            codes, err, out = _single(case, sandbox, here)
    finally:
        if chmodded is not None:
            chmodded.chmod(0o755)
    problems = [] if codes == case.expect else [f"exit {codes}, expected {case.expect}"]
    if case.check:
        problems += case.check(sandbox, here)
    text = sandbox.anonymous(_message(err, out), here)
    return Outcome(codes, text, "Traceback (most recent call last)" in err + out, problems)


def _single(case: Case, sandbox: Sandbox, here: Path) -> tuple[str, str, str]:
    argv = _wrapped(sandbox.argv(case.command, here), case, sandbox, here)
    proc = subprocess.Popen(argv, cwd=here, env=sandbox.env(case.env, here), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limits(case))
    if case.kind == "signal":
        deadline = time.monotonic() + TIMEOUT
        waited = Path(sandbox.fill(case.wait_for, here)) if case.wait_for else None
        start = time.monotonic()
        while proc.poll() is None and time.monotonic() < deadline:
            if waited is not None and (list(waited.parent.glob(waited.name)) if "*" in
                                       waited.name else waited.exists()):
                break
            if waited is None and time.monotonic() - start >= case.delay:
                break
            time.sleep(0.02)
        time.sleep(case.delay if waited is not None else 0)
        if proc.poll() is None:
            proc.send_signal(getattr(signal, case.signal))
    out, err = proc.communicate(timeout=TIMEOUT)
    return str(proc.returncode), err, out


def _together(case: Case, sandbox: Sandbox, here: Path) -> tuple[str, str, str]:
    env = sandbox.env(case.env, here)
    procs = [subprocess.Popen(sandbox.argv(line, here), cwd=here, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=_limits(case))
             for line in (case.command, case.second)]
    results = [p.communicate(timeout=TIMEOUT) for p in procs]
    codes = ", ".join(sorted(str(p.returncode) for p in procs))
    return codes, "".join(e for _, e in results), "".join(o for o, _ in results)


def _run_python(case: Case, sandbox: Sandbox, here: Path) -> Outcome:
    import torch
    from torch import nn

    import spikequant
    from spikequant.export import IntegerNetwork, load_packed
    from spikequant.models import build

    space = {"torch": torch, "nn": nn, "spikequant": spikequant, "build": build,
             "quantize_model": spikequant.quantize_model, "IntegerNetwork": IntegerNetwork,
             "load_packed": load_packed, **sandbox.paths(here)}
    try:
        result = eval(sandbox.fill(case.command, here), space)  # noqa: S307 - our own cases
    except Exception as err:  # noqa: BLE001 - what the user would see is the outcome
        code = f"raises {type(err).__name__}"
        line = sandbox.anonymous(" ".join(str(err).split()), here)
        problems = [] if code == case.expect else [f"{code}, expected {case.expect}"]
        if not type(err).__module__.startswith("spikequant"):
            problems.append(f"{type(err).__name__} is not a spikequant.errors type")
        return Outcome(code, line, False, problems)
    return Outcome("returns", type(result).__name__, False,
                   [] if case.expect == "returns" else [f"returned, expected {case.expect}"])


def table(cases: list[Case], outcomes: list[Outcome], sandbox: Sandbox) -> str:
    """The Markdown table of every case and its outcome, with a summary line under it."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    rows = ["| # | case | command | exit | first line of the message | verdict |",
            "|---:|---|---|---|---|---|"]
    for i, (case, got) in enumerate(zip(cases, outcomes), 1):
        env = " ".join(f"{k}={sandbox.shown(v)}" for k, v in case.env.items())
        command = sandbox.shown(case.command)
        if case.kind == "together":
            command = f"{command} & {sandbox.shown(case.second)}"
        if case.kind == "signal":
            command += f"; then {case.signal}"
        if case.read_only:
            command += f" ({sandbox.shown(case.read_only)} read-only)"
        if case.full:
            command += f" ({sandbox.shown(case.full)} full)"
        shown = f"{env} {command}".strip()
        rows.append(f"| {i} | {cell(case.group + ': ' + case.what)} | `{cell(shown)}` | "
                    f"{cell(got.code)} | {cell(got.line)} | {cell(verdict(got))} |")
    tracebacks = sum(o.traceback for o in outcomes)
    wrong = sum(bool(o.problems) for o in outcomes)
    rows.append("")
    rows.append(f"{len(cases)} cases: {tracebacks} tracebacks, {wrong} with an unexpected exit "
                "status, a wrong result or a lost file.")
    return "\n".join(rows) + "\n"


def verdict(got: Outcome) -> str:
    """"ok", or what went wrong: a traceback, an unexpected status, a failed check."""
    if got.traceback:
        return "; ".join(["traceback", *got.problems])
    return "; ".join(got.problems) or "ok"


def clean(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
