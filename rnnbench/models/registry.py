"""The registry of model kinds: what ``compare`` can put side by side.

A model kind is a :class:`ModelKind`: its name (the YAML section of its options, the prefix of its run
folders, an entry of ``experiment.models``), its config section (a dataclass of :func:`rnnbench.options.opt`
fields), the other sections its results depend on (they enter its run key), whether it reads texts as
token sequences (then ``data.max_len`` and ``data.keep`` enter its key too), whether it wants a GPU, how
plots draw it, and its class (the :class:`rnnbench.models.base.Model` protocol), imported only when a run
needs it, so that listing or planning runs never loads scikit-learn or JAX.

Every other module asks this registry: an unknown kind is a one-line error naming the known ones.
``docs/design/architecture.md`` says how to add a kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import RnnbenchError


@dataclass(frozen=True)
class ModelKind:
    name: str  # "rnn": its config section, the prefix of its run folders, an entry of experiment.models
    section: type  # the dataclass of its options (the config's ``<name>`` section)
    doc: str  # one line on the section, for the config reference
    cls: str  # "package.module:Class", the model (imported on first use)
    reads: tuple[str, ...] = ("data",)  # the other config sections that determine its results
    sequence: bool = False  # reads texts as token sequences, cut to data.max_len (data.keep)
    neutral: Mapping[str, Any] = field(default_factory=dict)  # options added after runs existed: the value
    #                                                             at which they stay out of the run key
    unhashed: tuple[str, ...] = ()  # options that never change a result (how often to checkpoint)
    gpu: bool = False  # trains on a GPU when there is one (the executor gives it one)
    label: str = ""  # its name in plots and legends
    color: str = "0.4"  # its colour in plots
    epochs_option: str | None = None  # its option that caps training passes (status' ETA); None: no validation
    #                                   curve to prune a search's trials on
    grid_options: tuple[str, ...] = ()  # list options the model searches itself within one run (linear: its grid)

    @property
    def key_sections(self) -> tuple[str, ...]:
        """The config sections that enter the key of its runs."""
        return (*self.reads, self.name)

    def model_class(self) -> type:
        module, _, name = self.cls.partition(":")
        return getattr(importlib.import_module(module), name)


_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    """Add a model kind (at import of :mod:`rnnbench.models`, before the config class is assembled)."""
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise RnnbenchError(f"model kind '{kind.name}' is registered twice")
    if not kind.name.isidentifier() or kind.name in RESERVED:
        raise RnnbenchError(f"model kind name '{kind.name}' must be an identifier and not one of {', '.join(RESERVED)}")
    _KINDS[kind.name] = kind
    return kind


# the config's own sections: no model kind may take their names
RESERVED = ("experiment", "data", "tokenizer", "compute", "search", "sweep", "plot", "smoke", "at_size")


def names() -> tuple[str, ...]:
    """The registered kinds' names, in registration order (the order of tables and plots)."""
    return tuple(_KINDS)


def kinds() -> tuple[ModelKind, ...]:
    return tuple(_KINDS.values())


def get(name: str, where: str = "model kind") -> ModelKind:
    """The kind called ``name``; an unknown one is a one-line error naming the known ones (``where``: the
    config key or flag that named it)."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise RnnbenchError(f"{where}: unknown model kind {name!r} (known: {', '.join(_KINDS)})") from None


def check_names(values, where: str) -> list[str]:
    """``values`` if every one is a registered kind (and none twice), else a one-line error naming ``where``."""
    seen = []
    for v in values:
        get(v, where)
        if v in seen:
            raise RnnbenchError(f"{where}: {v!r} is listed twice")
        seen.append(v)
    return seen
