"""The model contract: what the run machinery (``experiment``, ``compare``, ``sweep``) asks of a model.

Every registered kind's class (:mod:`rnnbench.models.registry`) satisfies :class:`Model`, as
:class:`~rnnbench.models.linear.model.LinearBaseline` and :class:`~rnnbench.models.rnn.model_api.RNNClassifier`
do. Learned state ends in ``_`` and is set by ``fit`` (``load`` restores what ``predict_scores`` needs);
before ``fit`` a model is only its settings, so only a fitted model is an instance of the
(runtime-checkable) protocol.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..config import Config, cores_label

if TYPE_CHECKING:
    import numpy as np

    from ..runs import Run


@runtime_checkable
class Model(Protocol):
    kind: str  # the registered kind's name: the run folder's and the result's model name
    chosen_: dict[str, Any]  # what validation selected: the linear grid point, the RNN's best epoch
    validation_: dict[str, float]  # the chosen model's validation metrics
    validation_scores_: Any  # the chosen model's scores on the validation split (its decision rule is tuned on them)
    training_: dict[str, Any]  # what the fit did (the RNN's epochs, steps, ...; empty for the linear model)
    timings_: dict[str, float]  # seconds: at least "fit"
    device_: str  # where it was fitted, e.g. "cpu (2 cores, x86_64)"

    @classmethod
    def from_config(cls, cfg: Config, task: Any, seed: int) -> Model:
        """The experiment's model of this kind for ``task``, seeded."""

    def fit(self, train: Any, val: Any, *, run: Run | None = None, progress: bool = True, prune=None) -> Model:
        """Fit on ``train``; ``val`` selects (grid point, epoch). ``run``: where to log (and, for the RNN,
        checkpoint and resume). ``prune(step, score) -> bool``: a search trial's pruner, told each validation
        score of a kind that trains in epochs (it raises :class:`~rnnbench.errors.Pruned` to stop); others
        ignore it. Raises FloatingPointError when training diverges."""

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        """Class probabilities (n, K), or predicted values (n,) for regression."""

    def save(self, run_dir: Path) -> None:
        """Write what ``load`` needs into ``run_dir`` (atomically)."""

    @classmethod
    def load(cls, run_dir: Path) -> Model:
        """The model ``save`` wrote, ready to ``predict_scores``."""


def model_class(kind: str) -> type[Model]:
    """The class of a registered model kind (imported on first use: the linear path never loads JAX)."""
    from . import get

    return get(kind).model_class()


def cpu_device() -> str:
    """The device label of a model fitted on this machine's CPU."""
    return f"cpu ({cores_label()}, {platform.machine()})"
