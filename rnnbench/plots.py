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


def save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def learning_curve_plot(path: Path, curve, metric: str, crossover: float | None, title: str) -> None:
    fig = figure()
    ax = fig.subplots()
    for model, scores in curve.scores.items():
        if np.all(np.isnan(scores)):  # no finished run of this model: no line
            continue
        with warnings.catch_warnings():  # a size where every run failed has no mean: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(scores, axis=1)
            std = np.nanstd(scores, axis=1, ddof=1) if scores.shape[1] > 1 else np.zeros(len(mean))
        std = np.nan_to_num(std)
        ax.plot(curve.sizes, mean, "o-", color=COLORS[model], label=LABELS[model])
        ax.fill_between(curve.sizes, mean - std, mean + std, color=COLORS[model], alpha=0.18)
    if crossover is not None:
        ax.axvline(crossover, color="0.3", ls="--", lw=1)
        ax.annotate(f"crossover ≈ {crossover:,.0f}", (crossover, 0.02), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", fontsize=8, color="0.3")
    ax.set_xscale("log")
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(f"{title}: learning curves (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no artists with labels" when no run finished
        ax.legend()
    save(fig, path)


def timing_plot(path: Path, rows: list[dict], sizes: list[int]) -> None:
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
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel("training seconds (log scale)")
    ax.set_title("training time")
    ax.grid(alpha=0.3, which="both")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ax.legend(fontsize=8)
    save(fig, path)
