"""fastText's classifier (Joulin et al. 2016) in flax nnx: a text is the mean of the embeddings of its words
and of its word n-grams, hashed into ``buckets`` rows; a linear layer maps that mean to the outputs (a
sigmoid, softmax or linear head, as the task needs: :mod:`rnnbench.models.jaxtrain.optim`).

It sees word order only inside its n-grams. The n-grams are hashed inside the compiled step from adjacent
token ids (``h = h * 116049371 + id`` in 32-bit arithmetic, fastText's multiplier), padding masked, so a
batch goes to the device as token ids like the RNN's.

Training updates only the rows of the table that the batch has (:class:`SparseSteps`), as fastText's SGD
does: its cost per step follows the batch, not the table (``buckets`` is free in time, not in memory).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ..jaxtrain.optim import global_norm, loss_fn, n_outputs
from ..jaxtrain.sequence import BatchSteps, TokenModel
from .spec import FastTextConfig

HASH_MULTIPLIER = 116049371  # fastText's n-gram hash multiplier


def ngram_ids(tokens: jax.Array, lengths: jax.Array, n: int, vocab: int, buckets: int) -> jax.Array:
    """The table rows of every ``n``-gram of ``tokens`` ``(B, W)``: ``vocab + hash % buckets``, ``(B, W)``
    (slot ``i`` holds the n-gram starting at token ``i``; slots past a text's last n-gram are -1)."""
    b, w = tokens.shape
    t = tokens.astype(jnp.uint32)
    h = t[:, : w - n + 1] if w >= n else jnp.zeros((b, 0), jnp.uint32)
    for k in range(1, n):
        h = h * jnp.uint32(HASH_MULTIPLIER) + t[:, k: w - n + 1 + k]
    ids = (h % jnp.uint32(buckets)).astype(jnp.int32) + vocab
    ids = jnp.pad(ids, ((0, 0), (0, w - ids.shape[1])), constant_values=-1)
    valid = jnp.arange(w)[None, :] + n <= lengths[:, None]
    return jnp.where(valid, ids, -1)


class BagOfNgrams(nnx.Module):
    """Embedding table (vocabulary, then ``buckets`` n-gram rows) → mean over a text's words and n-grams →
    dropout → linear layer. Initialised as fastText: embeddings uniform in ±1/dim, the linear layer zero."""

    def __init__(self, vocab_size: int, n_out: int, cfg: FastTextConfig, *, rngs: nnx.Rngs):
        self.vocab, self.ngrams, self.buckets, self.dropout = vocab_size, cfg.ngrams, cfg.buckets, cfg.dropout
        self.rows = vocab_size + (cfg.buckets if cfg.ngrams > 1 else 0)
        scale = 1.0 / cfg.embed_dim
        self.embed = nnx.Embed(self.rows, cfg.embed_dim, rngs=rngs,
                               embedding_init=lambda k, s, d=jnp.float32: jax.random.uniform(k, s, d, -scale, scale))
        self.head = nnx.Linear(cfg.embed_dim, n_out, kernel_init=nnx.initializers.zeros, rngs=rngs)

    def features(self, tokens: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(ids, weights)``, each ``(B, ngrams * W)``: the table row of every word and n-gram of each text
        (``rows``, out of range, for padding) and its weight in the text's mean (1 / their count; 0 for
        padding)."""
        w = tokens.shape[1]
        words = jnp.where(jnp.arange(w)[None, :] < lengths[:, None], tokens, -1)
        ids = jnp.concatenate([words] + [ngram_ids(tokens, lengths, n, self.vocab, self.buckets)
                                         for n in range(2, self.ngrams + 1)], axis=1)
        valid = ids >= 0
        count = jnp.sum(valid, axis=1, keepdims=True)
        weights = valid.astype(jnp.float32) / jnp.maximum(count, 1).astype(jnp.float32)
        return jnp.where(valid, ids, self.rows), weights

    def bag(self, ids: jax.Array, weights: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """Outputs ``(B, n_out)`` from the table rows ``ids`` and their weights (rows out of range read 0)."""
        x = self.embed.embedding[...].at[ids].get(mode="fill", fill_value=0.0)  # (B, F, E)
        mean = jnp.einsum("bf,bfe->be", weights, x)
        if dropout_key is not None and self.dropout > 0:
            keep = jax.random.bernoulli(dropout_key, 1.0 - self.dropout, mean.shape)
            mean = jnp.where(keep, mean / (1.0 - self.dropout), 0.0)
        return self.head(mean)

    def __call__(self, tokens: jax.Array, lengths: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        return self.bag(*self.features(tokens, lengths), dropout_key)


class SparseSteps(BatchSteps):
    """fastText's training step: the gradient, the optimizer's state and the update of the embedding table
    are taken over the rows the batch has (at most ``ngrams * B * W``), gathered, updated by the
    configured optax optimizer and scattered back; the other rows, and their optimizer state, stay as they
    are (a "lazy" update: for sgd and adagrad the same as the dense one; for momentum, rmsprop, adadelta and
    adam a row's moments decay only in the steps that have it). The gradient norm (clipping, the log) is the
    dense gradient's: the rows left out have zero gradient."""

    def step_fn(self):
        task, tx, graphdef = self.task, self.tx, self.graphdef
        table_shape = self.params["embed"]["embedding"].shape
        if sum(leaf.shape == table_shape for leaf in jax.tree.leaves(self.params)) != 1:
            raise ValueError(f"fasttext: another parameter has the embedding table's shape {table_shape}")

        def is_table(leaf) -> bool:
            return getattr(leaf, "shape", None) == table_shape

        def step(params, opt_state, tokens, lengths, y, w, base_key, step):
            model = nnx.merge(graphdef, params)
            ids, weights = model.features(tokens, lengths)
            flat, n = ids.ravel(), ids.size
            # each row's representative: its last slot in the batch (no sort: a scatter-max into one int per row)
            slot = jnp.arange(n, dtype=jnp.int32)
            rep = jnp.full(model.rows + 1, -1, jnp.int32).at[flat].max(slot)[flat]
            target = jnp.where((rep == slot) & (flat < model.rows), flat, model.rows)  # others: dropped

            def gather(tree):
                return jax.tree.map(lambda a: a.at[flat].get(mode="fill", fill_value=0) if is_table(a) else a, tree)

            def scatter(full, part):
                return jax.tree.map(lambda a, p: a.at[target].set(p, mode="drop") if is_table(a) else p, full, part)

            view, key = gather(params), self.dropout_key(base_key, step)
            # the bag reads every slot's row at its representative: the gradient of a row lands there, once
            loss, grads = jax.value_and_grad(
                lambda p: loss_fn(task, nnx.merge(graphdef, p).bag(rep.reshape(ids.shape), weights, key), y, w))(view)
            grad_norm = global_norm(grads)
            updates, new_state = tx.update(grads, gather(opt_state), view)
            return scatter(params, optax.apply_updates(view, updates)), scatter(opt_state, new_state), loss, grad_norm

        return step


class FastText(TokenModel):
    """The ``fasttext`` kind: the :class:`rnnbench.models.base.Model` surface of :class:`BagOfNgrams`."""

    kind = "fasttext"

    def build(self, vocab_size: int, rngs: nnx.Rngs) -> BagOfNgrams:
        return BagOfNgrams(vocab_size, n_outputs(self.task), self.cfg.fasttext, rngs=rngs)

    def make_steps(self, model: BagOfNgrams, widths) -> SparseSteps:
        opts = self.options
        return SparseSteps(model, opts, self.task, self.seed, widths, self.cfg.data.max_len,
                           self.eval_factor * opts.batch_size)
