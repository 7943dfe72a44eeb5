"""The run folder: its path, its files, its result. No other module reads or writes inside one.

A run lives in ``<output_dir>/<experiment>/runs/<model>-n<size>-s<seed>-<hash>`` where the hash is
taken over the fully resolved settings that determine the result (data, model, tokenizer, size,
seed), so the same settings always map to the same directory. Inside:

``config.yaml`` (resolved), ``metrics.jsonl`` (streamed), ``result.json`` (a :class:`RunResult`), the
saved model and tokenizer, ``checkpoints/`` (RNN), and ``DONE``, written last. Every file is written
atomically, so a run killed at any moment has no ``DONE`` and is redone; an RNN resumes from its last
checkpoint, and its metrics log keeps the lines up to that checkpoint (:meth:`Run.truncate_metrics`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import lease, models
from .config import Config, config_hash, read_yaml
from .errors import RnnbenchError
from .fileio import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
    tail_jsonl,
    why_not_folder,
)

log = logging.getLogger(__name__)

DONE = "DONE"
METRICS = "metrics.jsonl"
RESULT = "result.json"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
PREDICTIONS = "predictions.npz"  # the test predictions, per example, with its group (intervals without retraining)
IMPORTED = "IMPORTED"  # a run unpacked from a results archive: its numbers, not its weights
RUNS = "runs"  # an experiment folder's runs
SEQUENCE_DATA_KEYS = ("max_len", "keep")  # data options only kinds that read token sequences use
# Data options added after runs existed, with the value that reproduces what runs did before them. At that
# value an option stays out of the hash, so adding an option does not orphan every stored run (they would
# all be redone); set to anything else, it is hashed. Keyed on the neutral value, not the default, so a
# later change of default cannot alias runs with different settings. Add each new option here (a model
# kind's own: its ``ModelKind.neutral``).
NEUTRAL_DATA_OPTIONS = {"group_column": None, "delimiter": None, "quoting": None, "columns": None, "member": None,
                        "label_map": None, "label_from_path": None, "records": None, "where": None,
                        "val_groups": None, "val_max_per_group": None}


PRIMARY_METRICS = (None, "accuracy", "rmse")  # selection metrics that select as every run did before the option


def hashed_settings(sections: dict, model: str) -> dict:
    """Of a config's sections (plain dicts), those the model kind ``model`` reads as they enter its run key:
    the sections it declares (:attr:`~rnnbench.models.ModelKind.key_sections`), less the options it ignores,
    options at their neutral value and options that never change a result. The one rule behind
    :func:`run_spec` and ``rnnbench status``' naming of variants; an unknown kind is an error, never hashed
    as another kind."""
    kind = models.get(model)
    out = {}
    for name in kind.key_sections:
        if not isinstance(sections.get(name), dict):
            continue
        neutral, skip = (kind.neutral, set(kind.unhashed)) if name == kind.name else ({}, set())
        if name == "data":
            neutral = NEUTRAL_DATA_OPTIONS
            if not kind.sequence:
                skip.update(SEQUENCE_DATA_KEYS)  # it reads every text whole
        out[name] = {k: v for k, v in sections[name].items()
                     if k not in skip and not (k in neutral and v == neutral[k])}
    return out


def experiment_dir(cfg: Config) -> Path:
    """The folder of an experiment: its runs (``runs/``) and the tables and plots built from them."""
    return Path(cfg.experiment.output_dir).expanduser() / cfg.experiment.name  # `--set ...=~/runs`: no shell expands it


def run_spec(cfg: Config, model: str, size: int, seed: int, by_content: bool = True) -> dict:
    """What determines a run's result: the key of its directory. A data file given by path counts by its
    content (:func:`data_digest`), so the same file at another path, or on another machine, is the same
    data and the runs made there are found here. ``by_content=False`` gives the key of runs stored before
    that rule (by resolved path), which :meth:`Run.for_config` renames on first use."""
    from .data.generic import quoting_for_hash
    from .data.sources import path_key_files

    cfg = cfg.for_size(size)  # a size's own rnn / linear settings (at_size)
    data = cfg.to_dict()["data"]
    data.pop("sizes")
    data["quoting"] = quoting_for_hash(data)  # None where files are read CSV-quoted, as before the option
    for key in ("path", "test_path"):
        files = path_key_files(data[key]) if data[key] else None
        if files is not None:  # a glob or a list: each file (or folder) by its name and content
            data[key] = [f"{f.name}:sha256:{data_digest(f.resolve())}" if by_content else str(f.resolve())
                         for f in files]
        elif data[key]:
            where = Path(data[key]).expanduser().resolve()
            data[key] = f"sha256:{data_digest(where)}" if by_content and where.exists() else str(where)
    spec = {"model": model, "size": size, "seed": seed, **hashed_settings({**cfg.to_dict(), "data": data}, model)}
    selection = cfg.experiment.selection_metric or cfg.experiment.metric
    if selection not in PRIMARY_METRICS:  # what every kind selects on; the primary one keeps the keys of before
        spec["selection"] = selection
    return spec


def run_path(cfg: Config, model: str, size: int, seed: int, by_content: bool = True) -> Path:
    h = config_hash(run_spec(cfg, model, size, seed, by_content), n=10)
    return experiment_dir(cfg) / RUNS / f"{model}-n{size}-s{seed}-{h}"


_DIGESTS = "digests.json"  # in the data home: path -> [size, mtime_ns, sha256], so a file is hashed once


def data_digest(path: Path) -> str:
    """sha256 of a data file's bytes; of a folder, of its files' relative names and digests (hidden files
    left out). Remembered in the data home (and in the process) by path, size and modification time, so
    a file is read once."""
    from .data import data_home

    if not path.is_dir() and not path.is_file():
        raise RnnbenchError(f"data.path: {path} is not a regular file (a pipe or a device): rnnbench reads a data "
                            "file more than once (its checksum, then its rows); save the data to a file")
    cache_file = data_home() / _DIGESTS
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts))
    digests, changed = [], False
    for f in files:
        st = f.stat()
        stamp = [st.st_size, st.st_mtime_ns]
        hit = _DIGESTS_SEEN.get(str(f)) or cache.get(str(f))
        if not (hit and hit[:2] == stamp):
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(block)
            hit, changed = [*stamp, h.hexdigest()], True
            cache[str(f)] = hit
        _DIGESTS_SEEN[str(f)] = hit
        digests.append(hit[2])
    if changed:
        try:
            atomic_write_json(cache_file, cache)
        except OSError:  # a read-only data home: hash again in the next process
            pass
    if not path.is_dir():
        return digests[0]
    h = hashlib.sha256()
    for f, digest in zip(files, digests):
        h.update(f"{f.relative_to(path).as_posix()}\0{digest}\n".encode())
    return h.hexdigest()


_DIGESTS_SEEN: dict[str, list] = {}
_DAMAGED: set[Path] = set()  # runs whose DONE sits beside an unreadable result (warned about once)


@dataclass
class RunResult:
    """What ``result.json`` holds: one run's outcome.

    ``chosen`` is what validation selected (the linear grid point; the RNN's best epoch), ``training``
    what the fit did (the RNN's epochs, steps, vocabulary, buckets, compiled programs; empty for the
    linear model). A failed run has ``status`` "failed", a ``reason`` and no metrics.
    """

    model: str
    size: int | None
    seed: int
    status: str = "ok"
    reason: str = ""
    dataset: str = ""
    task: dict[str, Any] = field(default_factory=dict)  # name, kind, n_classes
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    pool_size: int | None = None  # the training examples the data offers (the largest size a run can have)
    metrics: dict[str, float] = field(default_factory=dict)  # test, scored once
    validation: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # class i's name (classification; older runs: none stored)
    data: dict[str, Any] = field(default_factory=dict)  # the loader's report: rows read, dropped and why, notes
    reference: dict[str, float] = field(default_factory=dict)  # a text-blind model's test scores (majority / mean)
    selection: str = ""  # the metric the model was selected on (older runs: the task's primary one)
    decision: dict[str, Any] | None = None  # a threshold metric's rule, tuned on validation (metrics.tune_decision)
    group_metrics: dict[str, float] = field(default_factory=dict)  # per test group (author): metrics.group_metrics
    trial: dict[str, Any] = field(default_factory=dict)  # a search's trial: its study and number (rnnbench.search)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunResult:
        """Read a result, also one written by an earlier rnnbench: unknown keys are ignored, missing ones
        take their defaults, and an RNN's ``chosen`` that held its training statistics (before
        ``training`` existed) is split into the two."""
        if not isinstance(d, dict) or "model" not in d or "status" not in d:
            raise RnnbenchError("result.json: not a run result (no model or status)")
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        _check_result(d)
        if d["model"] == "rnn" and "training" not in d and d.get("chosen"):
            old = dict(d["chosen"])
            d["chosen"] = {"best_epoch": old.pop("best_epoch")} if "best_epoch" in old else {}
            d["training"] = old
        return cls(**{"size": None, "seed": 0, **d})


STATUSES = ("ok", "failed", "pruned", "claimed")  # what a run's outcome may be ("claimed": never written)
_NULLABLE = ("size", "pool_size", "decision")  # the fields a result may hold null in
_NUMBERS = ("metrics", "validation", "timings", "reference", "group_metrics")  # name -> number mappings
_MAPPINGS = ("task", "chosen", "training", "versions", "data", "trial")
_TEXTS = ("model", "status", "reason", "dataset", "device", "selection")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_result(d: dict) -> None:
    """Refuse a result whose fields are not what rnnbench writes (a damaged or hand-edited ``result.json``):
    every reader formats its numbers, so a metric that is text or null would crash a table."""
    def bad(key: str, want: str) -> RnnbenchError:
        return RnnbenchError(f"{key} is {d[key]!r:.60}, not {want}")

    for key, value in d.items():
        if value is None and key not in _NULLABLE:
            raise RnnbenchError(f"{key} is null")
    for key in _TEXTS:
        if key in d and not isinstance(d[key], str):
            raise bad(key, "text")
    if d["status"] not in STATUSES:
        raise bad("status", "one of " + ", ".join(STATUSES))
    for key in ("n_train", "n_val", "n_test", "size", "pool_size"):
        if key in d and d[key] is not None and not (type(d[key]) is int and d[key] >= 0):
            raise bad(key, "a count")
    if "seed" in d and type(d["seed"]) is not int:
        raise bad("seed", "an integer")
    for key in _NUMBERS:
        if key in d and not (isinstance(d[key], dict) and all(_is_number(v) for v in d[key].values())):
            raise bad(key, "a mapping of names to numbers")
    for key in _MAPPINGS:
        if key in d and not isinstance(d[key], dict):
            raise bad(key, "a mapping")
    if "classes" in d and not (isinstance(d["classes"], list) and all(isinstance(c, str) for c in d["classes"])):
        raise bad("classes", "a list of class names")
    rule = d.get("decision")
    if rule is not None and not (isinstance(rule, dict) and isinstance(rule.get("metric"), str) and (
            _is_number(rule.get("threshold")) or (isinstance(rule.get("weights"), list) and rule["weights"]
                                                   and all(_is_number(w) for w in rule["weights"])))):
        raise bad("decision", "a decision rule (a metric and a threshold or class weights)")


class Run:
    """One run's directory: begin, log, truncate the log on resume, finish, read back."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, cfg: Config, model: str, size: int, seed: int, adopt: bool = False) -> Run:
        """The run of these settings. One stored when a data file counted by its path (not its content) is
        found there too; with ``adopt`` (a run about to be used, not just listed) it is renamed."""
        path = run_path(cfg, model, size, seed)
        if not path.exists() and (cfg.data.path or cfg.data.test_path):
            legacy = run_path(cfg, model, size, seed, by_content=False)
            if legacy.is_dir():
                if not adopt:
                    return cls(legacy)
                try:
                    legacy.rename(path)
                except OSError:
                    return cls(legacy)
        run = cls(path)
        if adopt and not path.exists():
            run.settle()  # a forced rerun killed between its two renames (where the filesystem cannot swap)
        return run

    # ------------------------------------------------------------------ state
    @property
    def done(self) -> bool:
        """Finished: ``DONE`` and a readable ``result.json``. A ``DONE`` beside a missing or unreadable result
        (a damaged folder) does not count: the run is redone, and a warning says so (once per process)."""
        if not (self.path / DONE).exists():
            return False
        try:
            self.result()
        except RnnbenchError as e:
            if self.path not in _DAMAGED:
                _DAMAGED.add(self.path)
                log.warning(f"warning: {self.path} has {DONE} but {e}: the run counts as unfinished and is redone")
            return False
        return True

    @property
    def marked_done(self) -> bool:
        """``DONE`` is there (the result not yet read: :attr:`done` also checks that it is readable)."""
        return (self.path / DONE).exists()

    def finished_ns(self) -> int:
        """When the run finished (its ``DONE``'s modification time, ns): the newest of several runs of one
        model, size and seed counts."""
        return (self.path / DONE).stat().st_mtime_ns

    def wait_visible(self, wait: float) -> bool:
        """Whether ``DONE`` can be seen here, allowing a network filesystem ``wait`` seconds (a run finished on
        another node of a cluster)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                os.listdir(self.path)  # refreshes a network filesystem's cached view of the folder
            except OSError:
                pass
            if self.marked_done:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    @property
    def imported(self) -> bool:
        """Unpacked from a results archive (``rnnbench import``): its results, metrics and predictions are
        here, its weights are not."""
        return (self.path / IMPORTED).exists()

    def archive_files(self, max_points: int | None = None) -> dict[str, bytes]:
        """The files of a finished run that make its numbers, as a results archive holds them (no weights):
        the resolved config, the result, the metrics log (at most ``max_points`` training-curve lines,
        evenly spread; every other event kept), the test predictions where kept, ``DONE`` and ``IMPORTED``."""
        files = {CONFIG: (self.path / CONFIG).read_bytes(), RESULT: (self.path / RESULT).read_bytes()}
        rows = self.metrics()
        train = [i for i, r in enumerate(rows) if r.get("event") == "train"]
        if max_points is not None and len(train) > max_points:
            keep = {train[round(j * (len(train) - 1) / max(max_points - 1, 1))] for j in range(max_points)}
            rows = [r for i, r in enumerate(rows) if r.get("event") != "train" or i in keep]
        files[METRICS] = "".join(json.dumps(r) + "\n" for r in rows).encode()
        if (self.path / PREDICTIONS).exists():
            files[PREDICTIONS] = (self.path / PREDICTIONS).read_bytes()
        files[DONE] = (self.path / DONE).read_bytes()
        files[IMPORTED] = b"results archive: no weights\n"
        return files

    def weights_hint(self) -> str:
        """Why a run cannot predict: what to say of an imported run."""
        return (f"{self.path} was imported from a results archive: its weights were not exported (run it again "
                "with `rnnbench train ... --force` to predict with it)")

    def artifact(self, name: str) -> Path:
        """Where an output made from the finished run is kept beside its files (``embeddings.png``)."""
        return self.path / name

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def checkpoint_step(self) -> int | None:
        """The step of the newest checkpoint (orbax names each by its step); None without one."""
        try:
            return max((int(p.name) for p in self.checkpoint_dir.iterdir()
                        if p.name.isascii() and p.name.isdecimal() and p.is_dir()), default=None)
        except OSError:  # no checkpoints (yet), or the folder went while being read
            return None

    @property
    def resumable(self) -> bool:
        """Has a checkpoint to resume from."""
        return self.checkpoint_step is not None

    def result(self) -> RunResult:
        f = self.path / RESULT
        if not f.exists():
            raise RnnbenchError(f"{self.path}: no {RESULT} (not a finished run)")
        try:
            result = RunResult.from_dict(json.loads(f.read_text()))
        except (ValueError, TypeError, RecursionError, RnnbenchError) as e:
            raise RnnbenchError(f"{f}: unreadable run result ({e})") from None
        t = result.timings
        if result.model == "rnn" and isinstance(t.get("train_loop"), (int, float)) and "train_wall" not in t:
            # written before results counted a resumed run's earlier processes: its log's clock does
            wall = max((r["wall_seconds"] for r in tail_jsonl(self.path / METRICS)
                        if isinstance(r.get("wall_seconds"), (int, float))), default=0.0)
            earlier = max(0.0, wall - t["train_loop"])
            result.timings = {**t, "train_wall": t["train_loop"] + earlier,
                              **{k: t[k] + earlier for k in ("fit", "total") if isinstance(t.get(k), (int, float))}}
        return result

    def config_yaml(self) -> str | None:
        """The resolved config the run was begun with, as written (None if it has none)."""
        f = self.path / CONFIG
        return f.read_text() if f.exists() else None

    def settings(self) -> dict:
        """The resolved config the run was begun with, as a plain dict; {} where it is missing or cannot be
        read (``status`` then shows less, and nothing else is lost)."""
        import yaml

        try:
            raw = read_yaml((self.path / CONFIG).read_text(), str(self.path / CONFIG), fast=True)
        except (OSError, ValueError, RecursionError, RnnbenchError, yaml.YAMLError):
            return {}
        return raw if isinstance(raw, dict) else {}

    @property
    def has_metrics(self) -> bool:
        return (self.path / METRICS).exists()

    def metrics_tail(self) -> list[dict]:
        """The last lines of the metrics log (a cheap read of a long log: where a run stands)."""
        return tail_jsonl(self.path / METRICS)

    def config(self) -> Config:
        import yaml

        from .config import from_dict

        text = self.config_yaml()
        if text is None:
            raise RnnbenchError(f"{self.path}: no {CONFIG}")
        try:
            return from_dict(read_yaml(text, str(self.path / CONFIG)))
        except (yaml.YAMLError, RecursionError, TypeError) as e:
            raise RnnbenchError(f"{self.path / CONFIG}: unreadable ({type(e).__name__})") from None

    def save_predictions(self, y, scores, groups, pred=None) -> None:
        """The run's test predictions, compactly: the true targets, the decided class (classification) and
        the probabilities in float16 (of class 1 alone for two classes) or the predicted values, and each
        example's group (-1: none). ``pred``: the decided classes (None: regression, ``scores`` are values).
        Enough to recompute any metric's interval over test groups and seeds."""
        import io

        import numpy as np

        scores = np.asarray(scores)
        out = {"y": np.asarray(y, np.float32 if pred is None else np.int32)}
        if pred is None:
            out["value"] = scores.astype(np.float32)
        else:
            out["pred"] = np.asarray(pred, np.int16)
            out["proba"] = (scores[:, 1] if scores.shape[1] == 2 else scores).astype(np.float16)
        out["groups"] = (np.asarray(groups, np.int64) if groups is not None else np.full(len(y), -1)).astype(np.int32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **out)
        atomic_write_bytes(self.path / PREDICTIONS, buf.getvalue())

    def predictions(self) -> dict | None:
        """The saved test predictions (:meth:`save_predictions`), or None: a run made before they were kept."""
        import numpy as np

        try:
            with np.load(self.path / PREDICTIONS) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, KeyError):
            return None

    def metrics(self) -> list[dict]:
        """The metrics log, oldest line first."""
        return read_jsonl(self.path / METRICS)

    # ------------------------------------------------------------------ writing
    def begin(self, cfg: Config, force: bool = False) -> None:
        """Prepare the directory for a fresh or resumed run. ``force`` starts from nothing; otherwise
        checkpoints survive, and with them the metrics log (the trainer truncates it to the checkpoint).
        First it takes the run's lease (:mod:`rnnbench.lease`): a run claimed by another live process, or
        finished by one meanwhile, raises :class:`rnnbench.lease.Claimed` and nothing is touched.

        ``force`` on a finished run trains the new one beside it, in ``.<name>.force`` (this run's
        :attr:`path` until :meth:`finish`), and the finished run stays whole until the new one is: a kill
        at any moment leaves one of the two. A forced rerun that was killed is resumed by the next one."""
        lease.claim(self.path, cfg.compute.lease_timeout, unless=None if force else lambda: self.settle() or self.done)
        if force:
            self.settle()
            if self.marked_done:  # a finished run: kept until its replacement is finished
                self.final, self.path = self.path, self.staging
            else:
                for old in (self.path, self.staging):
                    _discard(old)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RnnbenchError(f"cannot create run directory {self.path}: {e.strerror}") from None
        (self.path / DONE).unlink(missing_ok=True)  # a damaged finished run (see done) is being redone
        (self.path / RESULT).unlink(missing_ok=True)
        for stale in self.path.glob(".*.tmp"):  # temp files of a write that was killed
            stale.unlink(missing_ok=True)
        if not self.resumable:
            self.clear_metrics()
        atomic_write_text(self.path / CONFIG, cfg.to_yaml())

    final: Path | None = None  # a forced rerun: the folder it replaces once finished (``path`` is its staging)

    @property
    def staging(self) -> Path:
        """Where a forced rerun of this finished run trains (hidden: no listing counts it as a run)."""
        return (self.final or self.path).with_name(f".{(self.final or self.path).name}{FORCED}")

    def settle(self) -> None:
        """Finish what a process killed while swapping a forced rerun in left: the new run, whole, put in
        place if the old one is already gone (else dropped: the old one stands), and old folders on their way
        out removed. Called under the run's lease, and before a run is used."""
        final = self.final or self.path
        swap = final.with_name(f".{final.name}{SWAP}")
        if swap.is_dir():
            if final.exists():
                _discard(swap)
            else:
                try:
                    swap.rename(final)
                except FileNotFoundError:  # another process has just done it
                    pass
        for trash in final.parent.glob(f".{final.name}{TRASH}*") if final.parent.is_dir() else ():
            shutil.rmtree(trash, ignore_errors=True)

    def _swap_in(self) -> None:
        """Put a finished forced rerun (at :attr:`path`) in place of the run it replaces: exchanged in one
        step where the filesystem can, else the old one moved aside first (:meth:`settle` completes that)."""
        final, swap = self.final, self.final.with_name(f".{self.final.name}{SWAP}")
        self.path.rename(swap)  # whole now: whichever of the two a kill leaves here is a finished run
        if _exchange(swap, final):
            _discard(swap)  # the old run
        else:
            aside = final.with_name(f".{final.name}{TRASH}{time.time_ns()}")
            final.rename(aside)
            try:
                swap.rename(final)
            except FileNotFoundError:
                pass
            shutil.rmtree(aside, ignore_errors=True)
        self.path, self.final = final, None

    def log(self, record: dict) -> None:
        self.check_claim()
        append_jsonl(self.path / METRICS, {"time": time.time(), **record})

    def check_claim(self) -> None:
        """Raise :class:`rnnbench.lease.LeaseLost` if another process took this process's claim on the run
        over (before each write: two processes never write one run)."""
        lease.check(self.final or self.path)

    def clear_metrics(self) -> None:
        """Start an empty metrics log (a run trained from the beginning)."""
        atomic_write_text(self.path / METRICS, "")

    def truncate_metrics(self, step: int) -> list[dict]:
        """Keep the log up to training step ``step`` (the checkpoint resumed from) and return what is kept.
        Lines after it, and lines with no step (the end of a run that is being redone), are dropped."""
        rows = [r for r in self.metrics() if isinstance(r.get("step"), int) and r["step"] <= step]
        atomic_write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def finish(self, result: RunResult) -> None:
        self.check_claim()
        atomic_write_json(self.path / RESULT, result.to_dict())
        atomic_write_text(self.path / DONE, time.strftime("%Y-%m-%dT%H:%M:%S\n"))
        if self.final is not None:  # a forced rerun, finished: it replaces the run it reran
            self._swap_in()
        lease.release(self.path)  # the run is finished: its claim goes

    def require_done(self) -> RunResult:
        if not self.path.is_dir():
            raise RnnbenchError(why_not_folder(self.path).replace("no such directory", "no such run directory"))
        if not self.done:
            inside = runs_inside(self.path)
            if inside:
                done = [r for r in inside if r.done]
                names = [str(r.path) for r in [*done, *(r for r in inside if not r.done)]]  # as the user can paste them
                more = f" and {len(names) - 8} more" if len(names) > 8 else ""
                raise RnnbenchError(f"{self.path} is an experiment folder, not a run: give one of its {len(inside)} "
                                    f"runs ({len(done)} finished): {', '.join(names[:8])}{more}")
            raise RnnbenchError(f"run {self.path} is not finished (no DONE marker)")
        return self.result()


FORCED, SWAP, TRASH = ".force", ".swap", ".trash-"  # suffixes of a run's hidden siblings (see Run.begin)


def _discard(folder: Path) -> None:
    """Remove a run folder: renamed first (atomic), so it is never seen half-deleted under its name."""
    if not folder.exists():
        return
    trash = folder.with_name(f".{folder.name.lstrip('.').split('.')[0]}{TRASH}{time.time_ns()}")
    folder.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the system or the
    filesystem cannot (then nothing happened)."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def runs_inside(path: Path) -> list[Run]:
    """The run folders in an experiment folder (in its ``runs/``) or in a ``runs/`` folder, by name."""
    path = Path(path)
    found = []
    for folder in (path / RUNS, path):
        if folder.is_dir():
            found += [Run(p) for p in sorted(folder.iterdir())
                      if p.is_dir() and not p.name.startswith(".") and (p / CONFIG).exists()]
    return found


def runs_of(experiment: Path) -> list[Run]:
    """Every run folder in an experiment folder's ``runs/``, by name (also those without a config)."""
    folder = Path(experiment) / RUNS
    return [Run(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")] \
        if folder.is_dir() else []


def is_experiment(path: Path) -> bool:
    """Whether ``path`` is an experiment folder (it holds ``runs/``)."""
    return (Path(path) / RUNS).is_dir()


def run_folders(target: Path) -> list[Path]:
    """The run folders of an experiment folder (or its ``runs/``), or the one run ``target`` is; runs
    only claimed so far (a lease, no folder yet) included. Ordered by model, size, seed."""
    target = Path(target)
    if (target / RUNS).is_dir() or lease.leases_dir(target).is_dir():
        runs_dir = target / RUNS
    elif target.name == RUNS and target.is_dir():
        runs_dir = target
    elif any((target / name).exists() for name in (CONFIG, DONE, METRICS)):
        return [target]
    else:
        raise RnnbenchError(f"{target}: not an experiment folder (no runs/ inside) nor a run folder")
    found = {p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")} if runs_dir.is_dir() else set()
    found |= {runs_dir / name for name in lease.claimed(runs_dir.parent)}
    return sorted(found, key=_order)


def name_parts(name: str) -> tuple[str, str, str]:
    """The model, size and seed of a run folder's name, ``<model>-n<size>-s<seed>-<hash>``, as written."""
    model, _, rest = name.partition("-n")
    size, _, rest = rest.partition("-s")
    return model, size, rest.partition("-")[0]


def _order(p: Path):
    model, size, seed = name_parts(p.name)
    return (model, int(size) if size.isdigit() else 0, int(seed) if seed.isdigit() else 0, p.name)
