"""Shared bits for the benchmark scripts: where the real data is, and the closing JSON line."""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from rnnbench.log import configure  # noqa: E402

configure()  # the library's progress lines and warnings on stderr, as the command line shows them
SHARED = Path(os.environ.get("RNNBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        sys.exit(f"benchmark needs {p} (set RNNBENCH_SHARED_DATA to the folder with the real data sets)")
    return p


def emit(figures: dict) -> None:
    """The last line of every benchmark: one JSON object of its figures."""
    print(json.dumps(figures), flush=True)
