"""Intervals that respect who wrote the text: a bootstrap over test groups and seeds.

A run keeps its test predictions (:meth:`rnnbench.runs.Run.save_predictions`). A model's score at one
size varies with the seeds (its training subset, initialisation, order) and with which texts happen to be
in the test set; where texts come in groups (the posts of one blogger), whole groups vary together, so the
groups, not the texts, are the units to resample. Each bootstrap resample draws the test groups with
replacement (single texts where a data set has no groups) and the seeds with replacement, the same draw
for every model (runs are paired by seed and share the test set), and recomputes each model's mean score
and its difference to the baseline. The 95% intervals are the resamples' percentiles.

What they cover: seed-to-seed variation and the sampling of test groups. What they do not: a validation
split that chose a poor model for every seed alike, the choice of data set, anything beyond the sizes run
(the forecast's intervals cover the seeds alone).

Metrics that add up over examples (accuracy, balanced accuracy, macro F1, log-loss, RMSE, MAE, R²) are
resampled through per-group sums; ROC AUC through weighted counts; Spearman's ρ gets no interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOT = 1000
LEVEL = 0.95
CHUNK = 100  # resamples computed at once (memory: CHUNK × groups)
DECOMPOSABLE = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "rmse", "mae", "r2")


@dataclass
class Preds:
    """One run's test predictions, as :meth:`rnnbench.runs.Run.save_predictions` keeps them."""

    y: np.ndarray
    groups: np.ndarray  # int codes; -1 where the data set has none
    pred: np.ndarray | None = None  # decided classes (classification)
    proba: np.ndarray | None = None  # (n,) the class-1 probability of a binary task, else (n, K)
    value: np.ndarray | None = None  # regression

    @classmethod
    def of(cls, saved: dict | None) -> Preds | None:
        if saved is None:
            return None
        return cls(saved["y"], saved["groups"], saved.get("pred"), saved.get("proba"), saved.get("value"))

    @property
    def probs(self) -> np.ndarray:
        p = self.proba.astype(np.float64)
        return np.stack([1 - p, p], 1) if p.ndim == 1 else p

    def by_group(self) -> Preds:
        """Each group as one example: its most frequent label, and the most probable class of the mean of
        its texts' probabilities (scoring whole authors)."""
        ids, inverse = np.unique(self.groups, return_inverse=True)
        inverse = inverse.reshape(-1)
        probs = self.probs
        mean = np.zeros((len(ids), probs.shape[1]))
        np.add.at(mean, inverse, probs)
        mean /= np.bincount(inverse, minlength=len(ids))[:, None]
        votes = np.zeros((len(ids), probs.shape[1]), np.int64)
        np.add.at(votes, (inverse, self.y.astype(np.int64)), 1)
        proba = mean[:, 1] if mean.shape[1] == 2 else mean
        return Preds(votes.argmax(1), np.arange(len(ids)), mean.argmax(1), proba)


def _stats(metric: str, p: Preds) -> np.ndarray:
    """Per-example quantities whose sums over any resample give ``metric`` (:func:`_from_totals`)."""
    if metric in ("rmse", "mae", "r2"):
        err = p.value.astype(np.float64) - p.y
        y = p.y.astype(np.float64)
        return np.stack([np.ones_like(err), err**2, np.abs(err), y, y**2], 1)
    y, pred = p.y.astype(np.int64), p.pred.astype(np.int64)
    if metric == "accuracy":
        return np.stack([np.ones(len(y)), (pred == y).astype(float)], 1)
    k = p.probs.shape[1]
    if metric == "log_loss":
        probs = np.clip(p.probs, 1e-7, 1.0)
        probs /= probs.sum(1, keepdims=True)
        return np.stack([np.ones(len(y)), -np.log(probs[np.arange(len(y)), y])], 1)
    onehot_y, onehot_p = np.eye(k)[y], np.eye(k)[pred]
    if metric == "balanced_accuracy":  # per class: its rows, and those predicted right
        return np.concatenate([onehot_y, onehot_y * onehot_p], 1)
    # macro F1: per class true positives, false positives, false negatives
    return np.concatenate([onehot_y * onehot_p, (1 - onehot_y) * onehot_p, onehot_y * (1 - onehot_p)], 1)


def _from_totals(metric: str, t: np.ndarray) -> np.ndarray:
    """The metric of each row of summed :func:`_stats`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy" or metric == "log_loss":
            return t[:, 1] / t[:, 0]
        if metric == "rmse":
            return np.sqrt(t[:, 1] / t[:, 0])
        if metric == "mae":
            return t[:, 2] / t[:, 0]
        if metric == "r2":
            return 1 - t[:, 1] / (t[:, 4] - t[:, 3] ** 2 / t[:, 0])
        k = t.shape[1] // (2 if metric == "balanced_accuracy" else 3)
        if metric == "balanced_accuracy":
            n, right = t[:, :k], t[:, k:]
            recall = np.where(n > 0, right / np.where(n > 0, n, 1), np.nan)
            return np.nanmean(recall, 1)
        tp, fp, fn = t[:, :k], t[:, k:2 * k], t[:, 2 * k:]
        denom = 2 * tp + fp + fn
        return np.mean(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0), 1)


def _weighted_auc(p1: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC AUC of scores ``p1`` for each row of example weights ``w`` (B, n); ties count one half."""
    order = np.argsort(p1, kind="stable")
    s, yy, w = p1[order], y[order].astype(bool), w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # tie blocks of equal scores
    pos = np.add.reduceat(w * yy, starts, axis=1)
    neg = np.add.reduceat(w * ~yy, starts, axis=1)
    below = np.cumsum(neg, 1) - neg  # negative weight strictly below each block
    num = np.sum(pos * (below + 0.5 * neg), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / (pos.sum(1) * neg.sum(1))


def _codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Each example's resampling unit: its group, or itself where there are none."""
    if np.all(groups < 0):
        return np.arange(len(groups)), len(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    return inverse.reshape(-1), len(ids)


def resampled_scores(runs: dict[str, dict[int, Preds]], metric: str, n_boot: int = N_BOOT,
                     seed: int = 0) -> dict[str, dict[int, np.ndarray]] | None:
    """Each run's score in every resample of the test groups: ``{model: {seed: (n_boot,)}}``, the same draw
    of groups for every run. None when the runs cannot be resampled together (not scored on one test set)
    or the metric has no interval."""
    if metric not in DECOMPOSABLE and metric != "roc_auc":
        return None
    all_preds = [p for r in runs.values() for p in r.values()]
    if not all_preds:
        return None
    first = all_preds[0]
    if any(not np.array_equal(p.y, first.y) or not np.array_equal(p.groups, first.groups) for p in all_preds):
        return None  # not scored on one test set: nothing to pair
    unit, n_units = _codes(first.groups)
    rng = np.random.default_rng(seed)
    out = {m: {s: np.zeros(n_boot) for s in r} for m, r in runs.items()}
    per_unit = {}
    if metric != "roc_auc":
        for m, r in runs.items():
            for s, p in r.items():
                stats = _stats(metric, p)
                t = np.zeros((n_units, stats.shape[1]))
                np.add.at(t, unit, stats)
                per_unit[m, s] = t
    for start in range(0, n_boot, CHUNK):
        b = min(CHUNK, n_boot - start)
        counts = np.stack([np.bincount(rng.integers(0, n_units, n_units), minlength=n_units) for _ in range(b)])
        for m, r in runs.items():
            for s, p in r.items():
                out[m][s][start:start + b] = (_weighted_auc(p.probs[:, 1], p.y, counts[:, unit].astype(float))
                                              if metric == "roc_auc" else _from_totals(metric, counts @ per_unit[m, s]))
    return out


def _seed_means(by_seed: dict[int, np.ndarray], seeds: list[int], picks: np.ndarray) -> np.ndarray:
    """The mean over resampled seeds (``picks``: (n_boot, k) indices into ``seeds``) in each resample."""
    stacked = np.stack([by_seed[s] for s in seeds], 1)  # (n_boot, k)
    return stacked[np.arange(len(stacked))[:, None], picks].mean(1)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def compare_intervals(runs: dict[str, dict[int, Preds]], metric: str, baseline: str, n_boot: int = N_BOOT,
                      seed: int = 0) -> dict | None:
    """For each model the interval of its mean over seeds (its own seeds resampled, with the test groups),
    and for each other model the interval of its difference to the baseline (the seeds both have, resampled
    in pairs): ``{"models": {m: (lo, hi)}, "diff": {m: (lo, hi)}, "units": n, "grouped": bool}``."""
    boot = resampled_scores(runs, metric, n_boot, seed)
    if boot is None:
        return None
    rng = np.random.default_rng([seed, 1])
    first = next(iter(next(iter(runs.values())).values()))
    out = {"models": {}, "diff": {}, "units": _codes(first.groups)[1], "grouped": not np.all(first.groups < 0)}
    for m, by_seed in boot.items():
        seeds = sorted(by_seed)
        out["models"][m] = interval(_seed_means(by_seed, seeds, rng.integers(0, len(seeds), (n_boot, len(seeds)))))
    for m, by_seed in boot.items():
        common = sorted(set(by_seed) & set(boot.get(baseline, {})))
        if m == baseline or not common:
            continue
        picks = rng.integers(0, len(common), (n_boot, len(common)))
        diff = _seed_means(by_seed, common, picks) - _seed_means(boot[baseline], common, picks)
        out["diff"][m] = interval(diff)
    return out
