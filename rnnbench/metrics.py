"""Task metrics, the metric that selects models, and the decision rule a threshold metric needs.

Classification models hand over class probabilities, regression models values. Every model kind is
selected the same way (:func:`selection_score`): its grid point, epoch or search trial is the one whose
validation scores are best on the experiment's selection metric (``experiment.selection_metric``, by
default ``experiment.metric``, by default accuracy or RMSE). A *threshold metric* (balanced accuracy,
macro F1) depends on where a model puts its decision, not only on how it ranks texts: each model's
decision rule (a threshold on the positive class's probability, or a weight per class) is chosen on
validation for that metric (:func:`tune_decision`), the same way for every model, and then applies to
test and to ``predict``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn import metrics as skm

from .data import Task
from .errors import RnnbenchError

# The metric of learning curves and model selection when the config names none, and whether higher is better.
PRIMARY = {"classification": ("accuracy", True), "regression": ("rmse", False)}


# Every metric a run records, and whether higher is better: any can select the models and decide the
# crossover (``experiment.metric``, ``experiment.selection_metric``).
METRICS = {
    "classification": {"accuracy": True, "balanced_accuracy": True, "macro_f1": True, "roc_auc": True,
                       "log_loss": False},
    "regression": {"rmse": False, "mae": False, "spearman": True, "r2": True},
}
# metrics of the predicted labels whose best decision is not the most probable class: tuned on validation
THRESHOLD_METRICS = ("balanced_accuracy", "macro_f1")
# how a threshold metric's verdict is checked: against one that does not depend on the decision
THRESHOLD_FREE = {2: "roc_auc"}  # n_classes -> metric; others: log_loss
WEIGHT_GRID = np.exp2(np.linspace(-4, 4, 17))  # multiclass: the weights tried for each class
WEIGHT_ROUNDS = 3


def primary(task: Task) -> tuple[str, bool]:
    return PRIMARY["regression" if task.is_regression else "classification"]


def higher_is_better(task: Task, metric: str, key: str = "experiment.metric") -> bool:
    """Whether a larger ``metric`` is better on this kind of task; a one-line error (naming ``key``) for a
    metric the task does not record (e.g. ``rmse`` on a classification task)."""
    kind = "regression" if task.is_regression else "classification"
    if metric not in METRICS[kind]:
        raise RnnbenchError(f"{key}: {metric!r} is not a {kind} metric; choose one of {', '.join(METRICS[kind])}")
    if metric == "roc_auc" and task.n_classes != 2:
        raise RnnbenchError(f"{key}: roc_auc needs a binary task; {task.name} has {task.n_classes} classes (use "
                            "balanced_accuracy or macro_f1)")
    return METRICS[kind][metric]


def decision_metric(cfg, task: Task) -> tuple[str, bool]:
    """The metric tables, crossovers and forecasts are decided on (``experiment.metric``, else the task's
    primary one) and whether higher is better."""
    metric = cfg.experiment.metric
    return primary(task) if metric is None else (metric, higher_is_better(task, metric))


def selection_metric(cfg, task: Task) -> tuple[str, bool]:
    """The metric every model kind is selected on (grid point, epoch, search trial):
    ``experiment.selection_metric``, else the decision metric."""
    metric = cfg.experiment.selection_metric
    if metric is None:
        return decision_metric(cfg, task)
    return metric, higher_is_better(task, metric, "experiment.selection_metric")


def threshold_free(task: Task) -> str:
    """The metric shown beside a threshold metric: ROC AUC for two classes, else log-loss."""
    return THRESHOLD_FREE.get(task.n_classes, "log_loss")


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


def better(higher: bool, a: float, b: float | None) -> bool:
    """Is score ``a`` better than ``b`` (None: anything finite is better)?"""
    if b is None or not np.isfinite(b):
        return bool(np.isfinite(a))
    return a > b if higher else a < b



# ------------------------------------------------------------------------------------ decisions


def _probs(scores: np.ndarray) -> np.ndarray:
    probs = np.clip(scores, 1e-7, 1.0)
    return probs / probs.sum(axis=1, keepdims=True)


def decide(scores: np.ndarray, decision: dict | None) -> np.ndarray:
    """The predicted class of each row of class probabilities: the most probable class, or by a tuned
    rule (``{"threshold": t}``: class 1 where its probability is at least ``t``; ``{"weights": w}``: the
    class of largest ``w_c · p_c``)."""
    if decision and "threshold" in decision:
        return (scores[:, 1] >= decision["threshold"]).astype(np.int64)
    if decision and "weights" in decision:
        return np.argmax(scores * np.asarray(decision["weights"]), axis=1)
    return scores.argmax(axis=1)


def _label_metric(metric: str, y: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> float:
    if metric == "accuracy":
        return float(np.mean(pred == y))
    if metric == "balanced_accuracy":
        return balanced_accuracy(y, pred, labels)
    return float(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0))


def _binary_threshold(metric: str, y: np.ndarray, p1: np.ndarray) -> tuple[float, float]:
    """The threshold on ``p1`` that maximises ``metric`` over every distinct cut (all at once, from
    cumulative counts), and the metric there; on ties, the threshold nearest 0.5."""
    order = np.argsort(-p1, kind="stable")
    p, yy = p1[order], y[order]
    pos, neg = int(yy.sum()), int(len(yy) - yy.sum())
    tp = np.concatenate([[0], np.cumsum(yy)])  # predicting the first k rows positive
    fp = np.concatenate([[0], np.cumsum(1 - yy)])
    cut = np.concatenate([[True], p[1:] != p[:-1], [True]])  # a threshold lies only between distinct values
    k = np.flatnonzero(cut)
    tp, fp = tp[k], fp[k]
    fn, tn = pos - tp, neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "balanced_accuracy":
            recalls = [tp / pos] if pos else []
            recalls += [tn / neg] if neg else []
            value = np.mean(recalls, axis=0)
        else:  # macro F1 over the two classes
            f1_pos = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            f1_neg = np.where(tn > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
            value = (f1_pos + f1_neg) / 2
    thresholds = np.concatenate([[np.inf], p])[k]  # k rows positive: threshold at the k-th probability
    thresholds = np.where(np.isinf(thresholds), 1.0 + 1e-9, thresholds)
    best = np.flatnonzero(value >= value.max() - 1e-12)
    i = best[np.argmin(np.abs(thresholds[best] - 0.5))]
    return float(thresholds[i]), float(value[i])


def tune_decision(task: Task, y: np.ndarray, scores: np.ndarray, metric: str) -> dict | None:
    """The decision rule that makes ``metric`` best on these (validation) scores, or None where the most
    probable class is the rule (regression, and every metric but the threshold ones)."""
    if task.is_regression or metric not in THRESHOLD_METRICS or len(y) == 0:
        return None
    probs, y = _probs(scores), np.asarray(y, dtype=np.int64)
    if probs.shape[1] == 2:
        t, value = _binary_threshold(metric, y, probs[:, 1])
        return {"metric": metric, "threshold": t, "validation": value}
    labels = np.arange(probs.shape[1])
    w = np.ones(probs.shape[1])
    best = _label_metric(metric, y, decide(probs, {"weights": w}), labels)
    for _ in range(WEIGHT_ROUNDS):  # coordinate ascent over each class's weight
        moved = False
        for c in range(len(w)):
            for v in WEIGHT_GRID:
                trial = w.copy()
                trial[c] = v
                value = _label_metric(metric, y, decide(probs, {"weights": trial}), labels)
                if value > best + 1e-12:
                    best, w, moved = value, trial, True
        if not moved:
            break
    return {"metric": metric, "weights": [float(x) for x in w], "validation": float(best)}


def selection_score(task: Task, y: np.ndarray, scores: np.ndarray, metric: str) -> float:
    """A model's validation score on the selection metric: at its tuned decision for a threshold metric,
    else as :func:`evaluate` gives it. Every model kind's grid point, epoch or trial is chosen by this."""
    decision = tune_decision(task, y, scores, metric)
    return evaluate(task, y, scores, decision)[metric]


def evaluate(task: Task, y: np.ndarray, scores: np.ndarray, decision: dict | None = None) -> dict[str, float]:
    """Every metric of the task; ``decision`` (:func:`tune_decision`): the rule the label metrics use
    (ROC AUC and log-loss read the probabilities, whatever the rule)."""
    if task.is_regression:
        err = scores - y
        rho = spearmanr(y, scores).statistic if np.std(scores) > 0 and np.std(y) > 0 else 0.0
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "r2": float(skm.r2_score(y, scores)) if len(y) > 1 else float("nan"),
            "spearman": float(rho),
        }
    probs = _probs(scores)
    pred, labels = decide(probs, decision), np.arange(probs.shape[1])
    out = {m: _label_metric(m, y, pred, labels) for m in ("accuracy", "balanced_accuracy", "macro_f1")}
    out["log_loss"] = float(skm.log_loss(y, probs, labels=labels))
    if probs.shape[1] == 2 and len(np.unique(y)) == 2:
        out["roc_auc"] = float(skm.roc_auc_score(y, probs[:, 1]))
    return out


def group_scores(task: Task, y: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each group's label (the most frequent of its rows': an author's, repeated on every post) and the mean
    of its rows' class probabilities; groups in order of their codes."""
    ids, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    probs = _probs(np.asarray(scores))
    mean = np.zeros((len(ids), probs.shape[1]))
    np.add.at(mean, inverse, probs)
    mean /= counts[:, None]
    votes = np.zeros((len(ids), probs.shape[1]), np.int64)
    np.add.at(votes, (inverse, np.asarray(y, np.int64)), 1)
    return votes.argmax(1), mean


def group_metrics(task: Task, y: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """The metrics of scoring each group (a test author) as a whole: its label predicted from the mean of its
    texts' probabilities (the most probable class), as author-profiling studies report them."""
    labels, mean = group_scores(task, y, scores, groups)
    return {**evaluate(task, labels, mean), "groups": float(len(labels))}


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (scikit-learn's ``balanced_accuracy_score``, without
    its warning when a class is never predicted)."""
    present = [c for c in labels if np.any(y == c)]
    return float(np.mean([np.mean(pred[y == c] == c) for c in present])) if present else float("nan")
