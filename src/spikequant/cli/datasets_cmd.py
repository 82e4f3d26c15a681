"""`spikequant datasets`: each dataset, whether it is on this machine, and how to get it.

List every dataset spikequant reads: where it was looked for under the data directory (tonic's
save_to layout, e.g. D/NMNIST/Train/<digit>/*.bin), how many recordings were found there, its
classes, sensor size and the frames the network sees, and for a missing one how to get it.
ndigits needs no download: it is generated on first use. A partial copy is listed with its file
count and can be trained on. Every file found is checked the way training checks it before it
starts (sizes and headers; an ATIS .bin must hold an event), and the bad ones are listed: a
dataset with a bad file is not complete.
"""

from __future__ import annotations

import argparse
import json

PARSER = {
    "help": "list the datasets, whether each is found on this machine, and how to get it",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="D",
        default=None,
        help="dataset root (default: $SPIKEQUANT_DATA, else ~/.cache/spikequant/data)",
    )
    p.add_argument(
        "--download",
        metavar="NAME",
        default=None,
        help="fetch benchmark NAME (nmnist, dvsgesture, cifar10dvs, ncaltech101) through tonic "
        "into the data directory first (needs internet; both splits)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="only count the files, without checking them (faster on a cold disk)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data import DATASETS, dataset_status, default_data_dir
    from ..data.datasets import usable_data_dir

    data_dir = usable_data_dir(Path(args.data_dir).expanduser() if args.data_dir else
                               default_data_dir())
    if args.download:
        _download(args.download, data_dir)
    statuses = [dataset_status(name, data_dir, check=not args.no_check) for name in DATASETS]
    if args.json:
        print(json.dumps([_as_dict(s) for s in statuses], indent=2))
        return 0
    print(f"data directory: {data_dir}\n")
    for status in statuses:
        print(_describe(status))
    return 0


def _download(name: str, data_dir) -> None:
    from pathlib import Path

    from ..data import dataset_info
    from ..data.download import download_with_tonic

    info = dataset_info(name)
    if info.tonic_class is None:
        print(f"{info.name} needs no download: {info.how_to_get}")
        return
    for split in ("train", "test") if info.official_split else ("train",):
        print(f"downloading {info.name} ({split}) through tonic into {data_dir} ...")
        download_with_tonic(info, Path(data_dir), split)


def _describe(status) -> str:
    info = status.info
    w, h, _ = info.sensor_size
    lines = [f"{info.name:<12} {info.title}"]
    if status.found and status.counts:
        counts = " + ".join(f"{v}" if k == "all" else f"{v} {k}" for k, v in status.counts.items())
        expected = sum(info.expected_files.values())
        partial = " (partial copy)" if status.total < expected else ""
        lines.append(
            f"  found:     {counts} recordings{partial} at {status.where}"
            + (f" [{status.layout}]" if status.layout else "")
        )
        lines += _describe_bad(status)
    elif status.found:  # generated on first use (ndigits): nothing to count yet
        lines.append(f"  found:     {status.note} -> {status.where}")
    else:
        lines.append(f"  missing:   looked in {status.where}")
        lines.append(f"  get it:    {info.how_to_get}")
    lines.append(
        f"  classes:   {info.num_classes}   sensor: {w}x{h}, 2 polarities   "
        f"frames: {info.default_time_steps} x {tuple(info.frame_shape)}   split: {info.split}"
    )
    return "\n".join(lines) + "\n"


def _describe_bad(status) -> list[str]:
    if not status.checked:
        return ["  checked:   no (--no-check)"]
    if not status.bad_files:
        return ["  checked:   every file is readable"]
    first = "; ".join(f"{path} ({reason})" for path, reason in status.bad_files[:3])
    more = f"; and {len(status.bad_files) - 3} more" if len(status.bad_files) > 3 else ""
    return [
        f"  BAD:       {len(status.bad_files)} file(s) cannot be used: {first}{more}",
        "  fix:       delete them and download again, or train with --skip-bad to leave them out",
    ]


def _as_dict(status) -> dict:
    info = status.info
    return {
        "name": info.name,
        "found": status.found,
        "where": status.where,
        "recordings": status.counts,
        "layout": status.layout,
        "complete": status.complete,
        "checked": status.checked,
        "bad_files": [{"file": path, "reason": reason} for path, reason in status.bad_files],
        "num_classes": info.num_classes,
        "sensor_size": list(info.sensor_size),
        "frame_shape": list(info.frame_shape),
        "default_time_steps": info.default_time_steps,
        "split": info.split,
        "how_to_get": info.how_to_get,
    }
