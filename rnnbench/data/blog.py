"""The Blog Authorship Corpus (Schler, Koppel, Argamon & Pennebaker 2006) in the layout it is shipped in:
``train.tsv.xz`` and ``test.tsv.xz``, tab-separated with csv quoting, header ``blog_id, gender, age,
age_group, industry, sign, date, text``, one row per post, split by author. Labels are the blogger's
profile, repeated on each of their posts, so rows are grouped by ``blog_id`` (see :mod:`.groups`).
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from ..errors import RnnbenchError
from .corpus import Corpus, LoadReport, Split, Task
from .files import column, csv_reader, open_text, reading
from .groups import GroupCodes, n_groups, shared_groups

# the files as shipped, and their sha256 (`data download --from` checks those it finds)
SHA256 = {
    "train.tsv.xz": "574ec9a88c39e037f2119a1d3d058ab51325ac318ad0ccc0c0d9369caf097eb2",
    "test.tsv.xz": "75345391573a88398998675bfee8d6295211c58c90622a90e619897aeaee2153",
}
# task -> (the column its label is read from, its classes in their fixed order: class i is label i)
TASKS = {"gender": ("gender", ("female", "male")), "age": ("age_group", ("13-17", "23-27", "33-48"))}
_SUFFIXES = (".xz", "", ".gz", ".bz2")  # the shipped compression first


def blog_files(path: Path) -> tuple[Path, Path]:
    """The train and test files of a local copy. ``path`` is either the folder holding them (``train.tsv.xz``
    and ``test.tsv.xz`` as shipped; ``train.tsv``, ``.gz`` or ``.bz2`` if recompressed), or the train file
    itself, whose test file lies beside it under the same name with ``test`` for ``train``."""
    if path.is_dir():
        found = []
        for stem in ("train", "test"):
            f = next((path / f"{stem}.tsv{s}" for s in _SUFFIXES if (path / f"{stem}.tsv{s}").is_file()), None)
            if f is None:
                raise RnnbenchError(f"blog-authorship: no {stem}.tsv.xz in {path} (expected train.tsv.xz and "
                                    f"test.tsv.xz, as shipped)")
            found.append(f)
        return found[0], found[1]
    head, sep, tail = path.name.rpartition("train")
    if not sep:
        raise RnnbenchError(f"blog-authorship: {path.name} is not a train file; give the folder holding "
                            f"train.tsv.xz and test.tsv.xz, or the train file with its test file beside it")
    test = path.with_name(f"{head}test{tail}")
    if not test.is_file():
        raise RnnbenchError(f"blog-authorship: no test file {test} beside {path.name}")
    return path, test


def _read(path: Path, task: str, split: str, report: LoadReport, codes: GroupCodes) -> Split:
    """One file's posts: the text, the task's label and the blogger's group code of each kept row. Only the
    texts are Python objects: labels and groups go straight into typed arrays."""
    label_column, classes = TASKS[task]
    label_of = {c: i for i, c in enumerate(classes)}
    texts: list[str] = []
    labels, groups = array("q"), array("q")
    read = malformed = empty = unparsable = no_group = 0
    with reading(path), open_text(path) as f:
        rows = csv_reader(f, delimiter="\t")
        header = next(rows, None)
        if header is None:
            raise RnnbenchError(f"cannot read {path}: empty file")
        i_group, i_label, i_text = (column(header, c, path) for c in ("blog_id", label_column, "text"))
        width = len(header)
        add_text, add_label, add_group = texts.append, labels.append, groups.append
        for row in rows:
            read += 1
            if len(row) != width:
                malformed += 1
                continue
            text = row[i_text].strip()
            if not text:
                empty += 1
                continue
            label = label_of.get(row[i_label].strip().lower())
            if label is None:
                unparsable += 1
                continue
            group = row[i_group].strip()
            if not group:
                no_group += 1
                continue
            add_text(text)
            add_label(label)
            add_group(codes(group))
    report.read[split] += read
    for why, n in (("malformed row", malformed), ("empty text", empty),
                   (f"unparsable label ({label_column})", unparsable), ("no blog_id", no_group)):
        if n:
            report.drop(why, n)
    return Split(texts, np.frombuffer(labels, np.int64), np.frombuffer(groups, np.int64))


def load_blog(path: Path, task: str) -> Corpus:
    """The Blog Authorship Corpus: ``path`` is the folder holding ``train.tsv.xz`` and ``test.tsv.xz`` (or the
    train file, its test file beside it: :func:`blog_files`). Tasks: ``gender`` (binary, 0 female / 1 male)
    and ``age`` (``age_group``: 0 13-17 / 1 23-27 / 2 33-48); the class order is fixed, not read off the
    data. Rows are grouped by ``blog_id``: validation takes whole bloggers. Rows with an empty text, a label
    outside the classes or no blog_id are dropped and counted."""
    if task not in TASKS:
        raise RnnbenchError(f"blog-authorship has no task '{task}' (tasks: {', '.join(TASKS)})")
    train_file, test_file = blog_files(path)
    report, codes = LoadReport(), GroupCodes()
    train = _read(train_file, task, "train", report, codes)
    test = _read(test_file, task, "test", report, codes)
    classes = TASKS[task][1]
    report.notes.append(f"{task} classes (a fixed order): " + ", ".join(f"{i}: {c}" for i, c in enumerate(classes)))
    report.notes.append(f"rows grouped by blog_id: {n_groups(train.groups)} bloggers in train, "
                        f"{n_groups(test.groups)} in test; validation takes whole bloggers")
    if shared := shared_groups(train.groups, test.groups):
        report.notes.append(f"{shared} blogger(s) have posts in both train and test: test scores are "
                            f"inflated by author leakage (the shipped split has none)")
    kind = "binary" if len(classes) == 2 else "multiclass"
    return Corpus("blog-authorship", Task(task, kind, len(classes)), train, test, report)

