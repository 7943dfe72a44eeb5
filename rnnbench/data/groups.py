"""Groups of rows that must stay on one side of a split: the posts of one blogger, the reviews by one
author. A :class:`~rnnbench.data.corpus.Split` may carry a per-row int64 group array (``groups``); with one,
validation and any test split rnnbench makes take whole groups (see :func:`whole_groups`), so that a model
is never scored on the rows of an author it was trained on.
"""

from __future__ import annotations

import numpy as np


class GroupCodes:
    """Group values (a column's strings) interned as int64 codes, in order of first appearance. One
    instance per load, shared by its files, so that a group in both files has one code."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self._codes)
        return code


def whole_groups(groups: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean row mask: whole groups, in a seeded order, until about ``target`` rows.

    The groups present (``np.unique(groups)``) are shuffled with ``rng`` and taken in that order while
    fewer than ``target`` rows are taken. The overshoot: the group that reaches ``target`` is taken only
    if that ends nearer ``target`` than stopping before it (a tie takes it), so the count is off by at most
    half that group's size; a large group is never split, nor skipped for a smaller one further on (that
    would favour small groups). At least one group is taken and, of two or more, at least one is left.
    """
    ids, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(ids) == 0:
        return np.zeros(len(groups), bool)
    order = rng.permutation(len(ids))
    cum = np.cumsum(counts[order])
    k = min(int(np.searchsorted(cum, target)), len(ids) - 1)  # the group that reaches target
    before = int(cum[k - 1]) if k > 0 else 0
    n_take = k + 1 if int(cum[k]) - target <= target - before else k
    n_take = max(1, min(n_take, len(ids) - 1)) if len(ids) > 1 else 1
    chosen = np.zeros(len(ids), bool)
    chosen[order[:n_take]] = True
    return chosen[inverse.reshape(-1)]


def first_groups(groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean row mask: the first ``k`` groups of a seeded order of the groups present (at least one
    group is left out of two or more)."""
    ids, inverse = np.unique(groups, return_inverse=True)
    order = rng.permutation(len(ids))
    n_take = max(1, min(k, len(ids) - 1)) if len(ids) > 1 else 1
    chosen = np.zeros(len(ids), bool)
    chosen[order[:n_take]] = True
    return chosen[inverse.reshape(-1)]


def n_groups(groups: np.ndarray | None) -> int:
    return 0 if groups is None else len(np.unique(groups))


def shared_groups(a: np.ndarray | None, b: np.ndarray | None) -> int:
    """How many groups have rows in both ``a`` and ``b``."""
    if a is None or b is None:
        return 0
    return len(np.intersect1d(a, b))
