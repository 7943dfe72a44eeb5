"""The RNN as a :class:`rnnbench.model.Model`: the same surface as the linear baseline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from flax import nnx

from ... import devices
from ...config import Config
from ...data import Ragged, Split, Task, Tokenizer
from ...metrics import evaluate, selection_metric
from ..jaxtrain import saved
from ..jaxtrain.batching import Batcher, bucket_boundaries
from ..jaxtrain.loop import fit
from ..jaxtrain.optim import n_outputs
from .memory import check_fits
from .model import SequenceModel
from .train import Steps, predict

if TYPE_CHECKING:
    from ...runs import Run


class RNNClassifier:
    """GRU/LSTM/simple RNN for classification or regression (``task`` decides the head and loss).

    Learned state, set by :meth:`fit` (and restored by :meth:`load`): ``tokenizer_``, ``model_``,
    ``y_scale_`` (regression targets are standardised for training), ``boundaries_`` (the length
    buckets), ``steps_`` (the compiled programs) and ``params_`` (the best parameters on validation);
    and the fit's record: ``chosen_`` (the best epoch), ``validation_``, ``training_``, ``timings_``,
    ``device_``.
    """

    kind = "rnn"

    def __init__(self, cfg: Config, task: Task, seed: int = 0):
        self.cfg, self.task, self.seed = cfg, task, seed

    @classmethod
    def from_config(cls, cfg: Config, task: Task, seed: int = 0) -> RNNClassifier:
        return cls(cfg, task, seed)

    def _build(self, vocab_size: int) -> SequenceModel:
        return SequenceModel(vocab_size, n_outputs(self.task), self.cfg.rnn, rngs=nnx.Rngs(self.seed))

    def _sequences(self, texts: list[str]) -> Ragged:
        """Token ids of ``texts``, each cut to the ``data.max_len`` tokens that ``data.keep`` names."""
        return self.tokenizer_.transform(texts).truncate(self.cfg.data.max_len, self.cfg.data.keep)

    def batcher(self, train: Split) -> Batcher:
        """The training batches of ``train``: fits the tokenizer, the target scaling and the length buckets
        (``tokenizer_``, ``y_scale_``, ``boundaries_``); the first part of :meth:`fit`."""
        tk, rnn = self.cfg.tokenizer, self.cfg.rnn
        self.tokenizer_ = Tokenizer(tk.min_df, tk.max_features, tk.lowercase, tk.char_level).fit(train.texts)
        self.y_scale_ = (0.0, 1.0)
        y_train = train.y
        if self.task.is_regression:
            self.y_scale_ = (float(train.y.mean()), float(train.y.std() or 1.0))
            y_train = ((train.y - self.y_scale_[0]) / self.y_scale_[1]).astype(np.float32)
        seqs = self._sequences(train.texts)
        self.boundaries_ = bucket_boundaries(seqs.lengths, rnn.buckets, self.cfg.data.max_len, rnn.chunk)
        return Batcher(seqs, y_train, rnn.batch_size, self.boundaries_, self.cfg.data.max_len)

    def fit(self, train: Split, val: Split, *, run: Run | None = None, progress: bool = True,
            prune=None) -> RNNClassifier:
        """Train with early stopping on ``val``; with a ``run``, log to it, checkpoint each epoch and resume
        from its last checkpoint. ``prune``: a search trial's pruner (:func:`rnnbench.models.jaxtrain.loop.fit`)."""
        choice = devices.use(self.cfg.compute, self.cfg.rnn.dtype)  # before any array is made
        self.device_ = choice.label
        programs = devices.train_programs(self.cfg.compute.train_programs, choice.device.platform)
        t0 = time.perf_counter()
        train_b, rnn = self.batcher(train), self.cfg.rnn
        check_fits(rnn, self.cfg.data.max_len, self.tokenizer_.vocab_size, n_outputs(self.task),
                   int(train_b.boundaries[-1]), devices.memory_of(choice.device))  # before anything is allocated
        val_seqs = self._sequences(val.texts)
        timings = {"vectorize": time.perf_counter() - t0}
        self.model_ = self._build(self.tokenizer_.vocab_size)
        steps = Steps(self.model_, rnn, self.task, self.seed, programs, max_len=self.cfg.data.max_len)
        steps.width = int(train_b.boundaries[-1])  # per-chunk: every training batch one shape, one set of programs
        out = fit(steps, rnn, self.task, train_b, val_seqs, val.y, self.seed, run=run, progress=progress,
                  y_scale=self.y_scale_, metric=selection_metric(self.cfg, self.task)[0], prune=prune)
        self.steps_, self.params_ = steps, out.best_params
        val_scores = self._unscale(predict(self.steps_, self.params_, val_seqs, self.cfg.data.max_len))  # best
        self.validation_, self.validation_scores_ = evaluate(self.task, val.y, val_scores), val_scores
        self.chosen_ = {"best_epoch": out.state.best_epoch}
        self.training_ = {"epochs_run": out.state.epoch, "steps": out.state.step,
                          "vocab_size": self.tokenizer_.vocab_size, "buckets": [int(b) for b in self.boundaries_],
                          "real_token_fraction": round(out.real_token_fraction, 4),
                          "compiled_programs": out.compiled_programs, "train_programs": programs,
                          **({"diverged": out.diverged} if out.diverged else {})}
        # a resumed run's cost includes the training its earlier processes did (to the checkpoint it resumed)
        self.timings_ = {**timings, "fit": time.perf_counter() - t0 + out.earlier_seconds,
                         "train_loop": out.train_seconds, "train_wall": out.earlier_seconds + out.train_seconds}
        return self

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        return self._unscale(predict(self.steps_, self.params_, self._sequences(texts), self.cfg.data.max_len))

    def _unscale(self, scores: np.ndarray) -> np.ndarray:
        return saved.unscale(self, scores)

    # ------------------------------------------------------------------ persistence
    def save(self, run_dir: Path) -> None:
        saved.save(self, run_dir)

    @classmethod
    def load(cls, run_dir: Path) -> RNNClassifier:
        obj, vocab_size = saved.load(cls, run_dir)
        obj.model_ = obj._build(vocab_size)
        obj.steps_ = Steps(obj.model_, obj.cfg.rnn, obj.task, obj.seed)
        obj.params_ = saved.restore(run_dir, obj.steps_.params)
        return obj
