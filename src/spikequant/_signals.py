"""SIGINT and SIGTERM as an exception, so that a command stopped by either unwinds like an
error: every `finally` runs (temporary files are removed, the run folder's lock is released)
and the command ends with one line and status 128 + the signal's number (130, 143).

`handled()` installs the handlers for a block (the `spikequant` command's whole run); signals
whose disposition is "ignore" (a job started with `nohup` or in the background) stay ignored.
`deferred()` marks a block that must not stop half-way, such as writing an epoch's
checkpoint, log and metrics, which then agree: a signal arriving inside it is raised at its
end. Outside `handled()`, SIGINT is Python's KeyboardInterrupt as usual and `deferred()`
changes nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_state = threading.local()  # handlers run in the main thread; so do the blocks that defer


class Interrupted(KeyboardInterrupt):
    """The process received SIGINT or SIGTERM. A KeyboardInterrupt, so that code which
    handles Ctrl-C (PyTorch's DataLoader workers, for one) handles SIGTERM the same way."""

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def _pending() -> list[int]:
    if not hasattr(_state, "pending"):
        _state.pending, _state.depth = [], 0
    return _state.pending


def _handler(signum: int, frame) -> None:
    pending = _pending()
    if _state.depth:
        pending.append(signum)
        return
    raise Interrupted(signum)


@contextmanager
def handled() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {}
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN:
            continue
        before[signum] = current
        signal.signal(signum, _handler)
    try:
        yield
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)
        _pending().clear()


@contextmanager
def deferred() -> Iterator[None]:
    """Finish the block before acting on a signal that arrives inside it."""
    pending = _pending()
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
    if pending and not _state.depth:
        signum = pending[0]
        pending.clear()
        raise Interrupted(signum)
