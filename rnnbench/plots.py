"""Matplotlib figures, drawn on the Agg canvas: no display, and no global backend chosen (importing
rnnbench never calls ``matplotlib.use``; pyplot is not used)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from .fileio import atomic_write_bytes

COLORS = {"linear": "#1f77b4", "rnn": "#d62728"}
LABELS = {"linear": "TF-IDF bigrams + linear", "rnn": "RNN"}


def figure(figsize: tuple[float, float] = (6.4, 4.2)):
    """A new figure on its own Agg canvas (call ``.subplots()`` on it, then :func:`save`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def size_label(n: float) -> str:
    """A training size for a tick: 500, 2k, 10k, 1.5M."""
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:g}{unit}"
    return f"{n:g}"


def size_axis(ax, axis: str = "x") -> None:
    """A log axis of training sizes with plain tick labels (1k, 10k, 100k; not 10^3)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: size_label(v)))
    target.set_minor_formatter(NullFormatter())


def seeds_label(n_seeds: int) -> str:
    return "one seed" if n_seeds == 1 else f"mean ± std over {n_seeds} seeds"


def save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def learning_curve_plot(path: Path, curve, metric: str, crossover: float | None, title: str,
                        forecast: dict | None = None) -> None:
    """Mean ± std over seeds per model; with ``forecast`` (``rnnbench.forecast``'s dict), each trustworthy
    model's fitted curve dashed out to its horizon, its interval shaded, and the forecast crossover dotted."""
    fig = figure()
    ax = fig.subplots()
    uneven = False  # some sizes have fewer finished seeds than others
    for model, scores in curve.scores.items():
        if np.all(np.isnan(scores)):  # no finished run of this model: no line
            continue
        with warnings.catch_warnings():  # a size where every run failed has no mean: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(scores, axis=1)
            std = np.nanstd(scores, axis=1, ddof=1) if scores.shape[1] > 1 else np.zeros(len(mean))
        std = np.nan_to_num(std)
        ax.plot(curve.sizes, mean, "o-", color=COLORS[model], label=LABELS[model])
        counts = np.sum(~np.isnan(scores), axis=1)
        uneven |= bool(np.any((counts > 0) & (counts < scores.shape[1])))
        lone = (counts == 1) & (scores.shape[1] > 1)  # one run where there are several seeds: hollow
        ax.plot(curve.sizes[lone], mean[lone], "o", color=COLORS[model], markerfacecolor="white")
        ax.fill_between(curve.sizes, mean - std, mean + std, color=COLORS[model], alpha=0.18)
    for model, fm in (forecast or {}).get("models", {}).items():
        if not fm.get("trustworthy") or model not in COLORS:
            continue
        c = fm["curve"]
        ax.plot(c["sizes"], c["score"], "--", color=COLORS[model], lw=1.2, label=f"{LABELS[model]}: forecast")
        if all(v is not None for v in c["low"] + c["high"]):
            ax.fill_between(c["sizes"], c["low"], c["high"], color=COLORS[model], alpha=0.10, lw=0)
    fc_cross = (forecast or {}).get("crossover", {})
    fcross = fc_cross.get("size")
    if fcross is not None:
        ax.axvline(fcross, color="0.5", ls=":", lw=1)
        if fc_cross.get("low") is not None and fc_cross.get("high") is not None:
            ax.axvspan(fc_cross["low"], fc_cross["high"], color="0.5", alpha=0.08, lw=0)
        ax.annotate(f"forecast ≈ {fcross:,.0f}", (fcross, 0.08), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", fontsize=8, color="0.5")
    if crossover is not None:
        ax.axvline(crossover, color="0.3", ls="--", lw=1)
        ax.annotate(f"crossover ≈ {crossover:,.0f}", (crossover, 0.02), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", fontsize=8, color="0.3")
    size_axis(ax)
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel(f"test {metric}")
    n_seeds = next(iter(curve.scores.values())).shape[1] if curve.scores else 0
    seeds = f"mean ± std over up to {n_seeds} seeds, hollow: one run" if uneven else seeds_label(n_seeds)
    ax.set_title(f"{title}: learning curves ({seeds})" + (", forecast dashed" if any(
        fm.get("trustworthy") for fm in (forecast or {}).get("models", {}).values()) else ""))
    ax.grid(alpha=0.3, which="both")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no artists with labels" when no run finished
        ax.legend(fontsize=8 if forecast else None)
    save(fig, path)


def timing_plot(path: Path, rows: list[dict], sizes: list[int], title: str = "") -> None:
    fig = figure()
    ax = fig.subplots()
    for model in ("linear", "rnn"):
        ok = [r for r in rows if r["model"] == model and r["status"] == "ok"]
        if not ok:
            continue
        xs = [n for n in sizes if any(r["size"] == n for r in ok)]
        ys = [np.mean([r["train_seconds"] for r in ok if r["size"] == n]) for n in xs]
        devices = ", ".join(sorted({r["device"] for r in ok}))
        ax.plot(xs, ys, "o-", color=COLORS[model], label=f"{LABELS[model]} [{devices}]")
    size_axis(ax)
    ax.set_yscale("log")
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel("training seconds (log scale)")
    ax.set_title(f"{title}: training time" if title else "training time")
    ax.grid(alpha=0.3, which="both")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ax.legend(fontsize=8)
    save(fig, path)
