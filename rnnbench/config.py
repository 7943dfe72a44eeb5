"""YAML experiment configs → typed dataclasses. This module, with each model kind's section (declared
beside the kind, :mod:`rnnbench.models`), is the single home of every default.

A config file may set any subset of the sections below (and of the model kinds' sections: ``linear``,
``rnn``, any registered kind); everything else takes the default written here. Unknown keys, wrong types and out-of-range values are errors that name the full key path.
``--set a.b=c`` overrides are parsed as YAML and applied before validation.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import types
import typing
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from . import models
from .errors import RnnbenchError
from .options import opt, section

MetricName = Literal["accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss", "rmse", "mae", "spearman",
                     "r2"]


@dataclass
class ExperimentConfig:
    name: str = opt("experiment", doc="folder name of the experiment under output_dir; titles plots and tables")
    seeds: list[int] = opt([0], min_len=1, unique=True, doc="seeds to run; each gives its own subsets, initialisation and order")
    output_dir: str = opt("runs", doc="where experiments and their runs are kept (may lie outside the checkout)")
    models: list[str] = opt(["linear", "rnn"], min_len=1,
                            doc="the model kinds `compare` runs (any registered: linear, rnn); `compare --models` "
                                "overrides it")
    baseline: str = opt("linear", doc="the model kind every other one is compared against (crossover, forecast, "
                                      "winner)")
    metric: MetricName | None = opt(
        None, doc="the metric that decides: every model kind is selected on it on validation (grid point, epoch, "
                  "search trial; a threshold metric's decision rule too) and the tables, crossovers and forecasts "
                  "compare test scores on it; null: accuracy (rmse for regression)")
    group_scores: bool = opt(
        False, doc="grouped data (data.group_column): the tables also score each test group (an author) as a whole, "
                   "its label predicted from the mean of its texts' probabilities, as author-profiling studies report")
    selection_metric: MetricName | None = opt(
        None, doc="select models on this metric instead of `metric` (the tables still decide on `metric`); null: "
                  "`metric`")


@dataclass
class SyntheticConfig:
    """The built-in corpus (see :mod:`rnnbench.data.synthetic`): sizes of the generated pools."""

    train_size: int = opt(20000, min=10, doc="texts generated for the training pool (validation is carved from it)")
    test_size: int = opt(5000, min=10, doc="texts generated for the test split")
    mean_tokens: int = opt(80, min=20, doc="mean length of a generated text, in tokens")
    noise: float = opt(0.0, min=0.0, max=0.5, doc="fraction of labels flipped at random")
    corpus_seed: int = opt(1234, doc="seed of the generator: the same seed gives the same corpus")


@dataclass
class DataConfig:
    dataset: str = opt("synthetic", doc="a registry name (`rnnbench data list`), or csv / tsv / json / jsonl / parquet "
                                         "for your file")
    path: str | list[str] | None = opt(
        None, doc="file or folder to read; null: the downloaded or registered copy. csv/tsv/json/jsonl/parquet: also a "
                  "glob ('data/*.csv') or a list; a folder gives its files of the format (with label_from_path: those "
                  "it matches); .gz/.bz2/.xz files and .zip/.tar archives are read as they are")
    task: str | None = opt(None, doc="which of the data set's tasks; null: its first")
    text_columns: list[str] = opt([], unique=True, doc="csv/tsv/json/jsonl/parquet: columns joined (with \" . \") into the text")
    label_column: str | None = opt(None, doc="csv/tsv/json/jsonl/parquet: the column holding the label or target")
    task_kind: Literal["binary", "multiclass", "regression"] | None = opt(
        None, doc="csv/tsv/json/jsonl/parquet: what the label is; null: binary or multiclass from the labels seen")
    test_path: str | None = opt(None, doc="csv/tsv/json/jsonl/parquet: a separate test file (or folder, glob); null: "
                                           "test_fraction of path")
    delimiter: str | None = opt(None, doc="csv/tsv: the field separator (';', '|', \"\\t\"); null: ',' for csv, tab for tsv")
    quoting: Literal["csv", "none"] | None = opt(
        None, doc="csv/tsv: csv (double quotes enclose fields, RFC 4180) or none (quotes are text; tabs and line "
                  "ends delimit); null: csv for csv; for tsv, csv only when every quoted field looks CSV-quoted")
    columns: list[str] | None = opt(
        None, unique=True, doc="csv/tsv with no header row: the names of its columns, in order (one name: one text a line)")
    member: str | None = opt(None, doc="a .zip or .tar archive holding several files: the one to read")
    label_map: dict[str, str | float | None] | None = opt(
        None, doc="raw label -> class name (a number for regression); labels mapped to null, and labels not in "
                  "the map, are dropped and counted. The classes keep the map's order")
    label_from_path: str | None = opt(
        None, doc="instead of label_column: a regular expression with one group, searched in each file's path "
                  "(relative to a folder given), whose match is the file's label ('rt-polarity\\.(pos|neg)$')")
    records: str | None = opt(
        None, doc="json (one JSON document a file): the dotted path of the list of records inside it ('reviews', "
                  "'data.items'); null: the document is the list. Fields of json/jsonl/parquet rows may be nested: "
                  "text_columns and label_column take dotted paths ('author.name')")
    where: dict[str, Any] | None = opt(
        None, doc="csv/tsv/json/jsonl/parquet: keep only rows whose column has this value (or one of these values), "
                  "e.g. {language: english}; the loader report counts the rows it drops")
    group_column: str | None = opt(
        None, doc="rows sharing this column's value (an author, a product) never straddle training and validation, "
                  "nor training and a test split rnnbench makes; blog-authorship: always blog_id")
    test_fraction: float = opt(0.2, min=0.05, max=0.5,
                                doc="data sets with no official test split: the seeded share held out as test")
    sizes: list[int] = opt([], doc="training-set sizes, increasing (compare); empty: all available")
    val_fraction: float = opt(0.1, min=0.01, max=0.5, doc="share of the training pool kept for validation")
    val_max: int = opt(5000, min=10, doc="at most this many validation examples")
    val_groups: int | None = opt(
        None, min=1, doc="grouped data (group_column): validation is this many whole groups (authors), in a seeded "
                         "order, instead of val_fraction / val_max rows; null: by rows")
    val_max_per_group: int | None = opt(
        None, min=1, doc="grouped data: each validation group contributes at most this many rows (a seeded "
                         "sample; its other rows are used nowhere), so no prolific author dominates selection")
    max_len: int = opt(400, min=4, doc="models that read token sequences (rnn): tokens read per text")
    keep: Literal["first", "last"] = opt("first", doc="models that read token sequences: which max_len tokens of "
                                                       "a longer text they read")
    min_votes: int = opt(1, min=1, doc="amazon-helpfulness: reviews with fewer helpfulness votes are dropped")
    synthetic: SyntheticConfig = section(SyntheticConfig, "the built-in corpus")


@dataclass
class TokenizerConfig:
    """The vocabulary of the models that read token sequences (the linear model counts every n-gram and
    prunes by its own min_df)."""

    min_df: int = opt(5, min=1, doc="words in fewer training texts become UNK")
    max_features: int | None = opt(None, min=2, doc="keep at most this many words (the most frequent); null: all")
    lowercase: bool = opt(True, doc="lowercase before splitting")
    char_level: bool = opt(False, doc="characters instead of words as tokens")


TrainPrograms = Literal["auto", "per-chunk", "per-batch"]


@dataclass
class ComputeConfig:
    device: Literal["auto", "cpu", "gpu"] = opt(
        "auto", doc="where the RNN trains: auto uses a GPU when JAX sees one; gpu without one is an error")
    train_programs: TrainPrograms = opt(
        "auto", doc="how an RNN training step is compiled: per-chunk (a few programs serve every length, a host "
                    "call per chunk: fastest on a CPU), per-batch (one call per step, a program per length class: "
                    "fewer launches on a GPU); auto: per-batch on a GPU, per-chunk on a CPU")
    threads: int | None = opt(None, min=1, doc="CPU threads of a run (the linear grid's workers; in a worker process "
                                               "also XLA's intra-op threads), the CPUs ray and slurm reserve for it; "
                                               "null: the usable cores (ray and slurm: 1)")
    # how compare and sweep spread their runs (rnnbench/executor.py, docs/distributed.md); never hashed
    executor: Literal["local", "ray", "slurm"] = opt(
        "local", doc="compare / sweep: local (this machine's processes), ray (a Ray cluster: pip install -e '.[ray]') "
                     "or slurm (a job per run through submitit: pip install -e '.[slurm]')")
    workers: int | None = opt(None, min=1, doc="runs at once; null: local 1 (in this process), ray and slurm as "
                                               "many as fit")
    gpus_per_run: float | None = opt(
        None, min=0.0, doc="GPUs of each RNN run (0.25: four runs share one GPU; 0: none); null: local one GPU per "
                           "worker round-robin, ray 1 when the cluster has GPUs, slurm 1 (whole GPUs only)")
    address: str | None = opt(None, doc="ray: the cluster (auto, or HOST:PORT of its head); null: a local Ray instance")
    retries: int = opt(2, min=0, doc="times a run whose worker died is started again (it resumes from its checkpoint)")
    lease_timeout: float = opt(300.0, min=5.0, doc="seconds without a heartbeat after which a run's claim "
                                                     "counts as abandoned and is taken over")
    progress_every: float = opt(20.0, min=1.0, doc="seconds between the progress lines of a run in a worker")
    slurm_partition: str | None = opt(None, doc="slurm: the partition of the jobs; null: the cluster's default")
    slurm_time_min: int = opt(60, min=1, doc="slurm: each job's time limit in minutes; a run still training then "
                                             "saves its checkpoint and is requeued")
    slurm_array_parallelism: int | None = opt(
        None, min=1, doc="slurm: submit the runs as one job array, at most this many running at once; null: a job "
                         "per run")
    slurm_options: dict[str, Any] = opt({}, doc="slurm: more sbatch options, name -> value (account: lab, qos: high, "
                                                "mem: 16G, constraint: a100)")
    slurm_setup: list[str] = opt([], doc="slurm: shell lines each job runs first (module load cuda, source a venv)")
    slurm_cluster: Literal["slurm", "local"] = opt(
        "slurm", doc="slurm: the cluster's sbatch, or local: submitit's local executor, jobs as processes of this "
                     "machine (to try a setup, and the tests)")


SweepKind = Literal["runs", "toy-optimizers"]
PlotX = Literal["step", "epoch", "wall_seconds", "tokens"]
PlotY = Literal["train_loss", "val_metric", "grad_norm", "tokens_per_s"]


@dataclass
class SearchConfig:
    """How one model kind is tuned on validation (``search.<kind>``; docs/tuning.md). Each trial is a run
    in the store; the best on the selection metric is the kind's point on the learning curve."""

    space: dict[str, Any] = opt(
        {}, doc="dotted option -> a list of values, or a range {low, high, log, step}: any option of the kind's "
                "section, and data.max_len / data.keep for kinds that read token sequences; empty: the kind's own "
                "grid (linear: its min_df × C lists)")
    sampler: Literal["grid", "random", "tpe"] = opt("grid", doc="grid: every combination of the values; random or "
                                                                  "tpe (Optuna's): `trials` draws")
    trials: int = opt(20, min=1, doc="random / tpe: trials per search (a grid runs every point)")
    pruner: Literal["none", "halving", "hyperband"] = opt(
        "none", doc="stop unpromising trials early on their validation curve (successive halving, Hyperband); "
                    "kinds that train in epochs only")
    at_sizes: list[int] = opt([], unique=True, doc="tune at these training sizes only; every other size takes the recipe of the "
                                      "nearest tuned size below (above, for sizes below the first); empty: every size")
    seeds: list[int] | None = opt(None, unique=True, doc="tune with these seeds; the others take the recipe of a tuned seed at "
                                            "their size; null: every seed")
    extend_edges: bool = opt(False, doc="grid: where the chosen value is the grid's smallest or largest, try one "
                                        "step past it, until the choice is interior or max_extensions steps")
    max_extensions: int = opt(2, min=0, max=10, doc="extend_edges: at most this many steps past an edge")
    storage: str | None = opt(None, doc="an Optuna storage URL (a database server) for the studies; null: a journal "
                                        "file in the experiment folder, shared by every node that sees it")


@dataclass
class SweepConfig:
    """What ``rnnbench sweep`` expands into runs: ``grid`` (cartesian product) × ``zip`` (walked together) × seeds."""

    kind: SweepKind = opt("runs", doc="runs: train one run per point; toy-optimizers: the talk's 2-D toy problem")
    model: str = opt("rnn", doc="the model kind every run trains (any registered kind)")
    size: int | None = opt(None, min=1, doc="training size; null: the largest of data.sizes, else all")
    grid: dict[str, list[Any]] = opt({}, doc="dotted config key -> values; every combination is run")
    zip: dict[str, list[Any]] = opt({}, doc="dotted config key -> values, lists of one length walked together")
    labels: list[str] = opt([], unique=True, doc="names of the zip rows, for plots and tables")
    seeds: list[int] = opt([], unique=True, doc="seeds of every point; empty: experiment.seeds")
    steps: int = opt(100, min=1, doc="toy-optimizers: updates per optimizer")
    learning_rates: dict[str, float] = opt({}, doc="toy-optimizers: optimizer -> learning rate (others: defaults)")
    n_points: int = opt(400, min=4, doc="toy-optimizers: points of the 2-D data set")


@dataclass
class PlotConfig:
    """One figure of a sweep: ``y`` against ``x``, a line per value of ``by``: the mean over its runs
    (seeds, and any swept key ``by`` leaves out) and their range."""

    x: PlotX = opt("step", doc="x axis")
    y: PlotY = opt("train_loss", doc="y axis")
    by: str | None = opt(None, doc="a swept key (or label): one line per value, pooling the other swept keys' "
                                    "values with the seeds; null: one line per point of the sweep")
    title: str | None = opt(None, doc="figure title; null: '<experiment>: y vs x'")
    ylog: bool = opt(False, doc="logarithmic y axis")
    xlog: bool = opt(False, doc="logarithmic x axis")
    target: float | None = opt(None, doc="a loss to reach: the summary gives the first x at which each line (the mean"
                                        " of its runs) and each run reach it, interpolated between logged points")


THREADS_ENV = "RNNBENCH_THREADS"  # set by the executor in a worker: the CPUs reserved for its run


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, a container's cpuset), not the
    machine's count; in a worker whose run was given fewer (``RNNBENCH_THREADS``: a Ray task's CPUs, a
    Slurm job's), those."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS, Windows)
        n = os.cpu_count() or 1
    given = os.environ.get(THREADS_ENV, "")
    return min(n, int(given)) if given.isdigit() and int(given) >= 1 else n


def cores_label() -> str:
    n = usable_cores()
    return f"{n} core" if n == 1 else f"{n} cores"


def check_folder_name(name: str, key: str) -> str:
    """``name`` if it is one plain folder name (the experiment's folder under ``output_dir``): not empty, no
    path separator, not ``.`` or ``..``, no control character (a line break), at most 200 bytes; else a
    one-line error naming ``key``. A name that is a path would put runs outside ``output_dir``."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or len(name.encode("utf-8", "replace")) > 200 \
            or any(unicodedata.category(c).startswith("C") for c in name):
        raise RnnbenchError(f"{key}: {name!r} is not a plain folder name (one path component: no '/', '\\', "
                            "'..' or control characters, at most 200 bytes)")
    return name


class ConfigBase:
    """What every :data:`Config` can do; :data:`Config` itself is assembled from the core sections and the
    registered model kinds' (:func:`_assemble`)."""

    def __post_init__(self) -> None:
        check_folder_name(self.experiment.name, "experiment.name")
        models.check_names(self.experiment.models, "experiment.models")
        for kind in self.search:
            models.get(kind, f"search.{kind}")
        models.get(self.experiment.baseline, "experiment.baseline")
        if self.sweep is not None:
            models.get(self.sweep.model, "sweep.model")
        self.at_size = {str(size): overrides for size, overrides in self.at_size.items()}  # as YAML gives them
        kinds = tuple(f"{name}." for name in models.names())
        for size, overrides in self.at_size.items():
            if not str(size).isdigit() or int(size) < 1:
                raise RnnbenchError(f"at_size: keys are training sizes (positive integers), got {size!r}")
            for key in overrides:
                if not key.startswith(kinds):
                    raise RnnbenchError(f"at_size.{size}.{key}: only model kinds' keys ({', '.join(k + '*' for k in kinds)}) "
                                        "can differ by size (the data and the vocabulary are the same for every "
                                        "model of a size)")
            try:
                self.for_size(int(size))
            except RnnbenchError as e:
                raise RnnbenchError(f"at_size.{size}: {e}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_smoke(self) -> Config:
        """This config with its ``smoke`` overrides applied (tiny sizes, for tests and CI)."""
        if not self.smoke:
            raise RnnbenchError("--smoke: this config has no smoke section")
        return self.replace(**self.smoke)

    def for_size(self, size: int | None) -> Config:
        """The config of the runs of training size ``size``: ``at_size``'s overrides for it applied."""
        overrides = self.at_size.get(str(size)) if size is not None else None
        if not overrides:
            return self
        raw = self.to_dict()
        raw["at_size"] = {}
        for key, value in overrides.items():
            _set_dotted(raw, key, value)
        out = from_dict(raw)
        out.at_size = self.at_size
        return out

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted-key overrides applied and validated: ``cfg.replace(**{"rnn.cell": "lstm"})``.
        They win over ``at_size``'s for the same keys (a sweep's axis, an explicit ``--set``)."""
        raw = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(raw, key, value)
        _explicit_over_at_size(raw, overrides)
        return from_dict(raw)


def _assemble() -> type:
    """The config class: the core sections, then one section per registered model kind (its name, its
    dataclass), then the rest. ``--set rnn.hidden_dim=128`` and a YAML ``rnn:`` section reach a kind's
    options as they reach the core ones."""
    fields = [
        ("experiment", ExperimentConfig, section(ExperimentConfig, "names, seeds, models, where results go")),
        ("data", DataConfig, section(DataConfig, "what is read and how it is split")),
        ("tokenizer", TokenizerConfig, section(TokenizerConfig, "the vocabulary of the models that read token sequences")),
        *((k.name, k.section, section(k.section, k.doc)) for k in models.kinds()),
        ("compute", ComputeConfig, section(ComputeConfig, "devices and threads")),
        ("search", dict[str, SearchConfig], opt(
            {}, doc="model kind -> how it is tuned on validation (docs/tuning.md); a kind without one trains its "
                    "section's settings as they are (the linear model searches its own grid)")),
        ("sweep", SweepConfig | None, opt(None, doc="what `rnnbench sweep` runs; absent: the config is not a sweep")),
        ("plot", list[PlotConfig], opt([], doc="figures `rnnbench sweep` draws")),
        ("smoke", dict[str, Any], opt({}, doc="dotted overrides for a tiny run (`--smoke`: tests and CI)")),
        ("at_size", dict[str, dict[str, Any]], opt(
            {}, doc="training size -> dotted overrides of model kinds' keys (rnn.*, linear.*, ...) for the runs of "
                    "that size alone (e.g. a larger batch at the full set); they win over the sections' values in "
                    "the file, a --set or sweep axis of the same key wins over them; runs of other sizes keep their "
                    "keys")),
    ]
    return dataclasses.make_dataclass("Config", fields, bases=(ConfigBase,), namespace={"__module__": __name__})


Config = _assemble()


def _explicit_over_at_size(raw: dict, keys) -> None:
    """Drops ``keys`` from every ``at_size`` entry of ``raw``: a value set explicitly holds at every size."""
    for overrides in (raw.get("at_size") or {}).values():
        if isinstance(overrides, dict):
            for key in keys:
                overrides.pop(key, None)


def config_hash(obj: dict, n: int = 12) -> str:
    """A short, stable hash of a JSON-serialisable dict (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# ---------------------------------------------------------------------------- loading


MAX_CONFIG_BYTES = 16 << 20  # a config is a few kB; more is not one (an endless device, a data file)
MAX_ALIAS_VALUES = 100_000  # values YAML aliases may add beyond those written: a config needs a handful


def read_yaml(text: str, where: str, fast: bool = False) -> Any:
    """``text`` parsed as YAML (safely), refusing a document whose aliases stand for more than
    :data:`MAX_ALIAS_VALUES` values beyond those written ("billion laughs": a 1 kB file that expands to
    gigabytes wherever it is walked) or refer to themselves; ``where`` names the file (or ``--set``).
    ``fast``: libyaml's parser where installed (the files rnnbench wrote: ``status`` reads many)."""
    value = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else _StrictLoader)
    expanded, written = _expanded_size(value, where)
    if expanded - written > MAX_ALIAS_VALUES:
        raise RnnbenchError(f"{where}: its aliases (*name) expand to {expanded:,} values from the {written:,} "
                            f"written; refused (a config needs far fewer: at most {MAX_ALIAS_VALUES:,} more)")
    return value


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (YAML keeps the last silently: a second
    ``rnn:`` section would drop the first's settings). Merge keys (``<<: *base``) override as YAML says."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the loader itself says so
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                            f"the key {key!r} is written twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(value: Any, where: str) -> tuple[int, int]:
    """(the values a YAML document stands for, aliases expanded; the values written in it), counted without
    expanding anything: each distinct list or mapping once, iteratively (no depth limit)."""
    if not isinstance(value, (list, dict)):
        return 1, 1
    sizes: dict[int, int] = {}
    path: set[int] = set()  # the lists and mappings being counted: a nested one among them is a cycle
    written, stack = 0, [(value, False)]
    while stack:
        node, counted = stack.pop()
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if counted:
            path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] if isinstance(c, (list, dict)) else 1 for c in items)
        elif id(node) in path:
            raise RnnbenchError(f"{where}: an alias (*name) holds itself: a value with no end; refused")
        elif id(node) not in sizes:
            path.add(id(node))
            written += 1 + sum(not isinstance(c, (list, dict)) for c in items)
            stack.append((node, True))
            stack.extend((c, False) for c in items if isinstance(c, (list, dict)))
    return sizes[id(value)], written


def _config_text(path: Path) -> str:
    """The text of a config file; a folder, a missing file or an endless device is a one-line error that
    says which (a pipe or ``/dev/stdin`` is read, up to :data:`MAX_CONFIG_BYTES`)."""
    if path.is_dir():
        raise RnnbenchError(f"{path}: a folder, not a config file")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise RnnbenchError(f"config file not found: {path}") from None
    except OSError as e:
        raise RnnbenchError(f"{path}: cannot be read as a config ({e.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        kind = "" if path.is_file() else " (not a regular file: a device?)"
        raise RnnbenchError(f"{path}: more than {MAX_CONFIG_BYTES >> 20} MB{kind}: not a config")
    return data.decode("utf-8")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML file (or start from the defaults when ``path`` is None) and apply ``a.b=c`` overrides."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            raw = read_yaml(_config_text(path), str(path)) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise RnnbenchError(f"malformed YAML in {path}{where}: {problem}") from None
        except UnicodeDecodeError as e:
            raise RnnbenchError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save the config as UTF-8") from None
        except RecursionError:
            raise RnnbenchError(f"{path}: nested too deeply to read as a config") from None
        if not isinstance(raw, dict):
            raise RnnbenchError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RnnbenchError(f"--set expects key=value, got {item!r}")
        try:
            value = read_yaml(text, f"--set {key.strip()}")
        except yaml.YAMLError:
            value = text
        except RecursionError:
            raise RnnbenchError(f"--set {key.strip()}: nested too deeply to read") from None
        _set_dotted(raw, key.strip(), value)
    _explicit_over_at_size(raw, [item.partition("=")[0].strip() for item in overrides])
    return from_dict(raw)


def from_dict(raw: dict) -> Config:
    return _build(Config, raw, "")


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise RnnbenchError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = nxt
    node[parts[-1]] = value


def _build(cls: type, raw: Any, prefix: str):
    where = prefix.rstrip(".") or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RnnbenchError(f"{where}: expected a mapping, got {type(raw).__name__} {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (valid keys: {', '.join(fields)})"
            raise RnnbenchError(f"unknown config key '{prefix}{key}'{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        kwargs[name] = _check(raw[name], hints[name], f"{prefix}{name}", f.metadata)
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping to {_type_name(typing.get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _check(value: Any, tp: Any, key: str, meta: typing.Mapping) -> Any:
    out = _coerce(value, tp, key)
    _check_range(out, key, meta)
    return out


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    bad = RnnbenchError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):  # a section: its own keys, checked and named in full
        return _build(tp, value, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and dataclasses.is_dataclass(others[0]):
            return _build(others[0], value, f"{key}.")
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except RnnbenchError:
                continue
        raise bad
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        _, inner = typing.get_args(tp)
        return {str(k): _coerce(v, inner, f"{key}.{k}") for k, v in value.items()}
    if tp in _SCALARS:
        if tp is float and isinstance(value, str) and EXPONENT_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as text; it is the number everyone means
        # bool is a subclass of int in Python; YAML's `true` must not pass for a number
        if not isinstance(value, _SCALARS[tp]) or (tp is not bool and isinstance(value, bool)):
            raise bad
        return float(value) if tp is float else value
    raise bad


EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def number(value: Any) -> Any:
    """``value``, or the float a YAML text such as ``3e-05`` means (YAML 1.1 wants a dot)."""
    if isinstance(value, str) and EXPONENT_FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


_SCALARS = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _check_range(value: Any, key: str, meta: typing.Mapping) -> None:
    if value is None:
        return
    if isinstance(value, list):
        if "min_len" in meta and len(value) < meta["min_len"]:
            raise RnnbenchError(f"{key}: needs at least {meta['min_len']} value(s), got {value!r}")
        if "max_len" in meta and len(value) > meta["max_len"]:
            raise RnnbenchError(f"{key}: takes at most {meta['max_len']} values, got {value!r}")
        if meta.get("unique"):
            twice = next((v for i, v in enumerate(value) if v in value[:i]), None)
            if twice is not None:
                raise RnnbenchError(f"{key}: {twice!r} is listed twice (each value once), got {value!r}")
        items = value
    else:
        items = [value]
    for v in items:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if "min" in meta and v < meta["min"]:
            raise RnnbenchError(f"{key}: must be >= {meta['min']}, got {v!r}")
        if "max" in meta and v > meta["max"]:
            raise RnnbenchError(f"{key}: must be <= {meta['max']}, got {v!r}")


# ---------------------------------------------------------------------------- reference


ROOT_DOC = "docs/config.md"  # where the reference is kept, relative to the checkout


def reference_markdown() -> str:
    """Every config key with its type, default and meaning, generated from the dataclasses above (this
    is ``docs/config.md``; a test checks that the file is current)."""
    lines = ["# Config reference", "",
             "Every key of an rnnbench YAML config, generated from `rnnbench/config.py` by",
             "`rnnbench config reference > docs/config.md` (a test checks it is current). A config sets any subset;",
             "the rest take these defaults. `--set a.b=c` overrides one key (the value is parsed as YAML).", ""]
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        _referencesection(lines, f.name, hints[f.name], f)
    return "\n".join(lines).rstrip() + "\n"


def _section_class(tp: Any) -> type | None:
    """The dataclass a field holds (directly, optionally, or as list items), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if arg is not type(None) and (dataclasses.is_dataclass(arg) or typing.get_args(arg)):
            found = _section_class(arg)
            if found is not None:
                return found
    return None


def _referencesection(lines: list[str], name: str, tp: Any, f: dataclasses.Field) -> None:
    lines += [f"## `{name}`", "", f.metadata.get("doc", "").rstrip(".") + ".", ""]
    cls = _section_class(tp)
    if cls is None:  # a free-form field at the top level (smoke)
        lines += ["| key | type | default | meaning |", "|---|---|---|---|",
                  f"| `{name}` | {_type_name(tp)} | `{_default_text(f)}` | {f.metadata.get('doc', '')} |", ""]
        return
    prefix = f"{name}[]." if typing.get_origin(tp) is list else f"{name}."
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested = []
    hints = typing.get_type_hints(cls)
    for sub in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[sub.name]):
            nested.append(sub)
            continue
        bounds = ", ".join(f"{k} {v}" for k, v in sub.metadata.items() if k in ("min", "max"))
        meaning = sub.metadata.get("doc", "") + (f" ({bounds})" if bounds else "")
        lines.append(f"| `{prefix}{sub.name}` | {_type_name(hints[sub.name])} | `{_default_text(sub)}` | {meaning} |")
    lines.append("")
    for sub in nested:
        _referencesection(lines, f"{prefix}{sub.name}", hints[sub.name], sub)


def _default_text(f: dataclasses.Field) -> str:
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return json.dumps(value, default=str).replace("|", "\\|")
