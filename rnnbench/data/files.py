"""Reading the files publishers ship: the one place that opens a possibly compressed file, the one CSV
reader, and the one translation of a corrupt or truncated file's errors into a one-line
:class:`~rnnbench.errors.RnnbenchError` that names the file."""

from __future__ import annotations

import bz2
import csv
import functools
import gzip
import io
import lzma
import sys
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import RnnbenchError

# file suffix -> the opener (binary mode) of that compression; any other suffix is read as it is
_DECOMPRESSORS = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
COMPRESSIONS = tuple(_DECOMPRESSORS)  # the suffixes read as compressed files

# what reading a corrupt or truncated file (or archive member) raises (bz2's is an OSError)
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, UnicodeError, csv.Error)


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for reading bytes, decompressed when its suffix names a compression."""
    opener = _DECOMPRESSORS.get(path.suffix)
    return opener(path, "rb") if opener else open(path, "rb")


def uncompressed_name(name: str) -> str:
    """``name`` less a compression suffix: ``train.tsv.xz`` -> ``train.tsv``."""
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def open_text(path: Path) -> io.TextIOWrapper:
    """``path`` (possibly compressed) as UTF-8 text, undecodable bytes replaced, newlines kept as written."""
    return text(open_binary(path))


def text(raw: BinaryIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


@contextmanager
def reading(path: Path, what: str = "file") -> Iterator[None]:
    """Within it, the errors a corrupt, truncated or unreadable file raises become one RnnbenchError
    naming ``path`` (the ``what``: "file" or "archive"). Wrap the whole read, iteration included: a
    truncated compressed file fails part-way through, not when it is opened."""
    try:
        yield
    except _CORRUPT as e:
        if isinstance(e, OSError) and e.errno is not None:  # the system refused: permissions, a folder, ...
            raise RnnbenchError(f"cannot read {path}: {e.strerror}") from None
        raise RnnbenchError(f"corrupt or truncated {what} {path}: {e}") from None


@functools.cache
def _lift_csv_field_limit() -> None:
    csv.field_size_limit(sys.maxsize)  # a review can be longer than csv's default limit of 128 kB a field


def csv_reader(f, delimiter: str = ","):
    """A :func:`csv.reader` over the text file ``f`` that accepts fields of any length."""
    _lift_csv_field_limit()
    return csv.reader(f, delimiter=delimiter)


def read_csv(path: Path, delimiter: str = ",") -> tuple[list[str], Iterator[list[str]]]:
    """The header row of the CSV file ``path`` and an iterator over the rows after it (the file closes
    when they run out); read errors are RnnbenchErrors."""
    rows = _csv_rows(path, delimiter)
    header = next(rows, None)
    if header is None:
        raise RnnbenchError(f"cannot read {path}: empty file")
    return header, rows


def _csv_rows(path: Path, delimiter: str) -> Iterator[list[str]]:
    with reading(path), open_text(path) as f:
        yield from csv_reader(f, delimiter)


def column(cols: list[str], name: str, path: Path) -> int:
    """The index of the column ``name`` (surrounding spaces ignored) in the header ``cols``."""
    stripped = [c.strip() for c in cols]
    if name not in stripped:
        raise RnnbenchError(f"{path.name}: no column '{name}' (columns: {', '.join(c for c in stripped if c)})")
    return stripped.index(name)


def to_float(value) -> float | None:
    """``value`` as a finite float, else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None
