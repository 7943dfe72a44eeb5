"""``rnnbench sweep``: expand a config's ``sweep`` section into runs, run them, plot them.

::

    sweep:
      model: rnn                    # what every run trains (rnn or linear)
      size: 2000                    # training size (default: largest of data.sizes, else all)
      grid: {rnn.cell: [gru, lstm]} # cartesian product over dotted keys
      zip:                          # lists walked together (all the same length)
        rnn.optimizer: [sgd, adam]
        rnn.learning_rate: [0.1, 0.001]
      labels: [plain, tuned]        # optional names for the zip rows (used in plots and tables)
      seeds: [0, 1, 2]              # default: experiment.seeds
    plot:
      - {x: step, y: train_loss, by: rnn.cell}   # one line per value of `by`, mean ± std over seeds

Every run goes through the run store, so finished runs are skipped and an interrupted sweep resumes.
Runs execute behind a small :class:`Executor` interface (serial, or N local processes); a cluster
backend only has to provide ``map_unordered``.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from .config import Config, from_dict
from .errors import RnnbenchError
from .experiment import MODEL_KINDS, default_size, load_corpus, run_summary, subsets_for, train_one
from .fileio import atomic_write_text, read_jsonl
from .runs import Run

SWEEP_KEYS = {"kind", "model", "size", "grid", "zip", "labels", "seeds", "steps", "learning_rates", "n_points"}
PLOT_X = ("step", "epoch", "wall_seconds", "tokens")
PLOT_Y = ("train_loss", "val_metric", "grad_norm", "tokens_per_s")


@dataclass
class SweepRun:
    label: dict[str, Any]  # swept key -> value
    seed: int
    cfg: Config
    model: str
    size: int | None

    def run(self) -> Run:
        return Run.for_config(self.cfg, self.model, self.size, self.seed)


def _check_sweep(cfg: Config) -> dict:
    sw = cfg.sweep
    if not sw:
        raise RnnbenchError("this config has no sweep section")
    unknown = set(sw) - SWEEP_KEYS
    if unknown:
        raise RnnbenchError(f"unknown config key 'sweep.{sorted(unknown)[0]}' (valid: {', '.join(sorted(SWEEP_KEYS))})")
    for part in ("grid", "zip"):
        if not isinstance(sw.get(part, {}), dict):
            raise RnnbenchError(f"sweep.{part}: expected a mapping of dotted keys to lists")
        for key, values in sw.get(part, {}).items():
            if not isinstance(values, list) or not values:
                raise RnnbenchError(f"sweep.{part}.{key}: expected a non-empty list of values")
            for v in values:
                cfg.replace(**{key: v})  # validates the key and the value; errors name the key
    zip_lengths = {len(v) for v in sw.get("zip", {}).values()}
    if len(zip_lengths) > 1:
        raise RnnbenchError(f"sweep.zip: lists must have the same length, got lengths {sorted(zip_lengths)}")
    if "labels" in sw and (not zip_lengths or [len(sw["labels"])] != sorted(zip_lengths)):
        raise RnnbenchError("sweep.labels: needs one name per sweep.zip row")
    if sw.get("model", "rnn") not in MODEL_KINDS:
        raise RnnbenchError(f"sweep.model: unknown model kind '{sw.get('model')}' (choose from: {', '.join(MODEL_KINDS)})")
    seeds = sw.get("seeds", cfg.experiment.seeds)
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise RnnbenchError(f"sweep.seeds: expected a non-empty list of integers, got {seeds!r}")
    swept = set(sw.get("grid", {})) | set(sw.get("zip", {})) | ({"label"} if "labels" in sw else set())
    for i, p in enumerate(cfg.plot):
        if not isinstance(p, dict):
            raise RnnbenchError(f"plot[{i}]: expected a mapping with x and y")
        bad = set(p) - {"x", "y", "by", "title", "ylog", "xlog", "target"}
        if bad:
            raise RnnbenchError(f"unknown config key 'plot[{i}].{sorted(bad)[0]}'")
        if p.get("x") not in PLOT_X:
            raise RnnbenchError(f"plot[{i}].x: expected one of {', '.join(PLOT_X)}, got {p.get('x')!r}")
        if p.get("y") not in PLOT_Y:
            raise RnnbenchError(f"plot[{i}].y: expected one of {', '.join(PLOT_Y)}, got {p.get('y')!r}")
        if p.get("by") is not None and p["by"] not in swept:
            raise RnnbenchError(f"plot[{i}].by: '{p['by']}' is not a swept key ({', '.join(sorted(swept)) or 'none'})")
    return sw


def expand(cfg: Config) -> list[SweepRun]:
    sw = _check_sweep(cfg)
    grid = sw.get("grid", {})
    zipped = sw.get("zip", {})
    grid_points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else [{}]
    zip_points = [dict(zip(zipped, values)) for values in zip(*zipped.values())] if zipped else [{}]
    if "labels" in sw:  # a readable name stands in for the zip row in tables and plots
        zip_points = [{"label": name, **z} for name, z in zip(sw["labels"], zip_points)]
    seeds = sw.get("seeds", cfg.experiment.seeds)
    model = sw.get("model", "rnn")
    runs = []
    for g in grid_points:
        for z in zip_points:
            label = {**g, **z}
            settings = {k: v for k, v in label.items() if k != "label"}
            run_cfg = cfg.replace(**settings) if settings else cfg
            size = sw.get("size", default_size(run_cfg))
            for seed in seeds:
                runs.append(SweepRun(label, seed, run_cfg, model, size))
    return runs


# ------------------------------------------------------------------------------------ executors


def _job(cfg_dict: dict, model: str, size: int | None, seed: int, force: bool) -> dict:
    """One run, in whatever process the executor chose. Never raises: a crash is a failed run."""
    cfg = from_dict(cfg_dict)
    try:
        out = train_one(cfg, model, size=size, seed=seed, force=force, progress=False)
        return {"result": out.result, "path": str(out.run.path), "skipped": out.skipped}
    except Exception as e:  # noqa: BLE001 - one broken run must not take the sweep down
        return {"result": {"status": "failed", "reason": f"{type(e).__name__}: {e}"}, "path": "", "skipped": False}


class Executor(Protocol):
    def map_unordered(self, fn: Callable, jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield (job index, fn(*job)) as jobs finish."""


class SerialExecutor:
    def map_unordered(self, fn, jobs):
        for i, job in enumerate(jobs):
            yield i, fn(*job)


class ProcessExecutor:
    """N local worker processes (spawned: JAX is multithreaded, so no fork)."""

    def __init__(self, workers: int):
        self.workers = workers

    def map_unordered(self, fn, jobs):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share one GPU between workers
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
            for f in as_completed(futures):
                yield futures[f], f.result()


def make_executor(workers: int) -> Executor:
    return SerialExecutor() if workers <= 1 else ProcessExecutor(workers)


# ------------------------------------------------------------------------------------ running


def status_of(run: SweepRun) -> str:
    r = run.run()
    if not r.done:
        return "pending"
    return "done" if r.result().get("status") == "ok" else "failed"


def run_sweep(cfg: Config, workers: int = 1, force: bool = False, progress: bool = True) -> dict:
    if cfg.sweep.get("kind", "runs") == "toy-optimizers":
        from .toy import run_toy

        return run_toy(cfg)
    runs = expand(cfg)
    corpus = load_corpus(cfg)
    for r in {(id(r.cfg), r.size): r for r in runs}.values():  # sizes fit the data: fail before running
        subsets_for(r.cfg, corpus, r.size, r.seed)
    jobs = [(r.cfg.to_dict(), r.model, r.size, r.seed, force) for r in runs]
    outcomes: list[dict | None] = [None] * len(runs)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    bar = tqdm(total=len(jobs), desc="sweep", unit="run", disable=None if progress else True, dynamic_ncols=True)
    for i, out in make_executor(workers).map_unordered(_job, jobs):
        outcomes[i] = out
        counts["skipped" if out["skipped"] else "done"] += 1
        counts["failed"] += out["result"].get("status") != "ok"
        bar.set_postfix(**counts)
        bar.update(1)
        if progress and bar.disable:  # output is not a terminal: one line per run instead of a bar
            point = ", ".join(f"{k}={_value(v)}" for k, v in runs[i].label.items())  # the runs differ in these
            print(f"[{counts['done'] + counts['skipped']}/{len(jobs)}] {point + ': ' if point else ''}"
                  f"{run_summary(out['result'], out['skipped'])}", file=sys.stderr, flush=True)
    bar.close()
    return write_outputs(cfg, runs, outcomes)


def _value(v: Any) -> str:
    return "null" if v is None else str(v)


def write_outputs(cfg: Config, runs: list[SweepRun], outcomes: list[dict]) -> dict:
    from .compare import _fmt, _write_csv, experiment_dir

    out_dir = experiment_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = list(runs[0].label) if runs else []
    rows = []
    for run, out in zip(runs, outcomes):
        res = out["result"]
        row = {**{k: _value(run.label[k]) for k in keys}, "seed": run.seed, "status": res.get("status"),
               "reason": res.get("reason", ""), "run_dir": out["path"]}
        row.update({f"test_{k}": v for k, v in (res.get("metrics") or {}).items()})
        row.update({f"val_{k}": v for k, v in (res.get("validation") or {}).items()})
        if res.get("timings"):
            row["train_seconds"] = res["timings"].get("fit")
        if res.get("chosen"):
            row["epochs"] = res["chosen"].get("epochs_run")
            row["best_epoch"] = res["chosen"].get("best_epoch")
        rows.append(row)
    metric_cols = sorted({k for r in rows for k in r if k.startswith(("test_", "val_"))})
    extra = [c for c in ("train_seconds", "epochs", "best_epoch") if any(c in r for r in rows)]
    _write_csv(out_dir / "sweep.csv", [*keys, "seed", "status", *metric_cols, *extra, "reason", "run_dir"], rows)

    # summary: mean ± std over seeds for every combination
    groups: dict[tuple, list[dict]] = {}
    for run, row in zip(runs, rows):
        groups.setdefault(tuple(_value(run.label[k]) for k in keys), []).append(row)
    summary_cols = [c for c in metric_cols if c.startswith("test_")] + extra
    lines = [f"# {cfg.experiment.name}: sweep of {len(runs)} run(s)", "",
             "| " + " | ".join([*keys, "runs ok", *summary_cols]) + " |",
             "|" + "---|" * (len(keys) + 1 + len(summary_cols))]
    for label, rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        cells = []
        for c in summary_cols:
            vals = np.array([float(r[c]) for r in ok if r.get(c) is not None], dtype=float)
            cells.append("—" if len(vals) == 0 else f"{_fmt(vals.mean(), 4)} ± {_fmt(vals.std(ddof=1) if len(vals) > 1 else 0.0, 4)}")
        lines.append("| " + " | ".join([*label, f"{len(ok)}/{len(rs)}", *cells]) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed runs:", *[f"- {', '.join(f'{k}={r[k]}' for k in keys)} seed {r['seed']}: {r['reason']}"
                                        for r in failed]]
    plots = []
    for i, p in enumerate(cfg.plot):
        path, reached = plot_series(out_dir, cfg, i, p, runs, outcomes)
        plots.append(path)
        if reached:
            best = min(reached.values())
            lines += ["", f"First {p['x']} at which the mean {p['y']} reaches {p['target']} ({path.name}):", "",
                      f"| line | {p['x']} | × slower than the fastest |", "|---|---:|---:|"]
            lines += [f"| {name} | {'never' if math.isinf(v) else f'{v:,.1f}'} | "
                      f"{'—' if math.isinf(v) or not best else f'{v / best:.1f}×'} |" for name, v in reached.items()]
    if plots:
        lines += ["", "Plots: " + ", ".join(p.name for p in plots)]
    md = "\n".join(lines) + "\n"
    atomic_write_text(out_dir / "sweep.md", md)
    return {"dir": out_dir, "rows": rows, "markdown": md, "plots": plots}


# ------------------------------------------------------------------------------------ plots


def series(run_dir: str, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    events = ("eval",) if y == "val_metric" else ("train",)
    pts = [(r[x], r[y]) for r in read_jsonl(Path(run_dir) / "metrics.jsonl")
           if r.get("event") in events and x in r and y in r]
    if not pts:
        return np.zeros(0), np.zeros(0)
    a = np.array(pts, dtype=float)
    return a[:, 0], a[:, 1]


def mean_band(curves: Iterable[tuple[np.ndarray, np.ndarray]], n: int = 60):
    """Mean and std of several (x, y) curves on a common x grid (where all of them have data)."""
    curves = [c for c in curves if len(c[0]) > 0]
    if not curves:
        return None
    hi = min(c[0].max() for c in curves)
    lo = max(c[0].min() for c in curves)
    if len(curves) == 1 or hi <= lo:
        x, y = curves[0]
        return x, y, np.zeros_like(y)
    grid = np.linspace(lo, hi, n)
    ys = np.array([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(0), ys.std(0, ddof=1)


def plot_series(out_dir: Path, cfg: Config, i: int, spec: dict, runs: list[SweepRun],
                outcomes: list[dict]) -> tuple[Path, dict[str, float]]:
    import matplotlib.pyplot as plt

    from .plots import save

    x, y, by = spec["x"], spec["y"], spec.get("by")
    groups: dict[str, list] = {}
    for run, out in zip(runs, outcomes):
        if out["result"].get("status") != "ok" or not out["path"]:
            continue
        name = (_value(run.label[by]) if by == "label" else f"{by}={_value(run.label[by])}") if by else (", ".join(f"{k}={_value(v)}" for k, v in run.label.items()) or "run")
        groups.setdefault(name, []).append(series(out["path"], x, y))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    means = {}
    for name, curves in groups.items():
        band = mean_band(curves)
        if band is None:
            continue
        gx, mean, std = band
        means[name] = (gx, mean)
        line, = ax.plot(gx, mean, label=f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
        ax.fill_between(gx, mean - std, mean + std, color=line.get_color(), alpha=0.18)
    if spec.get("ylog"):
        ax.set_yscale("log")
    if spec.get("xlog"):
        ax.set_xscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.set_title(spec.get("title") or f"{cfg.experiment.name}: {y} vs {x}")
    ax.grid(alpha=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no artists with labels" when every run failed
        ax.legend(fontsize=8)
    if spec.get("target") is not None:
        ax.axhline(spec["target"], color="0.4", ls=":", lw=1)
    path = out_dir / f"plot{i + 1}-{y}-vs-{x}.png"
    save(fig, path)
    reached = speedup_to_target(means, float(spec["target"])) if spec.get("target") is not None else {}
    return path, reached


def speedup_to_target(curves_by_name: dict[str, tuple[np.ndarray, np.ndarray]], target: float) -> dict[str, float]:
    """x at which each curve first reaches ``target`` (loss): for the ablation's speed-up factors."""
    out = {}
    for name, (x, y) in curves_by_name.items():
        hit = np.flatnonzero(y <= target)
        out[name] = float(x[hit[0]]) if len(hit) else math.inf
    return out
