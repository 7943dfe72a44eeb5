"""What the outer commands (compare, sweep, the toy) share: their folder, CSV files, number formatting,
mean ± std and Markdown tables."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .config import Config
from .fileio import atomic_write_text
from .runs import experiment_dir

__all__ = ["experiment_dir", "output_dir", "duration", "write_csv", "fmt", "mean_std", "pm", "markdown_table"]


def output_dir(cfg: Config) -> Path:
    """The experiment's folder, created: where its tables and plots go."""
    out = experiment_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_csv(path: Path, fields: list[str], rows: Iterable[dict]) -> None:
    """Rows as CSV (atomically): the named columns in order, other keys ignored, floats to 6 digits."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def duration(seconds: float) -> str:
    """A time span for people: 45 s, 12 min, 2 h 05 min."""
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def fmt(x: float | None, digits: int = 4) -> str:
    """A number for a table; "—" for none (None or NaN)."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value; NaN, NaN for none)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def pm(mean: float, std: float, digits: int = 4) -> str:
    """``mean ± std`` for a table."""
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


_ALIGN = {"": "---", "l": ":---", "r": "---:"}


def markdown_table(header: list[str], rows: Iterable[Iterable], align: str | None = None) -> list[str]:
    """The lines of a Markdown table. ``align``: one character per column, ``l``, ``r`` or ``-`` (none)."""
    align = align or "-" * len(header)
    marks = [_ALIGN[a.strip("-")] for a in align]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]
