"""The sequence model: embedding → stacked recurrent layers → last state → head (flax nnx)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .cells import N_GATES, gru_recurrence, lstm_recurrence, scan_recurrence, simple_recurrence
from .spec import RnnConfig


def _init_matrix(kind: str, scale: float, key, shape: tuple[int, int], n_gates: int) -> jax.Array:
    """One ``(in, n_gates * H)`` matrix; orthogonal init is per gate block (Passage: scale 1.1)."""
    if kind == "gaussian":
        return 0.05 * jax.random.normal(key, shape)
    if kind == "uniform":
        return jax.random.uniform(key, shape, minval=-0.05, maxval=0.05)
    fan_in, out = shape
    hidden = out // n_gates
    blocks = [scale * jax.nn.initializers.orthogonal()(k, (fan_in, hidden)) for k in jax.random.split(key, n_gates)]
    return jnp.concatenate(blocks, axis=1)


class Recurrent(nnx.Module):
    """One recurrent layer (GRU, LSTM or simple tanh RNN) over time-major inputs with a mask."""

    def __init__(self, cell: str, in_dim: int, hidden: int, cfg: RnnConfig, *, rngs: nnx.Rngs):
        g = N_GATES[cell]
        self.cell, self.hidden = cell, hidden
        self.gate, self.unroll = cfg.gate, cfg.unroll
        self.dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
        self.wx = nnx.Param(_init_matrix(cfg.init, cfg.init_scale, rngs.params(), (in_dim, g * hidden), g))
        self.wh = nnx.Param(_init_matrix(cfg.init, cfg.init_scale, rngs.params(), (hidden, g * hidden), g))
        bias = np.zeros(g * hidden, np.float32)
        if cell == "lstm":
            bias[hidden:2 * hidden] = 1.0  # forget gate starts open
        self.bx = nnx.Param(jnp.asarray(bias))
        self.bh = nnx.Param(jnp.zeros(g * hidden))
        n_states = 2 if cell == "lstm" else 1
        self.h0 = nnx.Param(jnp.zeros((n_states, hidden))) if cfg.learned_init_state else None

    def initial_state(self, b: int) -> list[jax.Array]:
        """``[h]`` (or ``[h, c]`` for the LSTM), each ``(B, H)``: learned, or zeros."""
        if self.h0 is not None:
            return [jnp.broadcast_to(s, (b, self.hidden)) for s in self.h0[...]]
        return [jnp.zeros((b, self.hidden))] * (2 if self.cell == "lstm" else 1)

    def _project(self, x: jax.Array) -> jax.Array:
        """``x W_x`` ``(T, B, G*H)`` for all steps in one matmul; the recurrences add ``b_x`` in their steps."""
        t, b, _ = x.shape
        return jnp.dot(x.reshape(t * b, -1).astype(self.dtype), self.wx[...].astype(self.dtype),
                       preferred_element_type=jnp.float32).reshape(t, b, -1)

    def advance(self, x: jax.Array, mask: jax.Array, state: list[jax.Array]) -> tuple[jax.Array, list[jax.Array]]:
        """Run over ``x`` ``(T, B, in)`` from ``state``: all hidden states and the final state.

        The final state is each text's last real one (states are frozen on padding), so a text can be
        read chunk by chunk, carrying the state, in training (with gradients) and in evaluation.
        """
        wh, bh, bx, xw = self.wh[...], self.bh[...], self.bx[...], self._project(x)
        if self.cell == "gru":
            hs = gru_recurrence(wh, bh, bx, xw, mask, state[0], self.gate, self.unroll, self.dtype)
            return hs, [hs[-1]]
        if self.cell == "lstm":
            hs, c = lstm_recurrence(wh, bh, bx, xw, mask, state[0], state[1], self.gate, self.unroll, self.dtype)
            return hs, [hs[-1], c]
        hs = simple_recurrence(wh, bh, bx, xw, mask, state[0], self.unroll, self.dtype)
        return hs, [hs[-1]]

    def reference(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """All hidden states from the initial state by JAX's plain scan, differentiated by JAX itself:
        the oracle that the hand-written backwards and the chunked trainer are tested against."""
        return scan_recurrence(self.cell, self.wh[...], self.bh[...], self._project(x) + self.bx[...], mask,
                               self.initial_state(x.shape[1]), self.gate, self.unroll, self.dtype)


class SequenceModel(nnx.Module):
    def __init__(self, vocab_size: int, n_out: int, cfg: RnnConfig, *, rngs: nnx.Rngs):
        self.dropout, self.input_dropout = cfg.dropout, cfg.input_dropout
        self.embed = nnx.Embed(vocab_size, cfg.embed_dim, rngs=rngs,
                               embedding_init=nnx.initializers.uniform(0.1))  # U(0, 0.1) shifted below
        self.embed.embedding[...] = self.embed.embedding[...] - 0.05  # Passage: uniform ±0.05
        dims = [cfg.embed_dim] + [cfg.hidden_dim] * cfg.layers
        self.layers = nnx.List([Recurrent(cfg.cell, dims[i], dims[i + 1], cfg, rngs=rngs) for i in range(cfg.layers)])
        self.head = nnx.Linear(cfg.hidden_dim, n_out, rngs=rngs)

    def __call__(self, tokens: jax.Array, lengths: jax.Array, reference: bool = False) -> jax.Array:
        """Outputs ``(B, n_out)`` for ``tokens`` ``(B, T)`` right-padded to ``lengths``, in one pass
        (no dropout). ``reference``: the layers run :meth:`Recurrent.reference` instead."""
        x = self.embed(tokens.T)  # (T, B, E): time-major from the start, no transpose of activations
        if not reference:
            return self.output(self.advance(x, lengths, self.initial_states(tokens.shape[0])))
        mask = (jnp.arange(tokens.shape[1])[:, None] < lengths[None, :]).astype(jnp.float32)[..., None]
        for layer in self.layers:
            x = layer.reference(x, mask)
        return self.head(x[-1])  # states are frozen after each text's end: x[-1] is its last real state

    def initial_states(self, b: int) -> list[list[jax.Array]]:
        return [layer.initial_state(b) for layer in self.layers]

    def advance(self, x: jax.Array, remaining: jax.Array, states: list[list[jax.Array]],
                dropout_key: jax.Array | None = None) -> list[list[jax.Array]]:
        """The states after the next chunk of each text: ``x`` ``(W, B, E)`` embedded tokens of which
        ``remaining`` ``(B,)`` are real (0 once a text has ended). Reading a text chunk by chunk gives
        the same states as one pass over it (dropout aside: each chunk draws its own masks)."""
        mask = (jnp.arange(x.shape[0])[:, None] < remaining[None, :]).astype(jnp.float32)[..., None]
        keys = list(jax.random.split(dropout_key, len(self.layers))) if dropout_key is not None else None
        if dropout_key is not None and self.input_dropout > 0:  # Passage's p_drop: each input unit dropped
            x = _dropout(x, self.input_dropout, jax.random.fold_in(dropout_key, INPUT_DROPOUT_KEY))
        new = []
        for i, (layer, state) in enumerate(zip(self.layers, states)):
            x, state = layer.advance(x, mask, state)
            new.append(state)
            if keys is not None and self.dropout > 0 and i < len(self.layers) - 1:
                x = _dropout(x, self.dropout, keys[i])
        return new

    def output(self, states: list[list[jax.Array]], dropout_key: jax.Array | None = None) -> jax.Array:
        """The head on the top layer's hidden state: ``(B, n_out)``."""
        h = states[-1][0]
        if dropout_key is not None and self.dropout > 0:
            h = _dropout(h, self.dropout, dropout_key)
        return self.head(h)

    def resume(self, tokens: jax.Array, remaining: jax.Array, states: list[list[jax.Array]]):
        """Inference on the next chunk ``tokens`` ``(B, W)`` of each text: (new states, outputs
        ``(B, n_out)`` of the states so far). One compiled program serves every text length."""
        new = self.advance(self.embed(tokens.T), remaining, states)
        return new, self.output(new)


INPUT_DROPOUT_KEY = 2**31 - 2  # folded into a chunk's dropout key for the embedded tokens' mask


def _dropout(x, rate, key):
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)
