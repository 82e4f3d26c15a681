"""The CLI keeps freed large CPU buffers for reuse (glibc mallopt) when it starts, before torch
loads, unless the user chose otherwise; and it no longer forces torch's 2 MiB-page allocation."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("import os, sys, spikequant.cli, spikequant._cpu_memory as m; "
         "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded'); "
         "print('applied' if m._applied else 'not applied'); "
         "print(os.environ.get('THP_MEM_ALLOC_ENABLE'))")
USER_VARS = ("THP_MEM_ALLOC_ENABLE", "SPIKEQUANT_MALLOPT", "MALLOC_MMAP_THRESHOLD_",
             "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="mallopt is glibc's (Linux)")


def _run(script: str, **env: str) -> list[str]:
    """The words `script` prints in a fresh Python process without the user's allocator
    variables, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in USER_VARS}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**base, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def _probe(**env: str) -> list[str]:
    return _run(PROBE, **env)


@glibc_linux
def test_cli_keeps_freed_memory_before_torch_loads():
    out = _probe()
    assert out[:3] == ["torch", "not", "loaded"]
    assert out[3] == "applied"
    assert out[-1] == "None"  # THP allocation is left to the user


@glibc_linux
@pytest.mark.parametrize("env", [{"SPIKEQUANT_MALLOPT": "0"},
                                 {"MALLOC_MMAP_THRESHOLD_": "131072"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}])
def test_a_users_choice_wins(env):
    assert _probe(**env)[3:5] == ["not", "applied"]


def test_a_users_thp_setting_is_kept():
    assert _probe(THP_MEM_ALLOC_ENABLE="1")[-1] == "1"


STEPS = """
import resource, spikequant._cpu_memory as m; m.keep_freed_memory(); import torch
lin = torch.nn.Linear(8192, 1024, bias=False)  # a 32 MB weight
x = torch.randn(16, 8192)
def step():  # a fresh weight-sized tensor and gradient each step, as a quantized layer makes
    lin.weight.grad = None
    torch.nn.functional.linear(x, lin.weight * 1).sum().backward()
for _ in range(4): step()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10): step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _faults(**env: str) -> int:
    return int(_run(STEPS, **env)[-1])


@glibc_linux
def test_steps_reuse_freed_buffers_instead_of_faulting_pages_in():
    """What the setting is for: ten steps fault a fraction of the pages they do without it
    (measured: 8-33 k against ~247 k)."""
    kept, default = _faults(), _faults(SPIKEQUANT_MALLOPT="0")
    assert default > 100_000
    assert kept < default / 4


API_PROBE = ("import sys, spikequant, spikequant._cpu_memory as m; "
             "print(spikequant.keep_freed_memory(), m._applied, 'torch' in sys.modules)")


def _api_probe(**env: str) -> list[str]:
    return _run(API_PROBE, **env)


@glibc_linux
def test_the_python_api_offers_it():
    """`spikequant.keep_freed_memory()` in a fresh process raises the thresholds (without
    loading torch) and says so; turned off, it leaves them and says that."""
    assert _api_probe() == ["True", "True", "False"]
    assert _api_probe(SPIKEQUANT_MALLOPT="0") == ["False", "False", "False"]
