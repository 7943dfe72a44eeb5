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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import models
from .config import Config
from .curves import ROW_KEYS, Curve, bootstrap_crossover, challengers, curves, finished_rows
from .data import Task
from .errors import RnnbenchError
from .experiment import announce, load_corpus, subsets_for
from .fileio import atomic_write_json, atomic_write_text
from .intervals import Preds, compare_intervals
from .metrics import THRESHOLD_METRICS, decision_metric, higher_is_better, selection_metric, threshold_free
from .outputs import fmt, markdown_table, mean_std, output_dir, pm, write_csv
from .plan import compare_plan, models_to_run
from .runs import Run

CROSSOVER_COLUMNS = ["size", "model", "metric", "mean", "std", "n", "low", "high", "diff_vs_baseline", "diff_low",
                     "diff_high", "rel_error_reduction", "winner", "reference"]


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
    compare_plan(cfg, kinds)  # the checks that need no data: the sizes, seeds, searches
    corpus = load_corpus(cfg)
    decision_metric(cfg, corpus.task)
    higher = selection_metric(cfg, corpus.task)[1]
    check_sizes_fit(cfg, subsets_for(cfg, corpus, cfg.data.sizes[0], cfg.experiment.seeds[0]).pool_size)
    if progress:
        announce(corpus)  # the loader's report, once per load
    if run:
        from .tune import cells, run_search

        for cell in cells(cfg, kinds or models_to_run(cfg), higher):  # the searches first: their recipes
            run_search(cell, spec, force, progress)
        execute(jobs_for(compare_plan(cfg, kinds), force), spec, device=cfg.compute.device, progress=progress,
                desc="compare")
    return write_outputs(cfg, corpus.task, finished_rows(compare_plan(cfg, kinds=list(models.names()))))


# ------------------------------------------------------------------------------------ the tables


def _kinds_shown(cfg: Config, rows: list[dict]) -> list[str]:
    """The kinds the tables show: the baseline, the kinds the config names, and any kind with finished
    runs, in the registry's order."""
    present = {r["model"] for r in rows}
    wanted = set(cfg.experiment.models) | {cfg.experiment.baseline} | present
    return [m for m in models.names() if m in wanted]


def summary_table(curve: Curve, baseline: str, metric: str, higher: bool, rows: list[dict],
                  bands: dict | None = None) -> list[dict]:
    """Long form: one row per size and model kind, its mean, spread, number of seeds and 95% interval, and
    against the baseline the difference (with its interval), the relative error reduction and the winner
    at that size: "tie" where the difference's interval holds 0. ``bands``: size -> the intervals of
    :func:`rnnbench.intervals.compare_intervals` (None where the runs kept no predictions)."""
    table = []
    for i, n in enumerate(curve.sizes.astype(int).tolist()):
        band = (bands or {}).get(n) or {"models": {}, "diff": {}}
        refs = [r[f"reference_{metric}"] for r in rows if r["size"] == n and f"reference_{metric}" in r]
        reference = float(np.mean(refs)) if refs else float("nan")
        base = curve.scores[baseline][i] if baseline in curve.scores else np.full(curve.n_seeds, np.nan)
        bm, _ = mean_std(base[~np.isnan(base)])
        for m, scores in curve.scores.items():
            values = scores[i][~np.isnan(scores[i])]
            mean, std = mean_std(values)
            low, high = band["models"].get(m, (float("nan"), float("nan")))
            row = {"size": n, "model": m, "metric": metric, "mean": mean, "std": std, "n": len(values),
                   "low": low, "high": high, "reference": reference, "diff_vs_baseline": float("nan"),
                   "diff_low": float("nan"), "diff_high": float("nan"), "rel_error_reduction": float("nan"),
                   "winner": ""}
            if m != baseline:
                row["diff_vs_baseline"] = mean - bm
                err_b, err_m = (1 - bm, 1 - mean) if higher else (bm, mean)
                row["rel_error_reduction"] = ((err_b - err_m) / err_b if err_b and not math.isnan(err_b)
                                              and not math.isnan(err_m) else float("nan"))
                row["winner"] = ("n/a" if math.isnan(bm) or math.isnan(mean) else
                                 m if (mean > bm) == higher and mean != bm else baseline if mean != bm else "tie")
                if m in band["diff"]:
                    row["diff_low"], row["diff_high"] = band["diff"][m]
                    if row["winner"] != "n/a" and row["diff_low"] <= 0 <= row["diff_high"]:
                        row["winner"] = "tie"  # within noise: the interval of the difference holds 0
            table.append(row)
    return table


@dataclass
class Comparison:
    """Everything the tables of a compare are made from."""

    cfg: Config
    task: Task
    metric: str
    higher: bool
    rows: list[dict]  # the finished runs
    curve: Curve
    table: list[dict]  # summary_table: a row per size and kind
    cross: dict  # kind -> its measured crossover with the baseline
    forecast: dict
    timing: list[dict]
    free: list[dict] | None = None  # a threshold metric's check: the same table on a threshold-free metric
    grouped: bool = False  # the intervals resample test groups (authors), not texts
    by_group: list[dict] | None = None  # experiment.group_scores: the table of whole groups (authors)
    budgets: dict | None = None  # (kind, size) -> how its model was selected (search.budget_at)

    @property
    def baseline(self) -> str:
        return self.cfg.experiment.baseline


def write_outputs(cfg: Config, task: Task, rows: list[dict]) -> dict:
    out_dir = output_dir(cfg)
    metric, higher = decision_metric(cfg, task)
    baseline = cfg.experiment.baseline
    sizes, seeds = list(cfg.data.sizes), list(cfg.experiment.seeds)
    metric_names = sorted({k for r in rows for k in r if k not in ROW_KEYS})
    budgets = search_budgets(cfg, rows)
    for r in rows:  # each run's model: how it was selected, beside its score
        b = budgets.get((r["model"], r["size"]), {})
        r.update(trials=b.get("trials"), pruned=b.get("pruned"), search_seconds=b.get("seconds"),
                 tuned=b.get("tuned", ""))
    write_csv(out_dir / "curves.csv", ["size", "seed", "model", "status", *metric_names, "train_seconds",
                                       "predict_seconds", "device", "trials", "pruned", "search_seconds", "tuned",
                                       "reason"], rows)
    kinds = _kinds_shown(cfg, rows)
    curve = curves(rows, metric, sizes, seeds, kinds)
    preds = test_predictions(rows)
    bands_ = bands(preds, metric, baseline)
    table = summary_table(curve, baseline, metric, higher, rows, bands_)
    free = None
    if metric in THRESHOLD_METRICS:  # where the decision rule matters: the ranking's verdict beside it
        fm = threshold_free(task)
        free = summary_table(curves(rows, fm, sizes, seeds, kinds), baseline, fm, higher_is_better(task, fm), rows,
                             bands(preds, fm, baseline))
    by_group = None
    if cfg.experiment.group_scores:  # each test author scored as a whole, beside each text
        group_preds = {n: {m: {s: p.by_group() for s, p in r.items()} for m, r in runs.items()}
                       for n, runs in preds.items()}
        by_group = summary_table(curves(rows, f"group_{metric}", sizes, seeds, kinds), baseline, metric, higher, [],
                                 bands(group_preds, metric, baseline))
        for r in by_group:
            r["metric"] = f"group_{metric}"
    write_csv(out_dir / "crossover.csv", CROSSOVER_COLUMNS, table + (free or []) + (by_group or []))
    from .forecast import forecast, write_forecast

    cross = {m: _claimed(bootstrap_crossover(curve, m, baseline, higher), m, table, higher, len(seeds))
             for m in challengers(curve, baseline)}
    fc = forecast(curve, metric, higher, baseline, measured=cross, pool=_pool_size(rows))
    for m, c in cross.items():
        c["forecast"] = {k: fc["crossover"][m][k] for k in ("status", "size", "low", "high", "horizon")}
    atomic_write_json(out_dir / "crossover.json", {"metric": metric, "baseline": baseline, "models": cross})
    write_forecast(out_dir, fc, cfg.experiment.name)
    grouped = any(b and b["grouped"] for b in bands_.values())
    comparison = Comparison(cfg, task, metric, higher, rows, curve, table, cross, fc,
                            timing_table(rows, sizes, baseline), free, grouped, by_group, budgets)
    md = crossover_markdown(comparison)
    atomic_write_text(out_dir / "crossover.md", md)
    from .plots import learning_curve_plot, timing_plot

    learning_curve_plot(out_dir / "learning_curve.png", curve, metric, cfg.experiment.name,
                        crossovers={m: c["crossover_size"] for m, c in cross.items()}, forecast=fc)
    timing_plot(out_dir / "timing.png", rows, sizes, cfg.experiment.name)
    return {"dir": out_dir, "table": table, "crossover": cross, "markdown": md, "timing": comparison.timing,
            "failed": sum(r["status"] != "ok" for r in rows)}


def search_budgets(cfg: Config, rows: list[dict]) -> dict[tuple[str, int], dict]:
    """(kind, size) -> what selecting its model cost (:func:`rnnbench.search.budget_at`); for a kind with no
    search, its fits' seconds and where its own grid's choice sat at an edge."""
    from .search import budget_at, native_edges

    out = {}
    for kind, size in dict.fromkeys((r["model"], r["size"]) for r in rows):
        mine = [r for r in rows if r["model"] == kind and r["size"] == size and r["status"] == "ok"]
        b = budget_at(cfg, kind, size, sorted({r["seed"] for r in mine}))
        if b["seconds"] is None:
            b["seconds"] = round(sum(r["train_seconds"] for r in mine), 1)
        if not b["tuned"]:  # its own grid (or one recipe): what its runs tried, and where they chose
            runs = [Run(Path(r["run_dir"])) for r in mine if r.get("run_dir")]
            results = [run.result() for run in runs if run.done]
            b["trials"] = max((x.training.get("grid_points", 1) for x in results), default=1)
            b["edges"] = sorted({e for x in results for e in native_edges(cfg, kind, x.chosen)})
        out[kind, size] = b
    return out


def test_predictions(rows: list[dict]) -> dict[int, dict[str, dict[int, Preds]]]:
    """size -> model -> seed -> the run's kept test predictions; a model with a run that kept none (made
    before they were kept) is left out at that size: it gets no interval rather than a guess."""
    out: dict[int, dict[str, dict[int, Preds]]] = {}
    missing = set()
    for r in rows:
        if r["status"] != "ok" or not r.get("run_dir"):
            continue
        p = Preds.of(Run(Path(r["run_dir"])).predictions())
        if p is None:
            missing.add((r["size"], r["model"]))
            continue
        out.setdefault(r["size"], {}).setdefault(r["model"], {})[r["seed"]] = p
    for n, m in missing:
        out.get(n, {}).pop(m, None)
    return out


def bands(preds: dict, metric: str, baseline: str) -> dict:
    """size -> :func:`rnnbench.intervals.compare_intervals` of the runs at that size."""
    return {n: compare_intervals(runs, metric, baseline) for n, runs in preds.items() if runs}


def _pool_size(rows: list[dict]) -> int | None:
    """The most training examples the data offers (its training pool), as the runs recorded it."""
    pools = [r["pool_size"] for r in rows if r.get("pool_size")]
    return max(pools) if pools else None


def _claimed(cross: dict, model: str, table: list[dict], higher: bool, n_seeds: int) -> dict:
    """A measured crossover as it may be claimed: none where the model, from the crossover on, does not beat
    the text-blind reference (a lead between models that learned nothing is noise), and no interval from
    one seed."""
    c = cross["crossover_size"]
    if c is not None:
        after = [r for r in table if r["model"] == model and r["size"] >= c]
        stuck = [r["size"] for r in after if not math.isnan(r["reference"])
                 and not (r["mean"] > r["reference"] if higher else r["mean"] < r["reference"])]
        ties = [r["size"] for r in after if r["winner"] == "tie"]
        if stuck:
            cross = {**cross, "crossover_size": None, "low": None, "high": None,
                     "withheld": f"{model} scored no better than the text-blind reference at "
                                 f"{', '.join(f'{n:,}' for n in stuck)} examples"}
        elif ties:
            cross = {**cross, "crossover_size": None, "low": None, "high": None,
                     "withheld": f"its lead is within noise at {', '.join(f'{n:,}' for n in ties)} examples (the 95% "
                                 "interval of the difference holds 0)"}
    if n_seeds < 2:
        cross = {**cross, "low": None, "high": None}
    return cross


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


def _band(low: float, high: float) -> str:
    return "" if math.isnan(low) else f" [{fmt(low)}, {fmt(high)}]"


def _cell(row: dict, n_seeds: int) -> str:
    """``mean ± std [95% interval]``; a lone run says so (its spread over seeds is unknown, not 0), fewer
    seeds than the rest too."""
    n = row["n"]
    text = f"{fmt(row['mean'])} (1 seed)" if n == 1 else pm(row["mean"], row["std"])
    if n not in (0, 1, n_seeds):
        text += f" ({n} seeds)"
    return text + _band(row.get("low", math.nan), row.get("high", math.nan))


def _versus(row: dict) -> str:
    """A model kind against the baseline at one size: the difference, its 95% interval, and the winner
    ("tie" where the interval holds 0)."""
    if row["winner"] == "n/a":
        return "—"
    diff = row["diff_vs_baseline"]
    return f"{'+' if diff >= 0 else '−'}{fmt(abs(diff))}{_band(row['diff_low'], row['diff_high'])} {row['winner']}"


def _beats(row: dict, higher: bool) -> bool:
    return row["mean"] > row["reference"] if higher else row["mean"] < row["reference"]


def _no_better_than_blind(table: list[dict], higher: bool) -> list[str]:
    """"the rnn at 500 and 1,000 examples" for each model kind whose mean does not beat the text-blind score."""
    out = []
    for model in dict.fromkeys(r["model"] for r in table):
        at = [f"{r['size']:,}" for r in table if r["model"] == model
              and not (math.isnan(r["mean"]) or math.isnan(r["reference"])) and not _beats(r, higher)]
        if at:
            out.append(f"the {model} at {', '.join(at[:-1]) + ' and ' + at[-1] if len(at) > 1 else at[0]} examples")
    return out


def _interval_note(c: Comparison) -> str:
    """What the intervals in brackets are, or why there are none."""
    if not any(not math.isnan(r.get("low", math.nan)) for r in c.table):
        return "No intervals: the runs kept no test predictions (made by an older rnnbench)."
    units = "test groups (authors: texts of one group vary together)" if c.grouped else "test examples"
    return (f"[brackets]: 95% intervals from a bootstrap over {units} and seeds, the same draws for every model; "
            "they do not cover a validation split that misled every seed alike (docs/uncertainty.md).")


def _crossover_line(model: str, c: Comparison) -> str:
    """What the measured curves say of ``model`` against the baseline: a crossover (with its bootstrap
    interval), none within the sizes run, or why none is claimed."""
    baseline, cross, table = c.baseline, c.cross[model], c.table
    mine = [r for r in table if r["model"] == model]
    have = {r["model"] for r in c.rows}
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
    if cross.get("withheld"):
        return f"{head} no crossover claimed: {cross['withheld']}."
    size = cross["crossover_size"]
    if size is not None:
        interval = (f" (95% bootstrap interval over seeds: {cross['low']:,.0f} – {cross['high']:,.0f})"
                    if cross["low"] is not None else " (one seed: no interval)" if c.curve.n_seeds < 2 else "")
        return f"{head} {model} overtakes {baseline} at about **{size:,.0f}** training examples{interval}."
    if mine and all(r["winner"] == model for r in mine):
        return f"{head} no crossover within the sizes run: {model} is ahead at every size."
    return (f"{head} no crossover within the sizes run: {model} does not overtake {baseline} for good by "
            f"{mine[-1]['size']:,} examples." if mine else f"{head} no results.")


def _disagreements(c: Comparison) -> list[str]:
    """Where the threshold metric's winner and the threshold-free metric's differ: the decision rule, not
    the ranking of texts, made the difference there."""
    free = {(r["size"], r["model"]): r for r in c.free or []}
    out = []
    for r in c.table:
        other = free.get((r["size"], r["model"]))
        if r["model"] != c.baseline and other and "n/a" not in (r["winner"], other["winner"]) \
                and r["winner"] != other["winner"]:
            out.append(f"{r['size']:,} ({r['model']}: {r['winner']} on {c.metric}, {other['winner']} on "
                       f"{other['metric']})")
    return out


def _threshold_lines(c: Comparison) -> list[str]:
    """A threshold metric's table: how each model's decision rule was chosen, and the threshold-free check."""
    fm = c.free[0]["metric"]
    by = {(r["size"], r["model"]): r for r in c.free}
    kinds, sizes = list(c.curve.scores), c.curve.sizes.astype(int).tolist()
    lines = [f"{c.metric} depends on where a model puts its decision: each model's threshold (two classes) or class "
             f"weights were chosen on validation to make its {c.metric} best, the same way for every model. The "
             f"same runs on {fm}, which does not depend on the decision:", ""]
    lines += markdown_table(["size", *kinds], [(f"{n:,}", *(_cell(by[n, m], c.curve.n_seeds) for m in kinds))
                                               for n in sizes], "r" * (len(kinds) + 1))
    disagree = _disagreements(c)
    lines += ["", f"**The two disagree** at {'; '.join(disagree)}: there the decision rule, not how the model "
              "ranks texts, decided." if disagree else f"The winners on {c.metric} and on {fm} agree at every size."]
    return lines


def _group_lines(c: Comparison) -> list[str]:
    """The table of whole groups: each test author's label from the mean of their texts' probabilities."""
    by = {(r["size"], r["model"]): r for r in c.by_group}
    kinds, others = list(c.curve.scores), challengers(c.curve, c.baseline)
    sizes = c.curve.sizes.astype(int).tolist()
    lines = [f"Each test group (author) scored as a whole: its label predicted from the mean of its texts' "
             f"probabilities (the most probable class), test {c.metric} over groups; intervals resample groups "
             "and seeds:", ""]
    lines += markdown_table(["size", *kinds, *(f"{m} − {c.baseline}: winner" for m in others)],
                            [(f"{n:,}", *(_cell(by[n, m], c.curve.n_seeds) for m in kinds),
                              *(_versus(by[n, m]) for m in others)) for n in sizes], "r" * (1 + len(kinds) + len(others)))
    return lines


def _budget_lines(c: Comparison) -> list[str]:
    """How each model was selected at each size: so a reader sees whether the fight was fair."""
    lines = ["## Selection budget: what each model's choice on validation cost", "",
             "Configurations tried per seed (a search's trials, or the linear model's grid points), trials pruned, "
             "the compute seconds spent (all seeds), how the size got its recipe, and choices at the edge of what was "
             "tried.", ""]
    rows = [(f"{n:,}", kind, b["tuned"] or "its own grid" if b["trials"] > 1 else b["tuned"] or "one recipe",
             f"{b['trials']:g}", b["pruned"], fmt(b["seconds"], 0), "; ".join(b["edges"]) or "—")
            for (kind, n), b in sorted(c.budgets.items(), key=lambda x: (x[0][1], list(c.curve.scores).index(x[0][0])
                                                                            if x[0][0] in c.curve.scores else 99))]
    return lines + markdown_table(["size", "model", "recipe", "tried/seed", "pruned", "seconds", "at an edge"], rows,
                                  "rllrrrl")


def crossover_markdown(c: Comparison) -> str:
    cfg, table, n_seeds, baseline = c.cfg, c.table, c.curve.n_seeds, c.baseline
    kinds, others = list(c.curve.scores), challengers(c.curve, baseline)
    seeds = "one seed" if n_seeds == 1 else f"mean ± std over {n_seeds} seeds"
    regression = c.task.is_regression
    blind = "mean predictor" if regression else "majority class"
    lines = [f"# {cfg.experiment.name}: {', '.join(others) or '—'} vs {baseline} ({cfg.data.dataset}, "
             f"{c.metric}, {seeds})", ""]
    by = {(r["size"], r["model"]): r for r in table}
    sizes = c.curve.sizes.astype(int).tolist()
    lines += markdown_table(
        ["size", *kinds, *(f"{m} − {baseline}: winner" for m in others), blind],
        [(f"{n:,}", *(_cell(by[n, m], n_seeds) for m in kinds), *(_versus(by[n, m]) for m in others),
          fmt(by[n, kinds[0]]["reference"], 4)) for n in sizes], "r" + "r" * (len(kinds) + len(others)) + "r")
    reference = ("the training targets' mean predicted for every text" if regression else
                 "the training set's most frequent class predicted for every test text (below 0.5 where test's "
                 "classes are balanced differently)")
    lines += ["", f"Test {c.metric}; models selected on validation by {selection_metric(cfg, c.task)[0]}. "
              f"{_interval_note(c)} The winner is the better mean at that size, a tie where the difference's "
              "interval holds 0; a crossover is a lead that lasts: the model ahead of the baseline at every larger "
              f"size run. {blind}: {reference}.", ""]
    stuck = _no_better_than_blind(table, c.higher)
    if stuck:
        lines += [f"**Learned nothing:** {'; '.join(stuck)} scored no better than the {blind} "
                  f"({c.metric}), whatever the other model did.", ""]
    lacking = sorted({r["run_dir"] for r in c.rows if r["status"] == "ok" and c.metric not in r})
    if lacking:
        lines += [f"**{len(lacking)} run(s) did not record {c.metric}** (made by an older rnnbench) and are left "
                  f"out; `--force` reruns them. First: {lacking[0]}", ""]
    lines += [_crossover_line(m, c) for m in others]
    if not others:
        lines.append(f"**No crossover:** only the baseline ({baseline}) is in this experiment.")
    if c.free:
        lines += ["", *_threshold_lines(c)]
    if c.by_group:
        lines += ["", *_group_lines(c)]
    from .forecast import crossover_line, predictions_table

    lines += ["", *(crossover_line(c.forecast, m) for m in others)]
    if any(f["trustworthy"] for f in c.forecast["models"].values()):
        lines += ["", *predictions_table(c.forecast)]
    failed = [f"- size {r['size']:,}: {r['model']} seed {r['seed']}: {r['reason']}" for r in c.rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed runs (left out of the means):", *failed]
    lines += ["", "## Cost: training time to convergence (mean seconds, per device)", ""]
    lines += markdown_table(["size", "model", "device", "seconds", "runs", f"× {baseline}"],
                            [(f"{t['size']:,}", t["model"], t["device"], fmt(t["seconds"], 1), t["runs"],
                              f"{fmt(t['vs_baseline'], 2)}×") for t in c.timing], "rllrrr")
    if c.budgets:  # after the cost: its seconds are timings too
        lines += ["", *_budget_lines(c)]
    return "\n".join(lines) + "\n"
