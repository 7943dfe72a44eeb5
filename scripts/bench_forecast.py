"""How well the learning-curve forecast predicts sizes it has not seen.

For each study, fits each model's curve on the smaller sizes only and scores the forecast against the
larger sizes actually run (held out of the fit):

- quickstart (synthetic corpus): fit <= 2k, check 6k and 15k
- IMDB: fit <= 5k, check 10k and 22.5k
- blog gender: fit <= 100k, check the full training set (the largest size run)

Per study it prints the absolute error of the forecast score at each held-out size (in points, for
accuracy), whether the measured score lies in the forecast interval, whether the measured crossover
(from every size) lies in the crossover interval forecast from the fitted sizes, and the intervals'
widths; for each curve family (power law with floor, exponential, log-power, vapor pressure). Target:
mean absolute error <= 1 point at 2-5x the largest fitted size.

Sources: an experiment folder (its finished runs, as `rnnbench forecast` reads them) or a curves.csv
that `compare` wrote. The quickstart can be trained here (`--train-quickstart SCRATCH`, a few minutes,
niced). Without a folder IMDB falls back to docs/results/imdb_curve_summary.csv (the published mean and
std over 3 seeds per size: the per-seed values are not published, so three pseudo-seeds per size,
mean - std, mean, mean + std, stand in for them and the intervals are indicative only). A study whose
runs are missing is skipped with the reason.

    python scripts/bench_forecast.py --quickstart runs/quickstart [--imdb DIR] [--blog DIR]
"""

import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit  # noqa: E402

from rnnbench.curves import bootstrap_crossover, curves, rows_from_experiment  # noqa: E402
from rnnbench.errors import RnnbenchError  # noqa: E402
from rnnbench.forecast import (  # noqa: E402
    DEFAULT_FAMILY,
    FAMILIES,
    forecast,
    forecast_model,
    seed_resamples,
)

IMDB_SUMMARY = ROOT / "docs" / "results" / "imdb_curve_summary.csv"
STUDIES = {  # name: (largest fitted size, held-out sizes; None = the largest size run)
    "quickstart": (2_000, [6_000, 15_000]),
    "imdb": (5_000, [10_000, 22_500]),
    "blog": (100_000, None),
}
TARGET_FACTORS = (2.0, 5.0)  # the target is the mean |error| at 2-5x the largest fitted size


def rows_from_csv(path: Path) -> tuple[list[dict], str, bool]:
    rows = list(csv.DictReader(open(path)))
    if not rows:
        raise RnnbenchError(f"{path}: no rows")
    if "mean" in rows[0]:  # a summary: mean and std over n seeds per size; pseudo-seeds mean - std, mean, mean + std
        out = []
        for r in rows:
            k = int(r["n_seeds"])
            z = np.linspace(-1, 1, k) if k > 1 else np.zeros(1)
            z = z / (np.std(z, ddof=1) if k > 1 else 1.0)
            for s, dz in enumerate(z):
                out.append({"size": int(r["size"]), "seed": s, "model": r["model"], "status": "ok",
                            "accuracy": float(r["mean"]) + float(r["std"]) * dz})
        return out, "accuracy", True
    metric, higher = ("accuracy", True) if "accuracy" in rows[0] else ("rmse", False)
    out = [{"size": int(r["size"]), "seed": int(r["seed"]), "model": r["model"], "status": r["status"],
            metric: float(r[metric]) if r[metric] not in ("", "nan") else float("nan")} for r in rows]
    return [r for r in out if r["status"] == "ok"], metric, higher


def load_study(path: Path) -> tuple[list[dict], str, bool, str]:
    path = Path(path).expanduser()
    if path.is_file():
        rows, metric, higher = rows_from_csv(path)
        return rows, metric, higher, f"{path} (a curves table)"
    if (path / "runs").is_dir():
        rows, task, _ = rows_from_experiment(path)
        metric, higher = ("rmse", False) if task.get("kind") == "regression" else ("accuracy", True)
        return [r for r in rows if r["status"] == "ok"], metric, higher, f"{path} (its finished runs)"
    if (path / "curves.csv").exists():
        rows, metric, higher = rows_from_csv(path / "curves.csv")
        return rows, metric, higher, f"{path / 'curves.csv'}"
    raise RnnbenchError(f"{path}: no runs/ folder and no curves.csv")


def train_quickstart(scratch: Path) -> Path:
    scratch.mkdir(parents=True, exist_ok=True)
    cmd = ["nice", "-n", "10", sys.executable, "-m", "rnnbench.cli", "compare", str(ROOT / "configs" / "quickstart.yaml"),
           "--set", f"experiment.output_dir={scratch}"]
    print("training the quickstart:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env={**os.environ, "TQDM_DISABLE": "1"})
    return scratch / "quickstart"


def check_study(name: str, rows: list[dict], metric: str, higher: bool, fit_max: int, held, fam: str,
                n_boot: int) -> dict:
    sizes = sorted({r["size"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    fit_sizes = [n for n in sizes if n <= fit_max]
    held = held if held is not None else [max(sizes)] if max(sizes) > fit_max else []
    held = [n for n in held if n in sizes]
    if len(fit_sizes) < 3:
        raise RnnbenchError(f"{len(fit_sizes)} sizes <= {fit_max:,} to fit (needs 3)")
    if not held:
        raise RnnbenchError(f"no finished runs above {fit_max:,} to check against")
    unit = 100.0 if higher else 1.0  # accuracy points; RMSE in its own units
    full = curves(rows, metric, sizes, seeds, ["linear", "rnn"])
    part = curves(rows, metric, fit_sizes, seeds, ["linear", "rnn"])
    picks = seed_resamples(len(seeds), n_boot)
    out = {"fit_sizes": fit_sizes, "held_out": held, "n_seeds": len(seeds), "points": [], "withheld": {}}
    for model in ("linear", "rnn"):
        scores = part.scores[model]
        if np.all(np.isnan(scores)):
            out["withheld"][model] = "no runs"
            continue
        m = forecast_model(part.sizes, scores, higher, FAMILIES[fam], picks, np.array(held, float), 0.95)
        if not m["trustworthy"]:
            out["withheld"][model] = m["verdict"]
            continue
        for j, n in enumerate(held):
            measured = full.scores[model][sizes.index(n)]
            if np.all(np.isnan(measured)):
                continue
            mean = float(np.nanmean(measured))
            c = m["curve"]
            low, high = c["low"][j], c["high"][j]
            out["points"].append({"model": model, "size": n, "factor": n / fit_sizes[-1], "measured": mean,
                                  "forecast": c["score"][j], "low": low, "high": high,
                                  "abs_error": abs(c["score"][j] - mean) * unit,
                                  "in_interval": None if low is None else bool(low <= mean <= high),
                                  "width": None if low is None else (high - low) * unit})
    # the crossover: measured from every size, forecast from the fitted sizes
    measured = bootstrap_crossover(full, "rnn", "linear", higher)
    fc = forecast(part, metric, higher, family_name=fam, n_boot=n_boot)
    c = fc["crossover"]["rnn"]
    out["measured_crossover"] = measured["crossover_size"]
    out["forecast_crossover"] = {k: c.get(k) for k in ("status", "size", "low", "high", "low_below_sizes",
                                                       "high_beyond_horizon", "reason")}
    if c["status"] == "not trustworthy":
        inside = None
    else:
        lo = 0.0 if c.get("low_below_sizes") else c["low"] if c["low"] is not None else c["size"] or math.inf
        hi = math.inf if c.get("high_beyond_horizon") else c["high"] if c["high"] is not None else c["size"] or math.inf
        if c["status"] == "none within the horizon" and c["low"] is None and not c.get("low_below_sizes"):
            lo = hi = math.inf
        if measured["crossover_size"] is not None:
            inside = bool(lo <= measured["crossover_size"] <= hi)
        else:  # none by the largest size run: the forecast must not cross before it
            inside = bool(lo > max(sizes))
        out["crossover_interval"] = [lo, hi]
    out["crossover_in_interval"] = inside
    errs = [p["abs_error"] for p in out["points"]]
    widths = [p["width"] for p in out["points"] if p["width"] is not None]
    out["mae"] = float(np.mean(errs)) if errs else None
    out["interval_width"] = float(np.mean(widths)) if widths else None
    out["coverage"] = (float(np.mean([p["in_interval"] for p in out["points"] if p["in_interval"] is not None]))
                       if any(p["in_interval"] is not None for p in out["points"]) else None)
    return out


def show(name: str, fam: str, r: dict, unit: str) -> None:
    print(f"  [{fam}] fit on {', '.join(f'{n:,}' for n in r['fit_sizes'])}; held out "
          f"{', '.join(f'{n:,}' for n in r['held_out'])}; {r['n_seeds']} seed(s)")
    for p in r["points"]:
        iv = "" if p["low"] is None else f" [{p['low']:.4f}, {p['high']:.4f}]"
        print(f"    {p['model']:6s} {p['size']:>9,} ({p['factor']:.1f}x): measured {p['measured']:.4f}, "
              f"forecast {p['forecast']:.4f}{iv}, |error| {p['abs_error']:.2f} {unit}"
              + ("" if p["in_interval"] is None else f", {'inside' if p['in_interval'] else 'outside'} the interval"))
    for model, why in r["withheld"].items():
        print(f"    {model:6s} no forecast: {why}")
    fc = r["forecast_crossover"]
    meas = r["measured_crossover"]
    print(f"    crossover: measured {'none within the sizes run' if meas is None else f'{meas:,.0f}'}; forecast "
          f"{fc['status']}" + (f" at {fc['size']:,.0f}" if fc.get("size") else "")
          + (f", interval {r['crossover_interval'][0]:,.0f} – {r['crossover_interval'][1]:,.0f}"
             if r.get("crossover_interval") else "")
          + f"; measured inside: {r['crossover_in_interval']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quickstart", type=Path, help="the quickstart's experiment folder (or its curves.csv)")
    ap.add_argument("--train-quickstart", type=Path, metavar="SCRATCH",
                    help="train the quickstart into this scratch folder first (a few minutes, niced)")
    ap.add_argument("--imdb", type=Path, help=f"IMDB's experiment folder or curves.csv (default: {IMDB_SUMMARY.name})")
    ap.add_argument("--blog", type=Path, help="the blog-gender experiment folder or curves.csv")
    ap.add_argument("--families", default=",".join(FAMILIES), help="curve families to compare (comma-separated)")
    ap.add_argument("--n-boot", type=int, default=400)
    args = ap.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    if DEFAULT_FAMILY not in families:
        families.insert(0, DEFAULT_FAMILY)

    sources, skipped = {}, {}
    if args.train_quickstart:
        sources["quickstart"] = train_quickstart(args.train_quickstart)
    elif args.quickstart:
        sources["quickstart"] = args.quickstart
    else:
        skipped["quickstart"] = "no folder given (--quickstart DIR, or --train-quickstart SCRATCH to train it)"
    sources["imdb"] = args.imdb or IMDB_SUMMARY
    if args.blog:
        sources["blog"] = args.blog
    else:
        skipped["blog"] = "no folder given (--blog DIR: the blog-gender experiment folder)"

    results = {fam: {} for fam in families}
    labels = {}
    for name, src in sources.items():
        try:
            rows, metric, higher, label = load_study(src)
            if name == "imdb" and src == IMDB_SUMMARY:
                label += ": published mean ± std over 3 seeds, pseudo-seeds (intervals indicative only)"
            fit_max, held = STUDIES[name]
            print(f"{name}: {label}; test {metric}")
            labels[name] = label
            unit = "points" if higher else metric
            for fam in families:
                r = check_study(name, rows, metric, higher, fit_max, held, fam, args.n_boot)
                results[fam][name] = r
                show(name, fam, r, unit)
        except (RnnbenchError, OSError, subprocess.CalledProcessError) as e:
            skipped[name] = str(e)
            for fam in families:
                results[fam].pop(name, None)
    for name, why in skipped.items():
        print(f"{name}: skipped: {why}")

    def summary(fam, within=(0.0, math.inf)):
        pts = [p["abs_error"] for r in results[fam].values() for p in r["points"]
               if within[0] <= p["factor"] <= within[1]]
        return (float(np.mean(pts)) if pts else None), len(pts)

    def fmt(mae):
        return "—" if mae is None else f"{mae:.2f}"

    print("family            mean |error|  points   at 2-5x  points")
    for fam in families:
        (mae, n), (mae_t, n_t) = summary(fam), summary(fam, TARGET_FACTORS)
        print(f"  {fam:14s}  {fmt(mae):>11s}  {n:6d}  {fmt(mae_t):>8s}  {n_t:6d}")
    main_res = results[DEFAULT_FAMILY]
    mae, n = summary(DEFAULT_FAMILY)
    mae_t, n_t = summary(DEFAULT_FAMILY, TARGET_FACTORS)
    emit({"studies": sorted(main_res), "skipped": skipped, "family": DEFAULT_FAMILY,
          "mean_abs_error_points": None if mae is None else round(mae, 3), "points_forecast": n,
          "mean_abs_error_points_2_5x": None if mae_t is None else round(mae_t, 3), "points_2_5x": n_t,
          "points_withheld": {s: r["withheld"] for s, r in main_res.items() if r["withheld"]},
          "per_study_mae_points": {s: None if r["mae"] is None else round(r["mae"], 3) for s, r in main_res.items()},
          "crossover_in_interval": {s: r["crossover_in_interval"] for s, r in main_res.items()},
          "interval_width": {s: None if r["interval_width"] is None else round(r["interval_width"], 3)
                             for s, r in main_res.items()},
          "interval_coverage": {s: r["coverage"] for s, r in main_res.items()},
          "crossover_interval": {s: [None if not math.isfinite(x) else round(x) for x in r["crossover_interval"]]
                                 if r.get("crossover_interval") else None for s, r in main_res.items()},
          "sources": {s: labels[s] for s in main_res},
          "families_mae_points": {f: (None if summary(f)[0] is None else round(summary(f)[0], 3), summary(f)[1])
                                  for f in families},
          "target_mae_points": 1.0})


if __name__ == "__main__":
    main()
