"""``rnnbench sweep``: expand a config's ``sweep`` section into runs, run them, plot them.

::

    sweep:
      model: rnn                    # the model kind every run trains (any registered kind)
      size: 2000                    # training size (default: largest of data.sizes, else all)
      grid: {rnn.cell: [gru, lstm]} # cartesian product over dotted keys
      zip:                          # lists walked together (all the same length)
        rnn.optimizer: [sgd, adam]
        rnn.learning_rate: [0.1, 0.001]
      labels: [plain, tuned]        # optional names for the zip rows (used in plots and tables)
      seeds: [0, 1, 2]              # default: experiment.seeds
    plot:
      - {x: step, y: train_loss, by: rnn.cell}   # one line per value of `by`: mean and range over its runs

Every run goes through the run store, so finished runs are skipped and an interrupted sweep resumes.
Runs execute through :mod:`rnnbench.executor` (this process, N local processes with their own GPUs, or
a Ray cluster), the same layer ``compare`` uses.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .config import Config, PlotConfig
from .executor import ExecutorSpec, JobOutcome, execute, jobs_for
from .experiment import load_corpus, subsets_for
from .fileio import atomic_write_text
from .outputs import markdown_table, mean_std, output_dir, pm, write_csv
from .plan import PlannedRun, resolve_sizes, sweep_plan, sweep_section, value_text
from .runs import Run

__all__ = ["run_sweep", "status_of", "write_outputs"]


def status_of(run: PlannedRun) -> str:
    r = run.run
    if not r.done:
        return "pending"
    return "done" if r.result().ok else "failed"


# ------------------------------------------------------------------------------------ running


def run_sweep(cfg: Config, workers: int | None = None, force: bool = False, progress: bool = True,
              executor: ExecutorSpec | None = None) -> dict:
    """Run the sweep's points through the executor (``executor``, else the config's ``compute`` settings
    with ``workers`` over them), then write the table, plots and summary."""
    if sweep_section(cfg).kind == "toy-optimizers":
        from .toy import run_toy

        return run_toy(cfg)
    spec = executor or ExecutorSpec.resolve(cfg.compute, workers=workers)
    runs = sweep_plan(cfg)
    corpus = load_corpus(cfg)
    for r in {(id(r.cfg), r.size): r for r in runs}.values():  # sizes fit the data: fail before running
        subsets_for(r.cfg, corpus, r.size, r.seed)
    resolve_sizes(runs)
    outcomes = execute(jobs_for(runs, force), spec, device=cfg.compute.device, progress=progress, desc="sweep")
    return write_outputs(cfg, runs, outcomes)


def write_outputs(cfg: Config, runs: list[PlannedRun], outcomes: list[JobOutcome]) -> dict:
    out_dir = output_dir(cfg)
    keys = list(runs[0].label) if runs else []
    rows = []
    for run, out in zip(runs, outcomes):
        res = out.result
        row = {**{k: value_text(run.label[k]) for k in keys}, "seed": run.seed, "status": res.status,
               "reason": res.reason, "run_dir": str(out.run.path) if out.run else ""}
        row.update({f"test_{k}": v for k, v in res.metrics.items()})
        row.update({f"val_{k}": v for k, v in res.validation.items()})
        if res.timings:
            row["train_seconds"] = res.timings.get("fit")
        if res.ok:
            row["epochs"] = res.training.get("epochs_run")
            row["best_epoch"] = res.chosen.get("best_epoch")
        rows.append(row)
    metric_cols = sorted({k for r in rows for k in r if k.startswith(("test_", "val_"))})
    extra = [c for c in ("train_seconds", "epochs", "best_epoch") if any(c in r for r in rows)]
    write_csv(out_dir / "sweep.csv", [*keys, "seed", "status", *metric_cols, *extra, "reason", "run_dir"], rows)

    # summary: mean ± std over seeds for every combination
    groups: dict[tuple, list[dict]] = {}
    for run, row in zip(runs, rows):
        groups.setdefault(tuple(value_text(run.label[k]) for k in keys), []).append(row)
    summary_cols = [c for c in metric_cols if c.startswith("test_")] + extra
    table = []
    for label, rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        cells = []
        for c in summary_cols:
            vals = [float(r[c]) for r in ok if r.get(c) is not None]
            cells.append(pm(*mean_std(vals)) if vals else "—")
        table.append([*label, f"{len(ok)}/{len(rs)}", *cells])
    lines = [f"# {cfg.experiment.name}: sweep of {len(runs)} run(s)", "",
             *markdown_table([*keys, "runs ok", *summary_cols], table)]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed runs:", *[f"- {', '.join(f'{k}={r[k]}' for k in keys)} seed {r['seed']}: {r['reason']}"
                                        for r in failed]]
    plots = []
    for i, p in enumerate(cfg.plot):
        path, reached, pooled = plot_series(out_dir, cfg, i, p, runs, outcomes)
        plots.append(path)
        if reached:
            best = min(v for v, _ in reached.values())
            at = lambda v: "never" if math.isinf(v) else f"{v:,.0f}"  # noqa: E731
            unit = _unit(pooled)
            of = f" (the lines pool the values of {', '.join(pooled)})" if pooled else ""
            lines += ["", f"First {p.x} at which {p.y} reaches {p.target}, interpolated between logged points "
                      f"({path.name}): each line's mean, and each {unit}{of}:", ""]
            lines += markdown_table(["line", f"{p.x}, mean line", "× slower than the fastest", f"each {unit}"],
                                    [(name, at(v), "—" if math.isinf(v) or not best else f"{v / best:.1f}×",
                                      ", ".join(map(at, seeds)))
                                     for name, (v, seeds) in reached.items()], "-rrl")
    if plots:
        lines += ["", "Plots: " + ", ".join(p.name for p in plots)]
    md = "\n".join(lines) + "\n"
    atomic_write_text(out_dir / "sweep.md", md)
    return {"dir": out_dir, "rows": rows, "markdown": md, "plots": plots}


# ------------------------------------------------------------------------------------ plots


def series(run: Run, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    events = ("eval",) if y == "val_metric" else ("train",)
    pts = [(r[x], r[y]) for r in run.metrics() if r.get("event") in events and x in r and y in r]
    if not pts:
        return np.zeros(0), np.zeros(0)
    a = np.array(pts, dtype=float)
    return a[:, 0], a[:, 1]


def mean_band(curves: Iterable[tuple[np.ndarray, np.ndarray]], n: int = 60):
    """Mean, lowest and highest of several (x, y) curves (a line's runs: its seeds) where all of them have
    data, and how many curves that is. Curves logged at the same x (steps) are compared at those x; others
    (wall-clock) are interpolated onto ``n`` points. The band is the runs' range: with two or three
    seeds a std band says little more, and it could reach below zero on a loss. Curves whose x ranges
    do not overlap cannot be averaged: the first is drawn alone."""
    curves = [c for c in curves if len(c[0]) > 0]
    if not curves:
        return None
    hi = min(c[0].max() for c in curves)
    lo = max(c[0].min() for c in curves)
    if len(curves) == 1 or hi <= lo:
        x, y = curves[0]
        return x, y, y, y, 1
    common = [x[(x >= lo) & (x <= hi)] for x, _ in curves]
    grid = common[0] if all(np.array_equal(common[0], c) for c in common) else np.linspace(lo, hi, n)
    ys = np.array([np.interp(grid, x, y) for x, y in curves])
    return grid, ys.mean(0), ys.min(0), ys.max(0), len(curves)


def first_reach(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """The x at which a curve first comes down to ``target``, interpolated between the two points that
    straddle it; inf if it never does."""
    hit = np.flatnonzero(y <= target)
    if not len(hit):
        return math.inf
    i = int(hit[0])
    if i == 0 or y[i - 1] == y[i]:
        return float(x[i])
    return float(x[i - 1] + (x[i] - x[i - 1]) * (y[i - 1] - target) / (y[i - 1] - y[i]))


def _unit(pooled: list[str]) -> str:
    """What a line averages over: its seeds, or, where it pools other swept keys' values, its runs."""
    return "run" if pooled else "seed"


def plot_series(out_dir: Path, cfg: Config, i: int, spec: PlotConfig, runs: list[PlannedRun],
                outcomes: list[JobOutcome]) -> tuple[Path, dict[str, tuple[float, list[float]]], list[str]]:
    """One figure of ``spec``: per line (a value of ``by``, else a variant) the mean over its runs and
    their range. A line's runs are its seeds, and also the values of any other swept key when ``by``
    leaves some out (``pooled``, returned: the legend then says "runs", not "seeds"). With a ``target``,
    also each line's first x at which its mean, and each of its runs, reaches it."""
    from .plots import figure, save

    x, y, by = spec.x, spec.y, spec.by
    groups: dict[str, list] = {}
    values: dict[tuple[str, str], set] = {}  # (line, other swept key) -> its values among the line's runs
    for run, out in zip(runs, outcomes):
        if not out.result.ok or out.run is None:
            continue
        name = (value_text(run.label[by]) if by == "label" else f"{by}={value_text(run.label[by])}") if by else (", ".join(f"{k}={value_text(v)}" for k, v in run.label.items()) or "run")
        groups.setdefault(name, []).append(series(out.run, x, y))
        for k, v in run.label.items():
            values.setdefault((name, k), set()).add(repr(v))
    pooled = sorted({k for (_, k), vs in values.items() if len(vs) > 1})
    if "label" in pooled:  # the zip rows' names stand for their keys: name them once
        pooled = [k for k in pooled if k not in sweep_section(cfg).zip]
    unit = _unit(pooled)
    fig = figure()
    ax = fig.subplots()
    reached, several = {}, False
    for name, curves in groups.items():
        band = mean_band(curves)
        if band is None:
            continue
        gx, mean, low, high, used = band
        several |= used > 1
        line, = ax.plot(gx, mean, label=f"{name} ({used} {unit}{'s' if used > 1 else ''})")
        ax.fill_between(gx, low, high, color=line.get_color(), alpha=0.18)
        if spec.target is not None:
            reached[name] = (first_reach(gx, mean, spec.target),
                             [first_reach(cx, cy, spec.target) for cx, cy in curves if len(cx)])
    if spec.ylog:
        ax.set_yscale("log")
    if spec.xlog:
        ax.set_xscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    title = spec.title or f"{y} vs {x}"
    ax.set_title(title if cfg.experiment.name in title else f"{cfg.experiment.name}: {title}")
    ax.grid(alpha=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no artists with labels" when every run failed
        over = f"runs (seeds × {', '.join(pooled)})" if pooled else "seeds"
        ax.legend(fontsize=8, title=f"lines: mean over {over}; bands: their range" if several else None,
                  title_fontsize=7)
    if spec.target is not None:
        ax.axhline(spec.target, color="0.4", ls=":", lw=1)
    path = out_dir / f"plot{i + 1}-{y}-vs-{x}.png"
    save(fig, path)
    return path, reached, pooled
