"""The training loop: jit-compiled pure steps, early stopping, orbax checkpoints, resume.

The model is split once (``nnx.split``) into a graph definition and a parameter pytree; the
compiled programs (see :class:`Steps`) are plain ``jax.jit`` functions of that pytree, so nothing
re-walks the object graph per step. Batches are read in chunks of time steps, so the same programs
serve every text length. The learning rate is an injected optax hyper-parameter (a runtime value, not a
compile-time constant). Data order and dropout keys are functions of (seed, epoch, step), so a run
resumed from a checkpoint continues exactly as an uninterrupted one would; checkpoints hold
parameters and optimizer state, never RNG state.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import lax
from tqdm import tqdm

from ..config import RnnConfig
from ..data import Ragged, Task
from ..metrics import evaluate, is_better, primary
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


def chunk_sizes(chunk: int, longest: int) -> list[int]:
    """The steps of each chunk that reads a batch whose longest text has ``longest`` tokens: full
    chunks, the last one halved where half a chunk is enough (two sizes: a bounded set of programs)."""
    n = max(1, -(-longest // chunk))
    tail = chunk // 2 if chunk % 2 == 0 and longest - (n - 1) * chunk <= chunk // 2 else chunk
    return [chunk] * (n - 1) + [tail]


HEAD_KEY = 2**31 - 1  # the head's dropout key: after any chunk index


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
    """

    def __init__(self, model: SequenceModel, cfg: RnnConfig, task: Task, seed: int):
        enable_compilation_cache()
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
            grad_norm = optax.tree.norm(grads)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, grad_norm

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
        self.average = jax.jit(average, donate_argnums=(0,))  # rnn.ema: the weights' moving average
        self.predict_chunk = jax.jit(predict_chunk, static_argnames="size")
        self.eval_batch = 4 * cfg.batch_size  # no backward pass to hold in memory: wider batches
        self.width = 0  # training batches are padded to at least this many tokens (fit: the widest bucket)
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
        width = max(self.width, -(-tokens.shape[1] // c) * c)
        if width != tokens.shape[1]:
            tokens = np.pad(tokens, ((0, 0), (0, width - tokens.shape[1])))
        sizes = chunk_sizes(c, int(lengths.max()))
        tokens, lengths, step = jax.device_put((tokens, lengths, np.int32(step)))
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
        loss, grads = self.gradients(params, tokens, lengths, y, w, step, base_key)
        params, opt_state, grad_norm = self.apply_step(params, opt_state, grads)
        return params, opt_state, loss, grad_norm

    def compiled_programs(self) -> int:
        return sum(f._cache_size() for f in (self.forward_chunk, self.head_step, self.backward_chunk,
                                             self.apply_step, self.predict_chunk, self.average))


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


def _checkpointer(path: Path):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
    return ocp.CheckpointManager(path.absolute(), options=options)


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
                  f"(steps {self.WARMUP}-{done}) about {_duration(self.tokens / max(rate, 1e-9))}",
                  file=sys.stderr, flush=True)
        elif self.lines and now - self.last_line >= self.EVERY_S:
            self.last_line = now
            left = max(self.tokens - tokens, 0) / max(rate, 1e-9)
            print(f"{self.name}: {done / self.batches:4.0%} ({done:,}/{self.batches:,} batches), {rate:,.0f} tokens/s, "
                  f"{_duration(left)} left", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@dataclass
class FitResult:
    steps: Steps
    best_params: Any  # the parameters (or their moving average) that validated best, on the host
    state: TrainState
    real_token_fraction: float  # real tokens / tokens processed (padding included), over one epoch
    compiled_programs: int
    train_seconds: float  # this process's training loop


def fit(model: SequenceModel, cfg: RnnConfig, task: Task, train: Batcher, val: Ragged, val_y: np.ndarray,
        seed: int, run: Run | None = None, progress: bool = True, y_scale=(0.0, 1.0)) -> FitResult:
    """Train with early stopping on the validation metric. With a ``run``: log to it, checkpoint after
    every epoch, and resume from its last checkpoint, its metrics log kept up to that checkpoint."""
    steps = Steps(model, cfg, task, seed)
    steps.width = int(train.boundaries[-1])  # every training batch one shape: one set of programs
    params = steps.params
    opt_state = steps.tx.init(params)
    best_params = jax.device_get(params)
    ema_params = jax.tree.map(jnp.copy, params) if cfg.ema else None  # the average starts at the initial weights
    state = TrainState()
    metric, _ = primary(task)
    manager = _checkpointer(run.checkpoint_dir) if run is not None else None
    log = run.log if run is not None else (lambda record: None)
    tokens_seen, wall_before = 0, 0.0  # the curve's x axes continue across a resume
    if manager is not None and manager.latest_step() is not None:
        params, opt_state, best_params, state, ema_params = _restore(manager, params, opt_state, best_params,
                                                                     ema_params)
        kept = run.truncate_metrics(state.step)
        tokens_seen = max((r.get("tokens", 0) for r in kept), default=0)
        wall_before = max((r.get("wall_seconds", 0.0) for r in kept), default=0.0)
        log({"event": "resumed", "epoch": state.epoch, "step": state.step})

    real, processed = train.padding_stats()
    t_start = time.perf_counter()
    stop = state.bad_evals >= cfg.patience

    def wall() -> float:
        return wall_before + time.perf_counter() - t_start

    def evaluate_now(epoch_float: float):
        nonlocal best_params
        weights = params if ema_params is None else ema_params
        scores = predict(steps, weights, val, train.max_len)
        if task.is_regression:
            scores = scores * y_scale[1] + y_scale[0]
        val_metrics = evaluate(task, val_y, scores)
        score = val_metrics[metric]
        if not math.isfinite(score):
            raise FloatingPointError(f"validation {metric} is {score} at step {state.step}")
        if is_better(task, score, state.best_metric):
            state.best_metric, state.best_epoch, state.bad_evals = score, epoch_float, 0
            best_params = jax.device_get(weights)
        else:
            state.bad_evals += 1
        log({"event": "eval", "step": state.step, "epoch": epoch_float, **{f"val_{k}": v for k, v in val_metrics.items()},
             "val_metric": score, "wall_seconds": wall()})
        return state.bad_evals >= cfg.patience

    while state.epoch < cfg.epochs and not stop:
        plan = train.epoch(seed, state.epoch)
        lr = cfg.learning_rate * cfg.lr_decay ** state.epoch
        if cfg.lr_decay != 1.0:  # a runtime value (inject_hyperparams): no recompile
            opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
        bar = tqdm(total=len(plan), desc=f"epoch {state.epoch + 1}/{cfg.epochs}", unit="batch",
                   disable=None if progress else True, leave=False, dynamic_ncols=True)
        meter = _EpochMeter(f"epoch {state.epoch + 1}/{cfg.epochs}", len(plan), real, enabled=progress,
                            lines=progress and bar.disable)
        t_epoch, epoch_tokens, losses = time.perf_counter(), 0, []
        for i, (bucket, idx) in enumerate(plan):
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
                    raise FloatingPointError(f"loss became {loss_v} (gradient norm {gnorm_v}) at step {state.step}")
                tok_s = epoch_tokens / max(time.perf_counter() - t_epoch, 1e-9)
                log({"event": "train", "step": state.step, "epoch": state.epoch + (i + 1) / len(plan),
                     "train_loss": loss_v, "grad_norm": gnorm_v, "tokens_per_s": tok_s, "wall_seconds": wall(),
                     "tokens": tokens_seen + epoch_tokens})
                bar.set_postfix(loss=f"{loss_v:.4f}", tok_s=f"{tok_s:,.0f}")
            meter.update(i + 1, epoch_tokens)
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
             "learning_rate": lr, "tokens_per_s": epoch_tokens / max(time.perf_counter() - t_epoch, 1e-9)})
        stop = evaluate_now(float(state.epoch))  # every epoch ends with an evaluation
        state.compiled_programs = max(state.compiled_programs, steps.compiled_programs())
        if manager is not None:
            _save(manager, params, opt_state, best_params, state, ema_params)
    if manager is not None:
        manager.wait_until_finished()
        manager.close()
    return FitResult(steps, best_params, state, real / max(processed, 1),
                     max(state.compiled_programs, steps.compiled_programs()), time.perf_counter() - t_start)


# ----------------------------------------------------------------------------------------- checkpoints


def _tree(params, opt_state, best_params, state: TrainState, ema_params=None) -> dict:
    extra = {} if ema_params is None else {"ema_params": ema_params}
    return {"params": params, "opt_state": opt_state, "best_params": best_params, **extra,
            "meta": {"epoch": np.array(state.epoch, np.int64), "step": np.array(state.step, np.int64),
                     "best_metric": np.array(np.nan if state.best_metric is None else state.best_metric, np.float64),
                     "best_epoch": np.array(state.best_epoch, np.float64),
                     "bad_evals": np.array(state.bad_evals, np.int64),
                     "compiled_programs": np.array(state.compiled_programs, np.int64)}}


def _save(manager, params, opt_state, best_params, state: TrainState, ema_params=None) -> None:
    import orbax.checkpoint as ocp

    manager.save(state.step, args=ocp.args.StandardSave(_tree(params, opt_state, best_params, state, ema_params)))
    manager.wait_until_finished()  # orbax writes asynchronously: a checkpoint counts once it is whole


def _restore(manager, params, opt_state, best_params, ema_params=None):
    import orbax.checkpoint as ocp

    target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                          _tree(params, opt_state, best_params, TrainState(), ema_params))
    tree = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(target))
    meta = tree["meta"]
    best = float(meta["best_metric"])
    state = TrainState(epoch=int(meta["epoch"]), step=int(meta["step"]),
                       best_metric=None if math.isnan(best) else best, best_epoch=float(meta["best_epoch"]),
                       bad_evals=int(meta["bad_evals"]), compiled_programs=int(meta["compiled_programs"]))
    return tree["params"], tree["opt_state"], jax.device_get(tree["best_params"]), state, tree.get("ema_params")

