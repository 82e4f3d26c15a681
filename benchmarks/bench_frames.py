"""Events -> frames throughput: spikequant's events_to_frames against tonic's ToFrame on the
same events, in one run, the two interleaved so machine load hits both alike. Prints a markdown
table; the speed-up is tonic's time / ours (> 1: spikequant is faster).

Both count events per (frame, polarity, pixel) with T frames of equal event count
(`split_by="number"` / tonic `n_event_bins`) or equal duration (`"time"` / `n_time_bins`).
tonic's bins leave out the remainder of N / T events (or the last event); ours keep every event,
as SpikingJelly does, so the totals may differ by fewer than T events.

    python benchmarks/bench_frames.py [--repeats 5] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from machine import machine_info, markdown_header, software_versions, write_json  # noqa: E402


def synthetic_events(n: int, width: int, height: int, duration_us: int, seed: int = 0):
    from spikequant.data.events import make_events

    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, n))
    x, y, p = rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n)
    return make_events(x, y, t, p)


def ndigits_like(count: int) -> list[np.ndarray]:
    """Recordings from the ndigits event-camera simulator (N-MNIST geometry), in memory."""
    from sklearn.datasets import load_digits

    from spikequant.data import ndigits

    canvas = ndigits.digit_canvases(load_digits().images[:count])
    rec, events = ndigits.simulate(canvas, np.random.default_rng(0))
    bounds = np.searchsorted(rec, np.arange(count + 1))
    return [events[bounds[i] : bounds[i + 1]] for i in range(count)]


def one_pass(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def run_case(name, recordings, sensor, steps, split_by, repeats) -> dict[str, Any]:
    from tonic.transforms import ToFrame

    from spikequant.data.frames import events_to_frames

    width, height = sensor
    bins = {"n_event_bins": steps} if split_by == "number" else {"n_time_bins": steps}
    tonic_to_frame = ToFrame(sensor_size=(width, height, 2), **bins)
    copies = [ev.copy() for ev in recordings]  # tonic may write into its input

    def ours(ev):
        return events_to_frames(ev, height, width, steps, split_by)

    for ev in recordings[:3]:
        assert ours(ev).sum() == len(ev) >= tonic_to_frame(ev.copy()).sum() >= len(ev) - steps
    ours_s, tonic_s = float("inf"), float("inf")
    for _ in range(repeats):
        ours_s = min(ours_s, one_pass(ours, recordings))
        tonic_s = min(tonic_s, one_pass(tonic_to_frame, copies))
    events = sum(len(r) for r in recordings)
    return {
        "case": name,
        "recordings": len(recordings),
        "events_per_recording": events // len(recordings),
        "sensor": list(sensor),
        "time_steps": steps,
        "split_by": split_by,
        "spikequant_ms": 1e3 * ours_s / len(recordings),
        "tonic_ms": 1e3 * tonic_s / len(recordings),
        "spikequant_mev_per_s": events / ours_s / 1e6,
        "tonic_mev_per_s": events / tonic_s / 1e6,
        "speedup": tonic_s / ours_s,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    k = 4 if args.quick else 1
    cases = [
        ("ndigits (N-MNIST geometry)", ndigits_like(200 // k), (34, 34), 10),
        (
            "DVS128 Gesture size",
            [synthetic_events(300_000 // k, 128, 128, 6_000_000, s) for s in range(8 // k)],
            (128, 128),
            20,
        ),
        (
            "CIFAR10-DVS size",
            [synthetic_events(100_000 // k, 128, 128, 1_300_000, s) for s in range(12 // k)],
            (128, 128),
            20,
        ),
    ]
    rows = [
        run_case(name, recs, sensor, steps, split_by, args.repeats)
        for name, recs, sensor, steps in cases
        for split_by in ("number", "time")
    ]
    settings = {"repeats": args.repeats, "quick": args.quick}
    return {"settings": settings, "machine": machine_info("cpu"), "rows": rows}


def markdown(result: dict[str, Any], command: str) -> str:
    peers = software_versions(("tonic", "numpy"))
    versions = f"tonic {peers['tonic']} (numpy {peers['numpy']})"
    lines = [
        markdown_header(result, command) + f"  \nCompared with: {versions}",
        "",
        "| recordings | events/rec | sensor | T | split | spikequant ms/rec | tonic ToFrame "
        "ms/rec | spikequant Mev/s | speed-up |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        w, h = r["sensor"]
        lines.append(
            f"| {r['case']} | {r['events_per_recording']:,} | {w}x{h} | {r['time_steps']} | "
            f"{r['split_by']} | {r['spikequant_ms']:.3f} | {r['tonic_ms']:.3f} | "
            f"{r['spikequant_mev_per_s']:.1f} | {r['speedup']:.1f}x |"
        )
    lines.append(f"\nBest of {result['settings']['repeats']} interleaved passes each.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed passes each (default 5)")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller recordings")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    result = measure(args)
    command = " ".join(["python", "benchmarks/bench_frames.py", *(argv or sys.argv[1:])])
    print(markdown(result, command))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
