"""One run end to end: load data, carve subsets, fit a model, score test once, write the run."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass

from .config import Config, config_hash
from .data import Corpus, Subsets, load, make_subsets
from .data.registry import loader_options
from .errors import Pruned, RnnbenchError
from .metrics import decide, evaluate, group_metrics, reference_scores, selection_metric, tune_decision
from .models.base import Model, model_class
from .pruning import pruning_callback
from .runs import SEQUENCE_DATA_KEYS, Run, RunResult

log = logging.getLogger(__name__)

_CORPORA: dict[str, Corpus] = {}


def load_corpus(cfg: Config) -> Corpus:
    """Load the config's data set (cached in-process: a compare or sweep loads it once)."""
    d = cfg.data
    split_only = ("sizes", "val_fraction", "val_max", "val_groups", "val_max_per_group", *SEQUENCE_DATA_KEYS)  # they do not change what is loaded
    key = config_hash({k: v for k, v in cfg.to_dict()["data"].items() if k not in split_only})
    if key not in _CORPORA:
        if len(_CORPORA) >= 2:
            _CORPORA.clear()
        _CORPORA[key] = load(d.dataset, d.path, d.task, **{k: getattr(d, k) for k in loader_options()})
    return _CORPORA[key]


_ANNOUNCED: list[Corpus] = []  # the corpora whose load report was printed (the last few)


def announce(corpus: Corpus) -> None:
    """Print the loader's report (rows read, dropped and why, warnings, notes) to stderr, once per loaded
    corpus: called once the data has passed the checks, so bad input stays a one-line error."""
    if any(c is corpus for c in _ANNOUNCED):
        return
    _ANNOUNCED[:] = [*_ANNOUNCED[-3:], corpus]
    lines = corpus.report.lines()
    log.info(f"data: {corpus.name}: {lines[0]}")
    for line in lines[1:]:
        (log.warning if line.startswith("warning:") else log.info)(line)


def subsets_for(cfg: Config, corpus: Corpus, size: int | None, seed: int) -> Subsets:
    d = cfg.data
    return make_subsets(corpus, seed, size, d.val_fraction, d.val_max, d.val_groups, d.val_max_per_group)


def default_size(cfg: Config) -> int | None:
    """The size of a run that names none: the largest of ``data.sizes``, else all the data (None)."""
    return max(cfg.data.sizes) if cfg.data.sizes else None


def load_model(run_dir) -> Model:
    run = Run(run_dir)
    result = run.require_done()
    if not result.ok:
        raise RnnbenchError(f"run {run_dir} failed ({result.reason or 'unknown reason'}): nothing to predict with")
    if run.imported:
        raise RnnbenchError(run.weights_hint())
    return model_class(result.model).load(run.path)


def versions() -> dict:
    import importlib.metadata as md

    from . import __version__

    out = {"python": platform.python_version(), "rnnbench": __version__}  # also when run from a checkout
    for pkg in ("numpy", "scikit-learn", "jax", "flax", "optax", "orbax-checkpoint"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


@dataclass
class Outcome:
    run: Run
    result: RunResult
    skipped: bool


def run_summary(result: RunResult, skipped: bool) -> str:
    """One line for a finished run (for logs where no progress bar shows): what, how it went, how long."""
    what = f"{result.model} size {result.size if result.size is not None else 'all'} seed {result.seed}"
    if not result.ok:
        return f"{what}: failed ({result.reason or 'unknown reason'})"
    metric = next((k for k in ("accuracy", "rmse") if k in result.metrics), next(iter(result.metrics), None))
    score = f"test {metric} {result.metrics[metric]:.4f}, " if metric else ""
    return f"{what}: {score}fit {result.timings.get('fit', float('nan')):.0f} s" + (" (finished earlier)" if skipped else "")


def train_one(cfg: Config, kind: str, size: int | None = None, seed: int | None = None, force: bool = False,
              progress: bool = True, corpus: Corpus | None = None, trial: dict | None = None) -> Outcome:
    """Train and score one model on one size and seed, through the run store. ``trial``: the search trial the
    run is (:mod:`rnnbench.search`): its validation scores go to the trial's study, whose pruner may stop it."""
    model_cls = model_class(kind)  # an unknown kind fails here, before anything is read or written
    seed = cfg.experiment.seeds[0] if seed is None else seed
    corpus = corpus or load_corpus(cfg)
    subsets = subsets_for(cfg, corpus, size if size is not None else default_size(cfg), seed)
    if progress:
        announce(corpus)
    size = len(subsets.train)
    cfg = cfg.for_size(size)  # the settings of runs of this size (at_size), stored in the run's config.yaml
    run = Run.for_config(cfg, kind, size, seed, adopt=True)
    if run.done and not force:
        return Outcome(run, run.result(), skipped=True)
    run.begin(cfg, force=force)
    model = model_cls.from_config(cfg, corpus.task, seed)
    task = corpus.task
    result = RunResult(model=kind, size=size, seed=seed, dataset=corpus.name,
                       task={"name": task.name, "kind": task.kind, "n_classes": task.n_classes},
                       n_train=len(subsets.train), n_val=len(subsets.val), n_test=len(subsets.test),
                       pool_size=subsets.pool_size,
                       versions=versions(), classes=[] if task.is_regression else task.class_names,
                       data=corpus.report.to_dict())
    t0 = time.perf_counter()
    if trial:
        result.trial = {k: trial[k] for k in ("study", "number") if k in trial}
    prune = pruning_callback(trial)
    try:
        model.fit(subsets.train, subsets.val, run=run, progress=progress, prune=prune)
    except Pruned as e:  # a search stopped this trial: recorded as pruned, with where it stopped
        result.status, result.reason, result.device = "pruned", str(e), model.device_
        result.training = {"epochs_run": e.epoch, "last_validation": e.score}
        result.timings = {"fit": time.perf_counter() - t0}
        run.log({"event": "pruned", "epoch": e.epoch, "val_metric": e.score})
        run.finish(result)
        return Outcome(run, result, skipped=False)
    except FloatingPointError as e:  # diverged: a recorded failure, never a crash of the caller
        result.status, result.reason, result.device = "failed", str(e), model.device_
        result.timings = {"fit": time.perf_counter() - t0}
        run.log({"event": "failed", "reason": str(e)})
        run.finish(result)
        return Outcome(run, result, skipped=False)
    model.save(run.path)
    t = time.perf_counter()
    scores = model.predict_scores(subsets.test.texts)  # the one and only look at test data
    predict_s = time.perf_counter() - t
    # the decision rule a threshold metric needs, chosen on validation the same way for every model kind
    result.selection = selection_metric(cfg, task)[0]
    result.decision = tune_decision(task, subsets.val.y, model.validation_scores_, result.selection)
    result.metrics = evaluate(task, subsets.test.y, scores, result.decision)
    result.reference = reference_scores(task, subsets.train.y, subsets.test.y)
    result.validation = evaluate(task, subsets.val.y, model.validation_scores_, result.decision)
    test = subsets.test
    run.save_predictions(test.y, scores, test.groups, None if task.is_regression else decide(scores, result.decision))
    if test.groups is not None and not task.is_regression:  # each test author, from the mean of their texts
        result.group_metrics = group_metrics(task, test.y, scores, test.groups)
    result.chosen, result.training = model.chosen_, model.training_
    # a resumed RNN run: the training its earlier processes did counts in its total too
    earlier = model.timings_.get("train_wall", 0.0) - model.timings_.get("train_loop", 0.0)
    result.timings = {**model.timings_, "predict": predict_s, "total": time.perf_counter() - t0 + earlier}
    result.device = model.device_
    run.log({"event": "done", **{f"test_{k}": v for k, v in result.metrics.items()}})
    run.finish(result)
    return Outcome(run, result, skipped=False)

