"""Recurrent layers with masking: the state is frozen at padded positions.

All layers run time-major: inputs ``(T, B, D)``, a mask ``(T, B, 1)`` of 1.0 for real tokens, and
return every state ``(T, B, H)``. Because padded steps leave the state unchanged, the last state is
the state after the last real token, and a text gets the same answer alone or batched with longer
texts.

The input projection ``x @ W_x`` for all gates and all steps is one large matmul outside the scan;
the scan does only ``h @ W_h``, and adds the input bias ``b_x`` in each step's elementwise pass (a
separate pass over the whole projection would read and write it once more). Each cell has a
hand-written backward pass (:func:`gru_recurrence`, :func:`lstm_recurrence`,
:func:`simple_recurrence`): its reverse scan does one matmul per step and the weight gradients are
single large matmuls over all steps, instead of a small weight-gradient matmul at every step.
:func:`scan_recurrence`, differentiated by JAX, is the reference they are tested against. The GRU
and LSTM save the state each step started from, which is what their backward passes read.

The GRU's loops take one of two paths. Training on a CPU in float32, where the fused kernels of
:mod:`.native` could be built (a C++ compiler, and not ``RNNBENCH_NATIVE=0``), does each step's
elementwise work, forward and backward, in one kernel call instead of XLA's ten or so small kernels
(:func:`fused_kernels`). Everything else runs ``lax.scan`` over XLA's step: a GPU, bfloat16, a CPU
without the kernels, and inference (whose states alone are kept; the saved values are dropped).

GRU (Passage's convention, with the reset gate applied after the recurrent matmul as in cuDNN and
PyTorch, so that one fused matmul serves all three gates)::

    z = g(x_z + h W_hz + b_hz)      r = g(x_r + h W_hr + b_hr)
    n = tanh(x_n + r * (h W_hn + b_hn))
    h' = z * h + (1 - z) * n

with ``g`` the gate activation (``steeper_sigmoid`` = 1/(1+exp(-3.75x)) by default).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from . import native


def _sigmoid(x):
    # the same function as jax.nn.sigmoid; XLA's CPU tanh is faster than its logistic (13% per step)
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


STEEPER = 3.75  # Passage's steeper sigmoid: 1/(1+exp(-3.75x))


def _steeper(x):
    return _sigmoid(STEEPER * x)


def _hard(x):
    return jnp.clip(x + 0.5, 0.0, 1.0)


# name -> (activation, derivative expressed through the activation's output s)
GATES = {
    "sigmoid": (_sigmoid, lambda s: s * (1.0 - s)),
    "steeper_sigmoid": (_steeper, lambda s: STEEPER * s * (1.0 - s)),
    "hard_sigmoid": (_hard, lambda s: ((s > 0.0) & (s < 1.0)).astype(s.dtype)),
}
N_GATES = {"gru": 3, "lstm": 4, "simple": 1}


def _mm(a, b, dtype):
    """Matmul in ``dtype`` (bf16 on GPU) with float32 accumulation and result."""
    return jnp.dot(a.astype(dtype), b.astype(dtype), preferred_element_type=jnp.float32)


def _mm_t(a, b, dtype):
    """``a @ b.T`` without materialising the transpose (``b`` is read as stored)."""
    return lax.dot_general(a.astype(dtype), b.astype(dtype), (((1,), (1,)), ((), ())),
                           preferred_element_type=jnp.float32)


def _next_states(prev, last):
    """All states ``(T, B, H)`` from the states each step started from and the last one. The GRU and
    LSTM save ``prev`` (what their backward passes read, so they build no shifted copy); where only the
    last state is used (a top layer), XLA reduces this to ``last``, with no copy either."""
    return jnp.concatenate([prev[1:], last[None]], axis=0)


def _recurrent_weight_grads(h_prev, dpre, dtype):
    """Gradients of ``W_h`` and ``b_h`` from all steps at once: one big matmul and one sum."""
    t, b, g = dpre.shape
    return _mm(h_prev.reshape(t * b, -1).T, dpre.reshape(t * b, g), dtype), dpre.sum(axis=(0, 1))


# ----------------------------------------------------------------------------------------- GRU


def _gru_forward(wh, bh, bx, xw, mask, h0, gate, unroll, dtype):
    act = GATES[gate][0]
    hidden = h0.shape[-1]

    def step(h, inp):
        xw_t, m_t = inp
        xg_t = xw_t + bx  # the input bias, added in this step's elementwise pass (no pass of its own)
        gh = _mm(h, wh, dtype) + bh
        z = act(xg_t[:, :hidden] + gh[:, :hidden])
        r = act(xg_t[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
        ghn = gh[:, 2 * hidden:]
        n = jnp.tanh(xg_t[:, 2 * hidden:] + r * ghn)
        h_new = z * h + (1.0 - z) * n
        return h + m_t * (h_new - h), (h, z, r, n, ghn)  # saved: the state the step started from

    h_last, (h_prev, z, r, n, ghn) = lax.scan(step, h0, (xw, mask), unroll=unroll)
    return _next_states(h_prev, h_last), (h_prev, z, r, n, ghn)


@partial(jax.custom_vjp, nondiff_argnums=(6, 7, 8))
def gru_recurrence(wh, bh, bx, xw, mask, h0, gate="steeper_sigmoid", unroll=1, dtype=jnp.float32):
    """All GRU states ``(T, B, H)`` given the projected inputs ``xw = x W_x`` ``(T, B, 3H)`` and their
    bias ``b_x``."""
    return _gru_forward(wh, bh, bx, xw, mask, h0, gate, unroll, dtype)[0]


def fused_kernels(dtype) -> bool:
    """Which of the GRU's two loop paths training runs: the fused CPU kernels of :mod:`.native` (float32,
    where they could be built: only ever on a CPU), else ``lax.scan`` over XLA's step. Inference always
    runs ``lax.scan``, which drops the saved values that only the backward pass reads."""
    return dtype == jnp.float32 and native.available()


def _kernel_gate(gate: str) -> tuple[float, bool]:
    """A gate activation (:data:`GATES`) as the kernels take it: sigmoid(slope x), or the hard sigmoid."""
    return (STEEPER if gate == "steeper_sigmoid" else 1.0), gate == "hard_sigmoid"


def _gru_forward_native(wh, bh, bx, xw, mask, h0, gate, dtype):
    """:func:`_gru_forward` with each step's elementwise work in one fused kernel call (``unroll``
    does not apply: a step is one matmul and one call)."""
    length, b, hidden = xw.shape[0], *h0.shape
    saved = native.uninitialized([(length, b, hidden)] * 5)  # every row is written by the loop
    gate_attrs = _kernel_gate(gate)

    def step(t, carry):
        h, saved = carry
        return native.gru_forward_step(h, _mm(h, wh, dtype), xw, bx, bh, mask, t, saved, *gate_attrs)

    h_last, (h_prev, z, r, n, ghn) = lax.fori_loop(0, length, step, (h0.astype(jnp.float32), saved))
    return _next_states(h_prev, h_last), (h_prev, z, r, n, ghn)


def _gru_backward_native(wh, mask, saved, dhs, gate, dtype):
    """:func:`_gru_backward_scan` with each step's elementwise work in one fused kernel call."""
    length, b, hidden = dhs.shape
    (dxg,) = native.uninitialized([(length, b, 3 * hidden)])
    gate_attrs = _kernel_gate(gate)
    zeros = jnp.zeros((b, hidden), jnp.float32)

    def step(i, carry):
        c, mm, dxg = carry
        c, dgh, dxg = native.gru_backward_step(c, mm, dhs, saved, mask, length - 1 - i, dxg, *gate_attrs)
        return c, _mm_t(dgh, wh, dtype), dxg

    c, mm, dxg = lax.fori_loop(0, length, step, (zeros, zeros, dxg))
    return c + mm, dxg


def _gru_fwd(wh, bh, bx, xw, mask, h0, gate, unroll, dtype):
    if fused_kernels(dtype):
        hs, saved = _gru_forward_native(wh, bh, bx, xw, mask, h0, gate, dtype)
    else:
        hs, saved = _gru_forward(wh, bh, bx, xw, mask, h0, gate, unroll, dtype)
    return hs, (wh, mask, saved)


def _gru_bwd(gate, unroll, dtype, residuals, dhs):
    wh, mask, saved = residuals
    if fused_kernels(dtype):
        dh0, dxg = _gru_backward_native(wh, mask, saved, dhs, gate, dtype)
    else:
        dh0, dxg = _gru_backward_scan(wh, mask, saved, dhs, gate, unroll, dtype)
    h_prev, _, r, _, _ = saved
    # each step's recurrent gradient dgh is dxg with its candidate block times r: rebuilt here in one
    # pass rather than written out step by step into a second (T, B, 3H) buffer
    dgh = dxg * jnp.concatenate([jnp.ones_like(r), jnp.ones_like(r), r], axis=-1)
    dwh, dbh = _recurrent_weight_grads(h_prev, dgh, dtype)
    return dwh, dbh, dxg.sum(axis=(0, 1)), dxg, jnp.zeros_like(mask), dh0


def _gru_backward_scan(wh, mask, saved, dhs, gate, unroll, dtype):
    """The reverse loop of the GRU's backward pass: ``(dh0, dxg)``, ``dxg`` the gradient of each step's
    gate pre-activations ``(T, B, 3H)`` (which is also that of ``xw``)."""
    h_prev, z, r, n, ghn = saved
    dact = GATES[gate][1]

    def step(carry, inp):
        dh_out, hp, z_t, r_t, n_t, ghn_t, m_t = inp
        dh = carry + dh_out
        dh_new = m_t * dh
        dz = dh_new * (hp - n_t)
        dn_pre = dh_new * (1.0 - z_t) * (1.0 - n_t * n_t)
        dz_pre = dz * dact(z_t)
        dr_pre = dn_pre * ghn_t * dact(r_t)
        dxg = jnp.concatenate([dz_pre, dr_pre, dn_pre], axis=-1)
        dgh = jnp.concatenate([dz_pre, dr_pre, dn_pre * r_t], axis=-1)
        dh_prev = (1.0 - m_t) * dh + dh_new * z_t + _mm_t(dgh, wh, dtype)
        return dh_prev, dxg

    return lax.scan(step, jnp.zeros_like(h_prev[0]), (dhs, h_prev, z, r, n, ghn, mask), reverse=True,
                    unroll=unroll)


gru_recurrence.defvjp(_gru_fwd, _gru_bwd)


# ----------------------------------------------------------------------------------------- LSTM


def _lstm_forward(wh, bh, bx, xw, mask, h0, c0, gate, unroll, dtype):
    act = GATES[gate][0]
    hidden = h0.shape[-1]
    bias = bh + bx  # both biases add to the same pre-activations

    def step(carry, inp):
        h, c = carry
        xw_t, m_t = inp
        g = xw_t + _mm(h, wh, dtype) + bias
        i, f, o = act(g[:, :hidden]), act(g[:, hidden:2 * hidden]), act(g[:, 2 * hidden:3 * hidden])
        u = jnp.tanh(g[:, 3 * hidden:])
        c_new = f * c + i * u
        tc = jnp.tanh(c_new)
        saved = (h, c, i, f, o, u, tc)  # the states the step started from, and its gates
        return (h + m_t * (o * tc - h), c + m_t * (c_new - c)), saved

    (h_last, c_last), saved = lax.scan(step, (h0, c0), (xw, mask), unroll=unroll)
    h_prev, c_prev, i, f, o, u, tc = saved
    return _next_states(h_prev, h_last), c_last, (h_prev, c_prev, i, f, o, u, tc)


@partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def lstm_recurrence(wh, bh, bx, xw, mask, h0, c0, gate="steeper_sigmoid", unroll=1, dtype=jnp.float32):
    """All LSTM hidden states ``(T, B, H)`` and the last cell state ``(B, H)``, given the projected
    inputs ``xw = x W_x`` ``(T, B, 4H)`` and their bias ``b_x`` (gate order: input, forget, output,
    candidate)."""
    return _lstm_forward(wh, bh, bx, xw, mask, h0, c0, gate, unroll, dtype)[:2]


def _lstm_fwd(wh, bh, bx, xw, mask, h0, c0, gate, unroll, dtype):
    hs, c_last, saved = _lstm_forward(wh, bh, bx, xw, mask, h0, c0, gate, unroll, dtype)
    return (hs, c_last), (wh, mask, saved)


def _lstm_bwd(gate, unroll, dtype, saved, cotangents):
    dhs, dc_last = cotangents  # the last cell state carries on into the next chunk of a text
    wh, mask, (h_prev, c_prev, i, f, o, u, tc) = saved
    dact = GATES[gate][1]

    def step(carry, inp):
        dh_c, dc_c = carry
        dh_out, cp, i_t, f_t, o_t, u_t, tc_t, m_t = inp
        dh = dh_c + dh_out
        dh_new = m_t * dh
        dc_new = m_t * dc_c + dh_new * o_t * (1.0 - tc_t * tc_t)
        dg = jnp.concatenate([dc_new * u_t * dact(i_t), dc_new * cp * dact(f_t), dh_new * tc_t * dact(o_t),
                              dc_new * i_t * (1.0 - u_t * u_t)], axis=-1)
        dh_prev = (1.0 - m_t) * dh + _mm_t(dg, wh, dtype)
        dc_prev = (1.0 - m_t) * dc_c + dc_new * f_t
        return (dh_prev, dc_prev), dg

    (dh0, dc0), dg = lax.scan(step, (jnp.zeros_like(h_prev[0]), dc_last),
                              (dhs, c_prev, i, f, o, u, tc, mask), reverse=True, unroll=unroll)
    dwh, dbh = _recurrent_weight_grads(h_prev, dg, dtype)
    return dwh, dbh, dbh, dg, jnp.zeros_like(mask), dh0, dc0


lstm_recurrence.defvjp(_lstm_fwd, _lstm_bwd)


# ----------------------------------------------------------------------------------------- simple RNN


@partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def simple_recurrence(wh, bh, bx, xw, mask, h0, unroll=1, dtype=jnp.float32):
    """All states of ``h' = tanh(x W_x + b_x + h W_h + b_h)`` given the projected inputs ``xw = x W_x``."""
    return _simple_fwd(wh, bh, bx, xw, mask, h0, unroll, dtype)[0]


def _simple_fwd(wh, bh, bx, xw, mask, h0, unroll, dtype):
    bias = bh + bx

    def step(h, inp):
        xw_t, m_t = inp
        h = h + m_t * (jnp.tanh(xw_t + _mm(h, wh, dtype) + bias) - h)
        return h, h

    _, hs = lax.scan(step, h0, (xw, mask), unroll=unroll)
    return hs, (wh, hs, h0, mask)


def _simple_bwd(unroll, dtype, saved, dhs):
    wh, hs, h0, mask = saved
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)  # the state each step started from

    def step(carry, inp):
        dh_out, h_t, m_t = inp
        dh = carry + dh_out
        dpre = m_t * dh * (1.0 - h_t * h_t)  # where m_t = 1, h_t is the new state tanh(...)
        return (1.0 - m_t) * dh + _mm_t(dpre, wh, dtype), dpre

    dh0, dpre = lax.scan(step, jnp.zeros_like(h0), (dhs, hs, mask), reverse=True, unroll=unroll)
    dwh, dbh = _recurrent_weight_grads(h_prev, dpre, dtype)
    return dwh, dbh, dbh, dpre, jnp.zeros_like(mask), dh0


simple_recurrence.defvjp(_simple_fwd, _simple_bwd)


# ----------------------------------------------------------------------------------------- generic


def _gru_cell(act, hidden, dtype):
    def cell(state, xg_t, wh, bh):
        (h,) = state
        gh = _mm(h, wh, dtype) + bh
        z = act(xg_t[:, :hidden] + gh[:, :hidden])
        r = act(xg_t[:, hidden:2 * hidden] + gh[:, hidden:2 * hidden])
        n = jnp.tanh(xg_t[:, 2 * hidden:] + r * gh[:, 2 * hidden:])
        return (z * h + (1.0 - z) * n,)
    return cell


def _lstm_cell(act, hidden, dtype):
    def cell(state, xg_t, wh, bh):
        h, c = state
        g = xg_t + _mm(h, wh, dtype) + bh
        i, f, o = act(g[:, :hidden]), act(g[:, hidden:2 * hidden]), act(g[:, 2 * hidden:3 * hidden])
        c = f * c + i * jnp.tanh(g[:, 3 * hidden:])
        return (o * jnp.tanh(c), c)
    return cell


def _simple_cell(act, hidden, dtype):
    def cell(state, xg_t, wh, bh):
        (h,) = state
        return (jnp.tanh(xg_t + _mm(h, wh, dtype) + bh),)
    return cell


CELLS = {"gru": _gru_cell, "lstm": _lstm_cell, "simple": _simple_cell}


def scan_recurrence(cell: str, wh, bh, xg, mask, init_state, gate="steeper_sigmoid", unroll=1,
                    dtype=jnp.float32, return_state=False):
    """All hidden states ``(T, B, H)`` of any cell, differentiated by JAX (the reference path); with
    ``return_state``, also the final state tuple (``(h,)`` or ``(h, c)``), to continue from."""
    hidden = init_state[0].shape[-1]
    step_fn = CELLS[cell](GATES[gate][0], hidden, dtype)

    def step(state, inp):
        xg_t, m_t = inp
        new = step_fn(state, xg_t, wh, bh)
        state = tuple(s + m_t * (n - s) for s, n in zip(state, new))
        return state, state[0]

    final, hs = lax.scan(step, tuple(init_state), (xg, mask), unroll=unroll)
    return (hs, final) if return_state else hs
