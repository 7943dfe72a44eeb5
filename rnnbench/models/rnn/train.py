"""The RNN's compiled programs: chunked backpropagation through time on a CPU, one program per batch on a
GPU, and evaluation chunk by chunk.

The model is split once (``nnx.split``) into a graph definition and a parameter pytree; the compiled
programs (see :class:`Steps`) are plain ``jax.jit`` functions of that pytree, so nothing re-walks the
object graph per step. Batches are read in chunks of time steps, so the same programs serve every text
length. :class:`Steps` is the :class:`~rnnbench.models.jaxtrain.loop.Trainable` the shared training loop
drives (epochs, validation, early stopping, checkpoints, resume: :mod:`rnnbench.models.jaxtrain`).
"""

from __future__ import annotations

from typing import get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import lax

from ...config import TrainPrograms
from ...data import Ragged, Task
from ..jaxtrain.batching import Batch, eval_batches
from ..jaxtrain.compile_cache import enable_compilation_cache
from ..jaxtrain.optim import global_norm, loss_fn, make_optimizer, outputs_to_scores
from .model import SequenceModel
from .spec import RnnConfig


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

    def __init__(self, model: SequenceModel, cfg: RnnConfig, task: Task, seed: int, programs: str = "per-chunk",
                 max_len: int | None = None):
        """The training programs, compiled on first use (long: each is a closure over the graph definition,
        written beside the programs whose gradients it must agree with)."""
        if programs not in PROGRAMS:
            raise ValueError(f"programs: expected one of {', '.join(PROGRAMS)}, got {programs!r}")
        enable_compilation_cache()
        self.programs, self.max_len = programs, max_len
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

        self.forward_chunk = jax.jit(forward_chunk, static_argnames="size")
        self.head_step = jax.jit(head_step)
        self.backward_chunk = jax.jit(backward_chunk, donate_argnums=(3,), static_argnames="size")
        self.apply_step = jax.jit(apply_step, donate_argnums=(0, 1))
        self.batch_step = jax.jit(batch_step, donate_argnums=(0, 1))
        self.predict_chunk = self._predict_program(chunk_tokens)
        self.eval_batch = 4 * cfg.batch_size  # no backward pass to hold in memory: wider batches
        self.width = 0  # per-chunk: training batches are padded to at least this many tokens (fit: the widest bucket)
        self._blank, self._index = {}, []
        # per-batch: the widths batches are padded to (the loop's padding statistics)
        self.pad_width = (lambda w: length_class(w, self.chunk)) if programs == "per-batch" else None

    def _predict_program(self, chunk_tokens):
        """``predict_chunk``: evaluation reads a batch one chunk at a time, carrying the states, no residuals."""
        graphdef, task = self.graphdef, self.task

        def predict_chunk(params, states, batch_tokens, lengths, index, size):
            tokens = chunk_tokens(batch_tokens, index, size)  # sliced here, as in training: no copy per call
            remaining = jnp.clip(lengths - index * self.chunk, 0, size)
            model = nnx.merge(graphdef, params)
            init = model.initial_states(tokens.shape[0])
            states = jax.tree.map(lambda s, i: jnp.where(index == 0, i, s), states, init)
            states, out = model.resume(tokens, remaining, states)
            return states, outputs_to_scores(task, out)

        return jax.jit(predict_chunk, static_argnames="size")

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

    def train_step(self, params, opt_state, batch: Batch, step: int):
        """One update on ``batch`` (the loop's :class:`~rnnbench.models.jaxtrain.loop.Trainable` step):
        (params, opt_state, loss, gradient norm). Donates ``params`` and ``opt_state``."""
        return self.update(params, opt_state, batch.tokens, batch.lengths, batch.y, batch.weight, step, self.base_key)

    def update(self, params, opt_state, tokens, lengths, y, w, step, base_key):
        """:meth:`train_step` on arrays: one update, per batch or chunk by chunk."""
        if self.programs == "per-batch":  # one call, one program per length class
            tokens, lengths, step = _on_device(tokens, lengths, step, length_class(tokens.shape[1], self.chunk))
            return self.batch_step(params, opt_state, tokens, lengths, y, w, base_key, step)
        loss, grads = self.gradients(params, tokens, lengths, y, w, step, base_key)
        params, opt_state, grad_norm = self.apply_step(params, opt_state, grads)
        return params, opt_state, loss, grad_norm

    def compiled_programs(self) -> int:
        return sum(f._cache_size() for f in (self.forward_chunk, self.head_step, self.backward_chunk,
                                             self.apply_step, self.batch_step, self.predict_chunk))

    def predict(self, params, seqs: Ragged) -> np.ndarray:
        """Scores of every text of ``seqs`` (the loop's validation step), read to ``max_len`` tokens."""
        return predict(self, params, seqs, self.max_len)


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
