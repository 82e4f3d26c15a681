"""Two processes filling one cache at once (a frame cache, the compiled-kernel cache) never read
a half-written entry: every entry is written under a temporary name and renamed into place,
so a reader sees no file or a whole one. The processes start together (they wait for a file
to appear) so that their writes and reads overlap."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _writers import make_nmnist
from spikequant import _cpu_kernels

pytestmark = pytest.mark.usefixtures("quiet_partial_datasets")

WAIT = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
"""

FILL_FRAMES = WAIT + """
import hashlib, warnings
from spikequant.data import get_dataset
from spikequant.data.cache import BadCacheEntryWarning
warnings.simplefilter("error", BadCacheEntryWarning)  # a half-written entry read: it fails
data = get_dataset("nmnist", "train", data_dir=sys.argv[2], time_steps=2, progress=False,
                   cache=sys.argv[3] == "cache")
digest = hashlib.sha256()
for _ in range(3):  # later passes read what the other process wrote meanwhile
    for i in range(len(data)):
        digest.update(data[i][0].numpy().tobytes())
print(digest.hexdigest())
"""

LOAD_KERNEL = WAIT + """
from spikequant.quant import cpu_kernel
print(cpu_kernel.KERNEL.unavailable_reason())
"""


def run_together(script: str, *args: str, env: dict | None = None, count: int = 2) -> list[str]:
    """stdout of `count` processes running `script` with `args`, started at the same moment."""
    go = Path(args[0])
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(count)]
    time.sleep(0.5)
    go.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def test_two_processes_filling_one_frame_cache_read_only_whole_entries(tmp_path):
    make_nmnist(tmp_path / "data", per_class=6)
    data = str(tmp_path / "data")
    first, second = run_together(FILL_FRAMES, str(tmp_path / "go"), data, "cache")
    (uncached,) = run_together(FILL_FRAMES, str(tmp_path / "go2"), data, "none", count=1)
    assert first == second == uncached
    cache = tmp_path / "data" / "frames_cache"
    assert len(list(cache.rglob("*.npy"))) == 60
    assert not [p for p in cache.rglob(".*") if p.name.endswith(".tmp")]


@pytest.mark.skipif(_cpu_kernels.compiler() is None, reason="no C compiler on this machine")
def test_two_processes_building_one_kernel_cache_both_load_it(tmp_path):
    shared = tmp_path / "kernels"
    env = dict(os.environ, SPIKEQUANT_CPU_KERNEL_DIR=str(shared))
    assert run_together(LOAD_KERNEL, str(tmp_path / "go"), env=env) == ["None", "None"]
    built = sorted(p.name for p in shared.iterdir())
    assert len(built) == 1 and built[0].startswith("binary_sigmoid-") and built[0].endswith(".so")
