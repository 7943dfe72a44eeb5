"""Task metrics. Classification models hand over class probabilities, regression models values."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn import metrics as skm

from .data import Task
from .errors import RnnbenchError

# The metric used for model selection and for learning curves, and whether higher is better.
PRIMARY = {"classification": ("accuracy", True), "regression": ("rmse", False)}


# Every metric a run records, and whether higher is better: any can decide the crossover
# (``experiment.metric``); model selection stays on the primary one.
METRICS = {
    "classification": {"accuracy": True, "balanced_accuracy": True, "macro_f1": True, "roc_auc": True,
                       "log_loss": False},
    "regression": {"rmse": False, "mae": False, "spearman": True, "r2": True},
}


def primary(task: Task) -> tuple[str, bool]:
    return PRIMARY["regression" if task.is_regression else "classification"]


def higher_is_better(task: Task, metric: str) -> bool:
    """Whether a larger ``metric`` is better on this kind of task; a one-line error for a metric the task
    does not record (e.g. ``rmse`` on a classification task)."""
    kind = "regression" if task.is_regression else "classification"
    if metric not in METRICS[kind]:
        raise RnnbenchError(f"experiment.metric: {metric!r} is not a {kind} metric; choose one of "
                            f"{', '.join(METRICS[kind])}")
    return METRICS[kind][metric]


def reference_scores(task: Task, y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """The scores of a model that ignores the text: the training set's class frequencies (its majority
    class as the prediction) for classification, the training mean for regression. A model stuck there
    has learned nothing, however close its score looks to the others'."""
    if task.is_regression:
        return evaluate(task, y_test, np.full(len(y_test), float(np.mean(y_train))))
    prior = np.bincount(np.asarray(y_train, dtype=int), minlength=task.n_classes).astype(float)
    prior = (prior + 1e-9) / (prior + 1e-9).sum()
    prior[np.argmax(prior)] += 1e-6  # one majority class on ties, the first
    return evaluate(task, y_test, np.tile(prior, (len(y_test), 1)))


def is_better(task: Task, a: float, b: float | None) -> bool:
    """Is score ``a`` better than ``b`` on the task's primary metric (None: anything is better)?"""
    if b is None or not np.isfinite(b):
        return bool(np.isfinite(a))
    return a > b if primary(task)[1] else a < b


def evaluate(task: Task, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if task.is_regression:
        err = scores - y
        rho = spearmanr(y, scores).statistic if np.std(scores) > 0 and np.std(y) > 0 else 0.0
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "r2": float(skm.r2_score(y, scores)) if len(y) > 1 else float("nan"),
            "spearman": float(rho),
        }
    probs = np.clip(scores, 1e-7, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    pred, labels = probs.argmax(axis=1), np.arange(probs.shape[1])
    out = {
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": balanced_accuracy(y, pred, labels),
        "macro_f1": float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y, probs, labels=labels)),
    }
    if probs.shape[1] == 2 and len(np.unique(y)) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y, probs[:, 1]))
    return out


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (scikit-learn's ``balanced_accuracy_score``, without
    its warning when a class is never predicted)."""
    present = [c for c in labels if np.any(y == c)]
    return float(np.mean([np.mean(pred[y == c] == c) for c in present])) if present else float("nan")
