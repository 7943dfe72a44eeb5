"""Task metrics. Classification models hand over class probabilities, regression models values."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn import metrics as skm

from .data import Task

# The metric used for model selection and for learning curves, and whether higher is better.
PRIMARY = {"classification": ("accuracy", True), "regression": ("rmse", False)}


def primary(task: Task) -> tuple[str, bool]:
    return PRIMARY["regression" if task.is_regression else "classification"]


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
    out = {
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "log_loss": float(skm.log_loss(y, probs, labels=np.arange(probs.shape[1]))),
    }
    if probs.shape[1] == 2 and len(np.unique(y)) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y, probs[:, 1]))
    return out
