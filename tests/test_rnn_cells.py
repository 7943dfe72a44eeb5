import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rnnbench.models.rnn.cells import (
    N_GATES,
    gru_recurrence,
    lstm_recurrence,
    scan_recurrence,
    simple_recurrence,
)
from rnnbench.models.rnn.model import SequenceModel
from rnnbench.models.rnn.spec import RnnConfig
from tests.helpers import use_loops

jax.config.update("jax_enable_x64", False)


def _inputs(t=7, b=3, h=5, seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    wh = 0.5 * jax.random.normal(k[0], (h, 3 * h))
    bh = 0.1 * jax.random.normal(k[1], (3 * h,))
    xg = jax.random.normal(k[2], (t, b, 3 * h))
    lengths = jnp.array([t, 3, 1])[:b]
    mask = (jnp.arange(t)[:, None] < lengths[None, :]).astype(jnp.float32)[..., None]
    h0 = 0.1 * jax.random.normal(k[3], (b, h))
    return wh, bh, xg, mask, h0


def _fast(cell, wh, bh, bx, xw, mask, init, gate):
    """All hidden states, and the LSTM's last cell state (None for the others)."""
    if cell == "gru":
        return gru_recurrence(wh, bh, bx, xw, mask, init[0], gate, 1), None
    if cell == "lstm":
        return lstm_recurrence(wh, bh, bx, xw, mask, init[0], init[1], gate, 1)
    return simple_recurrence(wh, bh, bx, xw, mask, init[0], 1), None


@pytest.mark.parametrize("cell,gate,loops", [
    ("gru", "sigmoid", "native"), ("gru", "steeper_sigmoid", "native"), ("gru", "hard_sigmoid", "native"),
    ("gru", "sigmoid", "scan"), ("gru", "steeper_sigmoid", "scan"), ("gru", "hard_sigmoid", "scan"),
    ("lstm", "sigmoid", "scan"), ("lstm", "steeper_sigmoid", "scan"), ("lstm", "hard_sigmoid", "scan"),
    ("simple", "sigmoid", "scan")])
def test_hand_written_backward_matches_autodiff(cell, gate, loops, monkeypatch):
    use_loops(monkeypatch, loops)  # the LSTM and simple RNN always run lax.scan
    g = N_GATES[cell]
    t, b, h = 7, 3, 5
    k = jax.random.split(jax.random.key(1), 7)
    wh = 0.5 * jax.random.normal(k[0], (h, g * h))
    bh = 0.1 * jax.random.normal(k[1], (g * h,))
    bx = 0.1 * jax.random.normal(k[6], (g * h,))
    xw = jax.random.normal(k[2], (t, b, g * h))
    mask = (jnp.arange(t)[:, None] < jnp.array([t, 3, 1])[None, :]).astype(jnp.float32)[..., None]
    init = [0.1 * jax.random.normal(k[3], (b, h)), 0.1 * jax.random.normal(k[4], (b, h))][:2 if cell == "lstm" else 1]
    w_out = jax.random.normal(k[5], (t, b, h))
    w_c = jax.random.normal(k[0], (b, h))  # the LSTM's last cell state carries on into a text's next chunk

    def loss_fast(wh, bh, bx, xw, init):
        hs, c_last = _fast(cell, wh, bh, bx, xw, mask, init, gate)
        return jnp.sum(jnp.tanh(hs) * w_out) + (jnp.sum(c_last * w_c) if cell == "lstm" else 0.0)

    def loss_ref(wh, bh, bx, xw, init):  # the reference takes the projection with its bias added
        hs, final = scan_recurrence(cell, wh, bh, xw + bx, mask, init, gate, 1, return_state=True)
        return jnp.sum(jnp.tanh(hs) * w_out) + (jnp.sum(final[1] * w_c) if cell == "lstm" else 0.0)

    args = (wh, bh, bx, xw, init)
    np.testing.assert_allclose(loss_fast(*args), loss_ref(*args), rtol=1e-5, atol=1e-5)
    g_fast = jax.tree.leaves(jax.grad(loss_fast, argnums=(0, 1, 2, 3, 4))(*args))
    g_ref = jax.tree.leaves(jax.grad(loss_ref, argnums=(0, 1, 2, 3, 4))(*args))
    assert len(g_fast) == len(g_ref) == 4 + len(init)  # wh, bh, bx, xw and each initial state
    for a, b_ in zip(g_fast, g_ref):
        np.testing.assert_allclose(a, b_, rtol=2e-4, atol=2e-5)


def test_state_is_frozen_on_padding():
    wh, bh, xg, mask, h0 = _inputs()
    hs = gru_recurrence(wh, bh, jnp.zeros_like(bh), xg, mask, h0, "steeper_sigmoid", 2)
    np.testing.assert_array_equal(hs[2:, 1], np.broadcast_to(hs[2, 1], hs[2:, 1].shape))  # length 3
    np.testing.assert_array_equal(hs[:, 2], np.broadcast_to(hs[0, 2], hs[:, 2].shape))  # length 1


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm", "simple"])
def test_padding_does_not_change_the_answer(cell):
    cfg = RnnConfig(cell=cell, embed_dim=8, hidden_dim=12, layers=2, learned_init_state=True)
    model = SequenceModel(50, 1, cfg, rngs=nnx.Rngs(0))
    text = jnp.array([[5, 9, 2, 7]])
    alone = model(text, jnp.array([4]))
    batch = jnp.array([[5, 9, 2, 7, 0, 0, 0, 0, 0], [3, 4, 5, 6, 7, 8, 9, 10, 11]])
    together = model(batch, jnp.array([4, 9]))
    np.testing.assert_allclose(alone[0], together[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(together[0], together[1])


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm", "simple"])
def test_fast_and_reference_models_agree_in_outputs_and_gradients(cell):
    cfg = RnnConfig(cell=cell, embed_dim=8, hidden_dim=12, layers=2, learned_init_state=True)
    graphdef, params = nnx.split(SequenceModel(50, 3, cfg, rngs=nnx.Rngs(1)))
    tokens, lengths = jnp.array([[1, 2, 3, 4], [5, 6, 0, 0]]), jnp.array([4, 2])

    def loss(params, reference):
        return jnp.sum(jnp.sin(nnx.merge(graphdef, params)(tokens, lengths, reference=reference)))

    np.testing.assert_allclose(loss(params, False), loss(params, True), rtol=1e-5, atol=1e-6)
    fast, ref = jax.grad(loss)(params, False), jax.grad(loss)(params, True)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_gates_and_inits_differ():
    tokens, lengths = jnp.array([[1, 2, 3, 4]]), jnp.array([4])
    outs = {}
    for gate in ("sigmoid", "steeper_sigmoid", "hard_sigmoid"):
        for init in ("orthogonal", "gaussian", "uniform"):
            m = SequenceModel(20, 1, RnnConfig(embed_dim=4, hidden_dim=6, gate=gate, init=init), rngs=nnx.Rngs(0))
            outs[gate, init] = float(m(tokens, lengths)[0, 0])
    assert len(set(outs.values())) == len(outs)
    m = SequenceModel(20, 1, RnnConfig(embed_dim=4, hidden_dim=6, init_scale=1.1), rngs=nnx.Rngs(0))
    wh = np.asarray(m.layers[0].wh[...])[:, :6]
    np.testing.assert_allclose(wh.T @ wh, 1.21 * np.eye(6), atol=1e-5)  # orthogonal, scale 1.1


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_chunked_evaluation_equals_one_pass_over_each_text(cell):
    from rnnbench.data import Ragged, Task
    from rnnbench.models.jaxtrain.optim import outputs_to_scores
    from rnnbench.models.rnn.train import Steps, predict

    cfg = RnnConfig(cell=cell, embed_dim=8, hidden_dim=12, layers=2, learned_init_state=True, batch_size=4)
    task = Task("t", "binary", 2)
    model = SequenceModel(50, 1, cfg, rngs=nnx.Rngs(3))
    rng = np.random.default_rng(0)
    lengths = np.array([0, 1, 31, 32, 33, 70, 5, 64, 100, 2, 9, 40, 3, 77, 12, 50, 8, 4])  # 18 texts: a short last batch
    seqs = Ragged.from_sequences([rng.integers(1, 50, n).tolist() for n in lengths])
    steps = Steps(model, cfg, task, 0)
    got = predict(steps, steps.params, seqs, max_len=90)  # 100 is truncated to 90, as in training
    tokens, kept = seqs.to_padded(90)
    want = outputs_to_scores(task, model(jnp.asarray(tokens), jnp.asarray(kept)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert steps.predict_chunk._cache_size() == 2  # one program for every length, and one for short last chunks


@pytest.mark.slow
@pytest.mark.parametrize("cell,chunk", [("gru", 3), ("lstm", 4), ("simple", 5), ("gru", 64)])
def test_chunked_training_gradient_equals_one_pass_backpropagation(cell, chunk):
    """Training reads a batch chunk by chunk and walks the chunks' pullbacks back: full BPTT, so the
    loss and every gradient (embedding rows, learned initial state, both layers) match one pass."""
    from rnnbench.data import Task
    from rnnbench.models.jaxtrain.optim import loss_fn
    from rnnbench.models.rnn.train import Steps, chunk_sizes

    cfg = RnnConfig(cell=cell, embed_dim=6, hidden_dim=8, layers=2, learned_init_state=True, batch_size=5,
                    chunk=chunk)
    task = Task("t", "binary", 2)
    model = SequenceModel(40, 1, cfg, rngs=nnx.Rngs(4))
    steps = Steps(model, cfg, task, 0)
    rng = np.random.default_rng(1)
    lengths = np.array([17, 0, 5, 12, 1], np.int32)
    tokens = np.where(np.arange(17)[None] < lengths[:, None], rng.integers(1, 40, (5, 17)), 0).astype(np.int32)
    y, w = np.array([0, 1, 1, 0, 1]), np.array([1, 1, 1, 1, 0], np.float32)  # the last row: zero-weight filler

    def one_pass(params):
        return loss_fn(task, nnx.merge(steps.graphdef, params)(jnp.asarray(tokens), jnp.asarray(lengths),
                                                               reference=True), y, w)

    want_loss, want = jax.value_and_grad(one_pass)(steps.params)
    loss, got = steps.gradients(steps.params, tokens, lengths, y, w, 0, steps.base_key)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6, err_msg=jax.tree_util.keystr(path))
    sizes = chunk_sizes(chunk, 17)
    assert sum(sizes) >= 17 and (chunk % 2 == 1 or sizes[-1] == chunk // 2)  # chunk 4: 4 4 4 4 2; 64: 32
    assert steps.forward_chunk._cache_size() == steps.backward_chunk._cache_size() == len(set(sizes))


@pytest.mark.slow
@pytest.mark.parametrize("cell, kind", [("gru", "binary"), ("lstm", "regression"), ("simple", "multiclass")])
def test_per_batch_programs_train_as_the_per_chunk_ones(cell, kind):
    """compute.train_programs: one program per batch (the GPU's default) makes the same updates as the
    chunked trainer (losses and parameters after three steps: embedding rows, learned initial state,
    both layers), on a batch as wide as its length class and on one padded up to it (33 tokens -> 40).
    One program per width, and none of the chunk programs."""
    from rnnbench.data import Task
    from rnnbench.models.jaxtrain.optim import n_outputs
    from rnnbench.models.rnn.train import Steps, length_class

    cfg = RnnConfig(cell=cell, embed_dim=6, hidden_dim=8, layers=2, learned_init_state=True, batch_size=5, chunk=4)
    task, rng = Task("t", kind, 3 if kind == "multiclass" else 2 if kind == "binary" else 0), np.random.default_rng(2)
    lengths = np.array([17, 0, 5, 12, 1], np.int32)
    tokens = np.where(np.arange(20)[None] < lengths[:, None], rng.integers(1, 40, (5, 20)), 0).astype(np.int32)
    y = rng.normal(size=5).astype(np.float32) if kind == "regression" else np.array([0, 1, 2, 0, 1]) % max(task.n_classes, 1)
    w = np.array([1, 1, 1, 1, 0], np.float32)  # the last row: zero-weight filler
    assert length_class(20, 4) == 20 and length_class(33, 4) == 40
    trained = {}
    for name, programs, width in (("per-chunk", "per-chunk", 20), ("per-batch", "per-batch", 20),
                                  ("per-batch, padded", "per-batch", 33)):
        steps = Steps(SequenceModel(40, n_outputs(task), cfg, rngs=nnx.Rngs(4)), cfg, task, 0, programs)
        batch = np.pad(tokens, ((0, 0), (0, width - 20)))
        params, opt_state, losses = steps.params, steps.tx.init(steps.params), []
        for step in range(3):
            params, opt_state, loss, _ = steps.update(params, opt_state, batch, lengths, y, w, step, steps.base_key)
            losses.append(float(loss))
        trained[name] = steps, losses, params
    (chunked, want_losses, want) = trained["per-chunk"]
    assert want_losses[0] != want_losses[2]  # the updates changed something
    for name in ("per-batch", "per-batch, padded"):
        batched, losses, got = trained[name]
        np.testing.assert_allclose(losses, want_losses, rtol=1e-5, err_msg=name)
        for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6, err_msg=f"{name} {jax.tree_util.keystr(path)}")
        assert batched.batch_step._cache_size() == 1 and batched.forward_chunk._cache_size() == 0
    assert chunked.batch_step._cache_size() == 0 and chunked.forward_chunk._cache_size() > 0
    with pytest.raises(ValueError, match="programs: expected one of per-chunk, per-batch"):
        Steps(SequenceModel(40, 1, cfg, rngs=nnx.Rngs(4)), cfg, task, 0, "per-step")


def test_length_classes_are_a_fixed_ladder_four_rungs_a_doubling():
    from rnnbench.data import Ragged
    from rnnbench.models.jaxtrain.batching import Batcher, bucket_boundaries
    from rnnbench.models.rnn.train import length_class

    ladder = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160]
    assert sorted({length_class(w, 16) // 16 for w in range(1, 1025)}) == ladder[:20]
    for chunk in (1, 3, 16, 32):
        for w in range(0, 140 * chunk):  # the narrowest rung that holds the batch (an empty one: one chunk)
            c = length_class(w, chunk)
            assert c == chunk * min(k for k in ladder if k * chunk >= max(w, 1)), (w, chunk)
            assert c <= 4 * chunk or c < 1.25 * w  # past four chunks, less than a quarter wider
    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(1 / 60, 3000), 400)
    seqs = Ragged.from_lengths(np.ones(int(lengths.sum()), np.int32), lengths)
    train = Batcher(seqs, np.zeros(len(lengths)), 32, bucket_boundaries(lengths, 40, 400, 8), 400)
    real, processed = train.padding_stats(lambda w: length_class(w, 8))
    assert real == train.padding_stats()[0] and 1.0 < processed / train.padding_stats()[1] < 1.1  # wider, and counted


def test_a_batch_is_read_in_full_chunks_and_a_half_chunk_where_that_holds_its_end():
    from rnnbench.models.rnn.train import chunk_sizes as sizes

    assert sizes(16, 200) == [16] * 12 + [8]  # the benchmark's 200 tokens: 200 steps, not 208
    assert sizes(16, 201) == sizes(16, 208) == [16] * 13
    assert sizes(16, 192) == [16] * 11 + [16] and sizes(16, 185) == [16] * 11 + [16]
    assert sizes(16, 184) == [16] * 11 + [8] and sizes(16, 1) == sizes(16, 0) == [8]
    assert sizes(5, 11) == [5, 5, 5] and sizes(1, 3) == [1, 1, 1]  # odd chunks are never halved


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_saved_chunks_hold_no_copies_of_the_weights(cell):
    """A forward chunk's pullback takes the weights from the parameters again in the backward: the
    residuals it returns (one set per chunk, held until the backward) contain no weight matrix."""
    from rnnbench.data import Task
    from rnnbench.models.rnn.train import Steps

    cfg = RnnConfig(cell=cell, embed_dim=6, hidden_dim=10, layers=2, batch_size=3, chunk=4)
    steps = Steps(SequenceModel(40, 1, cfg, rngs=nnx.Rngs(0)), cfg, Task("t", "binary", 2), 0)
    tokens, lengths = jnp.ones((3, 8), jnp.int32), jnp.array([8, 5, 2], jnp.int32)
    _, pullback = steps.forward_chunk(steps.params, steps.blank(3), tokens, lengths, steps.index(0),
                                      steps.base_key, jnp.int32(0), size=4)
    gates = 10 * N_GATES[cell]
    weights = {(6, gates), (10, gates)}  # W_x of layer 1; W_x of layer 2 and both W_h
    assert weights <= {p.shape for p in jax.tree.leaves(steps.params)}
    assert not weights & {leaf.shape for leaf in jax.tree.leaves(pullback)}
    assert len(pullback.slots) > len(pullback.leaves)  # the weights are slots, filled in the backward


_CACHE_PROBE = """
import importlib, os, pkgutil, sys
import jax, numpy as np
import rnnbench
for m in pkgutil.walk_packages(rnnbench.__path__, "rnnbench."):  # every module, rnnbench.models.rnn's included
    importlib.import_module(m.name)
print(repr(jax.config.jax_compilation_cache_dir), jax.config.jax_persistent_cache_min_compile_time_secs)
from flax import nnx
from rnnbench.models.rnn.spec import RnnConfig
from rnnbench.data import Task
from rnnbench.models.jaxtrain.compile_cache import enable_compilation_cache
from rnnbench.models.rnn.model import SequenceModel
from rnnbench.models.rnn.train import Steps
cfg = RnnConfig(embed_dim=4, hidden_dim=6, batch_size=2, chunk=4)
steps = Steps(SequenceModel(20, 1, cfg, rngs=nnx.Rngs(0)), cfg, Task("t", "binary", 2), 0)
print(repr(jax.config.jax_compilation_cache_dir), jax.config.jax_persistent_cache_min_compile_time_secs)
os.environ["RNNBENCH_DATA"] = os.path.join(os.environ["RNNBENCH_DATA"], "elsewhere")
enable_compilation_cache()  # idempotent: the cache JAX has opened stays
print(repr(jax.config.jax_compilation_cache_dir))
tokens, lengths = np.ones((2, 4), np.int32), np.array([4, 2], np.int32)
steps.update(steps.params, steps.tx.init(steps.params), tokens, lengths, np.array([0, 1]),
                 np.ones(2, np.float32), 0, steps.base_key)[2].block_until_ready()
"""


@pytest.mark.slow
def test_importing_changes_no_jax_config_and_building_steps_enables_the_cache(tmp_path):
    """Importing any rnnbench module leaves JAX's persistent cache unset; building the compiled steps
    points it at $RNNBENCH_DATA/jax-cache (once per process), and the train step is cached there."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(RNNBENCH_DATA=str(tmp_path), JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    cache = tmp_path / "jax-cache"
    assert done.stdout.splitlines() == ["None 1.0", f"{str(cache)!r} 0.1", repr(str(cache))]
    assert any(cache.iterdir())  # the compiled train step, reused by the next process
