"""``rnnbench export tensorboard DIR`` and ``rnnbench export mlflow DIR``: the runs' metrics logs in the
trackers researchers keep their runs in.

TensorBoard: the runs' ``metrics.jsonl`` as event files.

One TensorBoard run per rnnbench run, named by model, size, seed and the settings in which it differs
from the experiment's other runs of its model (a sweep's swept values): ``rnn-n2000-s0-rnn.cell=lstm``.
Scalars: ``train/loss``, ``train/grad_norm``, ``train/tokens_per_s`` (every logged step),
``train/loss_epoch``, ``train/learning_rate`` (epoch ends), ``val/<metric>`` (each evaluation; for the
linear model each grid point, in order), ``test/<metric>`` (once, at the last step). Written with
tensorboardX (``pip install -e '.[tensorboard]'``; TensorFlow is not needed). Exporting again replaces
a run's events, so they are never counted twice.

MLflow (``pip install -e '.[mlflow]'``): one MLflow run per rnnbench run, in an MLflow experiment named
after the rnnbench experiment, named as the TensorBoard runs are: its result-determining settings as
parameters, the same scalars as step metrics (``train/loss``, ``val/accuracy``, ...), tags for model
kind, size, seed, experiment, device and status, and the experiment's ``learning_curve.png`` as an
artifact. The tag ``rnnbench.run`` (the run folder's name) finds the MLflow run again: exporting twice
updates it (only metrics not logged yet are added) instead of making a second one.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import RnnbenchError
from .runs import RUNS, Run, is_experiment, name_parts, run_folders

TB_HINT = "pip install -e '.[tensorboard]'"
MLFLOW_HINT = "pip install -e '.[mlflow]'"
RUN_TAG = "rnnbench.run"  # an MLflow run's rnnbench run folder: how a second export finds it
LEARNING_CURVE = "learning_curve.png"  # compare's plot, in the experiment folder
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
        out = experiment_of(target) / "tensorboard"
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


# ---------------------------------------------------------------------------------------- MLflow


def experiment_of(target: Path) -> Path:
    """The experiment folder of ``target``: itself, the folder of its ``runs/``, or of one run."""
    target = Path(target)
    return target if is_experiment(target) else target.parent if target.name == RUNS else target.parent.parent


def tracking_uri(uri: str | None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ``./mlruns`` (MLflow's own default); a
    path becomes a ``file:`` URI."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri):
        return uri  # a URI: file:, sqlite:, http(s):, databricks
    return Path(uri).expanduser().absolute().as_uri()


@contextmanager
def _file_store_allowed(uri: str):
    """MLflow 3 refuses its file store (``mlruns/``) unless told it is wanted: it is, here."""
    key = "MLFLOW_ALLOW_FILE_STORE"
    before = os.environ.get(key)
    if uri.startswith("file:") and before is None:
        os.environ[key] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)


def _mlflow():
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise RnnbenchError(f"export mlflow needs MLflow, which is not installed: {MLFLOW_HINT}") from None
    return MlflowClient, Metric, Param, RunTag


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def export_mlflow(target: Path, uri: str | None = None) -> dict:
    """One MLflow run per rnnbench run of ``target`` (an experiment folder, its ``runs/``, or one run) in
    the tracking store ``uri`` (see :func:`tracking_uri`), created or updated."""
    target = Path(target)
    runs = [r for r in run_folders(target) if Run(r).has_metrics]
    if not runs:  # said first: it holds with or without the extra
        raise RnnbenchError(f"{target}: no run with a metrics.jsonl to export")
    client_cls, *_ = _mlflow()
    uri = tracking_uri(uri)
    exp = experiment_of(target)
    names = run_names(runs)
    counts = {"created": 0, "updated": 0, "metrics": 0}
    with _file_store_allowed(uri):
        client = client_cls(tracking_uri=uri)
        found = client.get_experiment_by_name(exp.name)
        eid = found.experiment_id if found is not None else client.create_experiment(exp.name)
        for run in runs:
            created, n = _export_run(client, eid, run, names[run], exp)
            counts["created" if created else "updated"] += 1
            counts["metrics"] += n
    return {"uri": uri, "experiment": exp.name, "runs": len(runs), **counts}


def _export_run(client, eid: str, run: Path, name: str, exp: Path) -> tuple[bool, int]:
    """Create or update the MLflow run of one rnnbench run. Returns (created, metrics logged now)."""
    from .status import run_settings

    _, metric_cls, param_cls, tag_cls = _mlflow()
    r = Run(run)
    model, size, seed = name_parts(run.name)
    values = scalars(run)
    times = [t for *_, t in values if t is not None]
    tags = {RUN_TAG: run.name, "model": model, "size": str(size), "seed": str(seed), "experiment": exp.name,
            "mlflow.runName": name}
    if r.done:
        result = r.result()
        tags.update(device=result.device or "", status=result.status)
    hits = client.search_runs([eid], filter_string=f"tags.`{RUN_TAG}` = '{run.name}'", max_results=1)
    if hits:
        run_id, params, created = hits[0].info.run_id, hits[0].data.params, False
    else:
        started = int(min(times) * 1000) if times else None
        run_id, params, created = client.create_run(eid, start_time=started, tags=tags, run_name=name).info.run_id, {}, True
    settings = {k: (v if isinstance(v, str) else json.dumps(v))[:6000] for k, v in run_settings(run, model).items()}
    new_params = [param_cls(k, v) for k, v in settings.items() if k not in params]  # params never change
    logged: dict[str, set] = {}
    if not created:
        for key in {tag for tag, *_ in values}:
            logged[key] = {(m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key)}
    metrics = []
    for tag, value, step, t in values:
        ms = int(t * 1000) if t is not None else 0
        if (step, value, ms) not in logged.get(tag, ()):
            metrics.append(metric_cls(tag, value, ms, step))
    for chunk in _chunks(new_params, 100):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(metrics, 1000):
        client.log_batch(run_id, metrics=chunk)
    client.log_batch(run_id, tags=[tag_cls(k, v) for k, v in tags.items()])
    if (exp / LEARNING_CURVE).is_file():
        client.log_artifact(run_id, str(exp / LEARNING_CURVE))
    if r.done:
        client.set_terminated(run_id, "FINISHED" if tags.get("status") == "ok" else "FAILED",
                              end_time=int(max(times) * 1000) if times else None)
    return created, len(metrics)
