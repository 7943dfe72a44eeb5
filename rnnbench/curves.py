"""Learning curves and crossovers: the statistics ``compare`` and ``forecast`` share.

A finished run becomes a row (:func:`row_of`); rows become a :class:`Curve` (each model kind's test
score per size and seed); the crossover of a model against the baseline is where its advantage turns
positive for good, interpolated in log size, with a bootstrap over seeds (:func:`bootstrap_crossover`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import models
from .errors import RnnbenchError
from .fileio import why_not_folder
from .runs import RunResult, is_experiment, runs_of

ROW_KEYS = ("size", "seed", "model", "status", "reason", "train_seconds", "predict_seconds", "device", "run_dir",
            "pool_size", "recipe", "trials", "pruned", "search_seconds", "tuned")


def row_of(result: RunResult, path: Path) -> dict:
    """One finished run as a table row: what it was, how it went, its test metrics (and the text-blind
    reference's, as ``reference_<metric>``)."""
    row = {"size": result.size, "seed": result.seed, "model": result.model, "status": result.status,
           "reason": result.reason, "train_seconds": result.timings.get("fit", float("nan")),
           "predict_seconds": result.timings.get("predict", float("nan")), "device": result.device,
           "run_dir": str(path), "pool_size": result.pool_size}
    row.update(result.metrics)
    row.update({f"reference_{k}": v for k, v in result.reference.items()})
    row.update({f"group_{k}": v for k, v in result.group_metrics.items() if k != "groups"})
    return row


def finished_rows(planned) -> list[dict]:
    """One row per finished run among ``planned`` (:class:`rnnbench.plan.PlannedRun`), in their order."""
    rows = []
    for p in planned:
        run = p.run
        if run.done:
            rows.append({**row_of(run.result(), run.path), "recipe": p.label.get("recipe", "")})
    return rows


def rows_from_experiment(folder: Path) -> tuple[list[dict], dict, list[str]]:
    """The finished runs of an experiment folder, whatever config made them: rows, the task (name, kind,
    n_classes, as the runs recorded it), notes.
    Where several finished runs share a model, size and seed (the config changed between them), the
    newest counts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RnnbenchError(why_not_folder(folder))
    hint = "run `rnnbench compare CONFIG` first, or give the experiment folder that holds runs/"
    if not is_experiment(folder):
        raise RnnbenchError(f"{folder} has no runs/ folder, so no finished compare runs: {hint}")
    runs = runs_of(folder)
    found: dict[tuple, tuple] = {}
    older = 0
    known = set(models.names())
    for run in runs:
        if not run.done:
            continue
        res = run.result()
        if res.model not in known or res.size is None:
            continue
        key = (res.model, res.size, res.seed)
        stamp = run.finished_ns()
        if key in found:
            older += 1
            if found[key][0] >= stamp:
                continue
        found[key] = (stamp, res, run.path)
    if not found:
        raise RnnbenchError(f"{folder / 'runs'} holds no finished runs: {hint}")
    tasks = {(r.dataset, r.task.get("name"), r.task.get("kind")) for _, r, _ in found.values()}
    if len(tasks) > 1:
        raise RnnbenchError(f"{folder / 'runs'} mixes runs of {len(tasks)} data sets or tasks "
                            f"({', '.join(sorted(f'{a}/{b}' for a, b, _ in tasks))}): give one experiment's folder")
    task = next(iter(found.values()))[1].task
    rows = [row_of(r, d) for _, r, d in found.values()]
    notes = [f"{older} older run(s) of the same model, size and seed were left out (the newest counts)"] if older else []
    order = {m: i for i, m in enumerate(models.names())}  # kinds in the registry's order, as compare's rows
    return sorted(rows, key=lambda r: (r["size"], r["seed"], order[r["model"]])), task, notes


@dataclass
class Curve:
    sizes: np.ndarray
    scores: dict  # model kind -> array (n_sizes, n_seeds), NaN where a run failed or is missing

    @property
    def n_seeds(self) -> int:
        return next(iter(self.scores.values())).shape[1] if self.scores else 0

    def has(self, model: str) -> bool:
        """Whether ``model`` has any finished run on the curve."""
        return model in self.scores and not np.all(np.isnan(self.scores[model]))


def curves(rows: list[dict], metric: str, sizes: list[int], seeds: list[int], kinds=None) -> Curve:
    """Each model kind's ``metric`` per size and seed (``kinds``: these, default every registered kind)."""
    kinds = list(models.names() if kinds is None else kinds)
    scores = {m: np.full((len(sizes), len(seeds)), np.nan) for m in kinds}
    for r in rows:
        if r["status"] == "ok" and r["model"] in scores and r["size"] in sizes and r["seed"] in seeds:
            scores[r["model"]][sizes.index(r["size"]), seeds.index(r["seed"])] = r.get(metric, np.nan)
    return Curve(np.asarray(sizes, float), scores)


def crossover_size(sizes: np.ndarray, advantage: np.ndarray) -> float | None:
    """Where ``advantage`` (a model minus the baseline, positive = the model better) first turns positive
    for good, interpolated linearly in log size. None if it never does, or if the model is ahead from the
    start."""
    if np.any(np.isnan(advantage)) or advantage[-1] <= 0:
        return None
    last_behind = np.flatnonzero(advantage <= 0)
    if len(last_behind) == 0:
        return None
    i = last_behind[-1]
    a, b = advantage[i], advantage[i + 1]
    frac = (0.0 - a) / (b - a)
    return float(np.exp(np.log(sizes[i]) + frac * (np.log(sizes[i + 1]) - np.log(sizes[i]))))


def bootstrap_crossover(curve: Curve, model: str, baseline: str, higher_better: bool, n_boot: int = 2000,
                        seed: int = 0) -> dict:
    """The crossover of ``model`` against ``baseline`` on the seeds' means, and its 95% interval over
    bootstrap resamples of the seeds (the same seeds for both: runs are paired by seed)."""
    base, other = curve.scores[baseline], curve.scores[model]
    sign = 1.0 if higher_better else -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = crossover_size(curve.sizes, sign * (np.nanmean(other, 1) - np.nanmean(base, 1)))
    rng = np.random.default_rng(seed)
    n_seeds = base.shape[1]
    found = []
    for _ in range(n_boot):
        pick = rng.integers(0, n_seeds, n_seeds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            adv = sign * (np.nanmean(other[:, pick], 1) - np.nanmean(base[:, pick], 1))
        found.append(crossover_size(curve.sizes, adv))
    sizes_found = np.array([f for f in found if f is not None])
    low = high = None
    if point is not None and len(sizes_found):
        low, high = (float(x) for x in np.percentile(sizes_found, [2.5, 97.5]))
    return {"crossover_size": point, "low": low, "high": high,
            "bootstrap_fraction_with_crossover": len(sizes_found) / n_boot}


def challengers(curve: Curve, baseline: str) -> list[str]:
    """The model kinds on the curve other than the baseline, in the registry's order."""
    return [m for m in curve.scores if m != baseline]

