"""The loader of generic CSV, TSV and JSON-lines files, described by the config's data options."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import RnnbenchError
from .corpus import Corpus, LoadReport, Split, holdout, task_for
from .files import column, open_text, read_csv, reading, to_float
from .groups import GroupCodes, n_groups, shared_groups

FORMATS = ("csv", "tsv", "jsonl")


def _generic_rows(p: Path, fmt: str, fields: list[str]) -> Iterator[dict | None]:
    """The rows of a generic file as dicts (None for a malformed row)."""
    if fmt == "jsonl":
        with reading(p), open_text(p) as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        yield None
        return
    cols, reader = read_csv(p, delimiter="\t" if fmt == "tsv" else ",")
    for c in fields:
        column(cols, c, p)
    names = [c.strip() for c in cols]
    for r in reader:
        yield dict(zip(names, r)) if len(r) == len(names) else None


def load_generic(path: Path, task: str, *, fmt: str, text_columns: list[str], label_column: str | None,
                 task_kind: str | None, test_path: str | None, test_fraction: float,
                 group_column: str | None) -> Corpus:
    """A CSV, TSV or JSON-lines file described by the config: the text columns (joined by " . "), the
    label column and the kind of task; a separate test file, or a seeded holdout. With ``group_column``,
    rows sharing its value (an author, a product) stay together: validation takes whole groups, and so
    does the holdout when there is no test file (a given test file is used as it is; groups it shares with
    the training file are counted in a note). A row whose group value is empty is dropped and counted."""
    if not text_columns or not label_column:
        raise RnnbenchError(f"data set '{fmt}' needs data.text_columns and data.label_column")
    kind = task_kind or "binary"
    report = LoadReport()
    fields = [*text_columns, label_column, *([group_column] if group_column else [])]
    codes = GroupCodes()

    def read(p: Path, split: str) -> tuple[list[str], list, list[int]]:
        texts, ys, groups = [], [], []
        for row in _generic_rows(p, fmt, fields):
            report.read[split] += 1
            if not isinstance(row, dict):
                report.drop("malformed row")
                continue
            missing = [c for c in fields if c not in row]
            if missing:
                raise RnnbenchError(f"{p.name}: no field '{missing[0]}' in row {report.read[split]} "
                                    f"(fields: {', '.join(map(str, row))})")
            text_ = " . ".join(str(row[c]).strip() for c in text_columns
                               if row[c] not in (None, "") and str(row[c]).strip())
            if not text_:
                report.drop("empty text")
                continue
            if group_column:
                group = "" if row[group_column] is None else str(row[group_column]).strip()
                if not group:
                    report.drop(f"empty {group_column}")
                    continue
                groups.append(codes(group))
            ys.append(row[label_column])
            texts.append(text_)
        return texts, ys, groups

    tr_texts, tr_raw, tr_groups = read(path, "train")
    te_texts, te_raw, te_groups = read(Path(test_path), "test") if test_path else ([], [], [])
    if kind == "regression":
        conv = to_float
    else:
        classes = sorted({str(v) for v in tr_raw})
        if all(to_float(c) is not None and float(c).is_integer() for c in classes):
            classes = sorted(classes, key=float)
        index = {c: i for i, c in enumerate(classes)}

        def conv(v):
            return index.get(str(v))

    def convert(texts, raw, groups) -> Split:
        keep = []
        for i, v in enumerate(raw):
            c = conv(v)
            if c is None:
                report.drop("unparsable label")
                continue
            keep.append((i, c))
        rows = [i for i, _ in keep]
        y = np.array([c for _, c in keep], np.float64 if kind == "regression" else np.int64)
        return Split([texts[i] for i in rows], y, np.array(groups, np.int64)[rows] if group_column else None)

    train = convert(tr_texts, tr_raw, tr_groups)
    if test_path:
        test = convert(te_texts, te_raw, te_groups)
    else:
        train, test = holdout(train.texts, train.y, test_fraction, groups=train.groups)
    if kind != "regression" and len(train):
        k = int(train.y.max()) + 1
        if kind == "binary" and k > 2:
            raise RnnbenchError(f"{path.name}: task_kind binary but column '{label_column}' has {k} classes")
    if group_column:
        report.notes.append(
            f"rows grouped by {group_column}: {n_groups(train.groups)} groups in the training pool, "
            f"{n_groups(test.groups)} in test; validation{'' if test_path else ' and test'} take whole groups")
        if shared := shared_groups(train.groups, test.groups):
            report.notes.append(f"{shared} {group_column} group(s) have rows in both the training file and "
                                f"the test file: test scores may be inflated by their leakage")
    return Corpus(fmt, task_for(task, kind, train.y), train, test, report)
