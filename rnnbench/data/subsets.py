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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RnnbenchError
from .corpus import Corpus, Split
from .groups import whole_groups


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


def subset_indices(y: np.ndarray, regression: bool, seed: int, size: int | None, val_fraction: float,
                   val_max: int, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of the training pool (targets ``y``, optional per-row ``groups``) for a training subset of
    ``size`` (None: all) and for validation, and how many rows the subsets are drawn from:
    ``(train_index, val_index, pool_size)``."""
    rng = np.random.default_rng([seed, 20150101])
    n_val = n_validation(len(y), val_fraction, val_max)
    if groups is None:
        order = rng.permutation(len(y)) if regression else stratified_order(y, rng)
        val_index, pool = order[:n_val], order[n_val:]
        whole = ""
    else:
        if len(groups) != len(y):
            raise ValueError(f"{len(groups)} groups for {len(y)} rows")
        in_val = whole_groups(groups, n_val, rng)
        val_index, rest = np.flatnonzero(in_val), np.flatnonzero(~in_val)
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


def make_subsets(corpus: Corpus, seed: int, size: int | None, val_fraction: float, val_max: int) -> Subsets:
    train_index, val_index, pool_size = subset_indices(corpus.train.y, corpus.task.is_regression, seed, size,
                                                       val_fraction, val_max, corpus.train.groups)
    return Subsets(corpus.train.take(train_index), corpus.train.take(val_index), corpus.test, pool_size)
