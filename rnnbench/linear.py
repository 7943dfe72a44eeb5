"""The talk's baseline: TF-IDF over word 1- and 2-grams + logistic regression (ridge for targets).

Model selection is a grid over ``min_df`` × ``C`` (× ``alpha`` for ridge) scored on the validation
split only. The final model is the grid's model at the chosen point: fit on the training subset alone
(validation only picks hyper-parameters), exactly what a validation-split grid search would select.

Tokens follow Passage's rules (punctuation kept as tokens), as for the RNN.

Fast, and identical in result to refitting ``TfidfVectorizer(min_df=m)`` per grid point: n-grams are
counted once, vectorised (:mod:`rnnbench.ngrams`); each ``min_df`` vocabulary is a column filter of
that one count matrix (same columns, same idf); the grid points are fitted on all cores. (No warm
starts across ``C``: scikit-learn's lbfgs stops at once from a previous solution, under-converged.)
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression, Ridge

from .config import LinearConfig, usable_cores
from .datasets import Split, Task
from .errors import RnnbenchError
from .fileio import atomic_write_bytes
from .metrics import evaluate, is_better, primary
from .ngrams import NgramCounter


def grid_points(cfg: LinearConfig, task: Task) -> list[dict]:
    strengths = ("alpha", cfg.alpha) if task.is_regression else ("C", cfg.C)
    if not cfg.min_df or not strengths[1]:
        raise RnnbenchError("linear: the grid is empty (linear.min_df and linear.C / linear.alpha need values)")
    return [{"min_df": m, strengths[0]: s} for m in cfg.min_df for s in strengths[1]]


class LinearBaseline:
    kind = "linear"

    def __init__(self, cfg: LinearConfig, task: Task, n_jobs: int = 2):
        self.cfg, self.task, self.n_jobs = cfg, task, n_jobs
        self.counter_: NgramCounter | None = None
        self.columns_: np.ndarray | None = None  # kept count columns for the chosen min_df
        self.tfidf_: TfidfTransformer | None = None
        self.model_ = None
        self.chosen_: dict = {}
        self.grid_: list[dict] = []
        self.timings_: dict[str, float] = {}

    @classmethod
    def from_config(cls, cfg, task: Task, seed: int = 0) -> LinearBaseline:
        """The experiment's baseline (deterministic: ``seed`` is accepted for a uniform surface)."""
        return cls(cfg.linear, task, n_jobs=cfg.compute.threads or usable_cores())

    # ------------------------------------------------------------------ fitting
    def _estimator(self, strength: float):
        if self.task.is_regression:
            return Ridge(alpha=strength)
        return LogisticRegression(C=strength, max_iter=self.cfg.max_iter)

    def _fit_point(self, params: dict, x_tr, x_va, y_tr, y_va) -> dict:
        strength = params["alpha" if self.task.is_regression else "C"]
        t = time.perf_counter()
        est = self._estimator(strength).fit(x_tr, y_tr)
        fit_s = time.perf_counter() - t
        return {"params": params, "validation": evaluate(self.task, y_va, self._scores(est, x_va)),
                "fit_seconds": fit_s, "model": est}

    def fit(self, train: Split, val: Split, log=None, run_dir: Path | None = None, progress: bool = True) -> LinearBaseline:
        """Grid over (min_df, C or alpha) scored on ``val``; keeps the best. No checkpoints, no progress bar."""
        points = grid_points(self.cfg, self.task)
        t0 = time.perf_counter()
        self.counter_ = NgramCounter(tuple(self.cfg.ngram_range))
        counts_tr = self.counter_.fit_transform(train.texts).tocsc()
        counts_va = self.counter_.transform(val.texts).tocsc()
        df = np.diff(counts_tr.indptr)  # CSC: non-zeros per column = document frequency
        features = {}
        for m in sorted({p["min_df"] for p in points}):
            cols = np.flatnonzero(df >= m)
            if len(cols):
                tfidf = TfidfTransformer(sublinear_tf=self.cfg.sublinear_tf).fit(counts_tr[:, cols])
                features[m] = (cols, tfidf, tfidf.transform(counts_tr[:, cols]).tocsr(),
                               tfidf.transform(counts_va[:, cols]).tocsr())
        self.timings_["vectorize"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        todo = [p for p in points if p["min_df"] in features]
        results = Parallel(n_jobs=min(self.n_jobs, max(len(todo), 1)), prefer="threads")(
            delayed(self._fit_point)(p, *features[p["min_df"]][2:], train.y, val.y) for p in todo)
        self.timings_["grid_fit"] = time.perf_counter() - t0
        name = "alpha" if self.task.is_regression else "C"

        metric, _ = primary(self.task)
        best = None
        # Ties go to the stronger regularisation, then the smaller min_df: a fixed rule, and the
        # order in which scikit-learn's GridSearchCV walks this grid.
        results.sort(key=lambda r: (r["params"][name] if not self.task.is_regression else -r["params"][name],
                                    r["params"]["min_df"]))
        for result in results:
            self.grid_.append({"params": result["params"], "validation": result["validation"]})
            if log:
                log({"event": "grid_point", **result["params"], f"val_{metric}": result["validation"][metric]})
            if best is None or is_better(self.task, result["validation"][metric], best["validation"][metric]):
                best = result
        if best is None:
            raise RnnbenchError("linear: no grid point left any feature (min_df too high for this training size)")
        self.chosen_ = dict(best["params"])
        self.validation_ = best["validation"]
        self.columns_, self.tfidf_ = features[best["params"]["min_df"]][:2]
        self.model_ = best["model"]
        self.timings_["fit_chosen"] = best["fit_seconds"]
        self.timings_["fit"] = self.timings_["vectorize"] + self.timings_["grid_fit"]
        return self

    # ------------------------------------------------------------------ predicting
    def _scores(self, est, x) -> np.ndarray:
        if self.task.is_regression:
            return est.predict(x)
        return est.predict_proba(x)

    def features(self, texts: list[str]):
        counts = self.counter_.transform(texts).tocsc()[:, self.columns_]
        return self.tfidf_.transform(counts)

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        """Class probabilities [n, K], or predicted values [n] for regression."""
        return self._scores(self.model_, self.features(list(texts)))

    # ------------------------------------------------------------------ persistence
    def save(self, run_dir: Path) -> None:
        state = {k: getattr(self, k) for k in ("cfg", "task", "counter_", "columns_", "tfidf_", "model_", "chosen_")}
        atomic_write_bytes(Path(run_dir) / "model.pkl", pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def load(cls, run_dir: Path) -> LinearBaseline:
        state = pickle.loads((Path(run_dir) / "model.pkl").read_bytes())
        obj = cls(state.pop("cfg"), state.pop("task"))
        for k, v in state.items():
            setattr(obj, k, v)
        return obj
