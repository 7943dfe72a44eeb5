"""Which runs an experiment is made of: the one planner behind ``compare``, ``sweep``, ``status`` and the
executor.

A compare is every model kind of ``experiment.models`` × every size of ``data.sizes`` × every seed, each
run with its size's settings (``at_size``); a sweep is its ``sweep`` section expanded (``grid`` × ``zip`` ×
seeds) for one model kind at one size. Each planned run knows its config, its model kind, its size and
seed, the swept values that tell it apart, and so its folder in the run store (:class:`rnnbench.runs.Run`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from . import models
from .config import Config, SweepConfig, config_hash
from .errors import RnnbenchError
from .experiment import default_size, load_corpus, subsets_for
from .runs import Run


@dataclass
class PlannedRun:
    cfg: Config
    model: str
    size: int | None  # the size asked for; None: all the training data (a sweep's)
    seed: int
    label: dict[str, Any] = field(default_factory=dict)  # a sweep's point: swept key -> value
    n: int | None = None  # the run's training size, as its folder names it (None: not resolved yet)

    @property
    def run(self) -> Run:
        size = self.n if self.n is not None else self.size
        if size is None:
            raise RnnbenchError("a run over all the data: its size is not resolved (plan.resolve_sizes)")
        return Run.for_config(self.cfg, self.model, size, self.seed)

    def point(self) -> str:
        """The swept values that tell this run apart: ``rnn.cell=gru, label=plain``."""
        return ", ".join(f"{k}={value_text(v)}" for k, v in self.label.items())

    def describe(self) -> str:
        """What the run is, for the terminal: ``rnn size 200 seed 0 [rnn.cell=gru]``."""
        size = self.n if self.n is not None else self.size
        return f"{self.model} size {size if size is not None else 'all'} seed {self.seed}" + (
            f" [{self.point()}]" if self.label else "")


def value_text(v: Any) -> str:
    return "null" if v is None else str(v)


# ------------------------------------------------------------------------------------ compare


def models_to_run(cfg: Config) -> list[str]:
    """``experiment.models`` in the registry's order (the config already checked each one)."""
    return [m for m in models.names() if m in cfg.experiment.models]


def check_compare_config(cfg: Config) -> None:
    """The checks that need no data: fail before loading a corpus."""
    sizes, seeds = cfg.data.sizes, cfg.experiment.seeds
    if not seeds:
        raise RnnbenchError("experiment.seeds is empty: compare needs at least one seed")
    if not sizes:
        raise RnnbenchError("data.sizes is empty: compare needs the training sizes to run")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise RnnbenchError(f"data.sizes must be strictly increasing, got {sizes}")
    if len(set(seeds)) != len(seeds):
        raise RnnbenchError(f"experiment.seeds lists a seed twice: {seeds}")


def compare_plan(cfg: Config, kinds: list[str] | None = None) -> list[PlannedRun]:
    """Every (size, seed, model kind) run of a compare, by size, then seed, then kind, each with its settings:
    a searched kind's tuned recipe (:func:`rnnbench.search.recipe`; a cell whose search has not finished
    is left out until it has), else its section's. ``kinds``: these model kinds (default: ``experiment.models``)."""
    from . import search

    check_compare_config(cfg)
    search.check(cfg)
    kinds = models_to_run(cfg) if kinds is None else [m for m in models.names() if m in kinds]
    out = []
    for n in cfg.data.sizes:
        for s in cfg.experiment.seeds:
            for m in kinds:
                found = search.recipe(cfg, m, n, s)
                if found is None:
                    continue
                params, origin = found
                run_cfg = cfg.replace(**params) if params else cfg
                out.append(PlannedRun(run_cfg, m, n, s, label={"recipe": origin} if origin else {}, n=n))
    return out


# ------------------------------------------------------------------------------------ sweep


def sweep_section(cfg: Config) -> SweepConfig:
    if cfg.sweep is None:
        raise RnnbenchError("this config has no sweep section")
    return cfg.sweep


def check_sweep(cfg: Config) -> SweepConfig:
    """What config.py cannot check field by field: the swept keys and values, and how the parts agree."""
    sw = sweep_section(cfg)
    for part in ("grid", "zip"):
        for key, values in getattr(sw, part).items():
            if not isinstance(values, list) or not values:
                raise RnnbenchError(f"sweep.{part}.{key}: expected a non-empty list of values")
            for v in values:
                cfg.replace(**{key: v})  # validates the key and the value; errors name the key
    zip_lengths = {len(v) for v in sw.zip.values()}
    if len(zip_lengths) > 1:
        raise RnnbenchError(f"sweep.zip: lists must have the same length, got lengths {sorted(zip_lengths)}")
    if sw.labels and (not zip_lengths or [len(sw.labels)] != sorted(zip_lengths)):
        raise RnnbenchError("sweep.labels: needs one name per sweep.zip row")
    swept = set(sw.grid) | set(sw.zip) | ({"label"} if sw.labels else set())
    for i, p in enumerate(cfg.plot):
        if p.by is not None and p.by not in swept:
            raise RnnbenchError(f"plot[{i}].by: '{p.by}' is not a swept key ({', '.join(sorted(swept)) or 'none'})")
    return sw


def sweep_plan(cfg: Config) -> list[PlannedRun]:
    """The sweep's runs: every ``grid`` point × every ``zip`` row × every seed (sizes not resolved)."""
    sw = check_sweep(cfg)
    grid_points = [dict(zip(sw.grid, values)) for values in itertools.product(*sw.grid.values())] if sw.grid else [{}]
    zip_points = [dict(zip(sw.zip, values)) for values in zip(*sw.zip.values())] if sw.zip else [{}]
    if sw.labels:  # a readable name stands in for the zip row in tables and plots
        zip_points = [{"label": name, **z} for name, z in zip(sw.labels, zip_points)]
    runs, seen = [], {}
    for g in grid_points:
        for z in zip_points:
            label = {**g, **z}
            settings = {k: v for k, v in label.items() if k != "label"}
            run_cfg = cfg.replace(**settings) if settings else cfg
            same = seen.setdefault(config_hash(run_cfg.to_dict()), label)
            if same is not label:  # one run twice: its rows would count twice in every mean
                raise RnnbenchError(f"sweep: the points {_point(same)} and {_point(label)} are the same settings "
                                    "(a value listed twice?): each point once")
            size = sw.size if sw.size is not None else default_size(run_cfg)
            for seed in sw.seeds or cfg.experiment.seeds:
                runs.append(PlannedRun(run_cfg, sw.model, size, seed, label, n=size))
    return runs


def _point(label: dict) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in label.items()) + "}"


def resolve_sizes(runs: list[PlannedRun]) -> list[PlannedRun]:
    """Each run's training size as its folder names it (``n``): the size asked for, or, where a run asks
    for all the data, the training pool's size (the corpus is loaded to know it)."""
    known: dict[tuple, int] = {}
    for r in runs:
        if r.n is not None:
            continue
        if r.size is not None:
            r.n = r.size
            continue
        key = (config_hash(r.cfg.to_dict()["data"]), r.seed)
        if key not in known:
            known[key] = len(subsets_for(r.cfg, load_corpus(r.cfg), None, r.seed).train)
        r.n = known[key]
    return runs


def plan_of(cfg: Config) -> list[PlannedRun]:
    """The runs a config's command makes (its sweep, else its compare), sizes resolved."""
    if cfg.sweep is not None:
        if cfg.sweep.kind != "runs":
            raise RnnbenchError(f"sweep.kind {cfg.sweep.kind}: one in-process experiment, no runs to list")
        return resolve_sizes(sweep_plan(cfg))
    return compare_plan(cfg)
