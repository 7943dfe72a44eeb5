"""YAML experiment configs → typed dataclasses. This module is the single home of every default.

A config file may set any subset of the sections below; everything else takes the default written
here. Unknown keys, wrong types and out-of-range values are errors that name the full key path.
``--set a.b=c`` overrides are parsed as YAML and applied before validation.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import RnnbenchError


def _opt(default=None, **checks):
    """A dataclass field with validation metadata: ``min``, ``max``, ``min_len``."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=checks)
    return field(default=default, metadata=checks)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seeds: list[int] = _opt([0], min_len=1)
    output_dir: str = "runs"
    models: list[str] = _opt(["linear", "rnn"])  # what compare runs (it needs both)


@dataclass
class SyntheticConfig:
    """The built-in corpus (see :mod:`rnnbench.synthetic`): sizes of the generated pools."""

    train_size: int = _opt(20000, min=10)
    test_size: int = _opt(5000, min=10)
    mean_tokens: int = _opt(80, min=20)
    noise: float = _opt(0.0, min=0.0, max=0.5)
    corpus_seed: int = 1234


@dataclass
class DataConfig:
    dataset: str = "synthetic"
    path: str | None = None
    task: str | None = None  # None: the data set's first task
    text_columns: list[str] = _opt([])  # generic csv/tsv/jsonl
    label_column: str | None = None
    task_kind: Literal["binary", "multiclass", "regression"] | None = None  # generic files
    test_path: str | None = None  # generic files: a separate test file
    test_fraction: float = _opt(0.2, min=0.05, max=0.5)  # data sets with no official test split
    sizes: list[int] = _opt([])  # training-set sizes; empty = all available
    val_fraction: float = _opt(0.1, min=0.01, max=0.5)
    val_max: int = _opt(5000, min=10)
    max_len: int = _opt(400, min=4)  # RNN: tokens read per text
    keep: Literal["first", "last"] = "first"  # RNN: which max_len tokens of a longer text it reads
    min_votes: int = _opt(1, min=1)  # amazon-helpfulness
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class TokenizerConfig:
    min_df: int = _opt(5, min=1)
    max_features: int | None = _opt(None, min=2)
    lowercase: bool = True
    char_level: bool = False


@dataclass
class LinearConfig:
    ngram_range: list[int] = _opt([1, 2], min_len=2, max_len=2, min=1)
    sublinear_tf: bool = True
    min_df: list[int] = _opt([1, 2, 3], min_len=1, min=1)
    C: list[float] = _opt([1.0, 4.0, 16.0, 64.0, 256.0], min_len=1, min=1e-12)
    alpha: list[float] = _opt([0.3, 1.0, 3.0, 10.0], min_len=1, min=1e-12)
    max_iter: int = _opt(1000, min=10)


@dataclass
class RnnConfig:
    cell: Literal["gru", "lstm", "simple"] = "gru"
    embed_dim: int = _opt(256, min=1)
    hidden_dim: int = _opt(512, min=1)
    layers: int = _opt(1, min=1, max=8)
    gate: Literal["sigmoid", "steeper_sigmoid", "hard_sigmoid"] = "steeper_sigmoid"
    init: Literal["orthogonal", "gaussian", "uniform"] = "orthogonal"
    init_scale: float = _opt(1.1, min=0.0)
    learned_init_state: bool = False
    dropout: float = _opt(0.0, min=0.0, max=0.95)  # between stacked layers and before the head
    input_dropout: float = _opt(0.0, min=0.0, max=0.95)  # on the embedded tokens (Passage's p_drop)
    optimizer: Literal["sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam"] = "adam"
    learning_rate: float = _opt(1e-3, min=0.0)
    lr_decay: float = _opt(1.0, min=0.0, max=1.0)  # the learning rate is multiplied by this after each epoch
    ema: float = _opt(0.0, min=0.0, max=0.9999)  # >0: validate, keep and test a moving average of the weights
    momentum: float = _opt(0.9, min=0.0, max=1.0)
    clip_norm: float | None = _opt(5.0, min=0.0)  # global-norm clipping; null disables
    batch_size: int = _opt(64, min=1)
    epochs: int = _opt(10, min=1)
    patience: int = _opt(2, min=1)
    eval_every: int = _opt(0, min=0)  # steps between validations; 0 = once per epoch
    chunk: int = _opt(16, min=1)  # time steps per compiled call: texts are read chunk by chunk
    buckets: int = _opt(64, min=1)  # length buckets of training batches (widths: multiples of chunk)
    unroll: int = _opt(2, min=1)  # scan unrolling: 2 measured fastest on CPU
    dtype: Literal["float32", "bfloat16"] = "float32"


@dataclass
class ComputeConfig:
    device: Literal["auto", "cpu", "gpu"] = "auto"
    threads: int | None = _opt(None, min=1)  # the linear grid's workers; None: usable_cores()


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, a container's cpuset), not the
    machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def cores_label() -> str:
    n = usable_cores()
    return f"{n} core" if n == 1 else f"{n} cores"


@dataclass
class Config:
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    rnn: RnnConfig = field(default_factory=RnnConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    sweep: dict[str, Any] = _opt({})  # expanded by rnnbench.sweep
    plot: list[Any] = _opt([])  # what rnnbench sweep draws
    smoke: dict[str, Any] = _opt({})  # dotted overrides for a tiny run (`rnnbench sweep --smoke`)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_smoke(self) -> Config:
        """This config with its ``smoke`` overrides applied (tiny sizes, for tests and CI)."""
        if not self.smoke:
            raise RnnbenchError("--smoke: this config has no smoke section")
        return self.replace(**self.smoke)

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted-key overrides applied and validated: ``cfg.replace(**{"rnn.cell": "lstm"})``."""
        raw = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(raw, key, value)
        return from_dict(raw)


def config_hash(obj: dict, n: int = 12) -> str:
    """A short, stable hash of a JSON-serialisable dict (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


# ---------------------------------------------------------------------------- loading


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML file (or start from the defaults when ``path`` is None) and apply ``a.b=c`` overrides."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise RnnbenchError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise RnnbenchError(f"malformed YAML in {path}{where}: {problem}") from None
        if not isinstance(raw, dict):
            raise RnnbenchError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise RnnbenchError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        _set_dotted(raw, key.strip(), value)
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
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, raw[name], f"{prefix}{name}.")
        else:
            kwargs[name] = _check(raw[name], tp, f"{prefix}{name}", f.metadata)
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
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
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
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
        return dict(value)
    if tp in _SCALARS:
        # bool is a subclass of int in Python; YAML's `true` must not pass for a number
        if not isinstance(value, _SCALARS[tp]) or (tp is not bool and isinstance(value, bool)):
            raise bad
        return float(value) if tp is float else value
    raise bad


_SCALARS = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _check_range(value: Any, key: str, meta: typing.Mapping) -> None:
    if value is None:
        return
    if isinstance(value, list):
        if "min_len" in meta and len(value) < meta["min_len"]:
            raise RnnbenchError(f"{key}: needs at least {meta['min_len']} value(s), got {value!r}")
        if "max_len" in meta and len(value) > meta["max_len"]:
            raise RnnbenchError(f"{key}: takes at most {meta['max_len']} values, got {value!r}")
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
