"""SIGTERM, what Slurm, Kubernetes and Ray send before SIGKILL: stop at a safe point and exit 143.

The CLI installs :func:`install`. Outside a :func:`deferred` block a SIGTERM raises :class:`Terminated`
where the program is, as Ctrl-C raises ``KeyboardInterrupt``: atomic writes remove their temp files, so
nothing is left half-written, and a run without ``DONE`` is redone or resumed by the same command. Inside
one (the RNN's training loop) it only sets a flag: the loop checks :func:`requested` between steps, saves
a checkpoint, and raises :class:`Terminated` itself; leaving the block with the flag set raises it too.
Other signals can be served the same way (``install(SIGUSR2)``: Slurm's warning of preemption or the time
limit; ``SIGINT``: Ray's cancel of a task); :func:`received` says which came.

A SIGTERM or Ctrl-C that arrives again while the first is served is ignored: the exit stays 143 (130), with
no second exception inside the first one's cleanup.

:func:`die_with_parent` makes a child process get a signal when the process that started it dies.
"""

from __future__ import annotations

import os
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


_state: dict = {"depth": 0, "pending": False, "received": [], "ignoring_int": False}


def _handler(signum, frame) -> None:
    if _state["pending"]:  # a repeat, while the first is served (a checkpoint, the way out): nothing more to do
        return
    _state["pending"] = True
    _state["received"].append(signum)
    # repeats are ignored from here, also once the interpreter, exiting, has put its own handlers away (which
    # would let one kill the process: exit -15, not 143)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum != signal.SIGTERM:
        signal.signal(signum, signal.SIG_IGN)
    if _state["depth"] == 0:
        raise Terminated(f"terminated ({signal.Signals(signum).name})")


def _interrupt(signum, frame) -> None:
    """Ctrl-C: ``KeyboardInterrupt``, as Python's own handler; repeats are ignored while it is served (the way
    out takes a second or two), which would otherwise raise again inside the cleanup, or kill the process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _state["ignoring_int"] = True
    raise KeyboardInterrupt


def install(*others: int) -> bool:
    """Handle SIGTERM, the signals ``others`` (served like SIGTERM) and Ctrl-C in this process (main thread
    only; elsewhere nothing happens). Whether installed. A signal that arrives again while the first is
    served changes nothing: never a second exception in the middle of the first one's cleanup, nor an exit
    by the signal instead of 143 or 130."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for signum in (signal.SIGTERM, *others):
        signal.signal(signum, _handler)
    if signal.SIGINT not in others:
        now = signal.getsignal(signal.SIGINT)  # not where someone else chose (a background job ignores Ctrl-C)
        if now is signal.default_int_handler or now is _interrupt or (now == signal.SIG_IGN and _state["ignoring_int"]):
            signal.signal(signal.SIGINT, _interrupt)
            _state["ignoring_int"] = False
    _state["pending"] = False
    _state["received"] = []
    return True


def received() -> list[int]:
    """The signals served since :func:`install`, in order."""
    return list(_state["received"])


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """In a child process: get ``signum`` when its parent ``parent`` dies (Linux: ``PR_SET_PDEATHSIG``;
    elsewhere nothing is set). SIGKILL for a helper that holds nothing (a grid worker); SIGTERM for a
    worker that trains a run: it saves a checkpoint and exits. If the parent is already gone, exit now."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)


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
