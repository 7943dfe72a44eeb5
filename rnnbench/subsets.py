"""Validation split and nested, stratified training subsets, deterministic per seed.

For one seed, one ordering of the training pool is drawn. Its first ``n_val`` rows are the
validation split (the same for every training size); training subsets are prefixes of the rest, so
the 1k subset is contained in the 10k subset. For classification the ordering interleaves the
classes so that every prefix keeps the class proportions (within one example per class).
Test data is never touched here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import Corpus, Split
from .errors import RnnbenchError


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
    train_index: np.ndarray  # rows of corpus.train
    val_index: np.ndarray
    pool_size: int  # rows available for training once validation is carved out


def n_validation(n: int, val_fraction: float, val_max: int) -> int:
    return max(1, min(val_max, int(round(val_fraction * n))))


def make_subsets(corpus: Corpus, seed: int, size: int | None, val_fraction: float, val_max: int) -> Subsets:
    y = corpus.train.y
    rng = np.random.default_rng([seed, 20150101])
    order = rng.permutation(len(y)) if corpus.task.is_regression else stratified_order(y, rng)
    n_val = n_validation(len(y), val_fraction, val_max)
    val_index, pool = order[:n_val], order[n_val:]
    if size is None:
        size = len(pool)
    if size > len(pool):
        raise RnnbenchError(
            f"requested training size {size} is larger than the {len(pool)} examples available "
            f"({len(y)} in the training pool minus {n_val} for validation)")
    if size < 2:
        raise RnnbenchError(f"training size must be at least 2, got {size}")
    train_index = pool[:size]
    return Subsets(corpus.train.take(train_index), corpus.train.take(val_index), corpus.test,
                   train_index, val_index, len(pool))
