"""Guarantees about runs and the files they write (issue 13, items 3, 8, 10 and 11): --resume
continues or refuses, never silently does something else; no run, export or crash destroys
another's files; a full disk or a bad --out is one line, not a traceback."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from _helpers import forbid_data, one_line_error, run_cli, saved_checkpoint, train_argv
from spikequant.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WEIGHT = "conv1.parametrizations.weight.original"


# ----------------------------------------------------------------------------- --resume


def test_resume_with_more_epochs_keeps_learning(tmp_path, ndigits_dir, capsys, fast_eval):
    """The README's "train 12, then resume to 20", at 1 then 2 epochs: the added epoch must
    train (it ran at learning rate 0, weights unchanged) on a schedule stretched to 2."""
    out = tmp_path / "run"
    flags = ("--quantizer-option", "temperature_schedule=cosine",
             "--quantizer-option", "t_max=10")
    assert run_cli(train_argv(out, ndigits_dir, "-e", "1", *flags), capsys)[0] == 0
    first = load_checkpoint(out / "last.pt")
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "2", "--resume", *flags), capsys)
    assert code == 0, err
    second = load_checkpoint(out / "last.pt")
    assert second["epoch"] == 2
    assert not torch.equal(first["model"][WEIGHT], second["model"][WEIGHT])
    assert second["lr_scheduler"]["last_epoch"] == 2
    assert second["temperature"]["total_epochs"] == 2


def test_resume_with_fewer_epochs_than_done_is_refused(tmp_path, ndigits_dir, capsys,
                                                       fast_eval):
    out = tmp_path / "run"
    assert run_cli(train_argv(out, ndigits_dir, "-e", "2"), capsys)[0] == 0
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "1", "--resume"), capsys)
    assert code == 2 and "already trained 2 epochs" in one_line_error(err)


@pytest.mark.parametrize("change", [("--per-channel",), ("--exclude", "conv1"),
                                    ("--optimizer", "sgd"), ("--lr", "0.01"),
                                    ("--batch-size", "8")])
def test_resume_refuses_settings_that_cannot_change(change, tmp_path, ndigits_dir, capsys,
                                                    fast_eval, monkeypatch):
    out = tmp_path / "run"
    assert run_cli(train_argv(out, ndigits_dir, "-e", "1"), capsys)[0] == 0
    before = (out / "last.pt").read_bytes()
    forbid_data(monkeypatch)
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "2", "--resume", *change), capsys)
    assert code == 2
    line = one_line_error(err)
    name = change[0].removeprefix("--").replace("-", "_")
    assert "can't change on resume" in line and name in line
    assert (out / "last.pt").read_bytes() == before


def test_resume_without_a_checkpoint_refuses_a_folder_with_files(tmp_path, capsys,
                                                                 monkeypatch):
    forbid_data(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = run_cli(train_argv(out, tmp_path, "--resume"), capsys)
    assert code == 2
    assert "no last.pt" in one_line_error(err) and "notes.txt" in err


def test_resume_of_a_new_folder_starts_fresh_and_says_so(tmp_path, ndigits_dir, capsys,
                                                         fast_eval):
    out = tmp_path / "new"
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "1", "--resume"), capsys)
    assert code == 0
    assert "nothing to resume" in err and "starting a new run" in err
    assert load_checkpoint(out / "last.pt")["epoch"] == 1


# ------------------------------------------------------------------- files of other runs


def test_export_never_overwrites_its_checkpoint_and_needs_force(tmp_path, capsys):
    ckpt = saved_checkpoint(tmp_path / "last.pt")
    original = ckpt.read_bytes()
    for extra in ((), ("--force",)):
        code, err = run_cli(["export", "--checkpoint", ckpt, "--out", ckpt, *extra], capsys)
        assert code == 2 and "itself" in one_line_error(err)
        assert ckpt.read_bytes() == original
    other = tmp_path / "model.sqp"
    other.write_text("someone's file")
    code, err = run_cli(["export", "--checkpoint", ckpt, "--out", other], capsys)
    assert code == 2 and "--force" in one_line_error(err)
    assert other.read_text() == "someone's file"
    assert run_cli(["export", "--checkpoint", ckpt, "--out", other, "--force"], capsys)[0] == 0
    assert other.read_bytes()[8:9] == b"{"  # a safetensors header now


def test_export_writes_a_name_near_the_length_limit(tmp_path, capsys):
    ckpt = saved_checkpoint(tmp_path / "last.pt")
    out = tmp_path / ("m" * 236 + ".sqp")  # 240 bytes: a valid name
    code, err = run_cli(["export", "--checkpoint", ckpt, "--out", out], capsys)
    assert code == 0, err
    assert out.is_file()


LOCK_HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"pid {os.getpid()} on host elsewhere".encode())
    print("locked", flush=True)
    time.sleep(60)
""")


def test_a_second_train_on_the_same_folder_is_refused_naming_the_holder(tmp_path, capsys,
                                                                         monkeypatch):
    forbid_data(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, err = run_cli(train_argv(out, tmp_path, "-e", "1"), capsys)
        assert code == 2
        assert "in use" in one_line_error(err) and f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("foreign", ["metrics.json", "log.csv"])
def test_a_fresh_run_does_not_overwrite_foreign_files(foreign, tmp_path, capsys, monkeypatch):
    forbid_data(monkeypatch)
    out = tmp_path / "run"
    out.mkdir()
    (out / foreign).write_text("results of something else\n")
    code, err = run_cli(train_argv(out, tmp_path, "-e", "1"), capsys)
    assert code == 2 and foreign in one_line_error(err)
    assert (out / foreign).read_text() == "results of something else\n"


def test_a_failed_best_write_is_redone_when_resumed(tmp_path, ndigits_dir, capsys, fast_eval,
                                                    monkeypatch):
    """Disk full while epoch 2 (the best) is saved: the resumed run must still end with
    best.pt = epoch 2, even though epoch 3 is worse."""
    fast_eval.update({1: 0.5, 2: 0.7, 3: 0.6})
    real_replace = os.replace
    failures = []

    def replace(src, dst, *args, **kwargs):
        if os.fspath(dst).endswith("best.pt") and not failures and "epoch 2" in fast_eval_log:
            failures.append(dst)
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(dst))
        return real_replace(src, dst, *args, **kwargs)

    fast_eval_log: list[str] = []
    from spikequant.train import trainer

    real_epoch = trainer.train_epoch

    def counting_epoch(run, *args, **kwargs):
        fast_eval_log.append(f"epoch {run.epoch + 1}")
        return real_epoch(run, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", counting_epoch)
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / "run"
    try:
        code, err = run_cli(train_argv(out, ndigits_dir, "-e", "3"), capsys)
    except OSError:
        code, err = None, ""
    assert failures, "the injected disk-full error did not happen"
    first_code, first_err = code, err
    code, err = run_cli(train_argv(out, ndigits_dir, "-e", "3", "--resume"), capsys)
    assert code == 0, err
    assert load_checkpoint(out / "best.pt")["epoch"] == 2
    assert load_checkpoint(out / "last.pt")["epoch"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and metrics["best_test_accuracy"] == 0.7
    # and the failure itself was one line naming the file
    assert first_code == 2 and "No space left" in one_line_error(first_err)
    assert str(failures[0]) in first_err


def test_a_full_disk_while_saving_is_one_line_naming_the_file(tmp_path, ndigits_dir, capsys,
                                                              fast_eval):
    """A real write failure (file size limit, as a full disk fails the write), not a
    monkeypatch: torch.save's zip writer turned it into 'unexpected pos ...'."""
    from spikequant.data import get_dataset

    get_dataset("ndigits", "train", data_dir=str(ndigits_dir), progress=False)  # cached first
    out = tmp_path / "run"
    out.mkdir()
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, limit[1]))  # a checkpoint is 2.6 MB
    try:
        code, err = run_cli(train_argv(out, ndigits_dir, "-e", "1"), capsys)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert code == 2
    line = one_line_error(err)
    assert "File too large" in line and str(out) in line
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # no half-written file


def _killed_writer(target):
    """A process killed by SIGKILL while it wrote `target` atomically."""
    from spikequant._atomic import atomic_write

    pid = os.fork()
    if pid == 0:  # the child writes part of the file, then dies as `kill -9` makes it
        def write(fh):
            fh.write(b"x" * 100_000)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        try:
            atomic_write(target, write)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    left = [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]
    assert left, "the killed writer left no temporary file to clean"
    return left


def test_temporaries_of_killed_writers_are_removed(tmp_path, ndigits_dir, capsys, fast_eval):
    out = tmp_path / "run"
    out.mkdir()
    _killed_writer(out / "last.pt")
    assert run_cli(train_argv(out, ndigits_dir, "-e", "1"), capsys)[0] == 0
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    models = tmp_path / "models"
    models.mkdir()
    _killed_writer(models / "a.sqp")
    ckpt = saved_checkpoint(tmp_path / "ckpt.pt")
    assert run_cli(["export", "--checkpoint", ckpt, "--out", models / "b.sqp"], capsys)[0] == 0
    assert sorted(p.name for p in models.iterdir()) == ["b.sqp"]


def test_a_live_writers_temporary_is_kept(tmp_path):
    from spikequant._atomic import remove_stale_temporaries, temporary_name

    live = tmp_path / temporary_name()  # this process's pid: alive
    live.write_bytes(b"in progress")
    assert remove_stale_temporaries(tmp_path) == [] and live.exists()


# ------------------------------------------------------------------------- a bad --out


@pytest.mark.parametrize("case", ["a file", "a long name", "read-only"])
def test_a_bad_out_is_one_line_before_any_data(case, tmp_path, capsys, monkeypatch):
    forbid_data(monkeypatch)
    if case == "a file":
        out = tmp_path / "taken"
        out.write_text("a file")
    elif case == "a long name":
        out = tmp_path / ("r" * 300)
    elif os.geteuid() != 0:
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o500)
        out = readonly / "run"
    else:  # root writes through permission bits; sysfs refuses even root
        out = "/sys/spikequant-test-run"
    start = time.perf_counter()
    code, err = run_cli(train_argv(out, tmp_path, "-e", "1"), capsys)
    assert code == 2 and "--out" in one_line_error(err)
    assert time.perf_counter() - start < 30
