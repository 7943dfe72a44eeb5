"""Data set registry and loaders for the files publishers ship.

Every loader returns a :class:`Corpus`: a train pool and a test split of raw texts and targets, the
task, and a :class:`LoadReport` saying how many rows were read and dropped, and why. Loaders never
extract archives to disk: the IMDB and Zhang et al. tarballs are read in place.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import os
import re
import sys
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import RnnbenchError

csv.field_size_limit(sys.maxsize)

Kind = str  # "binary" | "multiclass" | "regression"


@dataclass(frozen=True)
class Task:
    name: str
    kind: Kind
    n_classes: int = 0  # classification only

    @property
    def is_regression(self) -> bool:
        return self.kind == "regression"


@dataclass
class Split:
    texts: list[str]
    y: np.ndarray  # int64 labels 0..K-1 or float64 targets

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, index: np.ndarray) -> Split:
        return Split([self.texts[i] for i in index], self.y[index])


@dataclass
class LoadReport:
    read: Counter = field(default_factory=Counter)  # split -> rows read
    dropped: Counter = field(default_factory=Counter)  # reason -> rows dropped
    non_utf8: int = 0  # texts with bytes that are not UTF-8, decoded with replacement
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.non_utf8 += 1
            return raw.decode("utf-8", errors="replace")

    def summary(self) -> str:
        parts = [f"read {sum(self.read.values())} rows"]
        if self.dropped:
            parts.append("dropped " + ", ".join(f"{n} ({why})" for why, n in sorted(self.dropped.items())))
        if self.non_utf8:
            parts.append(f"{self.non_utf8} text(s) had non-UTF-8 bytes (replaced)")
        return "; ".join(parts)


@dataclass
class Corpus:
    name: str
    task: Task
    train: Split  # the training pool: validation and size-N subsets are carved from it
    test: Split
    report: LoadReport


@dataclass(frozen=True)
class Source:
    """Where a data set comes from: canonical URL and the file name it is saved under."""

    url: str
    filename: str
    sha256: str | None = None  # only checksums we could verify; otherwise pinned on first download
    size: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    tasks: dict[str, Kind]
    size: str
    origin: str
    loader: Callable[..., Corpus]
    source: Source | None = None
    needs_path: bool = True


REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> None:
    REGISTRY[info.name] = info


def get_info(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise RnnbenchError(f"unknown data set '{name}' (known: {', '.join(sorted(REGISTRY))})") from None


def data_home() -> Path:
    return Path(os.environ.get("RNNBENCH_DATA", Path.home() / ".cache" / "rnnbench"))


def resolve_path(name: str, path: str | None) -> Path:
    """The file or folder to load ``name`` from: the given path, else a ``data download``ed or
    ``--from``-registered copy in ``$RNNBENCH_DATA``."""
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise RnnbenchError(f"data path does not exist: {p}")
        return p
    from .download import registered_path  # local import: download imports this module

    p = registered_path(name)
    if p is None:
        raise RnnbenchError(
            f"no local copy of '{name}': run `rnnbench data download {name}` "
            f"(or `--from FILE`), or set data.path"
        )
    return p


def load(name: str, path: str | None = None, task: str | None = None, **options) -> Corpus:
    """Load data set ``name`` for ``task`` (default: its first task)."""
    info = get_info(name)
    task = task or next(iter(info.tasks))
    if task not in info.tasks and name not in GENERIC:
        raise RnnbenchError(f"data set '{name}' has no task '{task}' (tasks: {', '.join(info.tasks)})")
    resolved = resolve_path(name, path) if info.needs_path else None
    corpus = info.loader(resolved, task, **options)
    for split_name, split in (("train", corpus.train), ("test", corpus.test)):
        if len(split) == 0:
            raise RnnbenchError(f"{name}: the {split_name} split is empty after filtering ({corpus.report.summary()})")
    return corpus


# ------------------------------------------------------------------------------ helpers


def _task(name: str, kind: Kind, y: np.ndarray) -> Task:
    n = int(y.max()) + 1 if kind != "regression" and len(y) else 0
    return Task(name, kind, n)


def _holdout(texts: list[str], y: np.ndarray, fraction: float, seed: int = 0) -> tuple[Split, Split]:
    """A deterministic train/test split for data sets that ship none (same for every experiment seed)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    n_test = max(1, int(round(fraction * len(texts))))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    full = Split(texts, y)
    return full.take(train_idx), full.take(test_idx)


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _read_csv(path: Path, delimiter: str = ",", header: bool = True) -> tuple[list[str], Iterator[list[str]]]:
    try:
        f = _open_text(path)
        reader = csv.reader(f, delimiter=delimiter)
        cols = next(reader) if header else []
    except (OSError, EOFError, zlib.error, StopIteration, UnicodeError) as e:
        raise RnnbenchError(f"cannot read {path}: {e or 'empty file'}") from None
    return cols, reader


def _column(cols: list[str], name: str, path: Path) -> int:
    stripped = [c.strip() for c in cols]
    if name not in stripped:
        raise RnnbenchError(f"{path.name}: no column '{name}' (columns: {', '.join(c for c in stripped if c)})")
    return stripped.index(name)


def _float(value: str) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


# ------------------------------------------------------------------------------ IMDB

_IMDB_RE = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def _imdb_files(path: Path) -> Iterable[tuple[str, bytes]]:
    if path.is_dir():
        root = path if (path / "train").is_dir() else path / "aclImdb"
        for f in sorted(root.glob("*/*/*.txt")):
            yield f"aclImdb/{f.relative_to(root).as_posix()}", f.read_bytes()
        return
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and _IMDB_RE.search(member.name):
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise RnnbenchError(f"corrupt or truncated archive {path}: {e}") from None


def load_imdb(path: Path, task: str, **_) -> Corpus:
    """aclImdb_v1: ``aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt``. ``<br />`` tags become spaces."""
    report = LoadReport()
    rows: dict[str, list[tuple[int, str, int, int]]] = {"train": [], "test": []}
    for name, raw in _imdb_files(path):
        m = _IMDB_RE.search(name)
        split, pol, idx, stars = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        report.read[split] += 1
        text = _BR.sub(" ", report.decode(raw)).strip()
        if not text:
            report.drop("empty text")
            continue
        if not 1 <= stars <= 10:
            report.drop("star rating out of range 1-10")
            continue
        rows[split].append((int(pol == "pos"), f"{pol}{idx:06d}", stars, text))
    if not rows["train"] and not rows["test"]:
        raise RnnbenchError(f"{path}: no aclImdb review files found (expected aclImdb/train/pos/*.txt ...)")
    splits = {}
    for split, items in rows.items():
        items.sort(key=lambda r: (r[0], r[1]))  # archive order differs between copies: sort
        y = np.array([r[2] if task == "stars" else r[0] for r in items],
                     dtype=np.float64 if task == "stars" else np.int64)
        splits[split] = Split([r[3] for r in items], y)
    kind = "regression" if task == "stars" else "binary"
    return Corpus("imdb", _task(task, kind, splits["train"].y), splits["train"], splits["test"], report)


# ------------------------------------------------------------------------------ SST-2, rt-polarity


def _labelled_lines(path_or_lines, report: LoadReport, split: str, parse) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    lines = open(path_or_lines, "rb") if isinstance(path_or_lines, Path) else path_or_lines
    with lines as f:
        for raw in f:
            report.read[split] += 1
            parsed = parse(report.decode(raw).rstrip("\r\n"))
            if parsed is None:
                report.drop("unparsable label")
                continue
            text, label = parsed
            if not text.strip():
                report.drop("empty text")
                continue
            texts.append(text.strip())
            labels.append(label)
    return texts, labels


def load_sst2(path: Path, task: str, **_) -> Corpus:
    """GLUE SST-2 ``train.tsv`` (``sentence<TAB>label``) and the labelled ``stsa.binary.test``."""
    report = LoadReport()
    folder = path if path.is_dir() else path.parent
    train_file, test_file = folder / "train.tsv", folder / "stsa.binary.test"
    for f in (train_file, test_file):
        if not f.exists():
            raise RnnbenchError(f"sst2: missing {f}")

    def tsv(line):
        text, _, label = line.rpartition("\t")
        return (text, int(label)) if label in ("0", "1") else None

    def stsa(line):
        label, _, text = line.partition(" ")
        return (text, int(label)) if label in ("0", "1") else None

    with open(train_file, "rb") as f:
        header = f.readline()
        if not header.startswith(b"sentence\t"):  # no header: that line is data
            f.seek(0)
        tr_texts, tr_y = _labelled_lines(f, report, "train", tsv)
    te_texts, te_y = _labelled_lines(test_file, report, "test", stsa)
    report.notes.append("GLUE dev.tsv is not used: validation is carved from train, as for every data set")
    train, test = Split(tr_texts, np.array(tr_y, np.int64)), Split(te_texts, np.array(te_y, np.int64))
    return Corpus("sst2", _task(task, "binary", train.y), train, test, report)


def load_rt_polarity(path: Path, task: str, test_fraction: float = 0.2, **_) -> Corpus:
    """Pang & Lee ``rt-polarity.{pos,neg}`` (a folder, or the publisher's ``rt-polaritydata.tar.gz``):
    one snippet a line, no official split (seeded holdout). The original files are Latin-1: their
    non-UTF-8 bytes are replaced and counted."""
    report = LoadReport()
    texts, labels = [], []
    if path.is_file() and tarfile.is_tarfile(path):
        try:
            with tarfile.open(path, "r:*") as tar:
                members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}
                for label, suffix in ((0, "neg"), (1, "pos")):
                    member = members.get(f"rt-polarity.{suffix}")
                    if member is None:
                        raise RnnbenchError(f"rt-polarity: no rt-polarity.{suffix} in {path}")
                    t, y = _labelled_lines(tar.extractfile(member), report, "all", lambda line, lab=label: (line, lab))
                    texts += t
                    labels += y
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise RnnbenchError(f"corrupt or truncated archive {path}: {e}") from None
    else:
        folder = path if path.is_dir() else path.parent
        for label, suffix in ((0, "neg"), (1, "pos")):
            f = folder / f"rt-polarity.{suffix}"
            if not f.exists():
                raise RnnbenchError(f"rt-polarity: missing {f}")
            t, y = _labelled_lines(f, report, "all", lambda line, lab=label: (line, lab))
            texts += t
            labels += y
    train, test = _holdout(texts, np.array(labels, np.int64), test_fraction)
    return Corpus("rt-polarity", _task(task, "binary", train.y), train, test, report)


# ------------------------------------------------------------------------------ Amazon (McAuley)


def _amazon_rows(path: Path) -> Iterator[tuple[str, str, str, str]]:
    """(reviewText, summary, helpful, overall) from the CSV or the JSON-lines ``reviews_*.json(.gz)``."""
    name = path.name.lower()
    if name.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")):
        try:
            with _open_text(path) as f:
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
                    yield (d.get("reviewText", ""), d.get("summary", ""), d.get("helpful"), d.get("overall"))
        except (OSError, EOFError, zlib.error) as e:
            raise RnnbenchError(f"corrupt or truncated file {path}: {e}") from None
        return
    cols, reader = _read_csv(path)
    idx = [_column(cols, c, path) for c in ("reviewText", "summary", "helpful", "overall")]
    for row in reader:
        yield tuple(row[i] if i < len(row) else "" for i in idx) if len(row) > max(idx) else None


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


def load_amazon(path: Path, task: str, min_votes: int = 1, test_fraction: float = 0.2, **_) -> Corpus:
    report = LoadReport()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".csv", ".json", ".gz", ".jsonl"))
        if not files:
            raise RnnbenchError(f"amazon-helpfulness: no .csv or .json(.gz) review file in {path}")
        path = files[0]
    texts, ys = [], []
    for row in _amazon_rows(path):
        report.read["all"] += 1
        if row is None:
            report.drop("malformed row")
            continue
        text, summary, helpful, overall = row
        text = (text or "").strip()
        if not text:
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
            r = _float(overall)
            if r is None or not 1 <= r <= 5:
                report.drop("unparsable or out-of-range rating")
                continue
            ys.append(r)
        texts.append(f"{summary.strip()} . {text}" if summary and summary.strip() else text)
    train, test = _holdout(texts, np.array(ys, np.float64), test_fraction)
    return Corpus("amazon-helpfulness", _task(task, "regression", train.y), train, test, report)


# ------------------------------------------------------------------------------ clothing reviews


def load_clothing(path: Path, task: str, test_fraction: float = 0.2, **_) -> Corpus:
    report = LoadReport()
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise RnnbenchError(f"clothing-reviews: no .csv file in {path}")
        path = files[0]
    cols, reader = _read_csv(path)
    label_col = "Rating" if task == "rating" else "Recommended IND"
    i_text, i_title, i_y = (_column(cols, c, path) for c in ("Review Text", "Title", label_col))
    texts, ys = [], []
    for row in reader:
        report.read["all"] += 1
        if len(row) <= max(i_text, i_title, i_y):
            report.drop("malformed row")
            continue
        text = row[i_text].strip()
        if not text:
            report.drop("empty text")
            continue
        v = _float(row[i_y])
        ok = v is not None and (1 <= v <= 5 if task == "rating" else v in (0, 1))
        if not ok:
            report.drop(f"unparsable or out-of-range {label_col}")
            continue
        ys.append(v)
        title = row[i_title].strip()
        texts.append(f"{title} . {text}" if title else text)
    y = np.array(ys, np.float64 if task == "rating" else np.int64)
    train, test = _holdout(texts, y, test_fraction)
    kind = "regression" if task == "rating" else "binary"
    return Corpus("clothing-reviews", _task(task, kind, train.y), train, test, report)


# ------------------------------------------------------------------------------ Zhang et al. 2015 CSV


def _zhang_members(path: Path) -> dict[str, Callable[[], io.TextIOBase]]:
    if path.is_dir():
        found = {f.name: (lambda f=f: open(f, encoding="utf-8", errors="replace", newline=""))
                 for f in path.rglob("*.csv") if f.name in ("train.csv", "test.csv")}
        return found
    if path.suffix == ".csv":
        return {path.name: lambda: open(path, encoding="utf-8", errors="replace", newline="")}
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise RnnbenchError(f"corrupt or truncated archive {path}: {e}") from None
    out = {}
    for m in tar.getmembers():
        base = m.name.rsplit("/", 1)[-1]
        if m.isfile() and base in ("train.csv", "test.csv"):
            out[base] = lambda m=m: io.TextIOWrapper(tar.extractfile(m), encoding="utf-8", errors="replace", newline="")
    return out


def _zhang_split(opener, report: LoadReport, split: str) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    try:
        with opener() as f:
            for row in csv.reader(f):
                report.read[split] += 1
                if len(row) < 2 or not row[0].strip().isdigit() or int(row[0]) < 1:
                    report.drop("unparsable label")
                    continue
                text = " . ".join(p.replace("\\n", " ").strip() for p in row[1:] if p.strip())
                if not text:
                    report.drop("empty text")
                    continue
                texts.append(text)
                labels.append(int(row[0]) - 1)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise RnnbenchError(f"corrupt or truncated archive: {e}") from None
    return texts, labels


def load_zhang(path: Path, task: str, test_fraction: float = 0.2, dataset: str = "zhang-csv", **_) -> Corpus:
    """``"label","title","text"`` rows without header, labels 1..K (Zhang, Zhao & LeCun 2015)."""
    report = LoadReport()
    members = _zhang_members(path)
    if "train.csv" not in members:
        raise RnnbenchError(f"{path}: no train.csv found (Zhang et al. layout: <name>_csv/train.csv, test.csv)")
    tr_texts, tr_y = _zhang_split(members["train.csv"], report, "train")
    train = Split(tr_texts, np.array(tr_y, np.int64))
    if "test.csv" in members:
        te_texts, te_y = _zhang_split(members["test.csv"], report, "test")
        test = Split(te_texts, np.array(te_y, np.int64))
    else:
        train, test = _holdout(train.texts, train.y, test_fraction)
    k = int(max(train.y.max(initial=0), test.y.max(initial=0))) + 1
    task_obj = Task(task, "binary" if k <= 2 else "multiclass", max(k, 2))
    return Corpus(dataset, task_obj, train, test, report)


# ------------------------------------------------------------------------------ generic files


def load_generic(path: Path, task: str, text_columns: list[str] = (), label_column: str | None = None,
                 task_kind: str | None = None, test_path: str | None = None, test_fraction: float = 0.2,
                 fmt: str = "csv", **_) -> Corpus:
    if not text_columns or not label_column:
        raise RnnbenchError(f"data set '{fmt}' needs data.text_columns and data.label_column")
    kind = task_kind or "binary"
    report = LoadReport()

    def rows(p: Path) -> Iterator[dict | None]:
        if fmt == "jsonl":
            with _open_text(p) as f:
                for line in f:
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError:
                            yield None
            return
        cols, reader = _read_csv(p, delimiter="\t" if fmt == "tsv" else ",")
        for c in [*text_columns, label_column]:
            _column(cols, c, p)
        names = [c.strip() for c in cols]
        for r in reader:
            yield dict(zip(names, r)) if len(r) == len(names) else None

    def read(p: Path, split: str) -> tuple[list[str], list]:
        texts, ys = [], []
        for row in rows(p):
            report.read[split] += 1
            if row is None:
                report.drop("malformed row")
                continue
            missing = [c for c in [*text_columns, label_column] if c not in row]
            if missing:
                raise RnnbenchError(f"{p.name}: no field '{missing[0]}' in row {report.read[split]}")
            text = " . ".join(str(row[c]).strip() for c in text_columns if row[c] not in (None, "") and str(row[c]).strip())
            if not text:
                report.drop("empty text")
                continue
            ys.append(row[label_column])
            texts.append(text)
        return texts, ys

    tr_texts, tr_raw = read(path, "train")
    te_texts, te_raw = read(Path(test_path), "test") if test_path else ([], [])
    if kind == "regression":
        def conv(v):
            return _float(v)
    else:
        classes = sorted({str(v) for v in tr_raw})
        numeric = all(_float(c) is not None and float(c).is_integer() for c in classes)
        if numeric:
            classes = sorted(classes, key=float)
        index = {c: i for i, c in enumerate(classes)}

        def conv(v):
            return index.get(str(v))
    def convert(texts, raw):
        keep_t, keep_y = [], []
        for t, v in zip(texts, raw):
            c = conv(v)
            if c is None:
                report.drop("unparsable label")
                continue
            keep_t.append(t)
            keep_y.append(c)
        return keep_t, np.array(keep_y, np.float64 if kind == "regression" else np.int64)

    train = Split(*convert(tr_texts, tr_raw))
    if test_path:
        test = Split(*convert(te_texts, te_raw))
    else:
        train, test = _holdout(train.texts, train.y, test_fraction)
    if kind != "regression" and len(train):
        k = int(train.y.max()) + 1
        if kind == "binary" and k > 2:
            raise RnnbenchError(f"{path.name}: task_kind binary but column '{label_column}' has {k} classes")
    return Corpus(fmt, _task(task, kind, train.y), train, test, report)


# ------------------------------------------------------------------------------ synthetic


def load_synthetic(path, task: str, synthetic=None, **_) -> Corpus:
    from .config import SyntheticConfig
    from .synthetic import generate

    s = synthetic or SyntheticConfig()
    regression = task == "score"
    tr = generate(s.train_size, seed=s.corpus_seed, mean_tokens=s.mean_tokens, noise=s.noise, regression=regression)
    te = generate(s.test_size, seed=s.corpus_seed + 1_000_003, mean_tokens=s.mean_tokens, noise=s.noise,
                  regression=regression)
    report = LoadReport(read=Counter(train=s.train_size, test=s.test_size))
    train, test = Split(*tr), Split(*te)
    return Corpus("synthetic", _task(task, "regression" if regression else "binary", train.y), train, test, report)


# ------------------------------------------------------------------------------ the registry

_FASTAI = "https://s3.amazonaws.com/fast-ai-nlp/"

register(DatasetInfo(
    "synthetic", "built-in review-like paragraphs; the label follows a word-order rule (no download)",
    {"sentiment": "binary", "score": "regression"}, "any (default 20k train / 5k test)", "generated",
    load_synthetic, needs_path=False))
register(DatasetInfo(
    "imdb", "IMDB Large Movie Review Dataset v1.0 (Maas et al. 2011)",
    {"sentiment": "binary", "stars": "regression"}, "25k train / 25k test", "ai.stanford.edu/~amaas",
    load_imdb, Source("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz", "aclImdb_v1.tar.gz")))
register(DatasetInfo(
    "sst2", "Stanford Sentiment Treebank, binary (GLUE train + sentence-level test)",
    {"sentiment": "binary"}, "67k train (phrases) / 1.8k test", "GLUE / Socher et al. 2013", load_sst2))
register(DatasetInfo(
    "rt-polarity", "Pang & Lee sentence polarity v1.0 (seeded 80/20 split)",
    {"sentiment": "binary"}, "10.7k snippets", "cs.cornell.edu/people/pabo/movie-review-data",
    load_rt_polarity,
    Source("https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz", "rt-polaritydata.tar.gz")))
register(DatasetInfo(
    "amazon-helpfulness", "Amazon product reviews 2014 (McAuley et al.), CSV or reviews_*.json.gz",
    {"helpfulness": "regression", "rating": "regression"}, "per category (10k for Musical Instruments)",
    "jmcauley.ucsd.edu/data/amazon", load_amazon))
register(DatasetInfo(
    "clothing-reviews", "Women's E-Commerce Clothing Reviews (2018)",
    {"rating": "regression", "recommended": "binary"}, "23.5k reviews", "kaggle (nicapotato)", load_clothing))
for _name, _file, _desc, _size in (
    ("amazon-polarity", "amazon_review_polarity_csv.tgz", "Amazon review polarity", "3.6M train / 400k test"),
    ("amazon-full", "amazon_review_full_csv.tgz", "Amazon review full (5 classes)", "3M train / 650k test"),
    ("yelp-polarity", "yelp_review_polarity_csv.tgz", "Yelp review polarity", "560k train / 38k test"),
    ("yelp-full", "yelp_review_full_csv.tgz", "Yelp review full (5 classes)", "650k train / 50k test"),
):
    register(DatasetInfo(
        _name, f"{_desc} (Zhang, Zhao & LeCun 2015), Zhang CSV format",
        {"sentiment": "multiclass" if "full" in _name else "binary"}, _size, "Zhang et al. 2015 via fast.ai S3",
        lambda path, task, _n=_name, **kw: load_zhang(path, task, dataset=_n, **kw), Source(_FASTAI + _file, _file)))
register(DatasetInfo(
    "zhang-csv", "any file in the Zhang et al. 2015 format (\"label\",\"title\",\"text\", labels 1..K)",
    {"sentiment": "binary"}, "yours", "local file", load_zhang))
GENERIC = ("csv", "tsv", "jsonl")
for _fmt in GENERIC:
    register(DatasetInfo(
        _fmt, f"a generic {_fmt.upper()} file: data.text_columns, data.label_column, data.task_kind",
        {"label": "binary"}, "yours", "local file", lambda path, task, _f=_fmt, **kw: load_generic(path, task, fmt=_f, **kw)))
