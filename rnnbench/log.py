"""Where rnnbench's messages go. Library modules never print: they log through
``logging.getLogger(__name__)``, the ``rnnbench`` hierarchy: progress and notes at INFO, what needs a
look at WARNING, detail at DEBUG. The command line decides what the terminal shows (:func:`configure`):
each message's text alone on stderr, as it always read, at INFO (the default), WARNING (``-q``) or DEBUG
(``-v``). A local or Ray worker configures itself at its driver's level (the job carries it).

Without :func:`configure` (rnnbench used as a library) the application's own logging settings apply;
with none, Python shows warnings and errors on stderr.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "rnnbench"
QUIET, DEFAULT, VERBOSE = logging.WARNING, logging.INFO, logging.DEBUG


class StderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a message comes (a test's capture, click's runner),
    flushed after each message."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Format())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; sys.stderr is always used
        pass


class _Format(logging.Formatter):
    """The message as written; a debug message says that it is one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"debug: {text}" if record.levelno < logging.INFO else text


def configure(level: int = DEFAULT) -> None:
    """Show the ``rnnbench`` loggers' messages at ``level`` and above on stderr (one handler, however
    often this is called), and only there: not also through a handler that a dependency put on the root
    logger (absl, for one, once JAX has loaded)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        logger.addHandler(StderrHandler())
    logger.setLevel(level)
    logger.propagate = False


def level() -> int:
    """The level the ``rnnbench`` loggers show now (what a worker process is configured with)."""
    return logging.getLogger(LOGGER).getEffectiveLevel()
