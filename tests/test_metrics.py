"""The metrics a run records, the reference (text-blind) scores, and which direction is better."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from rnnbench.data import Task
from rnnbench.errors import RnnbenchError
from rnnbench.metrics import METRICS, evaluate, higher_is_better, reference_scores

BINARY, MULTI, REG = Task("s", "binary", 2), Task("m", "multiclass", 3), Task("r", "regression", 0)


def test_classification_metrics_are_scikit_learns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    probs = rng.dirichlet([1, 1, 1], 400)
    m = evaluate(MULTI, y, probs)
    assert set(m) == set(METRICS["classification"]) - {"roc_auc"}
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, probs.argmax(1)))
    assert m["macro_f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert set(evaluate(BINARY, y % 2, probs[:, :2])) == set(METRICS["classification"])
    assert set(evaluate(REG, y.astype(float), probs[:, 0])) == set(METRICS["regression"])


def test_reference_scores_are_the_majority_class_and_the_mean():
    y_train = np.array([0, 1, 1, 1, 2])
    y_test = np.array([1, 1, 1, 0, 2, 2])
    ref = reference_scores(MULTI, y_train, y_test)
    assert ref["accuracy"] == pytest.approx(0.5)  # always "1"
    assert ref["balanced_accuracy"] == pytest.approx(1 / 3)
    assert ref["log_loss"] == pytest.approx(-np.mean(np.log([0.6, 0.6, 0.6, 0.2, 0.2, 0.2])), rel=1e-5)
    assert reference_scores(BINARY, np.array([0, 1, 1]), np.array([0, 1]))["roc_auc"] == 0.5
    reg = reference_scores(REG, np.array([1.0, 2.0, 3.0]), np.array([0.0, 4.0]))
    assert reg["rmse"] == pytest.approx(2.0) and reg["spearman"] == 0.0


def test_direction_of_every_metric_and_a_metric_of_the_other_kind():
    assert higher_is_better(BINARY, "macro_f1") and not higher_is_better(BINARY, "log_loss")
    assert not higher_is_better(REG, "mae") and higher_is_better(REG, "spearman")
    with pytest.raises(RnnbenchError, match="'rmse' is not a classification metric; choose one of accuracy"):
        higher_is_better(BINARY, "rmse")
