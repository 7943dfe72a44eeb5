"""Loaders for the files publishers ship (generic CSV/TSV/JSON-lines files: :mod:`.generic`).

Every loader is ``loader(path, task, *, <the data options it uses>)`` and returns a :class:`Corpus`;
:func:`rnnbench.data.registry.load` reads the options off the signature and passes only those.
Loaders never extract archives to disk: the IMDB, rt-polarity and Zhang et al. tarballs are read in
place, and closed when read.
"""

from __future__ import annotations

import ast
import json
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import RnnbenchError
from .corpus import Corpus, LoadReport, Split, Task, holdout, task_for
from .files import (
    column,
    csv_reader,
    open_binary,
    open_text,
    read_csv,
    reading,
    text,
    to_float,
    uncompressed_name,
)

# ------------------------------------------------------------------------------ IMDB

_IMDB_RE = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _imdb_files(path: Path) -> Iterable[tuple[str, bytes]]:
    if path.is_dir():
        root = path if (path / "train").is_dir() else path / "aclImdb"
        for f in sorted(root.glob("*/*/*.txt")):
            yield f"aclImdb/{f.relative_to(root).as_posix()}", f.read_bytes()
        return
    with reading(path, "archive"), tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile() and _IMDB_RE.search(member.name):
                yield member.name, tar.extractfile(member).read()


def load_imdb(path: Path, task: str) -> Corpus:
    """aclImdb_v1: ``aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt``. ``<br />`` tags become spaces."""
    report = LoadReport()
    rows: dict[str, list[tuple[int, str, int, str]]] = {"train": [], "test": []}
    for name, raw in _imdb_files(path):
        m = _IMDB_RE.search(name)
        split, pol, idx, stars = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        report.read[split] += 1
        text_ = _BR.sub(" ", report.decode(raw)).strip()
        if not text_:
            report.drop("empty text")
            continue
        if not 1 <= stars <= 10:
            report.drop("star rating out of range 1-10")
            continue
        rows[split].append((int(pol == "pos"), f"{pol}{idx:06d}", stars, text_))
    if not rows["train"] and not rows["test"]:
        raise RnnbenchError(f"{path}: no aclImdb review files found (expected aclImdb/train/pos/*.txt ...)")
    splits = {}
    for split, items in rows.items():
        items.sort(key=lambda r: (r[0], r[1]))  # archive order differs between copies: sort
        y = np.array([r[2] if task == "stars" else r[0] for r in items],
                     dtype=np.float64 if task == "stars" else np.int64)
        splits[split] = Split([r[3] for r in items], y)
    kind = "regression" if task == "stars" else "binary"
    return Corpus("imdb", task_for(task, kind, splits["train"].y), splits["train"], splits["test"], report)


# ------------------------------------------------------------------------------ SST-2, rt-polarity


def _labelled_lines(f: BinaryIO, report: LoadReport, split: str, parse) -> tuple[list[str], list[int]]:
    """The (text, label) that ``parse`` makes of each line of the binary file ``f``."""
    texts, labels = [], []
    for raw in f:
        report.read[split] += 1
        parsed = parse(report.decode(raw).rstrip("\r\n"))
        if parsed is None:
            report.drop("unparsable label")
            continue
        text_, label = parsed
        if not text_.strip():
            report.drop("empty text")
            continue
        texts.append(text_.strip())
        labels.append(label)
    return texts, labels


def load_sst2(path: Path, task: str) -> Corpus:
    """GLUE SST-2 ``train.tsv`` (``sentence<TAB>label``) and the labelled ``stsa.binary.test``."""
    report = LoadReport()
    folder = path if path.is_dir() else path.parent
    train_file, test_file = folder / "train.tsv", folder / "stsa.binary.test"
    for f in (train_file, test_file):
        if not f.exists():
            raise RnnbenchError(f"sst2: missing {f}")

    def tsv(line):
        text_, _, label = line.rpartition("\t")
        return (text_, int(label)) if label in ("0", "1") else None

    def stsa(line):
        label, _, text_ = line.partition(" ")
        return (text_, int(label)) if label in ("0", "1") else None

    with open_binary(train_file) as f:
        if not f.readline().startswith(b"sentence\t"):  # no header: that line is data
            f.seek(0)
        tr_texts, tr_y = _labelled_lines(f, report, "train", tsv)
    with open_binary(test_file) as f:
        te_texts, te_y = _labelled_lines(f, report, "test", stsa)
    report.notes.append("GLUE dev.tsv is not used: validation is carved from train, as for every data set")
    train, test = Split(tr_texts, np.array(tr_y, np.int64)), Split(te_texts, np.array(te_y, np.int64))
    return Corpus("sst2", task_for(task, "binary", train.y), train, test, report)


def load_rt_polarity(path: Path, task: str, *, test_fraction: float) -> Corpus:
    """Pang & Lee ``rt-polarity.{pos,neg}`` (a folder, or the publisher's ``rt-polaritydata.tar.gz``):
    one snippet a line, no official split (seeded holdout). The original files are Latin-1: their
    non-UTF-8 bytes are replaced and counted."""
    report = LoadReport()
    texts, labels = [], []

    def add(f: BinaryIO, label: int) -> None:
        with f:
            t, y = _labelled_lines(f, report, "all", lambda line: (line, label))
        texts.extend(t)
        labels.extend(y)

    if path.is_file() and tarfile.is_tarfile(path):
        with reading(path, "archive"), tarfile.open(path, "r:*") as tar:
            members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
            for label, suffix in ((0, "neg"), (1, "pos")):
                member = members.get(f"rt-polarity.{suffix}")
                if member is None:
                    raise RnnbenchError(f"rt-polarity: no rt-polarity.{suffix} in {path}")
                add(tar.extractfile(member), label)
    else:
        folder = path if path.is_dir() else path.parent
        for label, suffix in ((0, "neg"), (1, "pos")):
            f = folder / f"rt-polarity.{suffix}"
            if not f.exists():
                raise RnnbenchError(f"rt-polarity: missing {f}")
            add(open_binary(f), label)
    train, test = holdout(texts, np.array(labels, np.int64), test_fraction)
    return Corpus("rt-polarity", task_for(task, "binary", train.y), train, test, report)


# ------------------------------------------------------------------------------ Amazon (McAuley)

_AMAZON_FIELDS = ("reviewText", "summary", "helpful", "overall")


def _amazon_rows(path: Path) -> Iterator[tuple | None]:
    """(reviewText, summary, helpful, overall) from the CSV or the JSON-lines ``reviews_*.json(.gz)`` (either
    may be compressed: .gz, .xz, .bz2); None for a malformed row."""
    if uncompressed_name(path.name.lower()).endswith((".json", ".jsonl")):
        with reading(path), open_text(path) as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    try:
                        d = ast.literal_eval(line)  # the 2014 files are Python-literal "loose JSON"
                    except (ValueError, SyntaxError):
                        yield None
                        continue
                yield d.get("reviewText", ""), d.get("summary", ""), d.get("helpful"), d.get("overall")
        return
    cols, reader = read_csv(path)
    idx = [column(cols, c, path) for c in _AMAZON_FIELDS]
    for row in reader:
        yield tuple(row[i] for i in idx) if len(row) > max(idx) else None


def _helpful_votes(value) -> tuple[int, int] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        x, y = value
        return (x, y) if 0 <= x <= y else None
    return None


def load_amazon(path: Path, task: str, *, min_votes: int, test_fraction: float) -> Corpus:
    report = LoadReport()
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if uncompressed_name(p.name.lower()).endswith((".csv", ".json", ".jsonl")))
        if not files:
            raise RnnbenchError(f"amazon-helpfulness: no .csv or .json(.gz) review file in {path}")
        path = files[0]
    texts, ys = [], []
    for row in _amazon_rows(path):
        report.read["all"] += 1
        if row is None:
            report.drop("malformed row")
            continue
        text_, summary, helpful, overall = row
        text_ = (text_ or "").strip()
        if not text_:
            report.drop("empty text")
            continue
        if task == "helpfulness":
            votes = _helpful_votes(helpful)
            if votes is None:
                report.drop("unparsable helpful votes")
                continue
            if votes[1] < min_votes:
                report.drop(f"fewer than {min_votes} helpfulness vote(s)")
                continue
            ys.append(votes[0] / votes[1])
        else:
            r = to_float(overall)
            if r is None or not 1 <= r <= 5:
                report.drop("unparsable or out-of-range rating")
                continue
            ys.append(r)
        texts.append(f"{summary.strip()} . {text_}" if summary and summary.strip() else text_)
    train, test = holdout(texts, np.array(ys, np.float64), test_fraction)
    return Corpus("amazon-helpfulness", task_for(task, "regression", train.y), train, test, report)


# ------------------------------------------------------------------------------ clothing reviews


def load_clothing(path: Path, task: str, *, test_fraction: float) -> Corpus:
    report = LoadReport()
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise RnnbenchError(f"clothing-reviews: no .csv file in {path}")
        path = files[0]
    cols, reader = read_csv(path)
    label_col = "Rating" if task == "rating" else "Recommended IND"
    i_text, i_title, i_y = (column(cols, c, path) for c in ("Review Text", "Title", label_col))
    texts, ys = [], []
    for row in reader:
        report.read["all"] += 1
        if len(row) <= max(i_text, i_title, i_y):
            report.drop("malformed row")
            continue
        text_ = row[i_text].strip()
        if not text_:
            report.drop("empty text")
            continue
        v = to_float(row[i_y])
        ok = v is not None and (1 <= v <= 5 if task == "rating" else v in (0, 1))
        if not ok:
            report.drop(f"unparsable or out-of-range {label_col}")
            continue
        ys.append(v)
        title = row[i_title].strip()
        texts.append(f"{title} . {text_}" if title else text_)
    y = np.array(ys, np.float64 if task == "rating" else np.int64)
    train, test = holdout(texts, y, test_fraction)
    kind = "regression" if task == "rating" else "binary"
    return Corpus("clothing-reviews", task_for(task, kind, train.y), train, test, report)


# ------------------------------------------------------------------------------ Zhang et al. 2015 CSV

_ZHANG_FILES = ("train.csv", "test.csv")


@contextmanager
def _zhang_files(path: Path) -> Iterator[dict[str, Callable]]:
    """Openers of the ``train.csv`` and ``test.csv`` (either possibly compressed: .gz, .xz, .bz2) in a folder,
    a lone CSV file or an archive, keyed by the uncompressed name; an archive stays open only within the
    ``with``."""
    if path.is_dir():
        yield {uncompressed_name(f.name): partial(_file_text, f) for f in sorted(path.rglob("*.csv*"))
               if uncompressed_name(f.name) in _ZHANG_FILES}
    elif _is_csv(path):
        yield {uncompressed_name(path.name): partial(_file_text, path)}
    else:
        with tarfile.open(path, "r:*") as tar:
            yield {m.name.rsplit("/", 1)[-1]: partial(_member_text, tar, m)
                   for m in tar.getmembers() if m.isfile() and m.name.rsplit("/", 1)[-1] in _ZHANG_FILES}


@contextmanager
def _file_text(path: Path) -> Iterator:
    """``path`` as text, its read errors naming it."""
    with reading(path), open_text(path) as f:
        yield f


def _is_csv(path: Path) -> bool:
    """A CSV file, possibly compressed (not a tarball)."""
    return uncompressed_name(path.name.lower()).endswith(".csv")


def _member_text(tar: tarfile.TarFile, member: tarfile.TarInfo):
    return text(tar.extractfile(member))


def _zhang_split(opener, report: LoadReport, split: str) -> Split:
    texts, labels = [], []
    with opener() as f:
        for row in csv_reader(f):
            report.read[split] += 1
            if len(row) < 2 or not row[0].strip().isdigit() or int(row[0]) < 1:
                report.drop("unparsable label")
                continue
            text_ = " . ".join(p.replace("\\n", " ").strip() for p in row[1:] if p.strip())
            if not text_:
                report.drop("empty text")
                continue
            texts.append(text_)
            labels.append(int(row[0]) - 1)
    return Split(texts, np.array(labels, np.int64))


def load_zhang(path: Path, task: str, *, test_fraction: float, dataset: str) -> Corpus:
    """``"label","title","text"`` rows without header, labels 1..K (Zhang, Zhao & LeCun 2015): a folder
    with ``train.csv`` (and ``test.csv``), one such file, or the publisher's tarball."""
    report = LoadReport()
    what = "archive" if path.is_file() and not _is_csv(path) else "file"
    with reading(path, what), _zhang_files(path) as files:
        if "train.csv" not in files:
            raise RnnbenchError(f"{path}: no train.csv found (Zhang et al. layout: <name>_csv/train.csv, test.csv)")
        train = _zhang_split(files["train.csv"], report, "train")
        test = _zhang_split(files["test.csv"], report, "test") if "test.csv" in files else None
    if test is None:
        train, test = holdout(train.texts, train.y, test_fraction)
    k = int(max(train.y.max(initial=0), test.y.max(initial=0))) + 1
    names = tuple(str(i + 1) for i in range(max(k, 2))) if dataset == "zhang-csv" else ()  # its raw labels 1..K
    task_obj = Task(task, "binary" if k <= 2 else "multiclass", max(k, 2), names)
    return Corpus(dataset, task_obj, train, test, report)
