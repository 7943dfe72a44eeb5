"""The GRU's fused CPU kernels (rnnbench/models/rnn/gru_cpu.cc): the same answers as XLA's step, built once,
and a clean fallback to XLA's step where they cannot be built."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench.models.rnn import cells, native
from tests.helpers import use_loops


@pytest.fixture
def fresh_decision():
    """``native.available()`` decided anew in the test, and again after it (for the tests that follow)."""
    native.available.cache_clear()
    yield
    native.available.cache_clear()


def _grads(gate, b, hidden, t=6):
    """The states and the gradients of a loss over them through the hand-written GRU passes, for texts
    of random lengths (0 to ``t``: padding frozen) from a nonzero initial state."""
    k = jax.random.split(jax.random.key(3), 7)
    wh = 1.2 / np.sqrt(hidden) * jax.random.normal(k[0], (hidden, 3 * hidden))
    bh, bx = 0.1 * jax.random.normal(k[1], (3 * hidden,)), 0.1 * jax.random.normal(k[2], (3 * hidden,))
    xw = jax.random.normal(k[3], (t, b, 3 * hidden))
    lengths = jax.random.randint(k[4], (b,), 0, t + 1)
    mask = (jnp.arange(t)[:, None] < lengths[None, :]).astype(jnp.float32)[..., None]
    h0 = 0.5 * jax.random.normal(k[5], (b, hidden))
    w_out = jax.random.normal(k[6], (t, b, hidden))

    def loss(wh, bh, bx, xw, h0):
        hs = cells.gru_recurrence(wh, bh, bx, xw, mask, h0, gate, 1)
        return jnp.sum(jnp.tanh(hs) * w_out)

    hs = jax.jit(lambda *a: cells._gru_fwd(*a, gate, 1, jnp.float32)[0])(wh, bh, bx, xw, mask, h0)
    return hs, jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))(wh, bh, bx, xw, h0)


@pytest.mark.parametrize("gate", ["sigmoid", "steeper_sigmoid", "hard_sigmoid"])
def test_kernels_agree_with_xlas_step_where_threads_share_the_rows(gate, monkeypatch):
    """40 texts of H = 512 are three blocks of rows for the kernels' threads (16 rows each)."""
    use_loops(monkeypatch, "native")
    got = _grads(gate, b=40, hidden=512)
    use_loops(monkeypatch, "scan")
    want = _grads(gate, b=40, hidden=512)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    for g, w in zip(got[1], want[1]):
        scale = float(jnp.abs(w).max())
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.slow
def test_without_a_compiler_the_gru_runs_xlas_step(fresh_decision, monkeypatch):
    monkeypatch.setattr(native, "compiler", lambda: None)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert not native.available()
    assert not cells.fused_kernels(jnp.float32)
    hs, grads = _grads("steeper_sigmoid", b=3, hidden=8)  # XLA's step, traced afresh
    assert all(bool(jnp.isfinite(g).all()) for g in grads) and hs.shape == (6, 3, 8)


def test_an_unusable_cache_falls_back_with_a_warning(fresh_decision, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("RNNBENCH_KERNELS", str(tmp_path / "a-file" / "kernels"))
    with pytest.warns(RuntimeWarning, match="kernels are not available"):
        assert not native.available()


def test_rnnbench_native_0_turns_the_kernels_off(fresh_decision, monkeypatch):
    monkeypatch.setenv("RNNBENCH_NATIVE", "0")
    assert not native.available()
    assert not cells.fused_kernels(jnp.float32)


def test_the_kernels_serve_float32_only():
    if not native.available():
        pytest.skip("the fused CPU kernels could not be built here (no C++ compiler?)")
    assert cells.fused_kernels(jnp.float32) and not cells.fused_kernels(jnp.bfloat16)


def test_a_failed_build_says_why_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_KERNELS", str(tmp_path / "kernels"))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails, saying nothing
    with pytest.raises(RuntimeError, match="false could not build gru_cpu.cc"):
        native.build()
    assert list((tmp_path / "kernels").iterdir()) == []


@pytest.mark.slow
def test_a_build_is_made_once_and_kept(tmp_path, monkeypatch):
    if native.compiler() is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("RNNBENCH_KERNELS", str(tmp_path))
    first = native.build()
    stamp = os.stat(first).st_mtime_ns
    assert native.build() == first and os.stat(first).st_mtime_ns == stamp  # found, not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left
