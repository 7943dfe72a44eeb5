"""Matplotlib figures, drawn on the Agg canvas: no display, and no global backend chosen (importing
rnnbench never calls ``matplotlib.use``; pyplot is not used)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from . import models
from .fileio import atomic_write_bytes


def color(model: str) -> str:
    return models.get(model).color


def label(model: str) -> str:
    return models.get(model).label or model


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


def learning_curve_plot(path: Path, curve, metric: str, title: str, crossovers: dict | None = None,
                        forecast: dict | None = None) -> None:
    """Mean ± std over seeds per model kind; ``crossovers``: each kind's measured crossover with the baseline
    (dashed, in its colour); with ``forecast`` (``rnnbench.forecast``'s dict), each trustworthy kind's
    fitted curve dashed out to its horizon, its interval shaded, and each forecast crossover dotted."""
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
        ax.plot(curve.sizes, mean, "o-", color=color(model), label=label(model))
        counts = np.sum(~np.isnan(scores), axis=1)
        uneven |= bool(np.any((counts > 0) & (counts < scores.shape[1])))
        lone = (counts == 1) & (scores.shape[1] > 1)  # one run where there are several seeds: hollow
        ax.plot(curve.sizes[lone], mean[lone], "o", color=color(model), markerfacecolor="white")
        ax.fill_between(curve.sizes, mean - std, mean + std, color=color(model), alpha=0.18)
    for model, fm in (forecast or {}).get("models", {}).items():
        if not fm.get("trustworthy"):
            continue
        c = fm["curve"]
        ax.plot(c["sizes"], c["score"], "--", color=color(model), lw=1.2, label=f"{label(model)}: forecast")
        if all(v is not None for v in c["low"] + c["high"]):
            ax.fill_between(c["sizes"], c["low"], c["high"], color=color(model), alpha=0.10, lw=0)
    several = len((forecast or {}).get("crossover", crossovers or {})) > 1  # name the kind beside each line
    for k, (model, fc_cross) in enumerate((forecast or {}).get("crossover", {}).items()):
        fcross = fc_cross.get("size")
        if fcross is None:
            continue
        ax.axvline(fcross, color=color(model), ls=":", lw=1)
        if fc_cross.get("low") is not None and fc_cross.get("high") is not None:
            ax.axvspan(fc_cross["low"], fc_cross["high"], color=color(model) if several else "0.5", alpha=0.08, lw=0)
        ax.annotate(f"{model + ' ' if several else ''}forecast ≈ {fcross:,.0f}", (fcross, 0.08 + 0.1 * k),
                    xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points", fontsize=8,
                    color="0.5")
    for k, (model, crossover) in enumerate((crossovers or {}).items()):
        if crossover is None:
            continue
        ax.axvline(crossover, color=color(model) if several else "0.3", ls="--", lw=1)
        ax.annotate(f"{model + ' ' if several else ''}crossover ≈ {crossover:,.0f}", (crossover, 0.02 + 0.1 * k),
                    xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points", fontsize=8,
                    color="0.3")
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
    for model in models.names():
        ok = [r for r in rows if r["model"] == model and r["status"] == "ok"]
        if not ok:
            continue
        xs = [n for n in sizes if any(r["size"] == n for r in ok)]
        ys = [np.mean([r["train_seconds"] for r in ok if r["size"] == n]) for n in xs]
        devices = ", ".join(sorted({r["device"] for r in ok}))
        ax.plot(xs, ys, "o-", color=color(model), label=f"{label(model)} [{devices}]")
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
