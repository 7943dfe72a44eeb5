"""``rnnbench compare``: both models on the same nested subsets across sizes and seeds.

Every (size, seed, model) is one run in the run store, so an interrupted compare resumes where it
stopped. ``experiment.models`` (or ``--models``) names the models to run now; the tables and plots are
rebuilt each time from every finished run of the experiment's sizes × seeds, of either model, so a side
run earlier (or elsewhere, into the same folder) still appears, and a side with no runs shows "—" and claims no crossover.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config
from .data import Task
from .errors import RnnbenchError
from .experiment import announce, load_corpus, subsets_for
from .fileio import atomic_write_json, atomic_write_text
from .metrics import higher_is_better, primary
from .model import MODEL_KINDS
from .outputs import fmt, markdown_table, mean_std, output_dir, pm, write_csv
from .runs import Run, RunResult


def models_to_run(cfg: Config) -> list[str]:
    """``experiment.models`` in the order of :data:`MODEL_KINDS`, checked."""
    models = cfg.experiment.models
    unknown = [m for m in models if m not in MODEL_KINDS]
    if unknown:
        raise RnnbenchError(f"experiment.models: unknown model kind '{unknown[0]}' (choose from: {', '.join(MODEL_KINDS)})")
    return [m for m in MODEL_KINDS if m in models]


def check_compare_config(cfg: Config) -> None:
    """The checks that need no data: fail before loading a corpus."""
    sizes, seeds = cfg.data.sizes, cfg.experiment.seeds
    if not seeds:
        raise RnnbenchError("experiment.seeds is empty: compare needs at least one seed")
    if not sizes:
        raise RnnbenchError("data.sizes is empty: compare needs the training sizes to run")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise RnnbenchError(f"data.sizes must be strictly increasing, got {sizes}")
    models_to_run(cfg)


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


def run_compare(cfg: Config, force: bool = False, progress: bool = True, executor=None, run: bool = True) -> dict:
    """Every (size, seed, model) run through the executor (``executor``: an
    :class:`rnnbench.executor.ExecutorSpec`; default: the config's ``compute`` settings), then the tables
    (``run=False``: the tables of the runs already finished, running none)."""
    from .executor import ExecutorSpec, Job, execute

    spec = executor or ExecutorSpec.resolve(cfg.compute)
    check_compare_config(cfg)
    models = models_to_run(cfg)
    corpus = load_corpus(cfg)
    decision_metric(cfg, corpus.task)
    check_sizes_fit(cfg, subsets_for(cfg, corpus, cfg.data.sizes[0], cfg.experiment.seeds[0]).pool_size)
    if progress:
        announce(corpus)  # the loader's report, once per load
    jobs = [Job(cfg=cfg.to_dict(), model=m, size=n, seed=s, force=force, path=str(Run.for_config(cfg, m, n, s).path),
                label=f"{m} size {n} seed {s}")
            for n in cfg.data.sizes for s in cfg.experiment.seeds for m in models]
    if run:
        execute(jobs, spec, device=cfg.compute.device, progress=progress, desc="compare")
    return write_outputs(cfg, corpus.task, finished_rows(cfg))


def finished_rows(cfg: Config) -> list[dict]:
    """One row per finished run of the experiment's sizes × seeds × both models (run now or earlier)."""
    rows = []
    for size in cfg.data.sizes:
        for seed in cfg.experiment.seeds:
            for model in MODEL_KINDS:
                run = Run.for_config(cfg, model, size, seed)
                if run.done:
                    rows.append(_row(run.result(), run.path))
    return rows


def _row(result: RunResult, path: Path) -> dict:
    row = {"size": result.size, "seed": result.seed, "model": result.model, "status": result.status,
           "reason": result.reason, "train_seconds": result.timings.get("fit", float("nan")),
           "predict_seconds": result.timings.get("predict", float("nan")), "device": result.device,
           "run_dir": str(path)}
    row.update(result.metrics)
    row.update({f"reference_{k}": v for k, v in result.reference.items()})
    return row


# ------------------------------------------------------------------------------------ statistics


@dataclass
class Curve:
    sizes: np.ndarray
    scores: dict  # model -> array (n_sizes, n_seeds), NaN for failed runs


def curves(rows: list[dict], metric: str, sizes: list[int], seeds: list[int]) -> Curve:
    scores = {m: np.full((len(sizes), len(seeds)), np.nan) for m in MODEL_KINDS}
    for r in rows:
        if r["status"] == "ok" and r["size"] in sizes and r["seed"] in seeds:
            scores[r["model"]][sizes.index(r["size"]), seeds.index(r["seed"])] = r.get(metric, np.nan)
    return Curve(np.asarray(sizes, float), scores)


def crossover_size(sizes: np.ndarray, advantage: np.ndarray) -> float | None:
    """Where ``advantage`` (RNN minus linear, positive = RNN better) first turns positive for good,
    interpolated linearly in log size. None if it never does, or if the RNN is ahead from the start."""
    if np.any(np.isnan(advantage)) or advantage[-1] <= 0:
        return None
    last_behind = np.flatnonzero(advantage <= 0)
    if len(last_behind) == 0:
        return None
    i = last_behind[-1]
    a, b = advantage[i], advantage[i + 1]
    frac = (0.0 - a) / (b - a)
    return float(np.exp(np.log(sizes[i]) + frac * (np.log(sizes[i + 1]) - np.log(sizes[i]))))


def bootstrap_crossover(curve: Curve, higher_better: bool, n_boot: int = 2000, seed: int = 0) -> dict:
    lin, rnn = curve.scores["linear"], curve.scores["rnn"]
    sign = 1.0 if higher_better else -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = crossover_size(curve.sizes, sign * (np.nanmean(rnn, 1) - np.nanmean(lin, 1)))
    rng = np.random.default_rng(seed)
    n_seeds = lin.shape[1]
    found = []
    for _ in range(n_boot):
        pick = rng.integers(0, n_seeds, n_seeds)  # the same seeds for both models: runs are paired
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            adv = sign * (np.nanmean(rnn[:, pick], 1) - np.nanmean(lin[:, pick], 1))
        found.append(crossover_size(curve.sizes, adv))
    sizes_found = np.array([f for f in found if f is not None])
    low = high = None
    if point is not None and len(sizes_found):
        low, high = (float(x) for x in np.percentile(sizes_found, [2.5, 97.5]))
    return {"crossover_size": point, "low": low, "high": high,
            "bootstrap_fraction_with_crossover": len(sizes_found) / n_boot}


# ------------------------------------------------------------------------------------ outputs

_ROW_KEYS = {"size", "seed", "model", "status", "reason", "train_seconds", "predict_seconds", "device", "run_dir"}


def write_outputs(cfg: Config, task: Task, rows: list[dict]) -> dict:
    out_dir = output_dir(cfg)
    metric, higher = decision_metric(cfg, task)
    sizes, seeds = list(cfg.data.sizes), list(cfg.experiment.seeds)
    metric_names = sorted({k for r in rows for k in r if k not in _ROW_KEYS})
    write_csv(out_dir / "curves.csv", ["size", "seed", "model", "status", *metric_names, "train_seconds",
                                       "predict_seconds", "device", "reason"], rows)
    curve = curves(rows, metric, sizes, seeds)
    table = []
    for i, n in enumerate(sizes):
        lin, rnn = curve.scores["linear"][i], curve.scores["rnn"][i]
        lm, ls = mean_std(lin[~np.isnan(lin)])
        rm, rs = mean_std(rnn[~np.isnan(rnn)])
        err_l, err_r = (1 - lm, 1 - rm) if higher else (lm, rm)
        red = (err_l - err_r) / err_l if err_l and not math.isnan(err_l) and not math.isnan(err_r) else float("nan")
        winner = "n/a" if math.isnan(lm) or math.isnan(rm) else ("rnn" if (rm > lm) == higher and rm != lm else
                                                                 "linear" if rm != lm else "tie")
        failed = [r for r in rows if r["size"] == n and r["status"] != "ok"]
        refs = [r[f"reference_{metric}"] for r in rows if r["size"] == n and f"reference_{metric}" in r]
        table.append({"size": n, "metric": metric, "linear_mean": lm, "linear_std": ls, "rnn_mean": rm,
                      "rnn_std": rs, "rel_error_reduction": red, "winner": winner,
                      "linear_n": int(np.sum(~np.isnan(lin))), "rnn_n": int(np.sum(~np.isnan(rnn))),
                      "reference": float(np.mean(refs)) if refs else float("nan"),
                      "failed": "; ".join(f"{r['model']} seed {r['seed']}: {r['reason']}" for r in failed)})
    write_csv(out_dir / "crossover.csv", ["size", "metric", "linear_mean", "linear_std", "rnn_mean", "rnn_std",
                                          "rel_error_reduction", "winner", "reference"], table)
    cross = bootstrap_crossover(curve, higher)
    from .forecast import forecast, write_forecast

    fc = forecast(curve, metric, higher, measured=dict(cross))  # beside the measured crossover, and forecast.*
    cross["forecast"] = {k: fc["crossover"][k] for k in ("status", "size", "low", "high", "horizon")}
    atomic_write_json(out_dir / "crossover.json", cross)
    write_forecast(out_dir, fc, cfg.experiment.name)
    timing = _timing_table(rows, sizes)
    missing = [m for m in MODEL_KINDS if not any(r["model"] == m for r in rows)]
    lacking = sorted({r["run_dir"] for r in rows if r["status"] == "ok" and metric not in r})
    md = _crossover_markdown(cfg, metric, table, cross, timing, len(seeds), missing, fc, task=task, higher=higher,
                             lacking=lacking)
    atomic_write_text(out_dir / "crossover.md", md)
    from .plots import learning_curve_plot, timing_plot

    learning_curve_plot(out_dir / "learning_curve.png", curve, metric, cross["crossover_size"], cfg.experiment.name,
                        forecast=fc)
    timing_plot(out_dir / "timing.png", rows, sizes, cfg.experiment.name)
    return {"dir": out_dir, "table": table, "crossover": cross, "markdown": md, "timing": timing}


def _no_better_than_blind(table: list[dict], higher: bool) -> list[str]:
    """"the rnn at 500 and 1,000 examples" for each model whose mean does not beat the text-blind score."""
    out = []
    for model in MODEL_KINDS:
        at = [f"{r['size']:,}" for r in table
              if not (math.isnan(r[f"{model}_mean"]) or math.isnan(r.get("reference", math.nan)))
              and not (r[f"{model}_mean"] > r["reference"] if higher else r[f"{model}_mean"] < r["reference"])]
        if at:
            out.append(f"the {model} at {', '.join(at[:-1]) + ' and ' + at[-1] if len(at) > 1 else at[0]} examples")
    return out


def _timing_table(rows: list[dict], sizes: list[int]) -> list[dict]:
    """Mean training seconds per size, model and device (a GPU's runs never averaged with a CPU's), and
    each against the linear model's at that size."""
    out = []
    for n in sizes:
        ok = [r for r in rows if r["size"] == n and r["status"] == "ok"]
        linear = [r["train_seconds"] for r in ok if r["model"] == "linear"]
        base = float(np.mean(linear)) if linear else float("nan")
        for m in MODEL_KINDS:
            for device in sorted({r["device"] for r in ok if r["model"] == m}):
                secs = [r["train_seconds"] for r in ok if r["model"] == m and r["device"] == device]
                mean = float(np.mean(secs))
                out.append({"size": n, "model": m, "device": device, "seconds": mean, "runs": len(secs),
                            "vs_linear": mean / base if base else float("nan")})
    return out


def _cell(row: dict, model: str, n_seeds: int) -> str:
    """``mean ± std``; a lone run says so (its spread is unknown, not 0), fewer seeds than the rest too."""
    n = row.get(f"{model}_n", n_seeds)
    if n == 1 and n_seeds > 1:
        return f"{fmt(row[f'{model}_mean'])} (1 seed)"
    text = pm(row[f"{model}_mean"], row[f"{model}_std"])
    return text if n in (0, n_seeds) else f"{text} ({n} seeds)"


def _crossover_markdown(cfg: Config, metric: str, table, cross, timing, n_seeds: int, missing: list[str],
                        fc: dict | None = None, task: Task | None = None, higher: bool = True,
                        lacking: list[str] = ()) -> str:
    seeds = "one seed" if n_seeds == 1 else f"mean ± std over {n_seeds} seeds"
    blind = "mean predictor" if task is not None and task.is_regression else "majority class"
    lines = [f"# {cfg.experiment.name}: linear vs RNN ({cfg.data.dataset}, {metric}, {seeds})", ""]
    lines += markdown_table(["size", "linear", "rnn", "rel. error reduction", "winner", blind],
                            [(f"{r['size']:,}", _cell(r, "linear", n_seeds), _cell(r, "rnn", n_seeds),
                              f"{fmt(100 * r['rel_error_reduction'], 1)}%", r["winner"], fmt(r.get("reference"), 4))
                             for r in table], "rrrrlr")
    lines.append("")
    stuck = _no_better_than_blind(table, higher)
    if stuck:
        lines += [f"**Learned nothing:** {'; '.join(stuck)} scored no better than the {blind} "
                  f"({metric}), whatever the other model did.", ""]
    if lacking:
        lines += [f"**{len(lacking)} run(s) did not record {metric}** (made by an older rnnbench) and are left "
                  f"out; `--force` reruns them. First: {lacking[0]}", ""]
    c = cross["crossover_size"]
    gaps = [f"{r['size']:,}" for r in table if math.isnan(r["linear_mean"]) or math.isnan(r["rnn_mean"])]
    if missing:
        lines.append(f"**No crossover:** no finished {' or '.join(missing)} runs to compare "
                     f"(run them with `rnnbench compare CONFIG --models {','.join(missing)}`).")
    elif gaps:
        lines.append(f"**No crossover claimed:** one model has no finished run at {', '.join(gaps)} examples "
                     "(`rnnbench compare CONFIG` runs what is missing).")
    elif c is not None:
        interval = (f" (95% bootstrap interval over seeds: {cross['low']:,.0f} – {cross['high']:,.0f})"
                    if cross["low"] is not None else "")
        lines.append(f"**Crossover:** the RNN overtakes the linear model at about **{c:,.0f}** training examples{interval}.")
    elif table and table[0]["winner"] == "rnn" and all(r["winner"] == "rnn" for r in table):
        lines.append("**No crossover within the sizes run:** the RNN is ahead at every size.")
    else:
        lines.append("**No crossover within the sizes run:** the RNN does not overtake the linear model "
                     f"by {table[-1]['size']:,} examples." if table else "No results.")
    if fc is not None:
        from .forecast import crossover_line, predictions_table

        lines += ["", crossover_line(fc)]
        if any(m["trustworthy"] for m in fc["models"].values()):
            lines += ["", *predictions_table(fc)]
    failed = [f"- size {r['size']:,}: {r['failed']}" for r in table if r["failed"]]
    if failed:
        lines += ["", "Failed runs (left out of the means):", *failed]
    lines += ["", "## Cost: training time to convergence (mean seconds, per device)", ""]
    lines += markdown_table(["size", "model", "device", "seconds", "runs", "× linear"],
                            [(f"{t['size']:,}", t["model"], t["device"], fmt(t["seconds"], 1), t["runs"],
                              f"{fmt(t['vs_linear'], 2)}×") for t in timing], "rllrrr")
    return "\n".join(lines) + "\n"
