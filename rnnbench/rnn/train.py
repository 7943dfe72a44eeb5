"""The training loop: jit-compiled pure steps, early stopping, orbax checkpoints, resume.

The model is split once (``nnx.split``) into a graph definition and a parameter pytree; the
compiled programs (see :class:`Steps`) are plain ``jax.jit`` functions of that pytree, so nothing
re-walks the object graph per step. Batches are read in chunks of time steps, so the same programs
serve every text length. The learning rate is an injected optax hyper-parameter (a runtime value, not a
compile-time constant). Data order and dropout keys are functions of (seed, epoch, step), so a run
resumed from a checkpoint continues exactly as an uninterrupted one would; checkpoints hold
parameters and optimizer state, never RNG state (the position in the data order stands for it).

Checkpoints (orbax, under ``run_dir/checkpoints/<step>``, the newest kept): one at every epoch's end, and
one mid-epoch whenever ``rnn.checkpoint_every_s`` seconds have passed since the last (0: after every step;
null: epoch ends only). A mid-epoch checkpoint also holds the epoch's position (batches done, their tokens
and losses), so a run killed at any moment loses at most that much work and resumes bit for bit. A
SIGTERM (:mod:`rnnbench.termination`) is served at the next step boundary: a checkpoint, then
:class:`~rnnbench.termination.Terminated`. A checkpoint that cannot be read back (truncated, garbled: its
fingerprint no longer matches) is deleted with a warning and the run trains from the one before, or
from the start.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import lax
from tqdm import tqdm

from .. import termination
from ..config import RnnConfig, TrainPrograms
from ..data import Ragged, Task
from ..metrics import evaluate, is_better, primary
from ..outputs import duration
from . import enable_compilation_cache
from .batching import Batcher, eval_batches
from .model import SequenceModel

if TYPE_CHECKING:
    from ..runs import Run

OPTIMIZERS = {
    "sgd": lambda lr, m: optax.sgd(lr),
    "momentum": lambda lr, m: optax.sgd(lr, momentum=m),
    "nag": lambda lr, m: optax.sgd(lr, momentum=m, nesterov=True),
    "adagrad": lambda lr, m: optax.adagrad(lr),
    "adadelta": lambda lr, m: optax.adadelta(lr),
    "rmsprop": lambda lr, m: optax.rmsprop(lr),
    "adam": lambda lr, m: optax.adam(lr),  # bias-corrected (Passage's Adam skipped the correction)
}


def make_optimizer(cfg: RnnConfig) -> optax.GradientTransformation:
    def build(learning_rate):
        opt = OPTIMIZERS[cfg.optimizer](learning_rate, cfg.momentum)
        return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt) if cfg.clip_norm else opt

    return optax.inject_hyperparams(build)(learning_rate=cfg.learning_rate)


def n_outputs(task: Task) -> int:
    return task.n_classes if task.kind == "multiclass" else 1


def outputs_to_scores(task: Task, out: jax.Array) -> jax.Array:
    """Class probabilities (B, K), or the regression output (B,)."""
    if task.kind == "binary":
        p = jax.nn.sigmoid(out[:, 0])
        return jnp.stack([1.0 - p, p], axis=1)
    if task.kind == "multiclass":
        return jax.nn.softmax(out, axis=-1)
    return out[:, 0]


def loss_fn(task: Task, out: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    if task.kind == "binary":
        per = optax.sigmoid_binary_cross_entropy(out[:, 0], y.astype(jnp.float32))
    elif task.kind == "multiclass":
        per = optax.softmax_cross_entropy_with_integer_labels(out, y)
    else:
        per = (out[:, 0] - y) ** 2
    return jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)


def global_norm(tree) -> jax.Array:
    """The gradient's global L2 norm, finite whenever the gradient is: a GRU's gradient can explode
    through the recurrence on long texts to norms of 1e30, whose plain float32 sum of squares overflows
    (clipping then zeroes that update, and training goes on). Only then is it computed again, scaled by
    the largest element (a branch taken on the device): the usual step pays one pass, as before.
    Infinite or NaN only where an element is."""
    leaves = jax.tree.leaves(tree)

    def scaled(_):
        top = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves]))
        scale = jnp.where((top > 0) & jnp.isfinite(top), top, 1.0)
        return scale * jnp.sqrt(sum(jnp.sum(jnp.square(g / scale)) for g in leaves))

    plain = optax.tree.norm(tree)
    return lax.cond(jnp.isfinite(plain), lambda _: plain, scaled, None)


def chunk_sizes(chunk: int, longest: int) -> list[int]:
    """The steps of each chunk that reads a batch whose longest text has ``longest`` tokens: full
    chunks, the last one halved where half a chunk is enough (two sizes: a bounded set of programs)."""
    n = max(1, -(-longest // chunk))
    tail = chunk // 2 if chunk % 2 == 0 and longest - (n - 1) * chunk <= chunk // 2 else chunk
    return [chunk] * (n - 1) + [tail]


HEAD_KEY = 2**31 - 1  # the head's dropout key: after any chunk index
PROGRAMS = tuple(p for p in get_args(TrainPrograms) if p != "auto")  # compute.train_programs, resolved


def _is_embedding(path) -> bool:
    return getattr(path[0], "key", None) == "embed"


@jax.tree_util.register_pytree_node_class
class Pullback:
    """A chunk's ``jax.vjp`` pullback with the parameters taken out of its residuals.

    The recurrences save ``W_h`` (and the input projection ``W_x``) for their backward pass. Returned
    from a compiled program as they are, those residuals are copies of the parameters (an output
    buffer cannot alias an input one), one per chunk; here each is a slot that :meth:`__call__`
    fills from ``params`` again, so the forward copies no weights and the saved chunks hold none.
    """

    def __init__(self, leaves, treedef, slots):
        self.leaves, self.treedef, self.slots = list(leaves), treedef, slots

    @classmethod
    def strip(cls, pullback, params) -> Pullback:
        """Inside the traced forward: residuals that are parameter leaves become slots."""
        param_ids = {id(leaf): k for k, leaf in enumerate(jax.tree.leaves(params))}
        leaves, treedef = jax.tree.flatten(pullback)
        slots = tuple(param_ids.get(id(leaf)) for leaf in leaves)
        return cls([leaf for leaf, k in zip(leaves, slots) if k is None], treedef, slots)

    def __call__(self, params, cotangent):
        param_leaves, kept = jax.tree.leaves(params), iter(self.leaves)
        leaves = [next(kept) if k is None else param_leaves[k] for k in self.slots]
        return jax.tree.unflatten(self.treedef, leaves)(cotangent)

    def tree_flatten(self):
        return self.leaves, (self.treedef, self.slots)

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        return cls(leaves, *aux)


class Steps:
    """The compiled programs of one model/optimizer pair.

    A training batch is read ``chunk`` time steps at a time, as evaluation reads it: ``forward_chunk``
    advances the states over one chunk and returns its pullback (``jax.vjp``'s residuals, a pytree);
    ``head_step`` gives the loss and its gradient at the final states; ``backward_chunk`` walks the
    pullbacks back to the first chunk, accumulating the gradient (full backpropagation through time:
    no truncation); ``apply_step`` clips and applies it. These four (and ``predict_chunk`` for
    evaluation) serve every text length, so length buckets can be as fine as the chunk. A batch's last
    chunk is half as long where half a chunk holds the rest of its longest text (:func:`chunk_sizes`):
    a 200-token batch is read as 12 chunks of 16 steps and one of 8, not padded to 208 steps.

    ``programs="per-batch"`` (``compute.train_programs``; the default on a GPU) trains each batch with
    one program instead, ``batch_step``: forward, backward and update in one call, the batch padded
    to its :func:`length_class`, a rung of a fixed ladder of widths, each compiled once. Host calls per
    step: one instead of two per chunk plus two. The gradient is the same (without dropout; with it,
    each program draws its own masks, from the same distribution).
    """

    def __init__(self, model: SequenceModel, cfg: RnnConfig, task: Task, seed: int, programs: str = "per-chunk"):
        if programs not in PROGRAMS:
            raise ValueError(f"programs: expected one of {', '.join(PROGRAMS)}, got {programs!r}")
        enable_compilation_cache()
        self.programs = programs
        self.graphdef, self.params = nnx.split(model, nnx.Param)
        self.tx = make_optimizer(cfg)
        self.task, self.chunk = task, cfg.chunk
        self.base_key = jax.random.key_data(jax.random.key(seed))  # an argument, not a compiled constant
        graphdef, dropout = self.graphdef, cfg.dropout > 0 or cfg.input_dropout > 0

        def dropout_key(base_key, step, part):
            if not dropout:
                return None
            return jax.random.fold_in(jax.random.fold_in(jax.random.wrap_key_data(base_key), step), part)

        def chunk_tokens(batch_tokens, index, size):
            """Chunk ``index`` (``size`` steps) of a batch that sits on the device whole (no host copy
            per call). Chunk ``index`` starts at ``index * chunk``: only a batch's last chunk is shorter."""
            return lax.dynamic_slice_in_dim(batch_tokens, index * self.chunk, size, axis=1)

        def forward_chunk(params, states, batch_tokens, lengths, index, base_key, step, size):
            tokens = chunk_tokens(batch_tokens, index, size)
            remaining = jnp.clip(lengths - index * self.chunk, 0, size)  # real tokens of each text
            first = index == 0
            x = nnx.merge(graphdef, params).embed(tokens.T)  # its gradient is a scatter in backward_chunk

            def advance(p, s, x):
                model = nnx.merge(graphdef, p)
                s = jax.tree.map(lambda a, i: jnp.where(first, i, a), s, model.initial_states(tokens.shape[0]))
                return model.advance(x, remaining, s, dropout_key(base_key, step, index))

            states, pullback = jax.vjp(advance, params, states, x)
            return states, Pullback.strip(pullback, params)

        def head_step(params, states, y, w, base_key, step):
            def objective(p, s):
                out = nnx.merge(graphdef, p).output(s, dropout_key(base_key, step, HEAD_KEY))
                return loss_fn(task, out, y, w)

            loss, (grads, d_states) = jax.value_and_grad(objective, argnums=(0, 1))(params, states)
            return loss, grads, d_states

        def backward_chunk(params, pullback, d_states, grads, batch_tokens, index, size):
            tokens = chunk_tokens(batch_tokens, index, size)
            d_params, d_states, dx = pullback(params, d_states)

            def add(path, g, d):
                return g.at[tokens.T].add(dx) if _is_embedding(path) else g + d

            return jax.tree_util.tree_map_with_path(add, grads, d_params), d_states

        def apply_step(params, opt_state, grads):
            grad_norm = global_norm(grads)  # logged, and a non-finite one stops the run
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, grad_norm

        def batch_step(params, opt_state, batch_tokens, lengths, y, w, base_key, step):
            """Forward, backward and update of one batch in one program: full backpropagation through
            time over the batch's width (a width class), states frozen past each text's end."""
            def objective(p):
                model = nnx.merge(graphdef, p)
                states = model.advance(model.embed(batch_tokens.T), lengths, model.initial_states(batch_tokens.shape[0]),
                                       dropout_key(base_key, step, 0))
                return loss_fn(task, model.output(states, dropout_key(base_key, step, HEAD_KEY)), y, w)

            loss, grads = jax.value_and_grad(objective)(params)
            params, opt_state, grad_norm = apply_step(params, opt_state, grads)
            return params, opt_state, loss, grad_norm

        def average(ema_params, params):
            return jax.tree.map(lambda e, p: e + (1.0 - cfg.ema) * (p - e), ema_params, params)

        def predict_chunk(params, states, batch_tokens, lengths, index, size):
            tokens = chunk_tokens(batch_tokens, index, size)  # sliced here, as in training: no copy per call
            remaining = jnp.clip(lengths - index * self.chunk, 0, size)
            model = nnx.merge(graphdef, params)
            init = model.initial_states(tokens.shape[0])
            states = jax.tree.map(lambda s, i: jnp.where(index == 0, i, s), states, init)
            states, out = model.resume(tokens, remaining, states)
            return states, outputs_to_scores(task, out)

        self.forward_chunk = jax.jit(forward_chunk, static_argnames="size")
        self.head_step = jax.jit(head_step)
        self.backward_chunk = jax.jit(backward_chunk, donate_argnums=(3,), static_argnames="size")
        self.apply_step = jax.jit(apply_step, donate_argnums=(0, 1))
        self.batch_step = jax.jit(batch_step, donate_argnums=(0, 1))
        self.average = jax.jit(average, donate_argnums=(0,))  # rnn.ema: the weights' moving average
        self.predict_chunk = jax.jit(predict_chunk, static_argnames="size")
        self.eval_batch = 4 * cfg.batch_size  # no backward pass to hold in memory: wider batches
        self.width = 0  # per-chunk: training batches are padded to at least this many tokens (fit: the widest bucket)
        self._blank, self._index = {}, []

    def blank(self, batch: int):
        """Zero states for ``batch`` texts: placeholders, replaced in the program on a text's first
        chunk; device arrays, like the states each call returns, so the first chunk hits the same program."""
        if batch not in self._blank:
            shapes = jax.eval_shape(lambda p: nnx.merge(self.graphdef, p).initial_states(batch), self.params)
            self._blank[batch] = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return self._blank[batch]

    def gradients(self, params, tokens, lengths, y, w, step, base_key):
        """Loss and gradient on a batch ``tokens`` ``(B, T)``, the batch read chunk by chunk.

        The batch goes to the device once, padded to ``width`` tokens (so every batch has one shape and
        the programs compile once), and each program slices its chunk out there: no host-to-device
        copy per call. Chunks after the batch's longest text are not read (they would change nothing).
        """
        c = self.chunk
        sizes = chunk_sizes(c, int(lengths.max()))
        tokens, lengths, step = _on_device(tokens, lengths, step, max(self.width, -(-tokens.shape[1] // c) * c))
        states, pullbacks = self.blank(tokens.shape[0]), []
        for i, size in enumerate(sizes):
            states, pullback = self.forward_chunk(params, states, tokens, lengths, self.index(i), base_key, step,
                                                  size=size)
            pullbacks.append(pullback)
        loss, grads, d_states = self.head_step(params, states, y, w, base_key, step)
        for i in range(len(sizes) - 1, -1, -1):  # popped: each chunk's residuals are freed once used
            grads, d_states = self.backward_chunk(params, pullbacks.pop(), d_states, grads, tokens, self.index(i),
                                                  size=sizes[i])
        return loss, grads

    def index(self, i: int) -> jax.Array:
        """Chunk index ``i`` as a device scalar, made once (a program argument, not a per-call copy)."""
        while len(self._index) <= i:
            self._index.append(jax.device_put(np.int32(len(self._index))))
        return self._index[i]

    def train_step(self, params, opt_state, tokens, lengths, y, w, step, base_key):
        """One update: (params, opt_state, loss, gradient norm). Donates ``params`` and ``opt_state``."""
        if self.programs == "per-batch":  # one call, one program per length class
            tokens, lengths, step = _on_device(tokens, lengths, step, length_class(tokens.shape[1], self.chunk))
            return self.batch_step(params, opt_state, tokens, lengths, y, w, base_key, step)
        loss, grads = self.gradients(params, tokens, lengths, y, w, step, base_key)
        params, opt_state, grad_norm = self.apply_step(params, opt_state, grads)
        return params, opt_state, loss, grad_norm

    def compiled_programs(self) -> int:
        return sum(f._cache_size() for f in (self.forward_chunk, self.head_step, self.backward_chunk,
                                             self.apply_step, self.batch_step, self.predict_chunk, self.average))


def _on_device(tokens: np.ndarray, lengths: np.ndarray, step: int, width: int):
    """A training batch padded to ``width`` tokens, and its lengths and step number, sent to the device
    in one transfer."""
    if width != tokens.shape[1]:
        tokens = np.pad(tokens, ((0, 0), (0, width - tokens.shape[1])))
    return jax.device_put((tokens, lengths, np.int32(step)))


def length_class(width: int, chunk: int) -> int:
    """Per-batch programs: the width a batch ``width`` tokens wide is padded to, the first rung at or above
    it of a fixed ladder, ``chunk`` × (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, ...): four rungs per
    doubling, so a batch grows by less than a quarter (~5% over an epoch of IMDB or blog posts, against
    the buckets' own widths). Being the same for every data set, a rung compiles once for all the runs
    of one shape (the on-disk cache), where classes fitted to each run's lengths would compile anew."""
    k = max(1, -(-width // chunk))
    step = 1 if k <= 4 else 1 << ((k - 1).bit_length() - 3)
    return -(-k // step) * step * chunk


def predict(steps: Steps, params, seqs: Ragged, max_len: int) -> np.ndarray:
    """Scores for every text of ``seqs``, in order (texts truncated to ``max_len`` tokens)."""
    out, c = None, steps.chunk
    width = -(-max_len // c) * c  # every batch padded to one width: one program for every length
    for rows, tokens, lengths in eval_batches(seqs, max_len, steps.eval_batch, c):
        sizes = chunk_sizes(c, int(lengths.max()))  # chunks past the batch's longest text are not read
        tokens, lengths = jax.device_put((np.pad(tokens, ((0, 0), (0, width - tokens.shape[1]))), lengths))
        states = steps.blank(steps.eval_batch)
        for i, size in enumerate(sizes):
            states, scores = steps.predict_chunk(params, states, tokens, lengths, steps.index(i), size=size)
        scores = np.asarray(scores)
        if out is None:
            out = np.zeros((len(seqs),) + scores.shape[1:], scores.dtype)
        real = rows >= 0
        out[rows[real]] = scores[real]
    return out


@dataclass
class TrainState:
    """What a checkpoint holds besides parameters and optimizer state."""

    epoch: int = 0  # epochs completed
    step: int = 0
    best_metric: float | None = None
    best_epoch: int = -1
    bad_evals: int = 0
    compiled_programs: int = 0  # the most programs any process of this run compiled
    # the position inside epoch ``epoch`` (a mid-epoch checkpoint; all 0 at an epoch's end):
    batch: int = 0  # batches of the epoch's plan already trained
    epoch_tokens: int = 0  # their real tokens
    epoch_losses: np.ndarray | None = None  # their training losses (float32), for the epoch's mean loss
    tokens: int = -1  # real tokens of the epochs before (the curves' x axis); -1: not recorded (older format)
    wall_seconds: float = -1.0  # training seconds before the checkpoint; -1: not recorded (older format)


class CorruptCheckpoint(Exception):
    """A checkpoint whose contents do not match the fingerprint saved with them."""


def _checkpointer(path: Path):
    import orbax.checkpoint as ocp

    # cleanup_tmp_directories: a save killed half-way leaves a temp folder; it goes when the run resumes
    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, cleanup_tmp_directories=True)
    return ocp.CheckpointManager(path.absolute(), item_handlers=ocp.StandardCheckpointHandler(), options=options)


class _EpochMeter:
    """What a long epoch says besides the progress bar: once, early, how long the epoch will take (at the
    rate of its first steps after compiling); and where no bar shows (a log file), a line a minute."""

    WARMUP, MEASURED, EVERY_S = 3, 20, 60.0

    def __init__(self, name: str, batches: int, tokens: int, enabled: bool, lines: bool):
        self.name, self.batches, self.tokens, self.enabled, self.lines = name, batches, tokens, enabled, lines
        self.t0 = self.tokens0 = None
        self.last_line = time.perf_counter()

    def update(self, done: int, tokens: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if done == self.WARMUP:  # the first steps compile: time from here
            self.t0, self.tokens0 = now, tokens
        if self.t0 is None or now <= self.t0:
            return
        rate = (tokens - self.tokens0) / (now - self.t0)
        if done == self.WARMUP + self.MEASURED and self.batches > 4 * done:
            print(f"{self.name}: {self.batches:,} batches, {self.tokens / 1e6:,.1f}M tokens; at {rate:,.0f} tokens/s "
                  f"(steps {self.WARMUP}-{done}) about {duration(self.tokens / max(rate, 1e-9))}",
                  file=sys.stderr, flush=True)
        elif self.lines and now - self.last_line >= self.EVERY_S:
            self.last_line = now
            left = max(self.tokens - tokens, 0) / max(rate, 1e-9)
            print(f"{self.name}: {done / self.batches:4.0%} ({done:,}/{self.batches:,} batches), {rate:,.0f} tokens/s, "
                  f"{duration(left)} left", file=sys.stderr, flush=True)


@dataclass
class FitResult:
    steps: Steps
    best_params: Any  # the parameters (or their moving average) that validated best, on the host
    state: TrainState
    real_token_fraction: float  # real tokens / tokens processed (padding included), over one epoch
    compiled_programs: int
    train_seconds: float  # this process's training loop
    diverged: str = ""  # why training stopped early on a non-finite loss or score, keeping the best epoch
    earlier_seconds: float = 0.0  # a resumed run: the training its earlier processes did, to its checkpoint


def fit(model: SequenceModel, cfg: RnnConfig, task: Task, train: Batcher, val: Ragged, val_y: np.ndarray,
        seed: int, run: Run | None = None, progress: bool = True, y_scale=(0.0, 1.0),
        programs: str = "per-chunk") -> FitResult:
    """Train with early stopping on the validation metric. With a ``run``: log to it, checkpoint after
    every epoch (and every ``cfg.checkpoint_every_s`` seconds within one), and resume from its last
    checkpoint, its metrics log kept up to that checkpoint. A SIGTERM is served between two steps: a
    checkpoint, then :class:`~rnnbench.termination.Terminated`."""
    steps = Steps(model, cfg, task, seed, programs)
    steps.width = int(train.boundaries[-1])  # per-chunk: every training batch one shape, one set of programs
    params = steps.params
    opt_state = steps.tx.init(params)
    best_params = jax.device_get(params)
    ema_params = jax.tree.map(jnp.copy, params) if cfg.ema else None  # the average starts at the initial weights
    state = TrainState()
    metric, _ = primary(task)
    manager = _checkpointer(run.checkpoint_dir) if run is not None else None
    log = run.log if run is not None else (lambda record: None)
    tokens_seen, wall_before = 0, 0.0  # the curve's x axes continue across a resume
    saved_step = None  # the step of the checkpoint on disk
    if manager is not None:
        restored = _restore_latest(manager, run, params, opt_state, best_params, ema_params)
        if restored is not None:
            params, opt_state, best_params, state, ema_params = restored
            saved_step = state.step
            kept = run.truncate_metrics(state.step)
            if state.tokens >= 0:
                tokens_seen, wall_before = state.tokens, state.wall_seconds
            else:  # a checkpoint of an earlier rnnbench, always at an epoch's end: from the log
                tokens_seen = max((r.get("tokens", 0) for r in kept), default=0)
                wall_before = max((r.get("wall_seconds", 0.0) for r in kept), default=0.0)
            log({"event": "resumed", "epoch": state.epoch, "step": state.step,
                 **({"batch": state.batch} if state.batch else {})})

    real, processed = train.padding_stats(
        (lambda w: length_class(w, cfg.chunk)) if programs == "per-batch" else None)
    t_start = time.perf_counter()
    last_save = t_start
    stop = state.bad_evals >= cfg.patience

    def wall() -> float:
        return wall_before + time.perf_counter() - t_start

    diverged = ""

    def stop_diverged(reason: str) -> bool:
        """A non-finite loss or score: a failure before any validated epoch; after one, the end of
        training as early stopping would end it (the best epoch is kept, the reason recorded)."""
        nonlocal diverged
        if state.best_metric is None:
            raise FloatingPointError(reason)
        diverged = f"{reason}; kept the best epoch ({state.best_epoch:g})"
        log({"event": "diverged", "step": state.step, "reason": reason, "best_epoch": state.best_epoch})
        return True

    def evaluate_now(epoch_float: float):
        nonlocal best_params
        weights = params if ema_params is None else ema_params
        scores = predict(steps, weights, val, train.max_len)
        if task.is_regression:
            scores = scores * y_scale[1] + y_scale[0]
        val_metrics = evaluate(task, val_y, scores)
        score = val_metrics[metric]
        if not math.isfinite(score):
            return stop_diverged(f"validation {metric} is {score} at step {state.step}")
        if is_better(task, score, state.best_metric):
            state.best_metric, state.best_epoch, state.bad_evals = score, epoch_float, 0
            best_params = jax.device_get(weights)
        else:
            state.bad_evals += 1
        log({"event": "eval", "step": state.step, "epoch": epoch_float, **{f"val_{k}": v for k, v in val_metrics.items()},
             "val_metric": score, "wall_seconds": wall()})
        return state.bad_evals >= cfg.patience

    def checkpoint(batch: int, epoch_tokens: int, losses: list) -> None:
        """Save the whole state, ``batch`` batches into epoch ``state.epoch`` (0: at its start)."""
        nonlocal saved_step, last_save
        state.batch, state.epoch_tokens = batch, epoch_tokens
        state.epoch_losses = np.asarray(jax.device_get(jnp.stack(losses))) if batch and losses else None
        state.tokens, state.wall_seconds = tokens_seen, wall()
        state.compiled_programs = max(state.compiled_programs, steps.compiled_programs())
        _save(manager, params, opt_state, best_params, state, ema_params)
        saved_step, last_save = state.step, time.perf_counter()

    with _closing(manager), termination.deferred():  # a SIGTERM waits for the next step boundary
        while state.epoch < cfg.epochs and not stop:
            plan = train.epoch(seed, state.epoch)
            start = min(state.batch, len(plan))  # > 0: resumed from a mid-epoch checkpoint
            lr = cfg.learning_rate * cfg.lr_decay ** state.epoch
            if cfg.lr_decay != 1.0:  # a runtime value (inject_hyperparams): no recompile
                opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
            bar = tqdm(total=len(plan), initial=start, desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="batch",
                       disable=None if progress else True, leave=False, dynamic_ncols=True)
            epoch_tokens = state.epoch_tokens if start else 0
            losses = [jnp.asarray(x) for x in state.epoch_losses[:start]] if start else []
            meter = _EpochMeter(f"epoch {state.epoch + 1}/{cfg.epochs}", len(plan) - start, real - epoch_tokens,
                                enabled=progress, lines=progress and bar.disable)
            t_epoch, tokens_at_start = time.perf_counter(), epoch_tokens
            for i in range(start, len(plan)):
                every = cfg.checkpoint_every_s
                due = termination.requested() or (every is not None and time.perf_counter() - last_save >= every)
                if due and manager is not None and state.step != saved_step:
                    checkpoint(i, epoch_tokens, losses)  # between two steps: everything before step i is in
                if termination.requested():
                    bar.close()
                    raise termination.Terminated(f"checkpoint at step {state.step}" if manager is not None
                                                 else f"stopped at step {state.step}")
                bucket, idx = plan[i]
                batch = train.batch(idx, bucket)
                params, opt_state, loss, gnorm = steps.train_step(
                    params, opt_state, batch.tokens, batch.lengths, batch.y, batch.weight, state.step, steps.base_key)
                if ema_params is not None:
                    ema_params = steps.average(ema_params, params)
                state.step += 1
                epoch_tokens += batch.real_tokens
                losses.append(loss)
                if state.step % 20 == 0 or i == len(plan) - 1:
                    loss_v, gnorm_v = float(loss), float(gnorm)
                    if not (math.isfinite(loss_v) and math.isfinite(gnorm_v)):
                        bar.close()
                        stop = stop_diverged(f"loss became {loss_v} (gradient norm {gnorm_v}) at step {state.step}")
                        break
                    tok_s = (epoch_tokens - tokens_at_start) / max(time.perf_counter() - t_epoch, 1e-9)
                    log({"event": "train", "step": state.step, "epoch": state.epoch + (i + 1) / len(plan),
                         "train_loss": loss_v, "grad_norm": gnorm_v, "tokens_per_s": tok_s, "wall_seconds": wall(),
                         "tokens": tokens_seen + epoch_tokens})
                    bar.set_postfix(loss=f"{loss_v:.4f}", tok_s=f"{tok_s:,.0f}")
                meter.update(i + 1 - start, epoch_tokens - tokens_at_start)
                bar.update(1)
                if cfg.eval_every and state.step % cfg.eval_every == 0 and i < len(plan) - 1:
                    if evaluate_now(state.epoch + (i + 1) / len(plan)):
                        stop = True
                        break
            bar.close()
            tokens_seen += epoch_tokens
            if stop:
                break
            state.epoch += 1
            epoch_loss = float(jnp.mean(jnp.stack(losses))) if losses else float("nan")
            log({"event": "epoch", "epoch": state.epoch, "step": state.step, "train_loss_epoch": epoch_loss,
                 "learning_rate": lr,
                 "tokens_per_s": (epoch_tokens - tokens_at_start) / max(time.perf_counter() - t_epoch, 1e-9)})
            stop = evaluate_now(float(state.epoch))  # every epoch ends with an evaluation
            state.compiled_programs = max(state.compiled_programs, steps.compiled_programs())
            if manager is not None:
                checkpoint(0, 0, [])
        state.batch, state.epoch_tokens, state.epoch_losses = 0, 0, None
    return FitResult(steps, best_params, state, real / max(processed, 1),
                     max(state.compiled_programs, steps.compiled_programs()), time.perf_counter() - t_start, diverged,
                     wall_before)


# ----------------------------------------------------------------------------------------- checkpoints


@contextmanager
def _quiet():
    """Within it, orbax's and tensorstore's failed reads and writes (a full disk, a damaged checkpoint) log
    nothing and print no thread tracebacks: a screenful each, which the caller says in one line."""
    import logging
    import threading

    loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
    levels, hooks = [lg.level for lg in loggers], (threading.excepthook, sys.excepthook, sys.unraisablehook)
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    threading.excepthook = sys.unraisablehook = lambda *args: None
    sys.excepthook = lambda *args: None  # what C++ callbacks print their errors with (PyErr_Print)
    before = set(threading.enumerate())
    try:
        yield
    except BaseException:
        _silence_leftovers()  # the save's other writers go on failing after this: said once, by the caller
        for thread in set(threading.enumerate()) - before:  # and most of them fail here, quietly
            try:
                thread.join(timeout=60)
            except RuntimeError:  # not started yet
                pass
        raise
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        threading.excepthook, sys.excepthook, sys.unraisablehook = hooks


_SILENCED: list[bool] = []


def _silence_leftovers() -> None:
    """After a failed save or restore, orbax's abandoned tasks and tensorstore's callbacks into closed event
    loops keep reporting the same failure, as asyncio log records and thread tracebacks, until they are
    collected: from then on this process drops those (and only those)."""
    import logging
    import threading

    if _SILENCED:
        return
    _SILENCED.append(True)

    def leftover(exc) -> bool:
        text = str(exc)
        return "Event loop is closed" in text or "RESOURCE_EXHAUSTED" in text or "DATA_LOSS" in text

    logging.getLogger("asyncio").addFilter(lambda r: "exception was never retrieved" not in r.getMessage())
    logging.getLogger("absl").addFilter(lambda r: not leftover(r.getMessage()))
    unraisable, thread_hook, except_hook = sys.unraisablehook, threading.excepthook, sys.excepthook
    sys.unraisablehook = lambda u: None if leftover(u.exc_value) else unraisable(u)
    threading.excepthook = lambda a: None if leftover(a.exc_value) else thread_hook(a)
    sys.excepthook = lambda t, v, tb: None if leftover(v) else except_hook(t, v, tb)


@contextmanager
def _closing(manager):
    """Close the checkpoint manager however training ends (it waits for a save in flight)."""
    try:
        yield
    except BaseException:
        if manager is not None:
            with _quiet():  # after a failed save its threads may still be failing
                manager.close()
        raise
    else:
        if manager is not None:
            manager.close()


_META_INT = ("epoch", "step", "bad_evals", "compiled_programs", "batch", "epoch_tokens", "tokens")


def _meta(state: TrainState) -> dict:
    losses = state.epoch_losses if state.epoch_losses is not None and len(state.epoch_losses) else np.zeros(1)
    return {**{k: np.array(getattr(state, k), np.int64) for k in _META_INT},
            "best_metric": np.array(np.nan if state.best_metric is None else state.best_metric, np.float64),
            "best_epoch": np.array(state.best_epoch, np.float64),
            "wall_seconds": np.array(state.wall_seconds, np.float64),
            "epoch_losses": np.asarray(losses, np.float32)}  # never empty: orbax stores no 0-length arrays


def _tree(params, opt_state, best_params, state: TrainState, ema_params=None) -> dict:
    extra = {} if ema_params is None else {"ema_params": ema_params}
    return {"params": params, "opt_state": opt_state, "best_params": best_params, **extra, "meta": _meta(state)}


def _fingerprint(tree: dict) -> float:
    """A float64 checksum of every array, the metadata's too (but itself): a garbled checkpoint that still
    decodes shows as a mismatch. Exact: the same arrays give the same sums."""
    leaves = jax.tree.leaves({**tree, "meta": {k: v for k, v in tree["meta"].items() if k != "fingerprint"}})
    return float(sum((k + 1) * np.sum(np.nan_to_num(np.asarray(leaf, np.float64))) for k, leaf in enumerate(leaves)))


def _save(manager, params, opt_state, best_params, state: TrainState, ema_params=None) -> None:
    """Write a checkpoint at ``state.step`` and wait until it is whole; a failure (a full disk) is an
    ``OSError`` naming the checkpoint, the previous checkpoint left as it was."""
    import orbax.checkpoint as ocp

    tree = _tree(params, opt_state, best_params, state, ema_params)
    tree["meta"]["fingerprint"] = np.array(_fingerprint(tree), np.float64)
    where = str(Path(manager.directory) / str(state.step))
    try:
        with _quiet():
            manager.save(state.step, args=ocp.args.StandardSave(tree), force=True)
            manager.wait_until_finished()  # orbax writes asynchronously: a checkpoint counts once it is whole
    except Exception as e:  # noqa: BLE001 - orbax and tensorstore wrap I/O errors in their own types
        cause = next((c for c in _causes(e) if isinstance(c, OSError) and c.errno), None)
        full = "No space left" in str(e) or "RESOURCE_EXHAUSTED" in str(e)  # tensorstore's word for ENOSPC
        code = cause.errno if cause is not None else (errno.ENOSPC if full else errno.EIO)
        why = os.strerror(code) if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else \
            f"{type(e).__name__}: {(str(e).splitlines() or ['?'])[0][:200]}"
        raise OSError(code, f"checkpoint not written ({why})",
                      where) from e


def _causes(e: BaseException):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def _restore(manager, step: int, params, opt_state, best_params, ema_params=None):
    """The checkpoint of ``step``, in the current format or an earlier one (epoch ends only, no position,
    no fingerprint). Raises what orbax raises for an unreadable one, or :class:`CorruptCheckpoint`."""
    import orbax.checkpoint as ocp

    target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                          _tree(params, opt_state, best_params, TrainState(), ema_params))
    saved = manager.item_metadata(step)
    if saved is not None and "meta" in saved:  # the metadata keys (and shapes) this checkpoint has
        target["meta"] = {k: jax.ShapeDtypeStruct(tuple(v.shape), v.dtype) for k, v in saved["meta"].items()}
    tree = manager.restore(step, args=ocp.args.StandardRestore(target))
    meta = {k: np.asarray(v) for k, v in tree["meta"].items()}
    if "fingerprint" in meta and float(meta["fingerprint"]) != _fingerprint(tree):
        raise CorruptCheckpoint("its arrays do not match the fingerprint saved with them")
    best = float(meta["best_metric"])
    state = TrainState(best_metric=None if math.isnan(best) else best, best_epoch=float(meta["best_epoch"]),
                       **{k: int(meta[k]) for k in _META_INT if k in meta},
                       **({"wall_seconds": float(meta["wall_seconds"])} if "wall_seconds" in meta else {}))
    if state.batch:
        state.epoch_losses = np.asarray(meta["epoch_losses"], np.float32)[:state.batch]
        if len(state.epoch_losses) != state.batch:
            raise CorruptCheckpoint(f"{len(state.epoch_losses)} losses saved for {state.batch} batches")
    return tree["params"], tree["opt_state"], jax.device_get(tree["best_params"]), state, tree.get("ema_params")


def _restore_latest(manager, run: Run, params, opt_state, best_params, ema_params=None):
    """The newest checkpoint that reads back whole, or None. One that does not (truncated, garbled, of
    another shape) is deleted with a warning, and the one before it tried; with none left the run trains
    from the start (its metrics log emptied)."""
    steps_on_disk = sorted(manager.all_steps(), reverse=True)
    for step in steps_on_disk:
        try:
            with _quiet():
                return _restore(manager, step, params, opt_state, best_params, ema_params)
        except Exception as e:  # noqa: BLE001 - orbax, tensorstore and numpy fail in their own ways
            reason = f"{type(e).__name__}: {(str(e).splitlines() or ['?'])[0][:200]}"
            print(f"warning: checkpoint {run.checkpoint_dir / str(step)} cannot be read back ({reason}); "
                  "deleted", file=sys.stderr, flush=True)
            shutil.rmtree(run.checkpoint_dir / str(step), ignore_errors=True)
            manager.reload()
    if steps_on_disk:
        print(f"warning: {run.path.name}: no readable checkpoint left: training from the start",
              file=sys.stderr, flush=True)
        run.clear_metrics()
        run.log({"event": "checkpoint_unreadable", "step": 0, "deleted": steps_on_disk})
    return None
