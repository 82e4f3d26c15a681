"""Smoke tests of the benchmark scripts (benchmarks/), at tiny sizes on the ndigits network."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_training  # noqa: E402
import run_all  # noqa: E402


def _run(script: str, *args: str, tmp_path: Path) -> tuple[str, dict]:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def _check_training(tmp_path: Path, contenders: tuple[str, ...]) -> None:
    stdout, result = _run("bench_training.py", "--network", "ndigits", "--batch", "2",
                          "--time-steps", "2", "--repeats", "2", "--warmup", "1",
                          "--contenders", ",".join(contenders), tmp_path=tmp_path)
    rows = {r["contender"]: r for r in result["rows"]}
    assert set(rows) == set(contenders)
    for name, row in rows.items():
        assert row["error"] is None, (name, row["error"])
        assert len(row["ms_all"]) == 2 and row["ms_median"] > 0
        assert row["peak_rss_mib"] >= row["baseline_rss_mib"] > 0
        assert f"| {name} |" in stdout
    # every contender builds the same network: the float ones hold the same parameter count
    assert rows["spikequant-float"]["params"] == rows["spikingjelly-float"]["params"]
    assert rows["spikingjelly-float"]["ms_median_vs_spikingjelly"] == 1.0
    assert result["settings"]["command"].startswith("python ")
    assert "Machine:" in stdout and "Date:" in stdout
    # one optimizer for all, as `spikequant train` builds it, and the table says which
    assert len({row["optimizer"] for row in rows.values()}) == 1
    assert "Optimizer, the same for every contender" in stdout


def test_training_benchmark_ours_beside_spikingjelly(tmp_path):
    pytest.importorskip("spikingjelly")
    _check_training(tmp_path, ("spikequant-float", "spikequant-sigmoid1b", "spikingjelly-float"))


@pytest.mark.slow
def test_training_benchmark_every_contender(tmp_path):
    pytest.importorskip("spikingjelly")
    pytest.importorskip("snntorch")
    pytest.importorskip("brevitas")
    _check_training(tmp_path, bench_training.CONTENDERS)


def test_inference_benchmark_packed_matches_checkpoint(tmp_path):
    stdout, result = _run("bench_inference.py", "--network", "ndigits", "--batch", "2",
                          "--time-steps", "2", "--batches", "2", "--repeats", "2",
                          "--load-repeats", "1", tmp_path=tmp_path)
    ckpt, packed = result["rows"]
    assert ckpt["source"] == "fake-quant checkpoint" and packed["source"] == "packed file"
    assert packed["file_bytes"] < ckpt["file_bytes"] / 5  # 1-bit codes against float32
    assert result["max_abs_score_difference"] < 1e-5 and result["same_predictions"]
    assert len(ckpt["eval_ms_all"]) == 2 and ckpt["eval_ms_per_batch"] > 0
    assert ckpt["quantize_once_ms"] > 0
    assert "| packed file |" in stdout and "parametrize.cached()" in stdout


def test_peer_networks_match_ours():
    pytest.importorskip("spikingjelly")
    pytest.importorskip("snntorch")
    pytest.importorskip("brevitas")
    import torch

    import peers
    from spikequant.models import build_float_on_meta, count_parameters

    for network in ("ndigits", "dvsgesture", "nmnist", "cifar10dvs"):
        ours = build_float_on_meta(network)
        assert peers.SPECS[network].input_shape == tuple(ours.input_shape)
        with torch.device("meta"):  # no memory, no init cost
            sj = peers.build_peer("spikingjelly", network)
        assert count_parameters(sj) == count_parameters(ours), network
    # Brevitas reads weight values at construction: build the small one for real
    snn = peers.build_peer("snntorch-brevitas", "ndigits")
    assert count_parameters(snn) == count_parameters(build_float_on_meta("ndigits"))
    scores = snn(torch.ones(2, 3, *peers.SPECS["ndigits"].input_shape))
    assert scores.shape == (3, 10)
    scores.sum().backward()
    assert snn.fc2.weight.grad is not None
    with pytest.raises(ValueError, match="no peer network"):
        peers.spec_for("ncaltech101")


TRAINING_RUNS = [r for r in run_all.CUDA_RUNS + run_all.CPU_RUNS if r[1] == "bench_training.py"]


@pytest.mark.parametrize("title,script,extra", TRAINING_RUNS)
def test_listed_commands_parse(title, script, extra):
    """The commands BENCHMARKS.md lists (GPU ones included) are valid for the scripts."""
    assert script == "bench_training.py"
    args = bench_training.parse_args(extra)
    assert args.network in ("nmnist", "dvsgesture", "cifar10dvs")
    if "GPU" in title:
        assert args.device == "cuda" and args.batch == 16
    assert shlex.split(run_all.command(script, extra))[1] == "benchmarks/bench_training.py"


def test_amp_on_cpu_is_refused():
    with pytest.raises(SystemExit):
        bench_training.parse_args(["--device", "cpu", "--amp"])


def test_unknown_contender_is_refused():
    with pytest.raises(ValueError, match="unknown contender"):
        bench_training.check_contender("spikequant-float+per-step")
    with pytest.raises(SystemExit, match="unknown contender"):
        bench_training.measure(bench_training.parse_args(["--contenders", "norse-float"]))


def test_every_contender_gets_the_trainers_optimizer():
    import torch

    from spikequant.train import TrainConfig
    from spikequant.train.optim import make_optimizer

    model = torch.nn.Linear(3, 2)
    ours = bench_training.make_optimizer(model)
    trainer = make_optimizer(model, TrainConfig())
    assert type(ours) is type(trainer) and ours.defaults == trainer.defaults
    assert bench_training.optimizer_name(ours).startswith("Adam(lr=0.001, fused=")


NOT_SCRIPTS = ("machine.py", "peers.py", "trust_harness.py",
               "epoch_split.py")  # modules the scripts import


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")
                                          if p.name not in NOT_SCRIPTS))
def test_help(script):
    done = subprocess.run([sys.executable, str(BENCH / script), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout and "--" in done.stdout


def test_gpu_check_dry_run_does_every_step_on_the_cpu(tmp_path):
    """`benchmarks/gpu_check.sh --dry-run` (kernel tests under the interpreter, Triton against
    torch, the training-step harness) runs end to end and writes its report."""
    pytest.importorskip("spikingjelly")
    out = tmp_path / "gpu_check.md"
    done = subprocess.run(
        ["bash", str(BENCH / "gpu_check.sh"), "--dry-run", "--networks", "ndigits",
         "--pytest-args", '-k "modes or registered"', "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text()
    assert report.startswith("# spikequant GPU check: CPU dry run")
    assert report.strip() in done.stdout  # printed as well as written
    for heading in ("## Environment", "## Kernel tests", "## Kernels against torch",
                    "## Training step"):
        assert heading in report, heading
    assert "Triton interpreter): passed" in report and "2 passed" in report
    parity = [line for line in report.splitlines() if line.startswith("| PLIF neuron")
              or line.startswith("| sigmoid quantizer")]
    assert len(parity) == 3
    for line in parity:  # spikes identical, gradients equal to float32 rounding
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[4] in ("0.0e+00", "—") and float(cells[5].split()[0]) < 1e-5, line
    for name in ("spikequant-float", "spikequant-sigmoid1b", "spikingjelly-float"):
        row = next(line for line in report.splitlines() if f"| {name} |" in line)
        assert float(row.split("|")[5]) > 0, row
    assert not (tmp_path / "gpu_check_json").exists()  # its scratch files are removed


def test_epoch_benchmark_on_a_generated_nmnist_folder(tmp_path):
    stdout, result = _run("bench_epoch.py", "--datasets", "nmnist", "--recordings", "14",
                          "--batch-size", "4", "--time-steps", "2", "--phases", "cold",
                          "--epochs", "2", "--train-flags=--eval-every 2", tmp_path=tmp_path)
    (row,) = result["rows"]
    assert row.get("error") is None, row
    # 12 training recordings (6:1 split of 14) in batches of 4, two epochs
    assert row["steps"] == 6
    assert 0 < row["step_sum_s"] < row["epoch_s"] < row["wall_s"] < row["process_s"]
    assert row["overhead"] == pytest.approx(row["wall_s"] / row["step_sum_s"] - 1)
    assert "| nmnist format, 14 recordings | cold | 6 |" in stdout
    # the split: epoch 1 not evaluated, epoch 2 (the last) evaluated and tested
    first, last = row["split"]["epochs"]
    assert first["steps_count"] == last["steps_count"] == 3
    assert first["re-estimation"] == first["validation"] == first["test"] == 0
    assert last["re-estimation"] > 0 and last["validation"] > 0 and last["test"] > 0
    for epoch in (first, last):
        assert epoch["other"] > -0.01  # the phases never add up to more than the epoch


def test_the_generated_digits_folder_is_an_nmnist_dataset(tmp_path, monkeypatch):
    """make_nmnist_digits.py at 30 / 10 recordings: ATIS files spikequant reads as N-MNIST,
    stratified over the ten digits, train and test holding different digit images."""
    import make_nmnist_digits as gen
    from spikequant.data import get_dataset

    monkeypatch.setattr(gen, "TRAIN", 30)
    monkeypatch.setattr(gen, "TEST", 10)
    assert gen.make_folder(tmp_path, distort=1.0, noise=50) == {"Train": 30, "Test": 10}
    train = get_dataset("nmnist", "train", data_dir=tmp_path, time_steps=4, cache=False,
                        progress=False)
    test = get_dataset("nmnist", "test", data_dir=tmp_path, time_steps=4, cache=False,
                       progress=False)
    assert len(train) == 30 and len(test) == 10
    assert sorted(train.targets) == sorted(list(range(10)) * 3)
    frames, _ = train[0]
    assert frames.shape == (4, 2, 34, 34) and frames.sum() > 1000  # ~4,000 events
    names = {p.name for p in (tmp_path / "NMNIST" / "Train").rglob("*.bin")}
    assert not names & {p.name for p in (tmp_path / "NMNIST" / "Test").rglob("*.bin")}


def test_trust_cases_run_and_tabulate_a_few_cheap_cases(tmp_path):
    """Three cases of benchmarks/trust_cases.py through its harness (two of the Python API,
    one command in its own process): their outcomes, and the table naming no sandbox path."""
    import trust_cases
    from trust_harness import Sandbox

    chosen = {"bits=9", "a well-formed call still works", "SPIKEQUANT_KERNELS='banana'"}
    cases = list({c.what: c for c in reversed(trust_cases.every_case(("environment", "api")))
                  if c.what in chosen}.values())[::-1]  # the first case of each description
    assert [c.group for c in cases] == ["environment", "api", "api"]
    sandbox = Sandbox(tmp_path / "sandbox")  # these cases need none of its prepared files
    sandbox.root.mkdir()
    outcomes = trust_cases.run(cases, sandbox)
    assert [(o.code, o.problems, o.traceback) for o in outcomes] == [
        ("2", [], False), ("raises ConfigError", [], False), ("returns", [], False)]
    assert outcomes[0].line.startswith("spikequant models: error: environment variable "
                                       "SPIKEQUANT_KERNELS='banana' is not accepted")
    text = trust_cases.table(cases, outcomes, sandbox)
    assert "| 1 | environment: SPIKEQUANT_KERNELS='banana' | `SPIKEQUANT_KERNELS=banana " \
           "spikequant models` | 2 |" in text
    assert str(tmp_path) not in text and text.count("| ok |") == 3
    assert "3 cases: 0 tracebacks, 0 with an unexpected exit status" in text


def test_multilevel_benchmark_ratios_against_binary(tmp_path):
    stdout, result = _run("bench_multilevel.py", "--network", "ndigits", "--batch", "2",
                          "--time-steps", "2", "--repeats", "2", "--warmup", "1",
                          "--temperature", "50", tmp_path=tmp_path)
    assert result["settings"]["temperature"] == 50.0
    assert "quantizer temperature 50" in stdout
    rows = {r["contender"]: r for r in result["rows"]}
    assert set(rows) == {"spikequant-sigmoid1b", "spikequant-sigmoid2b", "spikequant-sigmoid4b",
                         "spikequant-sigmoid2b-torchops", "spikequant-sigmoid4b-torchops"}
    assert all(r["error"] is None for r in rows.values())
    ratios = result["ratios_to_binary"]
    assert ratios["spikequant-sigmoid1b"] == {"wall": 1.0, "cpu": 1.0}
    two = rows["spikequant-sigmoid2b"]
    assert ratios["spikequant-sigmoid2b"]["wall"] == pytest.approx(
        two["ms_median"] / rows["spikequant-sigmoid1b"]["ms_median"])
    # 2 and 4 bits store more bits a weight: same parameter count, the table shows each row
    assert two["params"] == rows["spikequant-sigmoid1b"]["params"]
    for name in rows:
        assert f"| {name} |" in stdout
    assert "vs binary (wall)" in stdout and "Machine:" in stdout


def _fake_run(folder: Path, accuracy: float | None) -> None:
    folder.mkdir(parents=True)
    if accuracy is not None:
        (folder / "metrics.json").write_text(json.dumps({"finished": True,
                                                         "test_accuracy": accuracy}))


def test_nmnist_seed_table_pairs_each_seed_with_its_float_run(tmp_path):
    import nmnist_seed_table as seeds

    _fake_run(tmp_path / "float_s0", 0.90)
    _fake_run(tmp_path / "binary_s0", 0.88)
    _fake_run(tmp_path / "float_s1", 0.80)
    _fake_run(tmp_path / "binary_s1", 0.81)
    _fake_run(tmp_path / "float_s2", 0.99)  # its binary run has not finished: left out
    _fake_run(tmp_path / "binary_s2", None)
    table = seeds.table(tmp_path)
    assert "| 0 | 90.00 % | 88.00 % | +2.00 pts |" in table
    assert "| 1 | 80.00 % | 81.00 % | -1.00 pts |" in table
    assert "| 2 |" not in table
    # mean +- sample std over the two paired seeds: drops +2 and -1
    assert "| mean +- std (2 seeds) | 85.00 +- 7.07 % | 84.50 +- 4.95 % | +0.50 +- 2.12 pts |" \
        in table
    assert [v["out"] for v in seeds.missing_runs(tmp_path)] == [str(tmp_path / "binary_s2")]
    float_run = seeds.settings_of("float", 1, tmp_path)
    assert float_run["quantizer"] == "none" and float_run["seed"] == 1
    assert "quantizer" not in seeds.settings_of("binary", 1, tmp_path)  # the defaults
    assert float_run["data_dir"] == str(tmp_path / "data")


def test_training_benchmark_pools_a_contenders_processes(tmp_path):
    _, result = _run("bench_training.py", "--network", "ndigits", "--batch", "2",
                     "--time-steps", "2", "--repeats", "2", "--warmup", "1", "--processes", "2",
                     "--contenders", "spikequant-float,spikequant-sigmoid2b", tmp_path=tmp_path)
    assert result["settings"]["processes"] == 2
    for row in result["rows"]:
        assert row["error"] is None and row["processes"] == 2
        assert len(row["ms_all"]) == 4  # two timed steps in each of two processes
        assert len(row["ms_median_by_process"]) == 2
        assert min(row["ms_all"]) <= row["ms_median"] <= max(row["ms_all"])
