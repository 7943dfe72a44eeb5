"""``rnnbench compare``: model kinds on the same nested subsets across sizes and seeds, each against a
baseline.

Every (size, seed, model kind) is one run in the run store (:mod:`rnnbench.plan`), so an interrupted
compare resumes where it stopped. ``experiment.models`` (or ``--models``) names the kinds to run now; the
tables and plots are rebuilt each time from every finished run of the experiment's sizes × seeds, of any
registered kind, so a side run earlier (or elsewhere, into the same folder) still appears, and a side
with no runs shows "—" and claims no crossover. Each kind is compared with ``experiment.baseline``
(default ``linear``): its crossover, its bootstrap interval, its forecast and the winner at each size.
"""

from __future__ import annotations

import math

import numpy as np

from . import models
from .config import Config
from .curves import ROW_KEYS, Curve, bootstrap_crossover, challengers, curves, finished_rows
from .data import Task
from .errors import RnnbenchError
from .experiment import announce, load_corpus, subsets_for
from .fileio import atomic_write_json, atomic_write_text
from .metrics import higher_is_better, primary
from .outputs import fmt, markdown_table, mean_std, output_dir, pm, write_csv
from .plan import compare_plan

CROSSOVER_COLUMNS = ["size", "model", "metric", "mean", "std", "n", "diff_vs_baseline", "rel_error_reduction",
                     "winner", "reference"]


def decision_metric(cfg: Config, task: Task) -> tuple[str, bool]:
    """The metric the crossover is decided on (``experiment.metric``, else the task's primary one) and
    whether higher is better; a one-line error for a metric this task does not record."""
    metric = cfg.experiment.metric
    if metric is None:
        return primary(task)
    if metric == "roc_auc" and task.n_classes != 2:
        raise RnnbenchError(f"experiment.metric: roc_auc needs a binary task; {task.name} has {task.n_classes} "
                            "classes (use balanced_accuracy or macro_f1)")
    return metric, higher_is_better(task, metric)


def check_sizes_fit(cfg: Config, pool_size: int) -> None:
    if cfg.data.sizes[-1] > pool_size:
        raise RnnbenchError(f"data.sizes: {cfg.data.sizes[-1]} is larger than the {pool_size} training examples available")


def run_compare(cfg: Config, force: bool = False, progress: bool = True, executor=None, run: bool = True,
                kinds: list[str] | None = None) -> dict:
    """Every (size, seed, model kind) run through the executor (``executor``: an
    :class:`rnnbench.executor.ExecutorSpec`; default: the config's ``compute`` settings), then the tables
    (``run=False``: the tables of the runs already finished, running none). ``kinds``: run only these
    (``--models``); the tables still show every kind of ``experiment.models``."""
    from .executor import ExecutorSpec, execute, jobs_for

    spec = executor or ExecutorSpec.resolve(cfg.compute)
    planned = compare_plan(cfg, kinds)
    corpus = load_corpus(cfg)
    decision_metric(cfg, corpus.task)
    check_sizes_fit(cfg, subsets_for(cfg, corpus, cfg.data.sizes[0], cfg.experiment.seeds[0]).pool_size)
    if progress:
        announce(corpus)  # the loader's report, once per load
    if run:
        execute(jobs_for(planned, force), spec, device=cfg.compute.device, progress=progress, desc="compare")
    return write_outputs(cfg, corpus.task, finished_rows(compare_plan(cfg, kinds=list(models.names()))))


# ------------------------------------------------------------------------------------ the tables


def _kinds_shown(cfg: Config, rows: list[dict]) -> list[str]:
    """The kinds the tables show: the baseline, the kinds the config names, and any kind with finished
    runs, in the registry's order."""
    present = {r["model"] for r in rows}
    wanted = set(cfg.experiment.models) | {cfg.experiment.baseline} | present
    return [m for m in models.names() if m in wanted]


def summary_table(curve: Curve, baseline: str, metric: str, higher: bool, rows: list[dict]) -> list[dict]:
    """Long form: one row per size and model kind, its mean, spread and number of seeds, and against the
    baseline the difference, the relative error reduction and the winner at that size."""
    table = []
    for i, n in enumerate(curve.sizes.astype(int).tolist()):
        refs = [r[f"reference_{metric}"] for r in rows if r["size"] == n and f"reference_{metric}" in r]
        reference = float(np.mean(refs)) if refs else float("nan")
        base = curve.scores[baseline][i] if baseline in curve.scores else np.full(curve.n_seeds, np.nan)
        bm, _ = mean_std(base[~np.isnan(base)])
        for m, scores in curve.scores.items():
            values = scores[i][~np.isnan(scores[i])]
            mean, std = mean_std(values)
            row = {"size": n, "model": m, "metric": metric, "mean": mean, "std": std, "n": len(values),
                   "reference": reference, "diff_vs_baseline": float("nan"), "rel_error_reduction": float("nan"),
                   "winner": ""}
            if m != baseline:
                row["diff_vs_baseline"] = mean - bm
                err_b, err_m = (1 - bm, 1 - mean) if higher else (bm, mean)
                row["rel_error_reduction"] = ((err_b - err_m) / err_b if err_b and not math.isnan(err_b)
                                              and not math.isnan(err_m) else float("nan"))
                row["winner"] = ("n/a" if math.isnan(bm) or math.isnan(mean) else
                                 m if (mean > bm) == higher and mean != bm else baseline if mean != bm else "tie")
            table.append(row)
    return table


def write_outputs(cfg: Config, task: Task, rows: list[dict]) -> dict:
    out_dir = output_dir(cfg)
    metric, higher = decision_metric(cfg, task)
    baseline = cfg.experiment.baseline
    sizes, seeds = list(cfg.data.sizes), list(cfg.experiment.seeds)
    metric_names = sorted({k for r in rows for k in r if k not in ROW_KEYS})
    write_csv(out_dir / "curves.csv", ["size", "seed", "model", "status", *metric_names, "train_seconds",
                                       "predict_seconds", "device", "reason"], rows)
    curve = curves(rows, metric, sizes, seeds, _kinds_shown(cfg, rows))
    table = summary_table(curve, baseline, metric, higher, rows)
    write_csv(out_dir / "crossover.csv", CROSSOVER_COLUMNS, table)
    from .forecast import forecast, write_forecast

    cross = {m: bootstrap_crossover(curve, m, baseline, higher) for m in challengers(curve, baseline)}
    fc = forecast(curve, metric, higher, baseline, measured=cross)  # beside the measured crossover, and forecast.*
    for m, c in cross.items():
        c["forecast"] = {k: fc["crossover"][m][k] for k in ("status", "size", "low", "high", "horizon")}
    atomic_write_json(out_dir / "crossover.json", {"metric": metric, "baseline": baseline, "models": cross})
    write_forecast(out_dir, fc, cfg.experiment.name)
    timing = timing_table(rows, sizes, baseline)
    lacking = sorted({r["run_dir"] for r in rows if r["status"] == "ok" and metric not in r})
    md = crossover_markdown(cfg, curve, metric, table, cross, timing, rows, fc, task=task, higher=higher,
                            lacking=lacking)
    atomic_write_text(out_dir / "crossover.md", md)
    from .plots import learning_curve_plot, timing_plot

    learning_curve_plot(out_dir / "learning_curve.png", curve, metric, cfg.experiment.name,
                        crossovers={m: c["crossover_size"] for m, c in cross.items()}, forecast=fc)
    timing_plot(out_dir / "timing.png", rows, sizes, cfg.experiment.name)
    return {"dir": out_dir, "table": table, "crossover": cross, "markdown": md, "timing": timing,
            "failed": sum(r["status"] != "ok" for r in rows)}


def timing_table(rows: list[dict], sizes: list[int], baseline: str) -> list[dict]:
    """Mean training seconds per size, model kind and device (a GPU's runs never averaged with a CPU's),
    and each against the baseline's at that size."""
    out = []
    for n in sizes:
        ok = [r for r in rows if r["size"] == n and r["status"] == "ok"]
        base_secs = [r["train_seconds"] for r in ok if r["model"] == baseline]
        base = float(np.mean(base_secs)) if base_secs else float("nan")
        for m in models.names():
            for device in sorted({r["device"] for r in ok if r["model"] == m}):
                secs = [r["train_seconds"] for r in ok if r["model"] == m and r["device"] == device]
                mean = float(np.mean(secs))
                out.append({"size": n, "model": m, "device": device, "seconds": mean, "runs": len(secs),
                            "vs_baseline": mean / base if base else float("nan")})
    return out


# ------------------------------------------------------------------------------------ Markdown


def _cell(row: dict, n_seeds: int) -> str:
    """``mean ± std``; a lone run says so (its spread is unknown, not 0), fewer seeds than the rest too."""
    n = row["n"]
    if n == 1 and n_seeds > 1:
        return f"{fmt(row['mean'])} (1 seed)"
    text = pm(row["mean"], row["std"])
    return text if n in (0, n_seeds) else f"{text} ({n} seeds)"


def _versus(row: dict) -> str:
    """A model kind against the baseline at one size: its relative error reduction and the winner."""
    if row["winner"] == "n/a":
        return "—"
    return f"{fmt(100 * row['rel_error_reduction'], 1)}% ({row['winner']})"


def _no_better_than_blind(table: list[dict], higher: bool) -> list[str]:
    """"the rnn at 500 and 1,000 examples" for each model kind whose mean does not beat the text-blind score."""
    out = []
    for model in dict.fromkeys(r["model"] for r in table):
        at = [f"{r['size']:,}" for r in table if r["model"] == model
              and not (math.isnan(r["mean"]) or math.isnan(r["reference"]))
              and not (r["mean"] > r["reference"] if higher else r["mean"] < r["reference"])]
        if at:
            out.append(f"the {model} at {', '.join(at[:-1]) + ' and ' + at[-1] if len(at) > 1 else at[0]} examples")
    return out


def _crossover_line(model: str, baseline: str, cross: dict, table: list[dict], rows: list[dict]) -> str:
    """What the measured curves say of ``model`` against the baseline: a crossover (with its bootstrap
    interval), none within the sizes run, or why none is claimed."""
    mine = [r for r in table if r["model"] == model]
    have = {r["model"] for r in rows}
    head = f"**{model} vs {baseline}:**"
    missing = [m for m in (baseline, model) if m not in have]
    if missing:
        return (f"{head} no crossover: no finished {' or '.join(missing)} runs to compare "
                f"(run them with `rnnbench compare CONFIG --models {','.join(missing)}`).")
    base_rows = {r["size"]: r for r in table if r["model"] == baseline}
    gaps = [f"{r['size']:,}" for r in mine if r["n"] == 0 or base_rows[r["size"]]["n"] == 0]
    if gaps:
        return (f"{head} no crossover claimed: one model has no finished run at {', '.join(gaps)} examples "
                "(`rnnbench compare CONFIG` runs what is missing).")
    c = cross["crossover_size"]
    if c is not None:
        interval = (f" (95% bootstrap interval over seeds: {cross['low']:,.0f} – {cross['high']:,.0f})"
                    if cross["low"] is not None else "")
        return f"{head} {model} overtakes {baseline} at about **{c:,.0f}** training examples{interval}."
    if mine and all(r["winner"] == model for r in mine):
        return f"{head} no crossover within the sizes run: {model} is ahead at every size."
    return (f"{head} no crossover within the sizes run: {model} does not overtake {baseline} by "
            f"{mine[-1]['size']:,} examples." if mine else f"{head} no results.")


def crossover_markdown(cfg: Config, curve: Curve, metric: str, table: list[dict], cross: dict, timing, rows,
                       fc: dict | None = None, task: Task | None = None, higher: bool = True,
                       lacking: list[str] = ()) -> str:
    n_seeds, baseline = curve.n_seeds, cfg.experiment.baseline
    kinds, others = list(curve.scores), challengers(curve, baseline)
    seeds = "one seed" if n_seeds == 1 else f"mean ± std over {n_seeds} seeds"
    blind = "mean predictor" if task is not None and task.is_regression else "majority class"
    lines = [f"# {cfg.experiment.name}: {', '.join(others) or '—'} vs {baseline} ({cfg.data.dataset}, {metric}, {seeds})",
             ""]
    by = {(r["size"], r["model"]): r for r in table}
    sizes = curve.sizes.astype(int).tolist()
    lines += markdown_table(
        ["size", *kinds, *(f"{m} vs {baseline}: rel. error reduction (winner)" for m in others), blind],
        [(f"{n:,}", *(_cell(by[n, m], n_seeds) for m in kinds), *(_versus(by[n, m]) for m in others),
          fmt(by[n, kinds[0]]["reference"], 4)) for n in sizes], "r" + "r" * (len(kinds) + len(others)) + "r")
    lines.append("")
    stuck = _no_better_than_blind(table, higher)
    if stuck:
        lines += [f"**Learned nothing:** {'; '.join(stuck)} scored no better than the {blind} "
                  f"({metric}), whatever the other model did.", ""]
    if lacking:
        lines += [f"**{len(lacking)} run(s) did not record {metric}** (made by an older rnnbench) and are left "
                  f"out; `--force` reruns them. First: {lacking[0]}", ""]
    for m in others:
        lines.append(_crossover_line(m, baseline, cross[m], table, rows))
    if not others:
        lines.append(f"**No crossover:** only the baseline ({baseline}) is in this experiment.")
    if fc is not None:
        from .forecast import crossover_line, predictions_table

        lines += ["", *(crossover_line(fc, m) for m in others)]
        if any(f["trustworthy"] for f in fc["models"].values()):
            lines += ["", *predictions_table(fc)]
    failed = [f"- size {r['size']:,}: {r['model']} seed {r['seed']}: {r['reason']}" for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed runs (left out of the means):", *failed]
    lines += ["", "## Cost: training time to convergence (mean seconds, per device)", ""]
    lines += markdown_table(["size", "model", "device", "seconds", "runs", f"× {baseline}"],
                            [(f"{t['size']:,}", t["model"], t["device"], fmt(t["seconds"], 1), t["runs"],
                              f"{fmt(t['vs_baseline'], 2)}×") for t in timing], "rllrrr")
    return "\n".join(lines) + "\n"

