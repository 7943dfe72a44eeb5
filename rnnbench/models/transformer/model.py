"""A small Transformer encoder in flax nnx: token embeddings plus positions (learned or sinusoidal), pre-layer-
norm blocks of multi-head self-attention and a GELU feed-forward layer, a final layer norm, and the mean of
the real tokens' outputs (or a learned first token's output) into the task's head.

Attention is ``jax.nn.dot_product_attention`` with each text's length as its key length, so padding is
never attended to and a text's prediction does not depend on its batch; on a GPU in bfloat16 it takes
cuDNN's fused kernel (``transformer.attention``). Texts are cut to ``data.max_len`` tokens as the RNN's are.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..jaxtrain.optim import n_outputs
from ..jaxtrain.sequence import WIDTH_MULTIPLE, TokenModel
from .spec import TransformerConfig


def attention_implementation(setting: str, dtype: str) -> str:
    """``transformer.attention`` resolved: auto is cuDNN's fused kernel on a GPU in bfloat16, else XLA's."""
    if setting != "auto":
        return setting
    device = jax.config.jax_default_device or jax.devices()[0]
    return "cudnn" if device.platform == "gpu" and dtype == "bfloat16" else "xla"


def sinusoids(length: int, width: int) -> np.ndarray:
    """Vaswani et al.'s fixed positions ``(length, width)``: sin and cos at geometric wavelengths."""
    pos = np.arange(length)[:, None]
    rates = np.exp(-math.log(10000.0) * np.arange(0, width, 2) / width)[None, :]
    out = np.zeros((length, width), np.float32)
    out[:, 0::2] = np.sin(pos * rates)
    out[:, 1::2] = np.cos(pos * rates)[:, : width // 2]
    return out


def alibi_slopes(heads: int) -> np.ndarray:
    """ALiBi's per-head slopes (Press et al. 2022): ``2^(-8 h / heads)`` for h = 1..heads."""
    return 2.0 ** (-8.0 * np.arange(1, heads + 1) / heads)


BLOCKED = -1e9  # the bias of a key a head does not look at (its softmax weight underflows to 0)


def distance_bias(t: int, heads: int) -> jax.Array:
    """The attention bias ``(1, heads, t, t)`` of ALiBi positions: minus a head's slope times the distance
    between query and key. The first half of the heads (rounded up) look at a token and the tokens before
    it, the others at it and the tokens after it, each half with ALiBi's slopes: a bias by distance alone,
    the same both ways, would leave a model that cannot tell a text from its reverse."""
    offset = np.arange(t)[None, :] - np.arange(t)[:, None]  # key - query
    left = -(-heads // 2)
    out = np.empty((heads, t, t), np.float32)
    for h, slope in enumerate(alibi_slopes(left)):
        out[h] = np.where(offset <= 0, slope * offset, BLOCKED)
    for h, slope in enumerate(alibi_slopes(heads - left) if heads > left else []):
        out[left + h] = np.where(offset >= 0, -slope * offset, BLOCKED)
    return jnp.asarray(out)[None]


def _dropout(x, rate, key):
    if key is None or rate <= 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class Block(nnx.Module):
    """x + dropout(attention(LN(x))), then x + dropout(FFN(LN(x)))."""

    def __init__(self, cfg: TransformerConfig, implementation: str, *, rngs: nnx.Rngs):
        d, dtype = cfg.width, jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
        self.heads, self.dropout, self.implementation = cfg.heads, cfg.dropout, implementation
        self.ln1, self.ln2 = nnx.LayerNorm(d, rngs=rngs), nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(d, d, dtype=dtype, rngs=rngs)
        self.ff1 = nnx.Linear(d, cfg.ffn, dtype=dtype, rngs=rngs)
        self.ff2 = nnx.Linear(cfg.ffn, d, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, lengths: jax.Array, keys=(None, None), bias=None) -> jax.Array:
        """``x`` ``(B * T, D)``: the residual stream kept two-dimensional, so that every matmul and its
        gradients are plain ones (XLA's CPU backend runs a batched or multi-axis contraction far slower)."""
        b, t = lengths.shape[0], x.shape[0] // lengths.shape[0]
        d = x.shape[1]
        q, k, v = (a.reshape(b, t, self.heads, d // self.heads) for a in jnp.split(self.qkv(self.ln1(x)), 3, axis=-1))
        if bias is not None:
            bias = bias.astype(q.dtype)
        a = jax.nn.dot_product_attention(q, k, v, bias, key_value_seq_lengths=lengths, implementation=self.implementation)
        x = x + _dropout(self.out(a.reshape(b * t, d)).astype(x.dtype), self.dropout, keys[0])
        h = self.ff2(jax.nn.gelu(self.ff1(self.ln2(x))))
        return x + _dropout(h.astype(x.dtype), self.dropout, keys[1])


class Encoder(nnx.Module):
    """Tokens ``(B, W)`` right-padded to ``lengths`` → outputs ``(B, n_out)``."""

    def __init__(self, vocab_size: int, n_out: int, max_len: int, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        d = cfg.width
        self.width, self.dropout, self.pooling, self.positions = d, cfg.dropout, cfg.pooling, cfg.positions
        self.first = 1 if cfg.pooling == "first" else 0  # a learned token put before each text
        self.n_positions = -(-max_len // WIDTH_MULTIPLE) * WIDTH_MULTIPLE + self.first  # the widest padded batch
        normal = nnx.initializers.normal(1.0)  # tokens and positions on the sinusoids' scale
        self.embed = nnx.Embed(vocab_size, d, embedding_init=normal, rngs=rngs)
        self.pos = nnx.Param(normal(rngs.params(), (self.n_positions, d))) if cfg.positions == "learned" else None
        self.heads = cfg.heads
        self.cls = nnx.Param(normal(rngs.params(), (1, 1, d))) if self.first else None
        implementation = attention_implementation(cfg.attention, cfg.dtype)
        self.blocks = nnx.List([Block(cfg, implementation, rngs=rngs) for _ in range(cfg.layers)])
        self.ln = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, n_out, rngs=rngs)

    def __call__(self, tokens: jax.Array, lengths: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        b = tokens.shape[0]
        x = self.embed(tokens)
        if self.first:
            x = jnp.concatenate([jnp.broadcast_to(self.cls[...], (b, 1, self.width)), x], axis=1)
        t = x.shape[1]
        lengths = jnp.maximum(lengths + self.first, 1)  # an empty text attends to its (zero) first position
        bias = None
        if self.positions == "learned":
            x = x + self.pos[...][:t][None]
        elif self.positions == "sinusoidal":
            x = x + jnp.asarray(sinusoids(t, self.width))[None]
        else:
            bias = distance_bias(t, self.heads)
        keys = [None] * (2 * len(self.blocks) + 1)
        if dropout_key is not None and self.dropout > 0:
            keys = list(jax.random.split(dropout_key, len(keys)))
        x = _dropout(x, self.dropout, keys[0]).reshape(b * t, self.width)
        for i, block in enumerate(self.blocks):
            x = block(x, lengths, (keys[2 * i + 1], keys[2 * i + 2]), bias)
        x = self.ln(x).reshape(b, t, self.width)
        if self.first:
            pooled = x[:, 0]
        else:
            mask = (jnp.arange(t)[None, :] < lengths[:, None]).astype(x.dtype)[..., None]
            pooled = jnp.sum(x * mask, axis=1) / jnp.sum(mask, axis=1)
        return self.head(pooled)


class Transformer(TokenModel):
    """The ``transformer`` kind: the :class:`rnnbench.models.base.Model` surface of :class:`Encoder`."""

    kind = "transformer"
    eval_factor = 1  # evaluation holds a (B, heads, W, W) attention matrix per layer: training's batch size

    def build(self, vocab_size: int, rngs: nnx.Rngs) -> Encoder:
        return Encoder(vocab_size, n_outputs(self.task), self.cfg.data.max_len, self.cfg.transformer, rngs=rngs)
