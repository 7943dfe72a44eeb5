"""The one exception type users see: a one-line message and exit code 2."""


class RnnbenchError(Exception):
    """Bad input or a failed precondition. The CLI prints ``Error: <message>`` and exits 2."""

    exit_code = 2


class Pruned(Exception):
    """A search's pruner stopped a trial's training early: a recorded outcome (status "pruned"), not a failure."""

    def __init__(self, epoch: float, score: float, metric: str):
        super().__init__(f"pruned at epoch {epoch:g} (validation {metric} {score:.4f})")
        self.epoch, self.score, self.metric = epoch, score, metric
