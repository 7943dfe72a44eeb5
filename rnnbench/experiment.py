"""One run end to end: load data, carve subsets, fit a model, score test once, write the run."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np

from .config import Config, config_hash, cores_label
from .datasets import Corpus, load
from .errors import RnnbenchError
from .metrics import evaluate
from .runs import RNN_ONLY_DATA_KEYS, Run
from .subsets import Subsets, make_subsets

MODEL_KINDS = ("linear", "rnn")


_CORPORA: dict[str, Corpus] = {}


def load_corpus(cfg: Config) -> Corpus:
    """Load the config's data set (cached in-process: a compare or sweep loads it once)."""
    d = cfg.data
    split_only = ("sizes", "val_fraction", "val_max", *RNN_ONLY_DATA_KEYS)  # they do not change what is loaded
    key = config_hash({k: v for k, v in cfg.to_dict()["data"].items() if k not in split_only})
    if key not in _CORPORA:
        if len(_CORPORA) >= 2:
            _CORPORA.clear()
        _CORPORA[key] = load(d.dataset, d.path, d.task, text_columns=d.text_columns, label_column=d.label_column,
                             task_kind=d.task_kind, test_path=d.test_path, test_fraction=d.test_fraction,
                             min_votes=d.min_votes, synthetic=d.synthetic)
    return _CORPORA[key]


def subsets_for(cfg: Config, corpus: Corpus, size: int | None, seed: int) -> Subsets:
    return make_subsets(corpus, seed, size, cfg.data.val_fraction, cfg.data.val_max)


def default_size(cfg: Config) -> int | None:
    return max(cfg.data.sizes) if cfg.data.sizes else None


def model_class(kind: str):
    """The estimator class of a model kind (imported lazily: the linear path never loads JAX)."""
    if kind == "linear":
        from .linear import LinearBaseline

        return LinearBaseline
    if kind == "rnn":
        from .rnn.model_api import RNNClassifier

        return RNNClassifier
    raise RnnbenchError(f"unknown model kind '{kind}' (choose from: {', '.join(MODEL_KINDS)})")


def make_model(kind: str, cfg: Config, task, seed: int):
    return model_class(kind).from_config(cfg, task, seed)


def load_model(run_dir):
    run = Run(run_dir)
    result = run.require_done()
    if result.get("status") != "ok":
        raise RnnbenchError(f"run {run_dir} failed ({result.get('reason', 'unknown reason')}): nothing to predict with")
    return model_class(result["model"]).load(run.path)


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


def cpu_device() -> str:
    return f"cpu ({cores_label()}, {platform.machine()})"


@dataclass
class Outcome:
    run: Run
    result: dict
    skipped: bool


def run_summary(result: dict, skipped: bool) -> str:
    """One line for a finished run (for logs where no progress bar shows): what, how it went, how long."""
    what = f"{result.get('model', '?')} size {result.get('size', 'all')} seed {result.get('seed', '?')}"
    if result.get("status") != "ok":
        return f"{what}: failed ({result.get('reason', 'unknown reason')})"
    metrics = result.get("metrics") or {}
    metric = next((k for k in ("accuracy", "rmse") if k in metrics), next(iter(metrics), None))
    fit = (result.get("timings") or {}).get("fit", float("nan"))
    score = f"test {metric} {metrics[metric]:.4f}, " if metric else ""
    return f"{what}: {score}fit {fit:.0f} s" + (" (finished earlier)" if skipped else "")


def train_one(cfg: Config, kind: str, size: int | None = None, seed: int | None = None, force: bool = False,
              progress: bool = True, corpus: Corpus | None = None) -> Outcome:
    """Train and score one model on one size and seed, through the run store."""
    if kind not in MODEL_KINDS:
        raise RnnbenchError(f"unknown model kind '{kind}' (choose from: {', '.join(MODEL_KINDS)})")
    seed = cfg.experiment.seeds[0] if seed is None else seed
    corpus = corpus or load_corpus(cfg)
    subsets = subsets_for(cfg, corpus, size if size is not None else default_size(cfg), seed)
    size = len(subsets.train)
    run = Run.for_config(cfg, kind, size, seed)
    if run.done and not force:
        return Outcome(run, run.result(), skipped=True)
    run.begin(cfg, force=force)
    model = make_model(kind, cfg, corpus.task, seed)
    base = {"model": kind, "size": size, "seed": seed, "dataset": corpus.name,
            "task": {"name": corpus.task.name, "kind": corpus.task.kind, "n_classes": corpus.task.n_classes},
            "n_train": len(subsets.train), "n_val": len(subsets.val), "n_test": len(subsets.test),
            "versions": versions()}
    t0 = time.perf_counter()
    try:
        model.fit(subsets.train, subsets.val, log=run.log, run_dir=run.path, progress=progress)
    except FloatingPointError as e:  # diverged: a recorded failure, never a crash of the caller
        result = {**base, "status": "failed", "reason": str(e), "device": getattr(model, "device_", cpu_device()),
                  "timings": {"fit": time.perf_counter() - t0}}
        run.log({"event": "failed", "reason": str(e)})
        run.finish(result)
        return Outcome(run, result, skipped=False)
    model.save(run.path)
    t = time.perf_counter()
    scores = model.predict_scores(subsets.test.texts)  # the one and only look at test data
    predict_s = time.perf_counter() - t
    result = {**base, "status": "ok", "metrics": evaluate(corpus.task, subsets.test.y, scores),
              "validation": model.validation_,
              "timings": {**model.timings_, "predict": predict_s, "total": time.perf_counter() - t0},
              "chosen": model.chosen_, "device": getattr(model, "device_", cpu_device())}
    run.log({"event": "done", **{f"test_{k}": v for k, v in result["metrics"].items()}})
    run.finish(result)
    return Outcome(run, result, skipped=False)


def predict_texts(run_dir, texts: list[str]) -> tuple[object, np.ndarray]:
    model = load_model(run_dir)
    return model, model.predict_scores(texts)
