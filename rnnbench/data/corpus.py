"""What every loader returns: a :class:`Corpus` of a train pool and a test split, its :class:`Task`, and a
:class:`LoadReport` saying how many rows were read and dropped, and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .groups import whole_groups

Kind = str  # "binary" | "multiclass" | "regression"


@dataclass(frozen=True)
class Task:
    name: str
    kind: Kind
    n_classes: int = 0  # classification only
    # the name of class i (classification); empty: the names are "0", "1", ... Names only: not compared
    classes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_regression(self) -> bool:
        return self.kind == "regression"

    @property
    def class_names(self) -> list[str]:
        """The name of each class 0..n_classes-1: the data's own (``neg``, ``pos``), else the numbers."""
        names = list(self.classes[: self.n_classes])
        return names + [str(i) for i in range(len(names), self.n_classes)]


@dataclass
class Split:
    texts: list[str]
    y: np.ndarray  # int64 labels 0..K-1 or float64 targets
    groups: np.ndarray | None = None  # int64 group of each row (see .groups); None: every row stands alone

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, index: np.ndarray) -> Split:
        return Split([self.texts[i] for i in index], self.y[index],
                     None if self.groups is None else self.groups[index])


@dataclass
class LoadReport:
    read: Counter = field(default_factory=Counter)  # split -> rows read
    dropped: Counter = field(default_factory=Counter)  # reason -> rows dropped
    non_utf8: int = 0  # texts with bytes that are not UTF-8, decoded with replacement
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what may have been read wrongly (rows merged, ...)

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

    def lines(self) -> list[str]:
        """The summary, then each warning and note on a line of its own (what the commands print)."""
        return [self.summary(), *(f"warning: {w}" for w in self.warnings), *(f"note: {n}" for n in self.notes)]

    def to_dict(self) -> dict:
        """What a run's ``result.json`` keeps of the load (JSON types only)."""
        return {"summary": self.summary(), "read": dict(self.read), "dropped": dict(self.dropped),
                "non_utf8": self.non_utf8, "warnings": list(self.warnings), "notes": list(self.notes)}


@dataclass
class Corpus:
    name: str
    task: Task
    train: Split  # the training pool: validation and size-N subsets are carved from it
    test: Split
    report: LoadReport


def task_for(name: str, kind: Kind, y: np.ndarray, classes: tuple[str, ...] | list[str] = ()) -> Task:
    """The task ``name`` of ``kind``, its class count read off the training labels ``y`` (at least the number
    of ``classes`` named, so a class absent from training keeps its place)."""
    n = max(int(y.max()) + 1 if len(y) else 0, len(classes)) if kind != "regression" else 0
    return Task(name, kind, n, tuple(classes) if kind != "regression" else ())


def holdout(texts: list[str], y: np.ndarray, fraction: float, seed: int = 0,
            groups: np.ndarray | None = None) -> tuple[Split, Split]:
    """A deterministic train/test split for data sets that ship none (same for every experiment seed). With
    ``groups``, the test split is whole groups (about ``fraction`` of the rows: :func:`.groups.whole_groups`)."""
    n_test = max(1, int(round(fraction * len(texts))))
    if groups is None:
        order = np.random.default_rng(seed).permutation(len(texts))
        test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    else:
        in_test = whole_groups(groups, n_test, np.random.default_rng([seed, 2006]))
        test_idx, train_idx = np.flatnonzero(in_test), np.flatnonzero(~in_test)
    full = Split(texts, y, groups)
    return full.take(train_idx), full.take(test_idx)
