"""The CLI turns on torch's 2 MiB-page CPU allocation before torch loads, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = ("import os, sys, spikequant.cli; "
         "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded'); "
         "print(os.environ.get('THP_MEM_ALLOC_ENABLE'))")


def _probe(**env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env={**base, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_cli_sets_thp_before_torch_loads():
    out = _probe()
    assert out[:3] == ["torch", "not", "loaded"] and out[-1] == "1"


def test_a_users_choice_wins():
    assert _probe(THP_MEM_ALLOC_ENABLE="0")[-1] == "0"
