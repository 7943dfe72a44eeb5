"""The ``linear`` model kind as the registry and the config know it: its options and its declaration.
The model itself is :class:`rnnbench.models.linear.model.LinearBaseline` (scikit-learn, loaded on use)."""

from __future__ import annotations

from dataclasses import dataclass

from ...options import opt
from ..registry import ModelKind


@dataclass
class LinearConfig:
    ngram_range: list[int] = opt([1, 2], min_len=2, max_len=2, min=1, doc="[lo, hi]: word n-grams counted")
    sublinear_tf: bool = opt(True, doc="TF-IDF with 1 + log(tf)")
    min_df: list[int] = opt([1, 2, 3], min_len=1, min=1, unique=True, doc="grid: n-grams in fewer training texts are dropped")
    C: list[float] = opt([1.0, 4.0, 16.0, 64.0, 256.0], min_len=1, min=1e-12, unique=True,
                         doc="grid: inverse regularisation of logistic regression (classification)")
    alpha: list[float] = opt([0.3, 1.0, 3.0, 10.0], min_len=1, min=1e-12, unique=True, doc="grid: ridge strength (regression)")
    max_iter: int = opt(1000, min=10, doc="solver iterations per grid point")


KIND = ModelKind(
    name="linear", section=LinearConfig, cls="rnnbench.models.linear.model:LinearBaseline",
    doc="the TF-IDF + logistic regression (ridge) baseline and its grid",
    reads=("data",), label="TF-IDF bigrams + linear", color="#1f77b4", grid_options=("min_df", "C", "alpha"))
