"""The data set registry, where local copies live, and :func:`load`.

A data set is a :class:`DatasetInfo`: its tasks, where it comes from and its loader. A loader is
``loader(path, task, *, <options>)`` (``loader(task, *, <options>)`` when it needs no file); its
keyword-only parameters are the data options it uses, each named as in the config's ``data``
section, whose defaults fill any not given. This module does not import :mod:`.download` (which
imports it): the file of ``--from``-registered copies is kept here.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..config import DataConfig
from ..errors import RnnbenchError
from ..fileio import atomic_write_json
from ..paths import data_home  # re-exported: rnnbench.data.data_home
from . import blog
from .corpus import Corpus, Kind
from .generic import FORMATS as GENERIC
from .generic import load_generic
from .loaders import load_amazon, load_clothing, load_imdb, load_rt_polarity, load_sst2, load_zhang
from .synthetic import load_synthetic


@dataclass(frozen=True)
class Source:
    """Where a data set comes from: canonical URL and the file name it is saved under."""

    url: str
    filename: str
    sha256: str | None = None  # only checksums we could verify; otherwise pinned on first download
    size: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    tasks: dict[str, Kind]
    size: str
    origin: str
    loader: Callable[..., Corpus]
    source: Source | None = None
    # file name -> sha256 of the files of a local copy as published: `data download --from` checks those it finds
    sha256: dict[str, str] = field(default_factory=dict)
    local: str = "FILE"  # what `data download NAME --from` takes, for messages
    local_note: str = ""  # what that file or folder holds
    groups_by: str | None = None  # the column the loader always groups rows by (data.group_column may say so)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # task -> the name of class i, in order

    @property
    def how_to_get(self) -> str:
        """How to get a local copy, in words."""
        note = f" ({self.local_note})" if self.local_note else ""
        if self.source:
            return f"run `rnnbench data download {self.name}` (or `--from {self.local}`{note})"
        return (f"there is no download URL we can rely on: get it from {self.origin} and run "
                f"`rnnbench data download {self.name} --from {self.local}`{note}")

    @property
    def needs_path(self) -> bool:
        """Whether the loader reads a file or folder (its first parameter is ``path``)."""
        return "path" in inspect.signature(self.loader).parameters

    @property
    def options(self) -> tuple[str, ...]:
        """The data options the loader takes: its keyword-only parameters, less any a partial binds."""
        bound = self.loader.keywords if isinstance(self.loader, partial) else {}
        return tuple(p.name for p in inspect.signature(self.loader).parameters.values()
                     if p.kind is p.KEYWORD_ONLY and p.name not in bound)


REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> None:
    REGISTRY[info.name] = info


def get_info(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise RnnbenchError(f"unknown data set '{name}' (known: {', '.join(sorted(REGISTRY))})") from None


# ------------------------------------------------------------------------------ local copies


_REGISTERED_FILE = "registered.json"  # data set name -> the file or folder `data download --from` gave


def _registered() -> dict[str, str]:
    f = data_home() / _REGISTERED_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def remember_copy(name: str, path: Path) -> None:
    """Record ``path`` as the local copy of data set ``name`` (``data download --from``)."""
    reg = _registered()
    reg[name] = str(path)
    atomic_write_json(data_home() / _REGISTERED_FILE, reg)


def registered_path(name: str) -> Path | None:
    """A ``--from`` copy, else a downloaded file in the cache, else None."""
    reg = _registered()
    if name in reg and Path(reg[name]).exists():
        return Path(reg[name])
    info = get_info(name)
    if info.source:
        p = data_home() / name / info.source.filename
        if p.exists():
            return p
    return None


def resolve_path(name: str, path: str | list[str] | None) -> Path:
    """The file or folder to load ``name`` from: the given path, else a ``data download``ed or
    ``--from``-registered copy in ``$RNNBENCH_DATA``."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            raise RnnbenchError(f"data.path: '{name}' reads one file or folder; a list is for "
                                f"{', '.join(GENERIC)} files")
        path = path[0]
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise RnnbenchError(f"data path does not exist: {p}")
        return p
    p = registered_path(name)
    if p is None:
        raise RnnbenchError(f"no local copy of '{name}': {get_info(name).how_to_get}; or set data.path")
    return p


# ------------------------------------------------------------------------------ loading


def loader_options() -> tuple[str, ...]:
    """Every data option some loader takes (the config's ``data`` keys :func:`load` accepts)."""
    return tuple(dict.fromkeys(o for info in REGISTRY.values() for o in info.options))


def load(name: str, path: str | list[str] | None = None, task: str | None = None, **options) -> Corpus:
    """Load data set ``name`` for ``task`` (default: its first task). ``options`` are data options (the
    config's ``data`` keys, such as ``test_fraction``); the loader gets those it takes, and the config's
    defaults for those not given. A name that no loader takes is a TypeError (a misspelt option)."""
    unknown = sorted(set(options).difference(*(info.options for info in REGISTRY.values())))
    if unknown:
        raise TypeError(f"load() got an unexpected data option {unknown[0]!r}")
    info = get_info(name)
    task = task or next(iter(info.tasks))
    if task not in info.tasks and name not in GENERIC:
        raise RnnbenchError(f"data set '{name}' has no task '{task}' (tasks: {', '.join(info.tasks)})")
    group_column = options.get("group_column")
    if group_column is not None and "group_column" not in info.options and group_column != info.groups_by:
        raise RnnbenchError(
            f"data.group_column: '{name}' always groups rows by {info.groups_by}" if info.groups_by else
            f"data.group_column: '{name}' cannot group rows (the option is for {', '.join(GENERIC)} files)")
    defaults = DataConfig()
    kwargs = {k: options[k] if k in options else getattr(defaults, k) for k in info.options}
    if name in GENERIC:
        if not path:  # your own file: no copy to fall back on
            raise RnnbenchError(f"data set '{name}' reads your file: set data.path (a file, folder, glob or list)")
        corpus = info.loader(path, task, **kwargs)
    elif info.needs_path:
        corpus = info.loader(resolve_path(name, path), task, **kwargs)
    else:
        corpus = info.loader(task, **kwargs)
    if task in info.classes and not corpus.task.classes and not corpus.task.is_regression:
        corpus.task = dataclasses.replace(corpus.task, classes=info.classes[task])
    for split_name, split in (("train", corpus.train), ("test", corpus.test)):
        if len(split) == 0:
            raise RnnbenchError(f"{name}: the {split_name} split is empty after filtering ({corpus.report.summary()})")
    return corpus


# ------------------------------------------------------------------------------ the data sets

_FASTAI = "https://s3.amazonaws.com/fast-ai-nlp/"

register(DatasetInfo(
    "synthetic", "built-in review-like paragraphs; the label follows a word-order rule (no download)",
    {"sentiment": "binary", "score": "regression"}, "any (default 20k train / 5k test)", "generated",
    load_synthetic))
register(DatasetInfo(
    "imdb", "IMDB Large Movie Review Dataset v1.0 (Maas et al. 2011)",
    {"sentiment": "binary", "stars": "regression"}, "25k train / 25k test", "ai.stanford.edu/~amaas",
    load_imdb, Source("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz", "aclImdb_v1.tar.gz"),
    classes={"sentiment": ("neg", "pos")}))
register(DatasetInfo(
    "sst2", "Stanford Sentiment Treebank, binary (GLUE train + sentence-level test)",
    {"sentiment": "binary"}, "67k train (phrases) / 1.8k test", "GLUE / Socher et al. 2013", load_sst2,
    classes={"sentiment": ("neg", "pos")}))
register(DatasetInfo(
    "rt-polarity", "Pang & Lee sentence polarity v1.0 (seeded 80/20 split)",
    {"sentiment": "binary"}, "10.7k snippets", "cs.cornell.edu/people/pabo/movie-review-data",
    load_rt_polarity,
    Source("https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz", "rt-polaritydata.tar.gz"),
    classes={"sentiment": ("neg", "pos")}))
register(DatasetInfo(
    "amazon-helpfulness", "Amazon product reviews 2014 (McAuley et al.), CSV or reviews_*.json.gz",
    {"helpfulness": "regression", "rating": "regression"}, "per category (10k for Musical Instruments)",
    "jmcauley.ucsd.edu/data/amazon", load_amazon))
register(DatasetInfo(
    "clothing-reviews", "Women's E-Commerce Clothing Reviews (2018)",
    {"rating": "regression", "recommended": "binary"}, "23.5k reviews", "kaggle (nicapotato)", load_clothing,
    classes={"recommended": ("not recommended", "recommended")}))
for _name, _file, _desc, _size in (
    ("amazon-polarity", "amazon_review_polarity_csv.tgz", "Amazon review polarity", "3.6M train / 400k test"),
    ("amazon-full", "amazon_review_full_csv.tgz", "Amazon review full (5 classes)", "3M train / 650k test"),
    ("yelp-polarity", "yelp_review_polarity_csv.tgz", "Yelp review polarity", "560k train / 38k test"),
    ("yelp-full", "yelp_review_full_csv.tgz", "Yelp review full (5 classes)", "650k train / 50k test"),
):
    register(DatasetInfo(
        _name, f"{_desc} (Zhang, Zhao & LeCun 2015), Zhang CSV format",
        {"sentiment": "multiclass" if "full" in _name else "binary"}, _size, "Zhang et al. 2015 via fast.ai S3",
        partial(load_zhang, dataset=_name), Source(_FASTAI + _file, _file),
        classes={"sentiment": ("1", "2", "3", "4", "5") if "full" in _name else ("neg", "pos")}))
register(DatasetInfo(
    "blog-authorship", "Blog Authorship Corpus (Schler et al. 2006) as shipped in train/test.tsv.xz, split by author",
    {"gender": "binary", "age": "multiclass"}, "612k train / 67k test posts (17.5k / 1.9k bloggers)",
    "Schler et al. 2006 (non-commercial research use)", blog.load_blog, sha256=blog.SHA256,
    local="FOLDER", local_note="the folder holding train.tsv.xz and test.tsv.xz", groups_by="blog_id",
    classes={task: classes for task, (_, classes) in blog.TASKS.items()}))
register(DatasetInfo(
    "zhang-csv", "any file in the Zhang et al. 2015 format (\"label\",\"title\",\"text\", labels 1..K)",
    {"sentiment": "binary"}, "yours", "local file", partial(load_zhang, dataset="zhang-csv")))
for _fmt in GENERIC:
    register(DatasetInfo(
        _fmt, f"your {_fmt.upper()} file(s): data.text_columns, data.label_column (or data.label_from_path), "
              f"data.task_kind; data.label_map, data.group_column, data.where"
              + (", data.delimiter, data.quoting, data.columns" if _fmt in ("csv", "tsv") else "")
              + (", data.records" if _fmt == "json" else ""),
        {"label": "binary"}, "yours", "local file", partial(load_generic, fmt=_fmt)))
del _fmt
