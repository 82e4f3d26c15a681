"""Guarantees about the environment and the caches: every SPIKEQUANT_* variable is checked when
a command starts (one line naming the variable, its value and what it takes, never a
traceback), and a kernel or frame cache that cannot be written is a warning naming it and the
setting that moves it, the command going on without it.

Each test failed on the code before these guarantees: SPIKEQUANT_KERNELS=banana ended in a
traceback, SPIKEQUANT_MALLOPT=maybe was taken silently, and an unusable cache folder stopped
the command with `No such file or directory: /proc/x`."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _helpers import one_line_error, run_cli, train_argv
from _writers import make_nmnist
from spikequant import environment
from spikequant.errors import CacheUnavailableWarning, ConfigError

pytestmark = pytest.mark.usefixtures("one_torch_thread", "quiet_partial_datasets")

BAD_VALUES = [
    ("SPIKEQUANT_KERNELS", "banana", "auto, torch or triton"),
    ("SPIKEQUANT_MALLOPT", "maybe", "on (1, on, true, yes) or off (0, off, false, no)"),
    ("SPIKEQUANT_FUZZ_EXAMPLES", "lots", "an integer >= 1"),
    ("SPIKEQUANT_FUZZ_EXAMPLES", "0", "an integer >= 1"),
]


@pytest.fixture
def clean_environment(monkeypatch):
    """No SPIKEQUANT_* variable of the user's or the test run's leaks into the test."""
    for name in list(environment.VARIABLES):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def fresh_kernels():
    """The compiled kernels built again under the test's environment, and after it."""
    from spikequant.quant import cpu_kernel as quant_kernel
    from spikequant.snn import cpu_kernel as snn_kernel

    kernels = (quant_kernel.KERNEL, snn_kernel.KERNEL)
    for k in kernels:
        k.reset()
    yield kernels
    for k in kernels:
        k.reset()


def test_every_variable_spikequant_reads_is_declared():
    """The declaration is the one list: every SPIKEQUANT_ name in the sources is in it."""
    import re

    src = Path(environment.__file__).parent
    named = set()
    for path in src.rglob("*.py"):
        named.update(re.findall(r"SPIKEQUANT_[A-Z_]+[A-Z]", path.read_text()))
    fuzz = Path(__file__).parents[1] / "data" / "test_data_fuzz.py"
    named.update(re.findall(r"SPIKEQUANT_[A-Z_]+[A-Z]", fuzz.read_text()))
    assert named <= set(environment.VARIABLES)


@pytest.mark.parametrize("name, value, accepted", BAD_VALUES)
@pytest.mark.parametrize("command", [["models"], ["datasets"], ["export", "-c", "x", "-o", "y"]])
def test_a_bad_value_is_one_line_naming_it_for_every_command(name, value, accepted, command,
                                                              clean_environment, capsys):
    clean_environment.setenv(name, value)
    code, err = run_cli(command, capsys)
    line = one_line_error(err)
    assert code == 2
    assert line.startswith(f"spikequant {command[0]}: error: environment variable "
                           f"{name}={value!r}")
    assert accepted in line and "unset it for the default" in line


def test_train_with_a_bad_kernel_mode_stops_before_any_data(tmp_path, clean_environment,
                                                            capsys, no_data):
    clean_environment.setenv("SPIKEQUANT_KERNELS", "banana")
    code, err = run_cli(train_argv(tmp_path / "run", tmp_path), capsys)
    assert code == 2 and "SPIKEQUANT_KERNELS='banana'" in one_line_error(err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, on", [("1", True), ("on", True), ("TRUE", True), ("yes", True),
                                      ("0", False), ("off", False), ("False", False),
                                      (" no ", False), ("", None)])
def test_on_and_off_spellings(text, on, clean_environment):
    clean_environment.setenv("SPIKEQUANT_MALLOPT", text)
    assert environment.value("SPIKEQUANT_MALLOPT") is on


def test_the_python_api_raises_a_config_error(clean_environment):
    import spikequant._cpu_memory as memory
    import spikequant._kernels as kernels

    clean_environment.setenv("SPIKEQUANT_MALLOPT", "maybe")
    clean_environment.setattr(memory, "_applied", False)
    with pytest.raises(ConfigError, match="SPIKEQUANT_MALLOPT='maybe'"):
        memory.keep_freed_memory()
    clean_environment.setenv("SPIKEQUANT_KERNELS", "fast")
    clean_environment.setattr(kernels, "_mode", None)  # read again at the next use
    with pytest.raises(ConfigError, match="SPIKEQUANT_KERNELS='fast'.*auto, torch or triton"):
        kernels.use_triton(torch.zeros(2))


def test_triton_without_a_gpu_names_the_device_the_run_uses(tmp_path, ndigits_dir,
                                                            clean_environment, capsys):
    """SPIKEQUANT_KERNELS=triton on a CPU run: the memory estimate (meta tensors) is not where
    it stops; the line names the CPU and the setting to use instead."""
    import spikequant._kernels as kernels

    if kernels.triton_import_error() is not None:
        pytest.skip("triton does not import here: the line names that instead")
    clean_environment.delenv("TRITON_INTERPRET", raising=False)
    clean_environment.setenv("SPIKEQUANT_KERNELS", "triton")
    clean_environment.setattr(kernels, "_mode", None)
    assert kernels.use_triton(torch.zeros(2, device="meta")) is False
    code, err = run_cli(train_argv(tmp_path / "run", ndigits_dir), capsys)
    line = one_line_error(err)
    assert code == 2 and "meta" not in line
    assert "SPIKEQUANT_KERNELS=triton runs Triton on cpu tensors only under" in line
    assert "SPIKEQUANT_KERNELS=auto" in line


def test_an_unknown_spikequant_variable_is_a_warning_with_the_likely_name(clean_environment,
                                                                          capsys):
    clean_environment.setenv("SPIKEQUANT_KERNEL", "torch")
    code, err = run_cli(["models"], capsys)
    assert code == 0
    assert ("spikequant models: warning: environment variable SPIKEQUANT_KERNEL is not one "
            "spikequant reads; did you mean SPIKEQUANT_KERNELS?") in err


def test_one_cache_root_for_kernels_data_and_frames(clean_environment, tmp_path):
    clean_environment.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    from spikequant import _cpu_kernels
    from spikequant.data import default_data_dir
    from spikequant.data.cache import writable_cache_root

    home = tmp_path / "xdg" / "spikequant"
    assert environment.cache_home() == home
    assert _cpu_kernels.cache_dir() == home
    assert default_data_dir() == home / "data"
    read_only = tmp_path / "a file"
    read_only.write_text("")
    root, origin = writable_cache_root(read_only, None)  # frames_cache can't be made there
    assert root.parent == home / "frames" and "XDG_CACHE_HOME" in origin
    clean_environment.setenv("SPIKEQUANT_FRAME_CACHE", str(tmp_path / "frames"))
    assert writable_cache_root(read_only, None) == (tmp_path / "frames",
                                                    "$SPIKEQUANT_FRAME_CACHE")


# ----------------------------------------------------------------------------- caches


@pytest.mark.parametrize("where", ["missing", "under a file", "full"])
def test_an_unusable_kernel_cache_leaves_the_torch_ops_with_a_warning(
        where, tmp_path, clean_environment, fresh_kernels, monkeypatch):
    from spikequant import _cpu_kernels

    if _cpu_kernels.compiler() is None:
        pytest.skip("no C compiler: the kernels are never built here")
    blocker = tmp_path / "a file"
    blocker.write_text("")
    if where == "missing":  # XDG_CACHE_HOME names a place nothing can be created in
        clean_environment.setenv("XDG_CACHE_HOME", "/proc/spikequant-test")
        shown, variable = "/proc/spikequant-test/spikequant", "$XDG_CACHE_HOME"
    else:
        folder = blocker / "kernels" if where == "under a file" else tmp_path / "kernels"
        clean_environment.setenv("SPIKEQUANT_CPU_KERNEL_DIR", str(folder))
        shown, variable = str(folder), "$SPIKEQUANT_CPU_KERNEL_DIR"
    if where == "full":
        def no_space(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(_cpu_kernels.tempfile, "mkstemp", no_space)
    _cpu_kernels._warn_unusable_cache.cache_clear()
    with pytest.warns(CacheUnavailableWarning) as caught:
        reasons = [k.unavailable_reason() for k in fresh_kernels]
    assert all(r and shown in r for r in reasons)
    ours = [w for w in caught if w.category is CacheUnavailableWarning]
    assert len(ours) == 1  # once, not once per kernel
    message = str(ours[0].message)
    assert "compiled CPU kernel cache" in message and shown in message and variable in message
    assert "SPIKEQUANT_CPU_KERNEL_DIR" in message and "torch ops run instead" in message


def test_training_goes_on_without_the_kernel_cache(tmp_path, ndigits_dir, clean_environment,
                                                   fresh_kernels, capsys, fast_eval):
    from spikequant import _cpu_kernels

    if _cpu_kernels.compiler() is None:
        pytest.skip("no C compiler: the kernels are never built here")
    clean_environment.setenv("XDG_CACHE_HOME", "/proc/spikequant-test")
    _cpu_kernels._warn_unusable_cache.cache_clear()
    with pytest.warns(CacheUnavailableWarning, match="SPIKEQUANT_CPU_KERNEL_DIR"):
        code, err = run_cli(train_argv(tmp_path / "run", ndigits_dir), capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "last.pt").is_file()


def test_the_default_data_folder_in_an_unusable_place_names_the_variable(
        tmp_path, clean_environment, capsys):
    clean_environment.setenv("XDG_CACHE_HOME", "/proc/spikequant-test")
    clean_environment.setenv("SPIKEQUANT_CPU_KERNEL_DIR", str(tmp_path / "kernels"))
    code, err = run_cli(["train", "--dataset", "ndigits", "--out", tmp_path / "run",
                         "--max-batches", "1", "--no-progress"], capsys)
    line = one_line_error(err)
    assert code == 2
    assert "/proc/spikequant-test/spikequant/data" in line
    assert "XDG_CACHE_HOME" in line and "--data-dir" in line and "SPIKEQUANT_DATA" in line


def _frames(dataset) -> list[np.ndarray]:
    return [dataset[i][0].numpy() for i in range(len(dataset))]


@pytest.mark.parametrize("where", ["under a file", "full after the first entry"])
def test_an_unusable_frame_cache_computes_frames_in_memory(where, tmp_path, clean_environment,
                                                           monkeypatch):
    from spikequant.data import cache as cache_module
    from spikequant.data import get_dataset

    make_nmnist(tmp_path / "data", per_class=1)
    blocker = tmp_path / "a file"
    blocker.write_text("")
    folder = blocker / "frames" if where == "under a file" else tmp_path / "frames"
    clean_environment.setenv("SPIKEQUANT_FRAME_CACHE", str(folder))
    if where.startswith("full"):
        real_write, writes = cache_module.atomic_write, []

        def fills_up(path, write):
            if Path(path).suffix == ".npy":
                writes.append(path)
                if len(writes) > 1:
                    raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real_write(path, write)

        monkeypatch.setattr(cache_module, "atomic_write", fills_up)
    options = dict(data_dir=tmp_path / "data", time_steps=2, progress=False)
    with pytest.warns(CacheUnavailableWarning) as caught:
        cached = get_dataset("nmnist", "train", **options)
        first = _frames(cached)
        again = _frames(cached)
    uncached = _frames(get_dataset("nmnist", "train", cache=False, **options))
    assert all(np.array_equal(a, b) for a, b in zip(first, uncached))
    assert all(np.array_equal(a, b) for a, b in zip(again, uncached))
    ours = [w for w in caught if w.category is CacheUnavailableWarning]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert "frame cache" in message and str(folder) in message
    assert "$SPIKEQUANT_FRAME_CACHE" in message and "computed from the recordings" in message
    if where.startswith("full"):
        assert len(writes) == 2  # after the failed write the cache is not tried again
        assert [p.suffix for p in folder.rglob("*") if p.is_file()].count(".npy") == 1


def test_train_reports_the_frame_cache_and_finishes(tmp_path, clean_environment, capsys):
    make_nmnist(tmp_path / "data", per_class=1)
    blocker = tmp_path / "a file"
    blocker.write_text("")
    clean_environment.setenv("SPIKEQUANT_FRAME_CACHE", str(blocker / "frames"))
    argv = ["train", "--dataset", "nmnist", "--model", "ndigits", "--out", tmp_path / "run",
            "--data-dir", tmp_path / "data", "--time-steps", "2", "--batch-size", "10",
            "--epochs", "1", "--max-batches", "1", "--no-progress"]
    with pytest.warns(CacheUnavailableWarning, match="frame cache .*Not a directory"):
        code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_completed"] == 1
