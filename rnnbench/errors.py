"""The one exception type users see (a one-line message and exit code 2), and every exit code of the
``rnnbench`` command, documented in ``rnnbench --help`` and the README."""

import signal

EXIT_OS_ERROR = 1  # the machine, not the input: a full disk, a read-only or vanished folder
EXIT_BAD_INPUT = 2  # RnnbenchError: one `Error:` line, nothing written
EXIT_RUNS_FAILED = 3  # train, compare, sweep: everything written, and at least one run failed
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130: Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: SIGTERM, after a checkpoint

EXIT_CODES = {
    0: "done",
    EXIT_OS_ERROR: "a read or write failed (a full disk, a read-only folder)",
    EXIT_BAD_INPUT: "bad input (one Error: line, nothing written)",
    EXIT_RUNS_FAILED: "a run failed (train, compare, sweep: after writing the result and the tables, which list it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}


class RnnbenchError(Exception):
    """Bad input or a failed precondition. The CLI prints ``Error: <message>`` and exits 2."""

    exit_code = EXIT_BAD_INPUT


class Pruned(Exception):
    """A search's pruner stopped a trial's training early: a recorded outcome (status "pruned"), not a failure."""

    def __init__(self, epoch: float, score: float, metric: str):
        super().__init__(f"pruned at epoch {epoch:g} (validation {metric} {score:.4f})")
        self.epoch, self.score, self.metric = epoch, score, metric
