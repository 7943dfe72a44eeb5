"""The one exception type users see: a one-line message and exit code 2."""


class RnnbenchError(Exception):
    """Bad input or a failed precondition. The CLI prints ``Error: <message>`` and exits 2."""

    exit_code = 2
