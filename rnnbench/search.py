"""A fair fight: every model kind tuned on validation the same way, its budget shown beside its score.

``search.<kind>`` (:class:`rnnbench.config.SearchConfig`) names the options to search and how. For each
tuned (kind, size, seed) an Optuna study (a journal file in ``<experiment>/search/``, or a database at
``storage``) proposes trials: a grid (every point, enqueued), random draws, or TPE; each trial is a run
in the store (its settings are config overrides, so it is content-addressed, leased and resumable like
any run), and the trial's value is the run's validation score on the selection metric
(:func:`rnnbench.metrics.selection_metric`). A pruner (successive halving, Hyperband) stops trials whose
validation curve lags, as the run reports it each evaluation; a pruned trial is recorded as pruned (the
epoch it reached, its last score). The best finished trial is the chosen one: its run is the kind's point
on the learning curve at that size and seed. ``at_sizes`` and ``seeds`` restrict the tuning; the other
sizes and seeds train the recipe of a tuned one (:func:`recipe`).

:mod:`rnnbench.tune` runs the searches; this module holds what planning needs of them (the space, the
recipes of finished searches). A killed search resumes: trials that finished are kept (runs and study), trials a dead driver left
running are run again with the same settings (their runs resume from their checkpoints), and each trial's
sampler is seeded by the trial's number, so the same history proposes the same next trial.

With ``extend_edges``, a grid whose chosen value is its smallest or largest tries one step past it (the
other settings at their chosen values), up to ``max_extensions`` steps. A kind that searches some of its
options itself in one run (``ModelKind.grid_options``: the linear model's ``min_df`` × ``C``) gets those
as lists: a grid over them is one run, its points counted as trials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import models
from .config import Config, SearchConfig, config_hash, number
from .errors import RnnbenchError
from .runs import Run, experiment_dir

FOLDER = "search"  # in the experiment folder: the studies' journals and each search's summary


# ------------------------------------------------------------------------------------ the space


@dataclass(frozen=True)
class Dim:
    """One searched option: its values, or a range."""

    key: str  # a dotted config key: "rnn.learning_rate", "data.max_len"
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    @property
    def grid(self) -> tuple:
        """The values a grid tries."""
        if self.values is not None:
            return self.values
        n = int(round((self.high - self.low) / self.step))
        return tuple(self.low + i * self.step for i in range(n + 1))

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.values is not None:
            return CategoricalDistribution(list(self.values))
        if all(isinstance(v, int) for v in (self.low, self.high)) and (self.step is None or float(self.step).is_integer()):
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)


def spec(cfg: Config, kind: str) -> SearchConfig | None:
    return cfg.search.get(kind)


def overrides(kind: str, params: dict) -> dict:
    """A trial's settings as config overrides: an option the kind searches itself (a grid list) as a list."""
    grid = models.get(kind).grid_options
    out = {}
    for key, value in params.items():
        section, _, option = key.partition(".")
        out[key] = list(value) if section == kind and option in grid and isinstance(value, (list, tuple)) else \
            [value] if section == kind and option in grid else value
    return out


def dims(cfg: Config, kind: str) -> list[Dim]:
    """The checked space of ``search.<kind>``: each mistake one error naming its key."""
    s, k = spec(cfg, kind), models.get(kind)
    where = f"search.{kind}"
    if not s.space and not k.grid_options:
        raise RnnbenchError(f"{where}.space is empty: name the options to search ({kind}.* keys)")
    allowed_data = ("data.max_len", "data.keep") if k.sequence else ()
    out = []
    for key, value in s.space.items():
        at = f"{where}.space.{key}"
        section, _, option = key.partition(".")
        if key not in allowed_data and not (section == kind and option in getattr(cfg, kind).__dataclass_fields__):
            also = f", or {' / '.join(allowed_data)}" if allowed_data else ""
            raise RnnbenchError(f"{at}: {kind} has no option {key!r} (search its {kind}.* options{also})")
        if isinstance(value, list):
            value = [number(v) for v in value]
            if not value:
                raise RnnbenchError(f"{at}: an empty list of values")
            if len(set(map(repr, value))) != len(value):
                raise RnnbenchError(f"{at}: a value is listed twice: {value}")
            dim = Dim(key, tuple(value))
        elif isinstance(value, dict):
            dim = _range(at, key, value)
        else:
            raise RnnbenchError(f"{at}: a list of values or a range {{low, high, log, step}}, got {value!r}")
        for v in (dim.values if dim.values is not None else (dim.low, dim.high)):
            try:
                cfg.replace(**overrides(kind, {key: v}))  # the value is one the option takes
            except RnnbenchError as e:
                raise RnnbenchError(f"{at}: {e}") from None
        if s.sampler == "grid" and dim.values is None and dim.step is None:
            raise RnnbenchError(f"{at}: a grid needs values (or a range with a step)")
        out.append(dim)
    if s.pruner != "none" and k.epochs_option is None:
        raise RnnbenchError(f"{where}.pruner: {kind} reports no validation curve to prune on (it does not train in "
                            "epochs): set pruner: none")
    missing = [n for n in s.at_sizes if n not in cfg.data.sizes]
    if missing:
        raise RnnbenchError(f"{where}.at_sizes: {missing[0]} is not one of data.sizes {cfg.data.sizes}")
    seeds = [x for x in (s.seeds or []) if x not in cfg.experiment.seeds]
    if seeds:
        raise RnnbenchError(f"{where}.seeds: {seeds[0]} is not one of experiment.seeds {cfg.experiment.seeds}")
    return out


def _range(at: str, key: str, value: dict) -> Dim:
    unknown = set(value) - {"low", "high", "log", "step"}
    if unknown or "low" not in value or "high" not in value:
        raise RnnbenchError(f"{at}: a range is {{low, high}} with optional log and step, got {value!r}")
    low, high, log, step = (number(value["low"]), number(value["high"]), bool(value.get("log", False)),
                            number(value.get("step")))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise RnnbenchError(f"{at}: low and high must be numbers, got {low!r} and {high!r}")
    if low > high:
        raise RnnbenchError(f"{at}: low {low} is above high {high}")
    if log and low <= 0:
        raise RnnbenchError(f"{at}: a log range needs low > 0, got {low}")
    if step is not None and (not isinstance(step, (int, float)) or step <= 0 or log):
        raise RnnbenchError(f"{at}: step must be a positive number (and not with log), got {step!r}")
    return Dim(key, None, low, high, log, step)


def check(cfg: Config) -> None:
    """Every search section of the config, checked before anything runs."""
    for kind in cfg.search:
        dims(cfg, kind)


# ------------------------------------------------------------------------------------ which cells are tuned


def tuned_sizes(cfg: Config, kind: str) -> list[int]:
    s = spec(cfg, kind)
    return list(s.at_sizes or cfg.data.sizes) if s else []


def tuned_seeds(cfg: Config, kind: str) -> list[int]:
    s = spec(cfg, kind)
    return list(s.seeds or cfg.experiment.seeds) if s else []


def source(cfg: Config, kind: str, size: int, seed: int) -> tuple[int, int]:
    """The tuned (size, seed) whose recipe the run of (size, seed) trains: itself where it is tuned; else a
    tuned seed at the nearest tuned size at or below ``size`` (above it, below the first tuned size)."""
    sizes, seeds = tuned_sizes(cfg, kind), tuned_seeds(cfg, kind)
    below = [n for n in sizes if n <= size]
    n = max(below) if below else min(sizes)
    return n, seed if seed in seeds else seeds[0]


def summary_path(cfg: Config, kind: str, size: int, seed: int) -> Path:
    return experiment_dir(cfg) / FOLDER / f"{kind}-n{size}-s{seed}.json"


def read_summary(cfg: Config, kind: str, size: int, seed: int) -> dict | None:
    """A finished search's summary, if it is there and of this search (its space unchanged)."""
    try:
        summary = json.loads(summary_path(cfg, kind, size, seed).read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("space_key") == space_key(cfg, kind, size) else None


def space_key(cfg: Config, kind: str, size: int) -> str:
    """What names a study: the kind's search settings and its size's settings (a changed space: a new study)."""
    s = spec(cfg, kind)
    base = Run.for_config(cfg, kind, size, 0).path.name.rsplit("-", 1)[-1]  # the untuned settings' key
    return config_hash({"space": s.space, "sampler": s.sampler, "trials": s.trials, "pruner": s.pruner,
                        "extend": [s.extend_edges, s.max_extensions], "base": base}, n=10)


def recipe(cfg: Config, kind: str, size: int, seed: int) -> tuple[dict, str] | None:
    """The config overrides the run of (kind, size, seed) trains with (its tuned source's chosen settings)
    and where they come from ("tuned", or "from 100,000 s0"); none for a kind with no search; None while
    its search is unfinished."""
    if spec(cfg, kind) is None:
        return {}, ""
    n, s = source(cfg, kind, size, seed)
    summary = read_summary(cfg, kind, n, s)
    if summary is None or summary.get("chosen") is None:
        return None
    return summary["chosen"]["settings"], "tuned" if (n, s) == (size, seed) else f"from {n:,} s{s}"


def native_edges(cfg: Config, kind: str, chosen: dict) -> list[str]:
    """Where a run's choice within its own grid (``chosen``: ``{"min_df": 2, "C": 256}``) is the grid's edge."""
    out = []
    section = getattr(cfg, kind)
    for option in models.get(kind).grid_options:
        values = getattr(section, option, None)
        if option not in chosen or not isinstance(values, list) or len(values) < 2:
            continue
        if chosen[option] == max(values):
            out.append(f"{kind}.{option} = {chosen[option]:g} is the largest tried")
        elif chosen[option] == min(values):
            out.append(f"{kind}.{option} = {chosen[option]:g} is the smallest tried")
    return out


def budget_at(cfg: Config, kind: str, size: int, seeds: list[int]) -> dict:
    """What selecting ``kind``'s model at ``size`` cost, for the tables: configurations tried per seed
    (trials; None without a search: the runs say), pruned trials, how the size got its recipe ("tuned", "from
    100,000", or "" without a search), and the options chosen at an edge of what was tried."""
    s = spec(cfg, kind)
    if s is None:
        return {"tuned": "", "trials": None, "pruned": 0, "seconds": None, "edges": []}
    if size not in tuned_sizes(cfg, kind):
        n, _ = source(cfg, kind, size, tuned_seeds(cfg, kind)[0])
        return {"tuned": f"from {n:,}", "trials": 1, "pruned": 0, "seconds": None, "edges": []}
    summaries = [x for x in (read_summary(cfg, kind, size, seed) for seed in tuned_seeds(cfg, kind) if seed in seeds) if x]
    if not summaries:
        return {"tuned": "not yet", "trials": 0, "pruned": 0, "seconds": None, "edges": []}
    budgets = [x["budget"] for x in summaries]
    edges = sorted({e for x in summaries for e in x.get("edges", [])})
    return {"tuned": "tuned" + (f" (seed{'s' if len(summaries) > 1 else ''} "
                                f"{', '.join(str(x['seed']) for x in summaries)})" if len(seeds) > len(summaries) else ""),
            "trials": round(sum(b["trials"] for b in budgets) / len(budgets), 1),
            "pruned": sum(b["pruned"] for b in budgets), "seconds": sum(b["seconds"] for b in budgets),
            "edges": edges, "extensions": sum(b["extensions"] for b in budgets)}
