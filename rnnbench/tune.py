"""Running the searches of :mod:`rnnbench.search`: one Optuna study per tuned (kind, size, seed), its trials
run through the executor as runs of the store, its summary (trials, the chosen one, edges, budget) kept in
``<experiment>/search/``. See :mod:`rnnbench.search` for what a search is.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from . import models
from .config import Config, SearchConfig
from .fileio import atomic_write_json
from .plan import PlannedRun
from .pruning import make_pruner
from .runs import Run, RunResult, experiment_dir
from .search import FOLDER, Dim, dims, overrides, space_key, spec, summary_path, tuned_seeds, tuned_sizes


def _sampler(s: SearchConfig, seed: int):
    import optuna

    return optuna.samplers.TPESampler(seed=seed) if s.sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed)


def storage_of(cfg: Config, kind: str, size: int):
    """The study's storage: ``search.<kind>.storage``, else a journal file in the experiment folder."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = spec(cfg, kind)
    if s.storage:
        return s.storage
    folder = experiment_dir(cfg) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(folder / f"{kind}-n{size}-{space_key(cfg, kind, size)}.journal")))


def study_name(kind: str, size: int, seed: int) -> str:
    return f"{kind}-n{size}-s{seed}"


def open_study(cell: Cell):
    import optuna

    return optuna.create_study(storage=storage_of(cell.cfg, cell.kind, cell.size),
                               study_name=study_name(cell.kind, cell.size, cell.seed),
                               sampler=_sampler(cell.spec, cell.seed), pruner=make_pruner(cell.spec.pruner), load_if_exists=True,
                               direction="maximize" if cell.higher else "minimize")


@dataclass
class Cell:
    """One tuned (kind, size, seed): its search and its settings."""

    cfg: Config
    kind: str
    size: int
    seed: int
    higher: bool = True  # whether a higher validation score (the selection metric's) is better

    @property
    def spec(self) -> SearchConfig:
        return spec(self.cfg, self.kind)

    def budget(self) -> int:
        """Trials of the study: every point of a grid (those the kind searches in one run counted as one)."""
        d = [x for x in dims(self.cfg, self.kind) if not self._native(x)]
        if self.spec.sampler == "grid":
            return math.prod(len(x.grid) for x in d) if d else 1
        return self.spec.trials

    def _native(self, dim: Dim) -> bool:
        section, _, option = dim.key.partition(".")
        return self.spec.sampler == "grid" and section == self.kind and option in models.get(self.kind).grid_options

    def native_params(self) -> dict:
        """The options the kind searches itself in one run, as lists: a grid's values for them, else its
        section's own lists (the linear model's min_df × C)."""
        section = getattr(self.cfg, self.kind)
        own = {f"{self.kind}.{o}": list(getattr(section, o)) for o in models.get(self.kind).grid_options
               if isinstance(getattr(section, o, None), list) and f"{self.kind}.{o}" not in self.spec.space}
        return {**own, **{d.key: list(d.grid) for d in dims(self.cfg, self.kind) if self._native(d)}}

    def distributions(self) -> dict:
        return {d.key: d.distribution() for d in dims(self.cfg, self.kind) if not self._native(d)}

    def settings(self, params: dict, grid: dict | None = None) -> dict:
        """A trial's config overrides: its settings, and the kind's own grid as lists (``grid``: a grid
        grown past an edge)."""
        return overrides(self.kind, {**self.native_params(), **(grid or {}), **params})

    def planned(self, params: dict, grid: dict | None = None) -> PlannedRun:
        cfg = self.cfg.replace(**self.settings(params, grid))
        return PlannedRun(cfg, self.kind, self.size, self.seed, label=dict(params), n=self.size)


def run_search(cell: Cell, executor_spec, force: bool = False, progress: bool = True) -> dict:
    """Run (or finish) one cell's search through the executor and write its summary; the summary."""
    import optuna

    from .executor import execute, jobs_for

    study = open_study(cell)
    distributions = cell.distributions()
    if cell.spec.sampler == "grid" and not study.trials:  # every point, once: enqueued on the study's creation
        for values in itertools.product(*(d.grid for d in dims(cell.cfg, cell.kind) if not cell._native(d))):
            study.enqueue_trial(dict(zip(distributions, values)))
    batch = max(1, executor_spec.workers or 1)
    states = optuna.trial.TrialState
    while True:
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == states.RUNNING]  # a dead driver's: run again, same settings
        started = sum(t.state != states.WAITING for t in trials)
        if not running:
            if started >= cell.budget():
                break
            for _ in range(min(batch, cell.budget() - started)):
                study.sampler = _sampler(cell.spec, cell.seed * 100_003 + started)  # seeded by the trial's number
                running.append(study.ask(distributions))
                started += 1
        trial_info = [{"storage": _storage_url(cell), "study": study_name(cell.kind, cell.size, cell.seed),
                       "trial_id": t._trial_id, "number": t.number, "pruner": cell.spec.pruner} for t in running]
        planned = [cell.planned(t.params) for t in running]
        for t, p in zip(running, planned):  # status reads each trial's run (its validation curve) by this
            study._storage.set_trial_user_attr(t._trial_id, "run", p.run.path.name)
        jobs = jobs_for(planned, force)
        for job, info in zip(jobs, trial_info):
            job.trial = info
            job.label += f" [trial {info['number']}]"
        outcomes = execute(jobs, executor_spec, device=cell.cfg.compute.device, progress=progress,
                           desc=f"search {cell.kind} n{cell.size} s{cell.seed}")
        for t, out in zip(running, outcomes):
            _tell(study, t.number, out.result)
    return write_summary(cell, study)


def _storage_url(cell: Cell) -> str:
    """How a worker reaches the study: the database URL, or the journal file's path."""
    s = cell.spec
    if s.storage:
        return s.storage
    return str(experiment_dir(cell.cfg) / FOLDER / f"{cell.kind}-n{cell.size}-{space_key(cell.cfg, cell.kind, cell.size)}.journal")


def _tell(study, number: int, result: RunResult) -> None:
    import optuna

    states = optuna.trial.TrialState
    if study.get_trials(deepcopy=False)[number].state != states.RUNNING:
        return  # told already (another driver ran the same trial)
    if result.status == "pruned":
        study.tell(number, state=states.PRUNED)
    elif result.ok and result.selection in result.validation:
        study.tell(number, result.validation[result.selection])
    else:
        study.tell(number, state=states.FAIL)


def write_summary(cell: Cell, study) -> dict:
    """The search's record (``search/<kind>-n<size>-s<seed>.json``): every trial (settings, state, value,
    its run, the epochs it trained, its seconds), the chosen one, the edges it sits at, the budget."""
    import optuna

    states = optuna.trial.TrialState
    trials = []
    for t in study.get_trials(deepcopy=False):
        if t.state == states.WAITING:
            continue
        run = cell.planned(t.params).run
        result = run.result() if run.done else None
        trials.append({"number": t.number, "params": t.params, "settings": cell.settings(t.params),
                       "state": t.state.name.lower(), "value": t.value,
                       "run": run.path.name, "epochs": _epochs(result), "seconds": _seconds(result),
                       "points": _points(result)})
    grids = {d.key: list(d.grid) for d in dims(cell.cfg, cell.kind) if d.values is not None or d.step is not None}
    summary = {"kind": cell.kind, "size": cell.size, "seed": cell.seed, "space_key": space_key(cell.cfg, cell.kind, cell.size),
               "sampler": cell.spec.sampler, "pruner": cell.spec.pruner, "space": cell.spec.space,
               "higher": cell.higher, "grids": grids, "trials": trials, "extensions": [],
               "chosen": _best(cell.higher, trials)}
    if summary["chosen"] is not None:
        _extend(cell, summary)
    summary["edges"] = edges(cell, summary)
    summary["budget"] = budget(summary)
    atomic_write_json(summary_path(cell.cfg, cell.kind, cell.size, cell.seed), summary)
    return summary


def _best(higher: bool, trials: list[dict]) -> dict | None:
    """The best finished trial (ties: the earliest)."""
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None and math.isfinite(t["value"])]
    if not done:
        return None
    best = max(done, key=lambda t: (t["value"] if higher else -t["value"], -done.index(t)))
    return {k: best[k] for k in ("number", "params", "settings", "value", "run")}


def _epochs(result: RunResult | None) -> float | None:
    """The epochs a trial's run trained (a pruned one: those before it was stopped)."""
    return None if result is None else result.training.get("epochs_run")


def _seconds(result: RunResult | None) -> float:
    return float(result.timings.get("fit", 0.0)) if result is not None else 0.0


def _points(result: RunResult | None) -> int:
    """The configurations one trial's run tried: its own grid's points (the linear model's), else 1."""
    return int(result.training.get("grid_points", 1)) if result is not None else 1


# ------------------------------------------------------------------------------------ edges


def _next_value(values: list, chosen, upward: bool):
    """One step past the edge of a grid's numeric values: the ratio of the two nearest (all positive), else
    their difference; integers stay integers (and a count stays at least 1)."""
    nums = sorted(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
    if len(nums) < 2 or chosen not in nums:
        return None
    a, b = (nums[-2], nums[-1]) if upward else (nums[1], nums[0])
    nxt = b * (b / a) if a > 0 and b > 0 else b + (b - a)
    if all(isinstance(v, int) for v in nums):
        nxt = int(round(nxt))
        if nxt == b:
            nxt = b + (1 if upward else -1)
        if nxt < 1 <= min(nums):
            return None
    elif 0 <= min(nums) <= max(nums) <= 1 and not 0 < nxt < 1:  # a rate or a probability stays within (0, 1)
        return None
    return nxt


def edges(cell: Cell, summary: dict) -> list[str]:
    """The searched options whose chosen value is the smallest or largest tried: "rnn.learning_rate = 0.003 is
    the largest tried"; the kind's own grid too (lists), from the chosen run's choice."""
    chosen = summary["chosen"]
    if chosen is None:
        return []
    tried = {**cell.native_params(), **summary["grids"], **chosen.get("grid", {})}
    values = {**chosen["params"], **_native_choice(cell, chosen)}
    out = []
    for key, value in values.items():
        nums = [v for v in tried.get(key, []) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(nums) < 2 or value not in nums:
            continue
        if value == max(nums):
            out.append(f"{key} = {value:g} is the largest tried")
        elif value == min(nums):
            out.append(f"{key} = {value:g} is the smallest tried")
    return out


def _native_choice(cell: Cell, chosen: dict) -> dict:
    """What the kind chose within its own grid in the chosen run (``chosen_``: ``linear.C`` = 16)."""
    native = cell.native_params()
    if not native:
        return {}
    run = Run(experiment_dir(cell.cfg) / "runs" / chosen["run"])
    if not run.done:
        return {}
    picked = run.result().chosen
    return {key: picked[key.partition(".")[2]] for key in native if key.partition(".")[2] in picked}


def _extend(cell: Cell, summary: dict) -> None:
    """extend_edges: where a grid's chosen value is an edge, train one step past it (the other settings at
    their chosen values), and again while the new value wins, at most max_extensions steps. The extensions
    are runs like the trials; the best of all is the chosen one."""
    s = cell.spec
    if not s.extend_edges or s.sampler != "grid":
        return
    from .executor import ExecutorSpec, execute, jobs_for

    grids = summary["grids"]
    native = cell.native_params()
    for key, values in native.items():
        grids.setdefault(key, list(values))
    for _ in range(s.max_extensions):
        chosen = summary["chosen"]
        current = {**chosen["params"], **_native_choice(cell, chosen)}
        step = next(((key, nxt) for key, values in grids.items() if key in current
                     for nxt in [_edge_step(values, current[key])] if nxt is not None), None)
        if step is None:
            return
        key, nxt = step
        grids[key] = sorted([*grids[key], nxt])
        params = dict(chosen["params"]) if key in native else {**chosen["params"], key: nxt}
        grid = {key: grids[key]} if key in native else chosen.get("grid")  # the kind's own grid grows: one run
        planned = cell.planned(params, grid)
        (out,) = execute(jobs_for([planned]), ExecutorSpec(), device=cell.cfg.compute.device, progress=False)
        r = out.result
        value = r.validation.get(r.selection) if r.ok else None
        ext = {"number": f"e{len(summary['extensions']) + 1}", "params": params, "settings": cell.settings(params, grid),
               "state": "complete" if r.ok else "fail", "value": value, "run": out.run.path.name if out.run else "",
               "epochs": _epochs(r), "seconds": _seconds(r), "extended": {key: nxt}, "points": _points(r)}
        summary["extensions"].append(ext)
        if value is None or not (value > chosen["value"] if cell.higher else value < chosen["value"]):
            return
        summary["chosen"] = {"number": ext["number"], "params": params, "settings": ext["settings"], "value": value,
                             "run": ext["run"], **({"grid": grid} if grid else {})}


def _edge_step(values: list, chosen) -> Any:
    """The value one step past ``chosen`` where it is the smallest or largest of ``values``; else None."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) < 2 or chosen not in (min(nums), max(nums)):
        return None
    return _next_value(values, chosen, chosen == max(nums))


def budget(summary: dict) -> dict:
    """What a search spent: trials (grid points of a kind's own grid counted), pruned, failed, extension
    steps, compute seconds and epochs."""
    rows = summary["trials"] + summary["extensions"]
    return {"trials": sum(t.get("points", 1) for t in rows), "runs": len(rows),
            "pruned": sum(t["state"] == "pruned" for t in rows), "failed": sum(t["state"] == "fail" for t in rows),
            "extensions": len(summary["extensions"]), "seconds": round(sum(t["seconds"] or 0 for t in rows), 1),
            "epochs": sum(t["epochs"] or 0 for t in rows)}


def cells(cfg: Config, kinds: list[str], higher: bool = True) -> list[Cell]:
    """The searches a compare runs: each tuned (kind, size, seed), by size, then seed, then kind."""
    return [Cell(cfg, k, n, s, higher) for n in cfg.data.sizes for s in cfg.experiment.seeds for k in kinds
            if spec(cfg, k) is not None and n in tuned_sizes(cfg, k) and s in tuned_seeds(cfg, k)]
