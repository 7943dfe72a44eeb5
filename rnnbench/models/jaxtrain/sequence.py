"""What a JAX model kind that reads token sequences in one compiled program per batch shares (``fasttext``,
``transformer``): the :class:`TokenModel` surface (tokenizer, target scaling, length buckets, the shared
loop, save and load) and :class:`BatchSteps`, its :class:`~rnnbench.models.jaxtrain.loop.Trainable`.

A kind subclasses :class:`TokenModel` and says how to build its flax nnx module (``build``); the module maps
``(tokens (B, W), lengths (B,), dropout_key)`` to outputs ``(B, n_out)``. Training batches come from
:class:`~rnnbench.models.jaxtrain.batching.Batcher` (length buckets, the order a function of seed and
epoch, so a resumed run continues exactly); each bucket width is one training program, and evaluation pads
its batches to the same widths, so a run compiles at most ``length_buckets`` + 1 programs of each kind.
The RNN has its own (chunked) programs: :mod:`rnnbench.models.rnn.train`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ... import devices
from ...config import Config
from ...data import Ragged, Split, Task, Tokenizer
from ...errors import RnnbenchError
from ...metrics import evaluate, selection_metric
from . import saved
from .batching import Batch, Batcher, bucket_boundaries, eval_batches
from .compile_cache import enable_compilation_cache
from .loop import fit
from .optim import global_norm, loss_fn, make_optimizer, outputs_to_scores

if TYPE_CHECKING:
    from ...runs import Run

WIDTH_MULTIPLE = 8  # bucket widths are multiples of this (and so is every padded evaluation batch)


def padded_widths(boundaries: np.ndarray, max_len: int, multiple: int = WIDTH_MULTIPLE) -> np.ndarray:
    """The widths batches are padded to: the training buckets' and ``max_len`` rounded up (the widest text)."""
    top = -(-max_len // multiple) * multiple
    return np.array(sorted({int(b) for b in boundaries} | {top}), np.int64)


class BatchSteps:
    """The loop's :class:`~rnnbench.models.jaxtrain.loop.Trainable` for a model read in one pass per batch:
    one compiled training step (forward, backward, clipping, update) per batch width, and one prediction
    program per width. The model is split once (``nnx.split``); dropout keys are ``fold_in(seed key, step)``,
    so a resumed run draws the masks an uninterrupted one would.

    A kind whose update is not the optimizer's plain one (fastText's sparse rows) overrides :meth:`step_fn`."""

    pad_width = None  # training batches keep their bucket's width

    def __init__(self, model: nnx.Module, opts, task: Task, seed: int, widths, max_len: int, eval_batch: int):
        enable_compilation_cache()
        self.graphdef, self.params = nnx.split(model, nnx.Param)
        self.tx = make_optimizer(opts)
        self.task, self.max_len, self.eval_batch = task, max_len, eval_batch
        self.widths = np.asarray(widths, np.int64)
        self.dropout = getattr(opts, "dropout", 0.0) > 0
        self.base_key = jax.random.key_data(jax.random.key(seed))  # an argument, not a compiled constant
        self.train_program = jax.jit(self.step_fn(), donate_argnums=(0, 1))
        self.predict_program = jax.jit(self.predict_fn())

    def dropout_key(self, base_key, step):
        if not self.dropout:
            return None
        return jax.random.fold_in(jax.random.wrap_key_data(base_key), step)

    def outputs(self, params, tokens, lengths, key=None):
        """The model's outputs ``(B, n_out)`` (dropout only with a ``key``)."""
        return nnx.merge(self.graphdef, params)(tokens, lengths, key)

    def step_fn(self):
        """The training step, to be compiled: (params, opt_state, loss, gradient norm)."""
        task, tx = self.task, self.tx

        def step(params, opt_state, tokens, lengths, y, w, base_key, step):
            key = self.dropout_key(base_key, step)
            loss, grads = jax.value_and_grad(lambda p: loss_fn(task, self.outputs(p, tokens, lengths, key), y, w))(params)
            grad_norm = global_norm(grads)  # logged, and a non-finite one stops the run
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss, grad_norm

        return step

    def predict_fn(self):
        task = self.task
        return lambda params, tokens, lengths: outputs_to_scores(task, self.outputs(params, tokens, lengths))

    def train_step(self, params, opt_state, batch: Batch, step: int):
        """One update on ``batch`` (donates ``params`` and ``opt_state``)."""
        args = jax.device_put((batch.tokens, batch.lengths, batch.y, batch.weight, np.int32(step)))
        tokens, lengths, y, w, step_ = args
        return self.train_program(params, opt_state, tokens, lengths, y, w, self.base_key, step_)

    def fit_width(self, width: int) -> int:
        """The padded width of a batch whose longest text has ``width`` tokens: the first of ``widths`` at or
        above it."""
        i = int(np.searchsorted(self.widths, width))
        return int(self.widths[min(i, len(self.widths) - 1)])

    def predict(self, params, seqs: Ragged) -> np.ndarray:
        """Scores of every text of ``seqs`` in order (class probabilities, or values in training units),
        read to ``max_len`` tokens, shortest first in batches padded to the training widths."""
        out = None
        for rows, tokens, lengths in eval_batches(seqs, self.max_len, self.eval_batch, WIDTH_MULTIPLE):
            width = self.fit_width(tokens.shape[1])
            tokens = np.pad(tokens, ((0, 0), (0, width - tokens.shape[1])))
            scores = np.asarray(self.predict_program(params, *jax.device_put((tokens, lengths))))
            if out is None:
                out = np.zeros((len(seqs),) + scores.shape[1:], scores.dtype)
            real = rows >= 0
            out[rows[real]] = scores[real]
        if out is None:  # no texts
            k = {"binary": 2, "multiclass": self.task.n_classes}.get(self.task.kind)
            out = np.zeros((0, k) if k else (0,), np.float32)
        return out

    def compiled_programs(self) -> int:
        return self.train_program._cache_size() + self.predict_program._cache_size()


class TokenModel:
    """A model kind that reads token sequences, with the :class:`rnnbench.models.base.Model` surface.

    A subclass sets ``kind`` (its registered name, whose config section holds its options: the loop's
    ``learning_rate``, ``epochs``, ... and ``batch_size``, ``length_buckets``) and implements :meth:`build`.
    Learned state, set by :meth:`fit` (restored by :meth:`load`): ``tokenizer_``, ``y_scale_`` (regression
    targets are standardised for training), ``boundaries_`` (the length buckets), ``steps_`` and
    ``params_`` (the best on validation); the fit's record: ``chosen_``, ``validation_``,
    ``validation_scores_``, ``training_``, ``timings_``, ``device_``.
    """

    kind: ClassVar[str] = ""
    eval_factor: ClassVar[int] = 4  # evaluation batches: this many training batches (no backward pass to hold)

    def __init__(self, cfg: Config, task: Task, seed: int = 0):
        self.cfg, self.task, self.seed = cfg, task, seed

    @classmethod
    def from_config(cls, cfg: Config, task: Task, seed: int = 0) -> TokenModel:
        return cls(cfg, task, seed)

    @property
    def options(self) -> Any:
        """The kind's section of the config."""
        return getattr(self.cfg, self.kind)

    def build(self, vocab_size: int, rngs: nnx.Rngs) -> nnx.Module:
        raise NotImplementedError

    def make_steps(self, model: nnx.Module, widths) -> BatchSteps:
        opts = self.options
        return BatchSteps(model, opts, self.task, self.seed, widths, self.cfg.data.max_len,
                          self.eval_factor * opts.batch_size)

    def _sequences(self, texts: list[str]) -> Ragged:
        """Token ids of ``texts``, each cut to the ``data.max_len`` tokens that ``data.keep`` names."""
        return self.tokenizer_.transform(texts).truncate(self.cfg.data.max_len, self.cfg.data.keep)

    def batcher(self, train: Split) -> Batcher:
        """The training batches of ``train``: fits the tokenizer, the target scaling and the length buckets."""
        tk, opts = self.cfg.tokenizer, self.options
        self.tokenizer_ = Tokenizer(tk.min_df, tk.max_features, tk.lowercase, tk.char_level).fit(train.texts)
        self.y_scale_ = (0.0, 1.0)
        y_train = train.y
        if self.task.is_regression:
            self.y_scale_ = (float(train.y.mean()), float(train.y.std() or 1.0))
            y_train = ((train.y - self.y_scale_[0]) / self.y_scale_[1]).astype(np.float32)
        seqs = self._sequences(train.texts)
        self.boundaries_ = bucket_boundaries(seqs.lengths, opts.length_buckets, self.cfg.data.max_len, WIDTH_MULTIPLE)
        return Batcher(seqs, y_train, opts.batch_size, self.boundaries_, self.cfg.data.max_len)

    def use_device(self) -> str:
        """Choose the device (before any array is made); its label."""
        dtype = getattr(self.options, "dtype", "float32")
        choice = devices.use(self.cfg.compute)
        if dtype == "bfloat16" and choice.device.platform == "cpu":
            raise RnnbenchError(f"{self.kind}.dtype: bfloat16 is for GPUs (XLA has no fast bfloat16 matmul on a "
                                f"CPU); set {self.kind}.dtype: float32")
        return choice.label

    def fit(self, train: Split, val: Split, *, run: Run | None = None, progress: bool = True,
            prune=None) -> TokenModel:
        """Train with the shared loop (early stopping on ``val``); with a ``run``, log to it, checkpoint and
        resume from its last checkpoint. ``prune``: a search trial's pruner
        (:func:`rnnbench.models.jaxtrain.loop.fit`)."""
        self.device_ = self.use_device()
        t0 = time.perf_counter()
        train_b = self.batcher(train)
        val_seqs = self._sequences(val.texts)
        timings = {"vectorize": time.perf_counter() - t0}
        steps = self.make_steps(self.build(self.tokenizer_.vocab_size, nnx.Rngs(self.seed)),
                                padded_widths(self.boundaries_, self.cfg.data.max_len))
        out = fit(steps, self.options, self.task, train_b, val_seqs, val.y, self.seed, run=run, progress=progress,
                  y_scale=self.y_scale_, metric=selection_metric(self.cfg, self.task)[0], prune=prune)
        self.steps_, self.params_ = steps, out.best_params
        val_scores = self._unscale(steps.predict(self.params_, val_seqs))
        self.validation_, self.validation_scores_ = evaluate(self.task, val.y, val_scores), val_scores
        self.chosen_ = {"best_epoch": out.state.best_epoch}
        self.training_ = {"epochs_run": out.state.epoch, "steps": out.state.step,
                          "vocab_size": self.tokenizer_.vocab_size, "buckets": [int(b) for b in self.boundaries_],
                          "parameters": parameter_count(self.params_),
                          "real_token_fraction": round(out.real_token_fraction, 4),
                          "compiled_programs": out.compiled_programs,
                          **({"diverged": out.diverged} if out.diverged else {})}
        self.timings_ = {**timings, "fit": time.perf_counter() - t0 + out.earlier_seconds,
                         "train_loop": out.train_seconds, "train_wall": out.earlier_seconds + out.train_seconds}
        return self

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        return self._unscale(self.steps_.predict(self.params_, self._sequences(list(texts))))

    def _unscale(self, scores: np.ndarray) -> np.ndarray:
        return saved.unscale(self, scores)

    # ------------------------------------------------------------------ persistence
    def save(self, run_dir: Path) -> None:
        saved.save(self, run_dir)

    @classmethod
    def load(cls, run_dir: Path) -> TokenModel:
        obj, vocab_size = saved.load(cls, run_dir)
        obj.steps_ = obj.make_steps(obj.build(vocab_size, nnx.Rngs(obj.seed)),
                                    padded_widths(obj.boundaries_, obj.cfg.data.max_len))
        obj.params_ = saved.restore(run_dir, obj.steps_.params, jnp.asarray)
        return obj


def parameter_count(params) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
