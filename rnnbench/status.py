"""``rnnbench status DIR``: what each run of an experiment is doing, read from the run store alone.

A run is *done* (``DONE``, a result), *failed* (``DONE``, a failed result and its reason), *damaged*
(``DONE`` beside a result that does not read back: the next compare or sweep redoes it), *running* (a
live lease: host, pid, GPUs, and from its ``metrics.jsonl`` the epoch, step, last validation score,
tokens/s and an ETA), *stale* (a lease whose heartbeat stopped: the next compare or sweep takes it over)
or *to do* (a folder with no lease: interrupted, resumes at its checkpoint's step; or, given a config, a run
not started yet). Nothing here writes; it works on any node that sees the output folder.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import lease, models
from .errors import RnnbenchError
from .outputs import duration
from .runs import Run, name_parts, run_folders

STATES = ("done", "failed", "running", "stale", "to do")  # counted on the last line, always
DAMAGED = "damaged"  # counted after them where there is one


@dataclass
class RunStatus:
    name: str
    path: Path
    state: str
    where: str = ""  # host and pid of the claim, GPUs
    progress: str = ""  # epoch, step, validation, tokens/s, ETA; or the checkpoint a rerun resumes from
    result: str = ""  # the test score, or why it failed
    variant: str = ""  # beside runs of the same model, size and seed: the settings that tell it apart
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- one run


def _planned_epochs(run: Run) -> int | None:
    """The training passes a run's model kind plans at most (its ``epochs_option``), from its config."""
    model = name_parts(run.path.name.lstrip("."))[0]  # a forced rerun's staging folder: .<name>.force
    option = models.get(model).epochs_option if model in models.names() else None
    if option is None:
        return None
    try:
        return int(run.settings()[model][option])
    except (KeyError, TypeError, ValueError):
        return None


def progress_of(run_path: Path) -> dict:
    """Where a run stands, from the tail of its metrics log: epoch (fractional), step, last validation
    metric, tokens/s, wall seconds, planned epochs, when the current epoch ends (a validation score, for
    a long run the next news, unless ``rnn.eval_every`` brings one sooner) and an ETA (an upper bound:
    early stopping may end it sooner)."""
    run = Run(run_path)
    rows = run.metrics_tail()
    out: dict = {}
    for r in rows:
        ev = r.get("event")
        if ev in ("train", "eval", "epoch") and isinstance(r.get("step"), int):
            out["step"] = r["step"]
        if ev in ("train", "eval") and "epoch" in r:
            out["epoch"] = float(r["epoch"])
        if ev == "epoch" and "epoch" in r:
            out["epoch"] = float(r["epoch"])
        if ev == "train":
            out["tokens_per_s"] = r.get("tokens_per_s")
        if "wall_seconds" in r:
            out["wall_seconds"] = r["wall_seconds"]
        if ev == "eval" and "val_metric" in r:
            out["val_metric"], out["metric"] = r["val_metric"], r.get("metric")
        if ev == "grid_start":
            out["grid_points"], out["grid_total"] = 0, r.get("points")
        if ev == "grid_point":
            out["grid_points"] = out.get("grid_points", 0) + 1
        if ev == "resumed":
            out["resumed_at_epoch"] = r.get("epoch")
    epochs = _planned_epochs(run)
    if epochs:
        out["epochs"] = epochs
    e, wall = out.get("epoch"), out.get("wall_seconds")
    if epochs and e and wall and e > 0:
        out["eta_seconds"] = max(0.0, wall / e * (epochs - e))
        if e < epochs and not e.is_integer():
            out["epoch_ends_seconds"] = wall / e * (math.ceil(e) - e)
    return out


def progress_text(p: dict) -> str:
    parts = []
    if "epoch" in p:
        parts.append(f"epoch {p['epoch']:.2f}" + (f"/{p['epochs']}" if p.get("epochs") else ""))
    if "step" in p:
        parts.append(f"step {p['step']:,}")
    if p.get("grid_total"):
        parts.append(f"grid {p.get('grid_points', 0)}/{p['grid_total']}")
    if p.get("val_metric") is not None:
        parts.append(f"val {p['metric'] + ' ' if p.get('metric') else ''}{p['val_metric']:.4f}")
    if p.get("tokens_per_s"):
        parts.append(f"{p['tokens_per_s']:,.0f} tok/s")
    if p.get("epoch_ends_seconds") is not None:
        parts.append(f"epoch {math.ceil(p['epoch'])} ends in ~{duration(p['epoch_ends_seconds'])}")
    if p.get("eta_seconds") is not None:
        parts.append(f"ETA <= {duration(p['eta_seconds'])}")
    return ", ".join(parts) or "starting"


def _result_text(run_path: Path) -> tuple[str, str]:
    """(state, text) of a finished run: done with its test score, or failed with its reason."""
    try:
        r = Run(run_path).result()
    except RnnbenchError as e:
        return DAMAGED, f"{e}: redone by the next compare or sweep"
    if not r.ok:
        return "failed", r.reason or "unknown reason"
    metric = next((k for k in ("accuracy", "rmse") if k in r.metrics), next(iter(r.metrics), None))
    return "done", f"test {metric} {r.metrics[metric]:.4f}" if metric else "done"


def run_status(run_path: Path, now: float | None = None, timeout: float | None = None) -> RunStatus:
    """``timeout``: the lease timeout claims are judged by (default: the run's own config's)."""
    run_path = Path(run_path)
    now = time.time() if now is None else now
    st = RunStatus(run_path.name, run_path, "to do")
    holder = lease.holder_of(run_path, timeout if timeout is not None else _lease_timeout(run_path))
    if Run(run_path).marked_done:
        st.state, st.result = _result_text(run_path)
        rerun = Run(run_path).staging
        if holder is not None and not holder.stale(now) and rerun.is_dir():  # `--force`: the result stands till then
            st.state, st.where = "running", _where(holder)
            st.progress = f"rerun (--force): {progress_text(progress_of(rerun))}"
        return st
    if holder is not None:
        st.where = _where(holder)
        st.info["holder"] = holder
        if holder.stale(now):
            st.state = "stale"
            st.progress = f"claim abandoned: heartbeat {lease.ago(now - holder.heartbeat)} ago"
            return st
        st.state = "running"
        if not holder.proven:
            left = holder.limit() - (now - holder.heartbeat)
            st.progress = f"unreadable lease file: counts as held {lease.ago(left)} more, then taken over"
            return st
        p = progress_of(run_path)
        st.info["progress"] = p
        st.progress = progress_text(p)
        return st
    step = Run(run_path).checkpoint_step if run_path.is_dir() else None
    if step is not None:
        st.progress = f"resumes at {_step_text(run_path, step)}"
    elif run_path.is_dir():
        st.progress = "interrupted: starts again"
    return st


def _lease_timeout(run_path: Path) -> float | None:
    """The ``compute.lease_timeout`` the run was begun with (None: not known)."""
    value = (Run(run_path).settings().get("compute") or {}).get("lease_timeout") if run_path.is_dir() else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _where(holder: lease.Holder) -> str:
    if not holder.proven:
        return "? (unreadable lease file)"
    gpus = holder.cuda_visible_devices
    return f"{holder.host} pid {holder.pid}" + (f", GPU {gpus}" if gpus else "")


def _step_text(run_path: Path, step: int) -> str:
    """"step 3,036 (epoch 0.32/6)": a step, with its epoch where the metrics log gives the steps an epoch."""
    per_step = next((r["epoch"] / r["step"] for r in reversed(Run(run_path).metrics_tail())
                     if r.get("event") == "train" and type(r.get("step")) is int and r["step"] > 0
                     and type(r.get("epoch")) in (int, float)), None)
    if per_step is None:
        return f"step {step:,}"
    epochs = _planned_epochs(Run(run_path))
    return f"step {step:,} (epoch {step * per_step:.2f}" + (f"/{epochs})" if epochs else ")")


def progress_line(run_path: Path) -> str:
    """One line on a running run, for the driver's terminal."""
    return progress_text(progress_of(run_path))


# ---------------------------------------------------------------------------------------- an experiment


def collect(target: Path, planned: list[Path] | None = None, timeout: float | None = None) -> list[RunStatus]:
    """The status of every run found in ``target``, and of ``planned`` runs (from a config) not found;
    ``timeout``: the config's lease timeout (default: each run's)."""
    now = time.time()
    paths = run_folders(target) if planned is None else planned
    states = [run_status(p, now, timeout) for p in paths]
    _name_variants(states)
    return states


def run_settings(run_path: Path, model: str) -> dict:
    """A run's result-determining settings from its config.yaml, flat (``data.max_len``: 512,
    ``data.synthetic.noise``: 0.1), by the rule of its run key (:func:`~rnnbench.runs.hashed_settings`),
    paths left out (the same data may lie elsewhere on another machine) and ``data.quoting`` as written
    (the key resolves an absent one from the files). Status and ``export tensorboard`` name runs by it."""
    from .runs import hashed_settings

    def flat(d: dict, prefix: str) -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
        return out

    skip = {"data.path", "data.test_path", "data.sizes"}
    if model not in models.names():
        return {}
    settings = flat(hashed_settings(Run(run_path).settings(), model), "")
    return {k: v for k, v in settings.items() if k not in skip}


def varying_keys(settings) -> list[str]:
    """The keys whose values differ among several runs' :func:`run_settings`; a run whose config.yaml
    could not be read (no settings) makes none look varying."""
    known = [f for f in settings if f]
    return sorted(k for k in set().union(*known) if len({repr(f.get(k)) for f in known}) > 1)


def _name_variants(states: list[RunStatus], shown: int = 3) -> None:
    """Runs of one model, size and seed with different settings (a sweep's, or a config changed since):
    each gets the settings in which they differ."""
    groups: dict[tuple, list[RunStatus]] = {}
    for st in states:
        groups.setdefault(name_parts(st.path.name), []).append(st)
    for (model, _, _), group in groups.items():
        if len(group) < 2:
            continue
        settings = {st.name: run_settings(st.path, model) for st in group}
        keys = varying_keys(settings.values())
        for st in group:
            if settings[st.name] and keys:
                parts = [f"{k}={settings[st.name].get(k)}" for k in keys[:shown]]
                st.variant = ", ".join(parts + ([f"+{len(keys) - shown} more"] if len(keys) > shown else []))


def planned_runs(cfg) -> list[Path]:
    """The run folders a config's compare (or sweep) makes, in order."""
    from .plan import plan_of

    return [p.run.path for p in plan_of(cfg)]


def search_lines(target: Path, trials: bool = False) -> list[str]:
    """Each search of an experiment folder (``search/*.journal``): its trials done, running, pruned and
    failed, and the best so far with its settings; with ``trials``, every trial's settings, state and
    validation curve (the scores its run logged)."""
    from .runs import RUNS
    from .search import FOLDER

    journals = sorted((Path(target) / FOLDER).glob("*.journal"))
    if not journals:
        return []
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lines = ["", "searches:"]
    for journal in journals:
        storage = JournalStorage(JournalFileBackend(str(journal)))
        for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            ts = study.get_trials(deepcopy=False)
            count = {k: sum(t.state.name.lower() == k for t in ts) for k in ("complete", "running", "pruned", "fail")}
            done = [t for t in ts if t.state.name == "COMPLETE" and t.value is not None]
            best = (max if study.direction.name == "MAXIMIZE" else min)(done, key=lambda t: t.value) if done else None
            head = (f"  {summary.study_name}: {count['complete']} done, {count['running']} running, {count['pruned']} "
                    f"pruned, {count['fail']} failed")
            if best is not None:
                head += f"; best so far trial {best.number} (val {best.value:.4f}: {_params(best.params)})"
            lines.append(head)
            for t in ts if trials else []:
                curve = [r["val_metric"] for r in Run(Path(target) / RUNS / t.user_attrs.get("run", "?")).metrics()
                         if r.get("event") == "eval" and "val_metric" in r] if t.user_attrs.get("run") else []
                lines.append(f"    trial {t.number} {t.state.name.lower()}: {_params(t.params)}; validation "
                             + (" ".join(f"{v:.4f}" for v in curve) or "-"))
    return lines


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "its own grid"


def counts(states: list[RunStatus]) -> dict[str, int]:
    """Runs per state, in :data:`STATES`'s order; damaged ones after them where there is one."""
    out = {k: sum(s.state == k for s in states) for k in STATES}
    if any(s.state == DAMAGED for s in states):
        out[DAMAGED] = sum(s.state == DAMAGED for s in states)
    return out


def render(states: list[RunStatus]) -> list[str]:
    header = ["run", "state", "where", "progress", "result"]
    rows = [[s.name + (f" ({s.variant})" if s.variant else ""), s.state, s.where or "-", s.progress or "-",
             s.result or "-"] for s in states]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"{len(states)} runs: " + ", ".join(f"{n} {k}" for k, n in counts(states).items()))
    return lines


# ---------------------------------------------------------------------------------------- as JSON

# every run's "progress" has these keys (null where the run has no value): status --json's stable shape
PROGRESS_KEYS = ("epoch", "epochs", "step", "val_metric", "tokens_per_s", "wall_seconds", "epoch_ends_seconds",
                 "eta_seconds", "grid_points", "grid_total", "resumed_at_epoch")


def _number(v):
    """A JSON number: non-finite floats (NaN, inf: not JSON) become null."""
    return v if not isinstance(v, float) or math.isfinite(v) else None


def _result_json(st: RunStatus) -> dict | None:
    """A finished run's status, test metrics and failure reason; None for one not finished."""
    if st.state not in ("done", "failed"):
        return None
    try:
        r = Run(st.path).result()
    except RnnbenchError:
        return {"status": "failed", "metrics": {}, "reason": st.result}
    return {"status": r.status, "metrics": {k: _number(v) for k, v in r.metrics.items()}, "reason": r.reason or None}


def _run_json(st: RunStatus) -> dict:
    model, size, seed = name_parts(st.name)
    holder = st.info.get("holder")
    progress = st.info.get("progress", {})
    resumes = Run(st.path).checkpoint_step if st.state == "to do" and st.path.is_dir() else None
    return {
        "name": st.name, "path": str(st.path), "model": model, "size": int(size) if size.isdigit() else None,
        "seed": int(seed) if seed.isdigit() else None, "state": st.state, "variant": st.variant or None,
        "where": None if holder is None else {"host": holder.host, "pid": holder.pid,
                                              "gpus": holder.cuda_visible_devices,
                                              "heartbeat": _number(float(holder.heartbeat))},
        "progress": {k: _number(progress.get(k)) for k in PROGRESS_KEYS},
        "resumes_at_step": resumes,
        "result": _result_json(st),
        "text": {"where": st.where, "progress": st.progress, "result": st.result},  # the table's cells
    }


def as_json(states: list[RunStatus]) -> dict:
    """``rnnbench status --json``: one document for scripts and dashboards: ``runs`` (each with the same
    keys: name, path, model, size, seed, state, variant, where, progress, resumes_at_step, result, text)
    and ``counts`` per state."""
    return {"runs": [_run_json(s) for s in states], "counts": counts(states)}
