"""Paths as users give them: `--out`, `--data-dir` and `--config` with spaces and non-ASCII
characters, symbolic links (one onto another run's folder is refused like a second run on
it), and read-only folders (a read-only file system injected: the tests run as root here,
where permissions do not stop writes; benchmarks/trust_cases.py uses a real read-only mount).

Before these guarantees a broken or looping `--out` link was reported as "a part of the path
is a file", a `--config` folder as "not found", and a config file that is not UTF-8 without
its name."""

from __future__ import annotations

import builtins
import errno
import os
import shutil
from pathlib import Path

import pytest

from _helpers import one_line_error, run_cli, train_argv
from spikequant.export import load_packed
from spikequant.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ["with spaces in it", "dønnées ünïcode データ"]
TINY = "[train]\nmodel_overrides = {channels = 4}\ncalibration_samples = 16\n"


def read_only(folder: Path, monkeypatch) -> None:
    """Every write into `folder` fails as on a read-only file system (EROFS)."""
    folder = Path(folder)

    def inside(path) -> bool:
        try:
            return Path(os.fsdecode(path)).absolute().is_relative_to(folder)
        except TypeError:  # a file descriptor
            return False

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def open_(file, mode="r", *args, **kwargs):
        if inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if inside(path):
            if Path(path).exists():
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.mark.parametrize("name", NAMES)
def test_spaces_and_non_ascii_in_every_path(name, tmp_path, ndigits_dir, capsys, fast_eval):
    base = tmp_path / name
    data = base / "data"
    shutil.copytree(ndigits_dir / "NDIGITS", data / "NDIGITS")
    config = base / f"{name}.toml"
    config.write_text(TINY)
    out = base / f"run {name}"
    code, err = run_cli(train_argv(out, data, "--config", config, "-e", "1"), capsys)
    assert code == 0, err
    assert load_checkpoint(out / "last.pt")["run"]["data_dir"] == str(data)
    packed = base / f"{name}.sqp"
    code, err = run_cli(["export", "-c", out / "last.pt", "-o", packed], capsys)
    assert code == 0, err
    assert load_packed(packed)[0] is not None


def test_a_link_onto_a_finished_run_is_refused_like_a_second_run(tmp_path, ndigits_dir, capsys,
                                                                 fast_eval):
    real = tmp_path / "real"
    assert run_cli(train_argv(real, ndigits_dir, "-e", "1"), capsys)[0] == 0
    before = (real / "last.pt").read_bytes()
    (real / ".lock").write_text("pid 1 on host owner, started then\n")  # the run's own record
    link = tmp_path / "link"
    link.symlink_to(real)
    code, err = run_cli(train_argv(link, ndigits_dir), capsys)
    line = one_line_error(err)
    assert code == 2
    assert f"{link} (a link to {real}) already holds a run" in line and "--resume" in line
    assert (real / "last.pt").read_bytes() == before
    assert (real / ".lock").read_text() == "pid 1 on host owner, started then\n"  # untouched
    code, err = run_cli(train_argv(link, ndigits_dir, "-e", "2", "--resume"), capsys)
    assert code == 0, err  # --resume through the link continues the run, as in its folder
    assert load_checkpoint(real / "last.pt")["epoch"] == 2


def test_a_link_onto_a_run_in_progress_is_refused_naming_its_holder(tmp_path, capsys,
                                                                    no_data):
    from spikequant.train.runfolder import _lock, _record_holder

    real = tmp_path / "real"
    real.mkdir()
    held = _lock(real)  # as a `train` running on it holds it
    _record_holder(held, real)
    try:
        link = tmp_path / "link"
        link.symlink_to(real)
        code, err = run_cli(train_argv(link, tmp_path), capsys)
    finally:
        os.close(held)
    line = one_line_error(err)
    assert code == 2
    assert f"{link} (a link to {real}) is in use by another spikequant train (pid " in line


@pytest.mark.parametrize("target", ["nowhere", "loop"])
def test_a_broken_or_looping_link_as_out_is_one_line(target, tmp_path, capsys, no_data):
    link = tmp_path / "out"
    if target == "loop":
        (tmp_path / "other").symlink_to(link)
        link.symlink_to(tmp_path / "other")
    else:
        link.symlink_to(tmp_path / target)
    code, err = run_cli(train_argv(link, tmp_path), capsys)
    line = one_line_error(err)
    assert code == 2
    assert f"--out {link} is a symbolic link to " in line and "does not exist or loops" in line


def test_a_linked_data_dir_and_config_are_followed(tmp_path, ndigits_dir, capsys, fast_eval):
    data, config = tmp_path / "data-link", tmp_path / "config-link.toml"
    data.symlink_to(ndigits_dir)
    (tmp_path / "tiny.toml").write_text(TINY)
    config.symlink_to(tmp_path / "tiny.toml")
    code, err = run_cli(train_argv(tmp_path / "run", data, "--config", config, "-e", "1"),
                        capsys)
    assert code == 0, err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["model_config"]["channels"] == 4


def test_out_in_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch, no_data):
    locked = tmp_path / "read-only"
    locked.mkdir()
    (locked / "existing").mkdir()
    read_only(locked, monkeypatch)
    code, err = run_cli(train_argv(locked / "new", tmp_path), capsys)
    assert code == 2
    assert "cannot be created (Read-only file system)" in one_line_error(err)
    code, err = run_cli(train_argv(locked / "existing", tmp_path), capsys)
    assert code == 2
    assert "is not writable (Read-only file system)" in one_line_error(err)


def test_a_read_only_data_folder_with_its_frames_trains(tmp_path, ndigits_dir, capsys,
                                                        monkeypatch, fast_eval):
    data = tmp_path / "data"
    shutil.copytree(ndigits_dir / "NDIGITS", data / "NDIGITS")
    read_only(data, monkeypatch)
    code, err = run_cli(train_argv(tmp_path / "run", data, "-e", "1"), capsys)
    assert code == 0, err


def test_export_into_a_read_only_folder_is_one_line(tmp_path, capsys, monkeypatch):
    from _helpers import saved_checkpoint

    ckpt = saved_checkpoint(tmp_path / "last.pt")
    locked = tmp_path / "read-only"
    locked.mkdir()
    read_only(locked, monkeypatch)
    code, err = run_cli(["export", "-c", ckpt, "-o", locked / "model.sqp"], capsys)
    line = one_line_error(err)
    assert code == 2 and "Read-only file system" in line and "model.sqp" in line
    assert not list(locked.iterdir())
