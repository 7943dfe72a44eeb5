"""SIGTERM, what Slurm, Kubernetes and Ray send before SIGKILL: stop at a safe point and exit 143.

The CLI installs :func:`install`. Outside a :func:`deferred` block a SIGTERM raises :class:`Terminated`
where the program is, as Ctrl-C raises ``KeyboardInterrupt``: atomic writes remove their temp files, so
nothing is left half-written, and a run without ``DONE`` is redone or resumed by the same command. Inside
one (the RNN's training loop) it only sets a flag: the loop checks :func:`requested` between steps, saves
a checkpoint, and raises :class:`Terminated` itself; leaving the block with the flag set raises it too.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import EXIT_TERMINATED

EXIT_CODE = EXIT_TERMINATED  # 143: what a shell reports for a process ended by SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived: not an ``Exception``, so ``except Exception`` (a sweep's per-run guard) lets it
    through, as it does ``KeyboardInterrupt``."""

    exit_code = EXIT_CODE


_state = {"depth": 0, "pending": False}


def _handler(signum, frame) -> None:
    _state["pending"] = True
    if _state["depth"] == 0:
        raise Terminated("terminated (SIGTERM)")


def install() -> bool:
    """Handle SIGTERM in this process (main thread only; elsewhere nothing happens). Whether installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _handler)
    _state["pending"] = False
    return True


def requested() -> bool:
    """A SIGTERM arrived (inside a :func:`deferred` block, where it raised nothing yet)."""
    return _state["pending"]


@contextmanager
def deferred() -> Iterator[None]:
    """Within it, SIGTERM waits for the code to reach a safe point (:func:`requested`); leaving the block
    with one pending raises :class:`Terminated`."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
    if _state["depth"] == 0 and _state["pending"]:
        raise Terminated("terminated (SIGTERM)")
