"""``rnnbench export tensorboard DIR``: the runs' ``metrics.jsonl`` as TensorBoard event files.

One TensorBoard run per rnnbench run, named by model, size, seed and the settings in which it differs
from the experiment's other runs of its model (a sweep's swept values): ``rnn-n2000-s0-rnn.cell=lstm``.
Scalars: ``train/loss``, ``train/grad_norm``, ``train/tokens_per_s`` (every logged step),
``train/loss_epoch``, ``train/learning_rate`` (epoch ends), ``val/<metric>`` (each evaluation; for the
linear model each grid point, in order), ``test/<metric>`` (once, at the last step). Written with
tensorboardX (``pip install -e '.[tensorboard]'``; TensorFlow is not needed). Exporting again replaces
a run's events, so they are never counted twice.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path

from .errors import RnnbenchError
from .runs import RUNS, Run, is_experiment, name_parts, run_folders

TB_HINT = "pip install -e '.[tensorboard]'"
MAX_NAME = 200  # a TensorBoard run is a folder: its name stays well under file systems' 255 bytes


def _writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise RnnbenchError(f"export tensorboard needs tensorboardX, which is not installed: {TB_HINT}") from None
    return SummaryWriter


def _value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, list):
        return "-".join(map(str, v))
    return str(v)


def run_names(runs: list[Path]) -> dict[Path, str]:
    """A readable, unique name per run: ``<model>-n<size>-s<seed>`` and the settings that vary among the
    runs of its model (of those the model reads, by the rule of its run key, as ``rnnbench status``
    names variants)."""
    from .status import run_settings, varying_keys

    parts_of = {r: name_parts(r.name) for r in runs}
    settings = {r: run_settings(r, parts_of[r][0]) for r in runs}
    varying = {model: varying_keys(settings[r] for r in runs if parts_of[r][0] == model)
               for model in {m for m, _, _ in parts_of.values()}}
    names = {}
    for r in runs:
        model, size, seed = parts_of[r]
        parts = [f"{k}={_value(settings[r].get(k))}" for k in varying[model]] if settings[r] else []
        name = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", "-".join([f"{model}-n{size}-s{seed}", *parts]))
        names[r] = name if len(name) <= MAX_NAME else f"{name[:MAX_NAME - 11]}-{r.name.rsplit('-', 1)[-1][:10]}"
    seen: dict[str, int] = {}
    for r in runs:  # two runs that differ only where the name does not look: keep both
        n = names[r]
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[r] = f"{n}-{r.name.rsplit('-', 1)[-1]}"
    return names


def scalars(run: Path) -> list[tuple[str, float, int, float | None]]:
    """(tag, value, step, wall time) for every number TensorBoard should show, in log order."""
    rows = Run(run).metrics()
    out = []
    last_step, grid = 0, 0

    def add(tag, value, step, t):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append((tag, float(value), int(step), t))

    for r in rows:
        ev, t = r.get("event"), r.get("time")
        step = r.get("step") if isinstance(r.get("step"), int) else last_step
        last_step = max(last_step, step)
        if ev == "train":
            add("train/loss", r.get("train_loss"), step, t)
            add("train/grad_norm", r.get("grad_norm"), step, t)
            add("train/tokens_per_s", r.get("tokens_per_s"), step, t)
        elif ev == "epoch":
            add("train/loss_epoch", r.get("train_loss_epoch"), step, t)
            add("train/learning_rate", r.get("learning_rate"), step, t)
        elif ev == "eval":
            for k, v in r.items():
                if k.startswith("val_") and k != "val_metric":
                    add(f"val/{k[4:]}", v, step, t)
        elif ev == "grid_point":
            grid += 1
            for k, v in r.items():
                if k.startswith("val_"):
                    add(f"val/{k[4:]}", v, grid, t)
        elif ev == "done":
            for k, v in r.items():
                if k.startswith("test_"):
                    add(f"test/{k[5:]}", v, max(last_step, grid), t)
    return out


def export_tensorboard(target: Path, out: Path | None = None) -> dict:
    """Write one TensorBoard run per rnnbench run of ``target`` (an experiment folder, its ``runs/``, or
    one run) under ``out`` (default ``<experiment>/tensorboard``)."""
    target = Path(target)
    runs = [r for r in run_folders(target) if Run(r).has_metrics]
    if not runs:  # said first: it holds with or without the extra
        raise RnnbenchError(f"{target}: no run with a metrics.jsonl to export")
    writer_cls = _writer_class()
    if out is None:
        exp = target if is_experiment(target) else target.parent if target.name == RUNS else target.parent.parent
        out = exp / "tensorboard"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = run_names(runs)
    written = 0
    for run in runs:
        final = out / names[run]
        tmp = out / f".{names[run]}.tmp-{time.time_ns()}"
        w = writer_cls(logdir=str(tmp), flush_secs=3600)
        n = 0
        for tag, value, step, t in scalars(run):
            w.add_scalar(tag, value, global_step=step, walltime=t)
            n += 1
        w.close()
        if final.exists():  # replace: TensorBoard would otherwise show the old events beside the new
            old = out / f".{names[run]}.old-{time.time_ns()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        written += n
    return {"dir": out, "runs": len(runs), "scalars": written, "names": sorted(names.values())}
