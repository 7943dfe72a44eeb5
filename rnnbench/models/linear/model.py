"""The talk's baseline: TF-IDF over word 1- and 2-grams + logistic regression (ridge for targets).

Model selection is a grid over ``min_df`` × ``C`` (× ``alpha`` for ridge) scored on the validation
split only. The final model is the grid's model at the chosen point: fit on the training subset alone
(validation only picks hyper-parameters), exactly what a validation-split grid search would select.

Tokens follow Passage's rules (punctuation kept as tokens), as for the RNN.

Fast, and the same features as refitting ``TfidfVectorizer(min_df=m)`` per grid point: n-grams are
counted once, vectorised and in chunks of documents (:mod:`rnnbench.ngrams`), over one vocabulary for
the smallest ``min_df``, turned into tf-idf in place; int32 indices throughout. Each larger ``min_df``'s
matrix is its columns of the previous one's, rows normalised again (the same idf; the values equal
scikit-learn's to rounding), derived only when its points start: the grid runs one ``min_df`` at a
time and drops each one's matrices when its points are done, so one ``min_df``'s matrix is held, not all
(unless some ``min_df`` has fewer grid points than there are workers: then all at once).
Values stay float64 and the solver stays lbfgs, because that is the model scikit-learn fits (measured:
lbfgs on float32 features stops at a different iterate; liblinear, saga and newton-cg land nearer the
exact optimum than lbfgs's default tolerance does, so they differ from it). The grid points are fitted
side by side, one in a thread of this process and the others in worker processes that map the feature
matrices from shared memory (:mod:`rnnbench.shared_csr`): scipy's L-BFGS-B holds the GIL for much of
each iteration, so threads alone ran the fits one core at a time. Small grids (under
``PROCESS_MIN_NNZ`` non-zeros) stay in this process, where starting workers would cost more than it
saves. (No warm starts across ``C``: scikit-learn's lbfgs stops at once from a previous
solution, under-converged.)
"""

from __future__ import annotations

import copy
import gc
import io
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import normalize

from ...config import usable_cores
from ...data import Split, Task
from ...errors import RnnbenchError
from ...fileio import atomic_write_bytes
from ...metrics import better, evaluate, higher_is_better, primary, selection_metric, tune_decision
from ...outputs import duration
from ...termination import die_with_parent
from ..base import cpu_device
from .ngrams import NgramCounter
from .shared_csr import SharedCSR, open_shared
from .spec import LinearConfig

log = logging.getLogger(__name__)

FEATURE_DTYPE = np.float64  # float32 features change what lbfgs converges to (see above)
TFIDF_BLOCK = 1 << 22  # non-zeros per step of the in-place tf-idf
PROCESS_MIN_NNZ = 2_000_000  # smaller training matrices are fitted in this process (~10k blog posts)
GRID_QUIET_S = 10.0  # grids done sooner print nothing as they go (each point is still in the run's log)

if TYPE_CHECKING:
    from ...runs import Run


def tfidf_in_place(tfidf: TfidfTransformer, x):
    """``tfidf.transform(x, copy=False)`` for a CSR matrix of float counts, the same values, without its
    temporary of one float per non-zero (1.3 GB on the Blog Authorship Corpus)."""
    if tfidf.sublinear_tf:
        np.log(x.data, out=x.data)
        x.data += 1.0
    if tfidf.use_idf:
        for at in range(0, x.nnz, TFIDF_BLOCK):
            x.data[at:at + TFIDF_BLOCK] *= tfidf.idf_[x.indices[at:at + TFIDF_BLOCK]]
    return normalize(x, norm=tfidf.norm, copy=False) if tfidf.norm is not None else x


def release_free_memory() -> None:
    """Hands the heap memory freed so far back to the OS (glibc's ``malloc_trim``; elsewhere nothing):
    counting n-grams frees a great deal that glibc would otherwise keep for this process."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def tfidf_of_columns(tfidf: TfidfTransformer, columns: np.ndarray) -> TfidfTransformer:
    """The transformer ``TfidfTransformer().fit(counts[:, columns])`` would be: the same document
    frequencies of those columns, so the same idf values, bit for bit."""
    out = copy.copy(tfidf)
    if tfidf.use_idf:
        out.idf_ = tfidf.idf_[columns]
    out.n_features_in_ = len(columns)
    return out


def narrow_columns(x, at: np.ndarray, norm: str | None = "l2"):
    """Columns ``at`` (sorted) of a tf-idf matrix whose rows were normalised: the tf-idf of those columns
    alone, rows normalised again (a row's scale cancels in its normalisation, so this equals computing
    them from the counts, to rounding: a few ulp; 7 at most in the tests, 17 after two steps)."""
    y = x[:, at]
    return normalize(y, norm=norm, copy=False) if norm is not None else y


def grid_points(cfg: LinearConfig, task: Task) -> list[dict]:
    strengths = ("alpha", cfg.alpha) if task.is_regression else ("C", cfg.C)
    if not cfg.min_df or not strengths[1]:
        raise RnnbenchError("linear: the grid is empty (linear.min_df and linear.C / linear.alpha need values)")
    return [{"min_df": m, strengths[0]: s} for m in cfg.min_df for s in strengths[1]]


class LinearBaseline:
    kind = "linear"

    def __init__(self, cfg: LinearConfig, task: Task, n_jobs: int = 2, metric: str | None = None):
        # learned state (set by fit): counter_, columns_ (the count columns kept for the chosen min_df),
        # tfidf_, model_, chosen_, validation_, validation_scores_, grid_, training_, timings_, device_
        self.cfg, self.task, self.n_jobs = cfg, task, n_jobs
        self.metric = metric  # the selection metric (None: the task's primary one, when fitting)

    @classmethod
    def from_config(cls, cfg, task: Task, seed: int = 0) -> LinearBaseline:
        """The experiment's baseline (deterministic: ``seed`` is accepted for a uniform surface)."""
        return cls(cfg.linear, task, n_jobs=cfg.compute.threads or usable_cores(),
                   metric=selection_metric(cfg, task)[0])

    # ------------------------------------------------------------------ fitting
    def _estimator(self, strength: float):
        if self.task.is_regression:
            return Ridge(alpha=strength)
        return LogisticRegression(C=strength, max_iter=self.cfg.max_iter)

    def _fit_point(self, params: dict, x_tr, x_va, y_tr, y_va) -> dict:
        """One grid point, scored on ``x_va`` when it is given (a worker's is scored where it was sent from:
        the validation matrix never travels)."""
        strength = params["alpha" if self.task.is_regression else "C"]
        t = time.perf_counter()
        est = self._estimator(strength).fit(x_tr, y_tr)
        result = {"params": params, "fit_seconds": time.perf_counter() - t, "model": est}
        if x_va is not None:
            self._score_point(result, x_va, y_va)
        return result

    def _score_point(self, result: dict, x_va, y_va) -> None:
        """A grid point's validation scores, its metrics and its selection score (the selection metric at
        its own tuned decision rule: :func:`rnnbench.metrics.selection_score`)."""
        scores = self._scores(result["model"], x_va)
        decision = tune_decision(self.task, y_va, scores, self.metric)
        result["scores"], result["validation"] = scores, evaluate(self.task, y_va, scores, decision)

    def _fit_grid(self, phases: list[list[dict]], smallest: list, at: dict[int, np.ndarray], norm: str | None,
                  y_tr, y_va, done=lambda result: None) -> list[dict]:
        """Every point of ``phases`` (lists of grid points, smallest ``min_df`` first): when the training
        matrix is large and there are cores for it, several at once (one in a thread here, the others in
        worker processes that map the matrix from shared memory), else here one after another;
        ``done(result)`` as each one finishes.

        ``smallest`` is ``[x_tr, x_va]`` of the smallest ``min_df``, emptied here (the caller keeps no
        reference, so that they can be freed). Each larger ``min_df``'s matrices are derived from the
        previous one's when the first phase that needs them starts (``at[m]``: their columns among the
        previous one's; rows normalised by ``norm``), and dropped when the next phase starts: one
        phase's matrices are held at a time (and the next one's while they are derived)."""
        x_tr, x_va = smallest
        smallest.clear()
        workers = min(self.n_jobs, max(len(points) for points in phases))
        # One fit at a time runs here, in a thread; the others in worker processes (each costs ~0.1 GB
        # of its own, so the thread saves one).
        pool = None
        if workers >= 2 and x_tr.nnz >= PROCESS_MIN_NNZ:
            pool = ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=die_with_parent, initargs=(os.getpid(),))
        mats: dict[int, tuple] = {}  # min_df -> (x_tr, x_va, its SharedCSR or None): this phase's
        results = []
        try:
            for points in phases:
                needed = sorted({p["min_df"] for p in points})
                for m in needed:
                    if m not in mats:
                        if m in at:  # every min_df but the smallest: from the last one made (x_tr, x_va)
                            x_tr, x_va = narrow_columns(x_tr, at[m], norm), narrow_columns(x_va, at[m], norm)
                        mats[m] = (x_tr, x_va, SharedCSR(x_tr) if pool is not None else None)
                for m in [m for m in mats if m not in needed]:  # the previous phase's
                    shared = mats.pop(m)[2]
                    if shared is not None:
                        shared.close()
                if pool is None:
                    for p in points:
                        results.append(self._fit_point(p, *mats[p["min_df"]][:2], y_tr, y_va))
                        done(results[-1])
                    continue
                results += self._fit_beside_workers(points, mats, pool, workers, y_tr, y_va, done)
            return results
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            x_tr = x_va = None
            for _, _, shared in mats.values():
                if shared is not None:
                    shared.close()
            mats.clear()

    def _fit_beside_workers(self, points: list[dict], mats: dict, pool: ProcessPoolExecutor, workers: int,
                            y_tr, y_va, done) -> list[dict]:
        """``points`` on ``workers`` at once: one in a thread here, the others in ``pool``'s processes
        (mapping the training matrices from shared memory); each freed one takes the next point."""
        pending, running, results = deque(points), {}, []  # running: future -> whether it runs here

        def start(here: bool) -> None:
            p = pending.popleft()
            x_tr, x_va, shared = mats[p["min_df"]]
            future = _in_thread(self._fit_point, p, x_tr, x_va, y_tr, y_va) if here else pool.submit(
                _fit_point_in_worker, self.cfg, self.task, p, shared.handle, y_tr)
            running[future] = here

        for here in [True] + [False] * (workers - 1):
            if pending:
                start(here)
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                here = running.pop(future)
                results.append(result := future.result())
                if "validation" not in result:
                    self._score_point(result, mats[result["params"]["min_df"]][1], y_va)
                done(results[-1])
                if pending:
                    start(here)
        return results

    def fit(self, train: Split, val: Split, *, run: Run | None = None, progress: bool = True,
            prune=None) -> LinearBaseline:
        """Grid over (min_df, C or alpha) scored on ``val``; keeps the best. Logs each grid point to ``run``
        as it finishes (and, with ``progress``, prints it when the grid takes more than a few seconds); no
        checkpoints, no progress bar; no validation curve, so ``prune`` is never called."""
        self.device_, self.training_, self.grid_, self.timings_ = cpu_device(), {}, [], {}
        points = grid_points(self.cfg, self.task)
        t0 = time.perf_counter()
        min_dfs = sorted({p["min_df"] for p in points})
        # one count matrix, for the smallest min_df: int32 indices, counted in chunks, turned tf-idf in
        # place; the larger min_dfs' columns are subsets of it, with the same idf
        self.counter_ = NgramCounter(tuple(self.cfg.ngram_range), min_df=min_dfs[0], dtype=FEATURE_DTYPE)
        x_tr = self.counter_.fit_transform(train.texts)
        x_va = self.counter_.transform(val.texts)
        tfidf = TfidfTransformer(sublinear_tf=self.cfg.sublinear_tf).fit(x_tr)
        x_tr, x_va = tfidf_in_place(tfidf, x_tr), tfidf_in_place(tfidf, x_va)
        columns = {m: np.flatnonzero(self.counter_.df_ >= m) for m in min_dfs}
        kept = [m for m in min_dfs if len(columns[m])]
        if not kept:
            raise RnnbenchError("linear: no grid point left any feature (min_df too high for this training size)")
        features = {m: (columns[m], tfidf_of_columns(tfidf, columns[m])) for m in kept}
        at = {m: np.searchsorted(columns[p], columns[m]) for p, m in zip(kept, kept[1:])}
        gc.collect()
        release_free_memory()  # counting's freed heap, before the grid's workers add theirs
        self.timings_["vectorize"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        name = "alpha" if self.task.is_regression else "C"
        # Longest first: the weakest regularisation (the most solver iterations), and on ties the smaller
        # min_df (more features).
        todo = sorted((p for p in points if p["min_df"] in features),
                      key=lambda p: (p[name] if self.task.is_regression else -p[name], p["min_df"]))
        self.metric = self.metric or primary(self.task)[0]
        metric, higher = self.metric, higher_is_better(self.task, self.metric, "experiment.selection_metric")
        if run is not None:
            run.log({"event": "grid_start", "points": len(todo)})

        finished = 0

        def done(result: dict) -> None:  # as each point finishes: the run's log (`rnnbench status`), stderr
            nonlocal finished
            finished += 1
            value = result["validation"][metric]
            if run is not None:
                run.log({"event": "grid_point", **result["params"], f"val_{metric}": value,
                         "fit_seconds": round(result["fit_seconds"], 1)})
            if progress and len(todo) > 1 and time.perf_counter() - t0 > GRID_QUIET_S:
                log.info(f"  linear grid {finished}/{len(todo)}: "
                         + ", ".join(f"{k} {v:g}" for k, v in result["params"].items())
                         + f": validation {metric} {value:.4f} ({duration(result['fit_seconds'])}; "
                         f"{duration(time.perf_counter() - t0)} into the grid)")

        # One min_df at a time (its matrices derived when it starts, dropped when it ends) where each
        # min_df has at least as many points as there are workers, so that none starts idle (the talk's
        # grid on a few cores; a phase's last points still leave some idle while they finish). Else all
        # at once, every min_df's matrices held together.
        by_m = [[p for p in todo if p["min_df"] == m] for m in kept]
        one_at_a_time = min(map(len, by_m)) >= min(self.n_jobs, len(todo))
        smallest = [x_tr, x_va]
        del x_tr, x_va  # _fit_grid owns them now
        results = self._fit_grid(by_m if one_at_a_time else [todo], smallest, at, tfidf.norm, train.y, val.y, done)
        self.timings_["grid_fit"] = time.perf_counter() - t0

        best = None
        # Ties go to the stronger regularisation, then the smaller min_df: a fixed rule, and the
        # order in which scikit-learn's GridSearchCV walks this grid.
        results.sort(key=lambda r: (r["params"][name] if not self.task.is_regression else -r["params"][name],
                                    r["params"]["min_df"]))
        for result in results:
            self.grid_.append({"params": result["params"], "validation": result["validation"]})
            if best is None or better(higher, result["validation"][metric], best["validation"][metric]):
                best = result
        self.chosen_ = dict(best["params"])
        self.validation_, self.validation_scores_ = best["validation"], best["scores"]
        self.columns_, self.tfidf_ = features[best["params"]["min_df"]][:2]
        self.model_ = best["model"]
        self.timings_["chosen_point"] = best["fit_seconds"]  # the chosen grid point's fit (it is the final model)
        self.training_ = {"grid_points": len(results)}  # what selection tried on validation
        self.timings_["fit"] = self.timings_["vectorize"] + self.timings_["grid_fit"]
        return self

    # ------------------------------------------------------------------ predicting
    def _scores(self, est, x) -> np.ndarray:
        if self.task.is_regression:
            return est.predict(x)
        return est.predict_proba(x)

    def features(self, texts: list[str]):
        counts = self.counter_.transform(texts)
        if len(self.columns_) < counts.shape[1]:
            counts = counts[:, self.columns_]
        return self.tfidf_.transform(counts, copy=False)

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        """Class probabilities [n, K], or predicted values [n] for regression."""
        return self._scores(self.model_, self.features(list(texts)))

    # ------------------------------------------------------------------ persistence
    def save(self, run_dir: Path) -> None:
        state = {k: getattr(self, k) for k in ("cfg", "task", "counter_", "columns_", "tfidf_", "model_", "chosen_")}
        try:
            blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as e:  # before anything is written
            raise RnnbenchError(f"linear: the fitted model cannot be saved ({type(e).__name__}: {e})") from None
        atomic_write_bytes(Path(run_dir) / "model.pkl", blob)

    @classmethod
    def load(cls, run_dir: Path) -> LinearBaseline:
        path = Path(run_dir) / "model.pkl"
        if not path.is_file():
            raise RnnbenchError(f"{path}: missing (rerun that run with --force)")
        try:
            state = _Unpickler(io.BytesIO(path.read_bytes())).load()
            if not isinstance(state, dict) or not {"cfg", "task", "model_"} <= set(state):
                raise ValueError("not a saved linear model")
        except Exception as e:  # noqa: BLE001 - a truncated or foreign pickle fails in many ways
            raise RnnbenchError(f"{path}: unreadable model ({type(e).__name__}: {(str(e).splitlines() or ['?'])[0]}); "
                                "rerun that run with --force") from None
        obj = cls(state.pop("cfg"), state.pop("task"))
        for k, v in state.items():
            setattr(obj, k, v)
        return obj


# where the classes of a model saved by an earlier rnnbench live now (model kinds became packages)
_MOVED = {("rnnbench.ngrams", "NgramCounter"): ("rnnbench.models.linear.ngrams", "NgramCounter"),
          ("rnnbench.config", "LinearConfig"): ("rnnbench.models.linear.spec", "LinearConfig"),
          ("rnnbench.linear", "LinearBaseline"): ("rnnbench.models.linear.model", "LinearBaseline")}


class _Unpickler(pickle.Unpickler):
    """Reads a saved model, also one saved before the model kinds moved into :mod:`rnnbench.models`."""

    def find_class(self, module: str, name: str):
        return super().find_class(*_MOVED.get((module, name), (module, name)))


def _in_thread(fn, *args) -> Future:
    """``fn(*args)`` in a daemon thread: a grid point fitted in this process beside the workers' while
    the main thread only waits. Not a ThreadPoolExecutor: its threads are joined at exit, so an
    interrupted grid would wait for the fit to end."""
    future: Future = Future()

    def run() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 (handed to the waiting thread)
                future.set_exception(e)

    threading.Thread(target=run, daemon=True, name="rnnbench-grid-point").start()
    return future


def _fit_point_in_worker(cfg: LinearConfig, task: Task, params: dict, x_tr_handle, y_tr) -> dict:
    """A grid point in a worker process, unscored: the training matrix mapped from shared memory."""
    with open_shared(x_tr_handle) as x_tr:
        result = LinearBaseline(cfg, task, n_jobs=1)._fit_point(params, x_tr, None, y_tr, None)
        del x_tr  # no reference left: the mapping closes with the block
    return result
