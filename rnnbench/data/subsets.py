"""Validation split and nested, stratified training subsets, deterministic per seed.

For one seed, one ordering of the training pool is drawn. Its first ``n_val`` rows are the
validation split (the same for every training size); training subsets are prefixes of the rest, so
the 1k subset is contained in the 10k subset. For classification the ordering interleaves the
classes so that every prefix keeps the class proportions (within one example per class).
Test data is never touched here.

With groups (``Split.groups``: the posts of one blogger, ``data.group_column``), validation is whole
groups instead, drawn in a seeded order until about ``n_val`` rows (:func:`.groups.whole_groups` says how
the last group's overshoot is handled), so no group has rows in both validation and training. The rows
of the remaining groups get one seeded (stratified) ordering and training subsets are its prefixes:
still nested and stratified, though a subset may hold only some of a group's rows. Without groups the
subsets are exactly those of earlier versions (run results depend on them).

Validation worth its name on grouped data: one prolific author would otherwise supply a large share of the
validation rows, and the split would be worth a few dozen independent authors. ``val_groups`` sizes the
split by groups (that many whole groups, in the seeded order), and ``val_max_per_group`` caps the rows one
validation group contributes (a seeded sample of its rows; the rest are used nowhere: they are that
group's, so they may not train). :func:`effective_groups` is the Kish effective number of groups a
validation split is worth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RnnbenchError
from .corpus import Corpus, Split
from .groups import first_groups, whole_groups


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(len(y))`` whose every prefix has (almost) the class proportions of y."""
    keys = np.empty(len(y))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        # the k-th member of a class of n sits at (k + u) / n, u in [0, 1): classes interleave evenly
        keys[idx] = (np.arange(len(idx)) + rng.random()) / len(idx)
    return np.lexsort((rng.random(len(y)), keys))


@dataclass
class Subsets:
    train: Split
    val: Split
    test: Split
    pool_size: int  # rows available for training once validation is carved out


def n_validation(n: int, val_fraction: float, val_max: int) -> int:
    return max(1, min(val_max, int(round(val_fraction * n))))


def effective_groups(groups: np.ndarray | None) -> float:
    """The Kish effective number of groups of rows weighted alike: (Σ m_g)² / Σ m_g² for groups of m_g rows;
    the number of rows where there are no groups."""
    if groups is None:
        return 0.0
    counts = np.unique(groups, return_counts=True)[1].astype(float)
    return float(counts.sum() ** 2 / np.sum(counts**2)) if len(counts) else 0.0


def _capped(index: np.ndarray, groups: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Of the rows ``index``, at most ``cap`` of each group, a seeded sample, in their order."""
    order = index[rng.permutation(len(index))]
    _, first = np.unique(groups[order], return_inverse=True)
    rank = np.zeros(len(order), np.int64)
    counts: dict[int, int] = {}
    for i, g in enumerate(first.reshape(-1)):  # the k-th row drawn of its group
        rank[i] = counts.get(g, 0)
        counts[g] = rank[i] + 1
    return np.sort(order[rank < cap])


def subset_indices(y: np.ndarray, regression: bool, seed: int, size: int | None, val_fraction: float,
                   val_max: int, groups: np.ndarray | None = None, val_groups: int | None = None,
                   val_max_per_group: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of the training pool (targets ``y``, optional per-row ``groups``) for a training subset of
    ``size`` (None: all) and for validation, and how many rows the subsets are drawn from:
    ``(train_index, val_index, pool_size)``. With groups, ``val_groups`` (that many whole groups, instead
    of about ``val_fraction``/``val_max`` rows) and ``val_max_per_group`` (a cap on each validation
    group's rows) shape the validation split."""
    rng = np.random.default_rng([seed, 20150101])
    n_val = n_validation(len(y), val_fraction, val_max)
    if groups is None:
        order = rng.permutation(len(y)) if regression else stratified_order(y, rng)
        val_index, pool = order[:n_val], order[n_val:]
        whole = ""
    else:
        if len(groups) != len(y):
            raise ValueError(f"{len(groups)} groups for {len(y)} rows")
        in_val = whole_groups(groups, n_val, rng) if val_groups is None else first_groups(groups, val_groups, rng)
        val_index, rest = np.flatnonzero(in_val), np.flatnonzero(~in_val)
        if val_max_per_group is not None:
            val_index = _capped(val_index, groups, val_max_per_group, np.random.default_rng([seed, 20150102]))
        pool = rest[rng.permutation(len(rest)) if regression else stratified_order(y[rest], rng)]
        n_val, whole = len(val_index), ", whole groups"
    available = f"({len(y)} in the training pool minus {n_val} for validation{whole})"
    if groups is not None and len(pool) < 2:
        raise RnnbenchError(f"only {len(pool)} example(s) left for training {available}: too few groups")
    if size is None:
        size = len(pool)
    if size > len(pool):
        raise RnnbenchError(
            f"requested training size {size} is larger than the {len(pool)} examples available {available}")
    if size < 2:
        raise RnnbenchError(f"training size must be at least 2, got {size}")
    return pool[:size], val_index, len(pool)


def make_subsets(corpus: Corpus, seed: int, size: int | None, val_fraction: float, val_max: int,
                 val_groups: int | None = None, val_max_per_group: int | None = None) -> Subsets:
    groups = corpus.train.groups
    if groups is None and (val_groups is not None or val_max_per_group is not None):
        which = "data.val_groups" if val_groups is not None else "data.val_max_per_group"
        raise RnnbenchError(f"{which}: {corpus.name} has no groups (set data.group_column, the column of the "
                            "author or product each row belongs to)")
    train_index, val_index, pool_size = subset_indices(corpus.train.y, corpus.task.is_regression, seed, size,
                                                       val_fraction, val_max, groups, val_groups, val_max_per_group)
    return Subsets(corpus.train.take(train_index), corpus.train.take(val_index), corpus.test, pool_size)
