"""Event arrays (structured x, y, t, p like tonic's) and the errors a bad recording raises."""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError

# t in microseconds; p is 1 for ON (brighter), 0 for OFF.
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "u1")])


class BadRecording(DataError):
    """A recording that cannot be used. .path and .reason are set (None when the error was
    rebuilt from its message: unpickled, or raised in a DataLoader worker); the message is
    "<path>: <reason>. <what to do>".

    Args:
        path: the recording's file. With `reason` None it is taken as the whole message
            instead (how a pickled or worker-raised error is rebuilt).
        reason: what is wrong with the file, in words; the subclass's `describe` may reword
            it. None: `path` is the message, and .path and .reason are None.
    """

    advice = ""

    def __init__(self, path: str | os.PathLike, reason: str | None = None):
        if reason is None:
            self.path, self.reason = None, None
            super().__init__(str(path))
            return
        self.path, self.reason = str(path), self.describe(reason)
        super().__init__(f"{self.path}: {self.reason}. {self.advice}")

    @staticmethod
    def describe(reason: str) -> str:
        return reason


class CorruptEventFile(BadRecording):
    """A recording that cannot be decoded: truncated, corrupt, of an unexpected layout, or
    holding no events.

    Args:
        path: the recording's file. With `reason` None it is taken as the whole message
            instead (how a pickled or worker-raised error is rebuilt).
        reason: what is wrong with the file, in words (e.g. "no events"), kept as .reason;
            the message adds advice to delete and download it again or pass skip_bad=True.
            None: `path` is the message, and .path and .reason are None.
    """

    advice = (
        "The file is truncated or corrupt: delete it and download it again, or pass "
        "skip_bad=True (--skip-bad) to skip bad recordings."
    )


class MissingDecoder(DataError, RuntimeError):
    """A recording that needs a package which is not installed (a compression codec)."""


class EventsOutsideSensor(BadRecording):
    """A recording with events whose address lies outside the sensor.

    Args:
        path: the recording's file. With `reason` None it is taken as the whole message
            instead (how a pickled or worker-raised error is rebuilt).
        reason: which addresses are off the sensor (e.g. "x in [0, 40], sensor width 34");
            .reason becomes "events outside the sensor (<reason>)". None: `path` is the
            message, and .path and .reason are None.
    """

    advice = (
        "The file does not belong to this dataset or is corrupt; remove it, or pass "
        "skip_bad=True (--skip-bad) to skip it."
    )

    @staticmethod
    def describe(reason: str) -> str:
        return f"events outside the sensor ({reason})"


class UnreadableRecording(BadRecording):
    """A recording the operating system will not let us read (permissions, vanished file)."""

    advice = (
        "Check that it exists and is readable, or pass skip_bad=True (--skip-bad) to skip it."
    )

    @staticmethod
    def describe(reason: str) -> str:
        return f"cannot be read ({reason})"


def make_events(x, y, t, p) -> np.ndarray:
    """A structured event array from four equal-length columns."""
    events = np.empty(len(t), dtype=EVENT_DTYPE)
    events["x"] = x
    events["y"] = y
    events["t"] = t
    events["p"] = p
    return events


def check_in_sensor(
    events: np.ndarray, width: int, height: int, path: str | os.PathLike = "<events>"
) -> None:
    """Raise EventsOutsideSensor when an address is off the width x height sensor or a
    polarity is not 0/1."""
    if len(events) == 0:
        return
    x, y, p = events["x"], events["y"], events["p"]
    problems = []
    if x.min() < 0 or x.max() >= width:
        problems.append(f"x in [{x.min()}, {x.max()}], sensor width {width}")
    if y.min() < 0 or y.max() >= height:
        problems.append(f"y in [{y.min()}, {y.max()}], sensor height {height}")
    if p.max() > 1:
        problems.append(f"polarity up to {p.max()}, expected 0/1")
    if problems:
        raise EventsOutsideSensor(path, "; ".join(problems))
