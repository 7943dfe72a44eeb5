"""The `fasttext` and `transformer` kinds: trained through `rnnbench train`, predicting, saved and loaded,
resumed bit for bit after a kill mid-epoch, their config errors; what each sees of word order (fastText:
only inside its n-grams; the Transformer: all of it, never the padding); fastText's sparse update."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner
from flax import nnx

from rnnbench.cli import main
from rnnbench.config import Config
from rnnbench.data import Ragged, Split, Task, generate
from rnnbench.models.base import model_class
from rnnbench.models.fasttext.model import BagOfNgrams, SparseSteps, ngram_ids
from rnnbench.models.fasttext.spec import FastTextConfig
from rnnbench.models.jaxtrain.batching import Batch
from rnnbench.models.jaxtrain.sequence import BatchSteps
from rnnbench.models.transformer.model import Encoder
from rnnbench.models.transformer.spec import TransformerConfig
from rnnbench.runs import Run
from tests.helpers import write_config

KINDS = ("fasttext", "transformer")
# two length buckets: three padded widths, so each test compiles a few programs, not nine of each
TINY = {"fasttext": {"embed_dim": 8, "buckets": 64, "batch_size": 32, "learning_rate": 0.05, "epochs": 2,
                     "length_buckets": 2},
        "transformer": {"width": 16, "heads": 2, "ffn": 16, "layers": 1, "batch_size": 32, "learning_rate": 0.01,
                        "epochs": 2, "length_buckets": 2}}
TIMING = {"time", "wall_seconds", "tokens_per_s"}
BINARY = Task("sentiment", "binary", 2)


def _small_fit(kind, run_dir, data=None, **opts):
    """``kind`` on 250 short synthetic texts (8 batches of 32 an epoch), validated on 50."""
    texts, y = generate(300, seed=5, mean_tokens=30)
    overrides = {**{f"{kind}.{k}": v for k, v in {**TINY[kind], "patience": 10, **opts}.items()},
                 **{f"data.{k}": v for k, v in (data or {}).items()}}
    model = model_class(kind)(Config().replace(**overrides), BINARY, seed=0)
    model.fit(Split(texts[:250], y[:250]), Split(texts[250:], y[250:]), run=Run(run_dir) if run_dir else None,
              progress=False)
    return model, texts[250:]


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_trains_predicts_and_records_its_model(tmp_path, kind):
    cfg = write_config(tmp_path / "c.yaml", data={"synthetic": {"train_size": 600, "test_size": 200}}, **{kind: TINY[kind]})
    r = CliRunner().invoke(main, ["train", str(cfg), "--model", kind])
    assert r.exit_code == 0, r.output
    run_dir = r.output.strip().splitlines()[-1]
    res = json.loads(open(f"{run_dir}/result.json").read())
    assert res["status"] == "ok" and res["model"] == kind and res["device"].startswith("cpu")
    assert {"accuracy", "roc_auc", "log_loss"} <= set(res["metrics"]) and set(res["chosen"]) == {"best_epoch"}
    training = res["training"]
    assert training["parameters"] > 0 and training["epochs_run"] == 2
    # one training and one prediction program per padded width at most: the buckets and max_len's
    assert 2 <= training["compiled_programs"] <= 2 * (len(training["buckets"]) + 1)
    evals = [x for x in map(json.loads, open(f"{run_dir}/metrics.jsonl")) if x.get("event") == "eval"]
    assert res["validation"]["accuracy"] == pytest.approx(max(x["val_accuracy"] for x in evals))
    p = CliRunner().invoke(main, ["predict", run_dir, "the plot was good .", "the plot was not good ."])
    assert p.exit_code == 0, p.output
    assert all(0.0 <= float(line.split("\t")[1]) <= 1.0 for line in p.output.strip().splitlines())


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_the_same_predictions(tmp_path, kind):
    model, texts = _small_fit(kind, None, epochs=1)
    model.save(tmp_path)
    loaded = model_class(kind).load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_scores(texts), model.predict_scores(texts))
    assert loaded.predict_scores([]).shape == (0, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_regression_and_multiclass_heads(kind):
    texts, y = generate(200, seed=2, mean_tokens=20, regression=True)
    cfg = Config().replace(**{f"{kind}.{k}": v for k, v in {**TINY[kind], "epochs": 1}.items()})
    reg = model_class(kind)(cfg, Task("score", "regression"), seed=0)
    reg.fit(Split(texts[:150], y[:150]), Split(texts[150:], y[150:]), progress=False)
    scores = reg.predict_scores(texts[150:])
    assert scores.shape == (50,) and "rmse" in reg.validation_
    assert abs(scores.mean() - y[:150].mean()) < 3 * y.std()  # in target units, not standardised ones
    labels = np.arange(200) % 3
    multi = model_class(kind)(cfg, Task("t", "multiclass", 3), seed=0)
    multi.fit(Split(texts[:150], labels[:150]), Split(texts[150:], labels[150:]), progress=False)
    probs = multi.predict_scores(texts[:4])
    assert probs.shape == (4, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)


class _Crash(BaseException):
    """A kill at a chosen step (a BaseException: nothing in the trainer catches it)."""


def _crash_at(monkeypatch, step: int) -> None:
    real = BatchSteps.train_step

    def train_step(self, params, opt_state, batch, s):
        if s == step:
            raise _Crash(f"killed before step {step}")
        return real(self, params, opt_state, batch, s)

    monkeypatch.setattr(BatchSteps, "train_step", train_step)


def _curve(run_dir):
    rows = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")]
    return [{k: v for k, v in x.items() if k not in TIMING} for x in rows if x.get("event") in ("train", "eval", "epoch")]


@pytest.mark.parametrize("kind, kill_step", [("fasttext", 3), ("fasttext", 11), ("transformer", 11)])
def test_killed_mid_epoch_resumes_to_the_same_result(tmp_path, monkeypatch, kind, kill_step):
    """Checkpoints after every step: a run killed mid-epoch resumes at that step (data order, losses so far,
    dropout keys, the weights' average, fastText's sparse optimizer state) and ends exactly as an
    uninterrupted run: the same predictions and learning curve. 8 batches an epoch: step 3 is inside the
    first epoch, 11 inside the second."""
    settings = {"checkpoint_every_s": 0, "dropout": 0.2, "ema": 0.5, "eval_every": 5}
    clean, texts = _small_fit(kind, tmp_path / "clean", **settings)
    with monkeypatch.context() as m:
        _crash_at(m, kill_step)
        with pytest.raises(_Crash):
            _small_fit(kind, tmp_path / "run", **settings)
    (ckpt,) = [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()]
    assert int(ckpt.name) == kill_step
    resumed, _ = _small_fit(kind, tmp_path / "run", **settings)
    np.testing.assert_array_equal(resumed.predict_scores(texts), clean.predict_scores(texts))
    drop = lambda d: {k: v for k, v in d.items() if k != "compiled_programs"}  # noqa: E731
    assert drop(resumed.training_) == drop(clean.training_) and resumed.chosen_ == clean.chosen_
    assert _curve(tmp_path / "run") == _curve(tmp_path / "clean")
    (event,) = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl") if '"resumed"' in x]
    assert event["step"] == kill_step and event["batch"] == kill_step % 8


@pytest.mark.parametrize("kind, keep", [("fasttext", "first"), ("transformer", "last")])
def test_texts_longer_than_max_len_are_cut_as_for_the_rnn(kind, keep):
    model, _ = _small_fit(kind, None, data={"max_len": 6, "keep": keep}, epochs=1)
    start, end = "the film was good and i", "liked every minute of it ."  # six tokens each
    words = "plot bad awful great boring the".split()
    fillers = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    scores = model.predict_scores([f"{start} {f} {end}" for f in fillers])[:, 1]
    assert np.ptp(scores) == 0.0  # the middle of a long text never reaches the model
    other_end = model.predict_scores([f"{start} {fillers[0]} awful boring bad plot . !"])[0, 1]
    other_start = model.predict_scores([f"awful boring bad plot . ! {fillers[0]} {end}"])[0, 1]
    changed, unchanged = (other_end, other_start) if keep == "last" else (other_start, other_end)
    assert unchanged == scores[0] and changed != scores[0]


@pytest.mark.parametrize("setting, message", [
    ("fasttext.ngrams=0", "fasttext.ngrams: must be >= 1"),
    ("fasttext.buckets=-5", "fasttext.buckets: must be >= 1"),
    ("transformer.heads=3", "transformer.heads: 3 heads do not divide transformer.width 64"),
    ("transformer.pooling=max", "transformer.pooling: expected one of 'mean', 'first'"),
    ("transformer.attention=cudnn", "transformer.attention: cudnn needs transformer.dtype: bfloat16"),
])
def test_a_bad_option_is_one_line_naming_its_key(setting, message):
    r = CliRunner().invoke(main, ["config", "show", "configs/quickstart.yaml", "--set", setting])
    assert r.exit_code == 2 and r.output.startswith(f"Error: {message}") and r.output.count("\n") == 1, r.output


def test_bfloat16_on_a_cpu_is_an_error_naming_the_key():
    from rnnbench.errors import RnnbenchError

    model = model_class("transformer")(Config().replace(**{"transformer.dtype": "bfloat16"}), BINARY, seed=0)
    with pytest.raises(RnnbenchError, match=r"^transformer\.dtype: bfloat16 is for GPUs"):
        model.fit(Split(["a b"] * 4, np.array([0, 1] * 2)), Split(["a"] * 2, np.array([0, 1])), progress=False)


# ---------------------------------------------------------------------------- what each sees of word order

def _scores(module, sequences):
    tokens, lengths = Ragged.from_sequences(sequences).to_padded(max(map(len, sequences)))
    return np.asarray(module(jnp.asarray(tokens), jnp.asarray(lengths)))


def _random_head(module):
    module.head.kernel[...] = jax.random.normal(jax.random.key(3), module.head.kernel[...].shape)
    return module


def test_fasttext_sees_word_order_only_inside_its_ngrams():
    """Unigrams: any order gives the same vector. Bigrams: two texts with the same words and the same bigrams
    ("a b a c a", "a c a b a": ab, ba, ac, ca) are one text to it; other orders are not."""
    a, b, c = 5, 6, 7
    words = _random_head(BagOfNgrams(10, 1, FastTextConfig(embed_dim=8, ngrams=1, buckets=50), rngs=nnx.Rngs(0)))
    s = _scores(words, [[a, b, c, a], [c, a, a, b], [b, a, c, a]])
    assert np.allclose(s, s[0], atol=1e-6)
    bigrams = _random_head(BagOfNgrams(10, 1, FastTextConfig(embed_dim=8, ngrams=2, buckets=50), rngs=nnx.Rngs(0)))
    same, other = _scores(bigrams, [[a, b, a, c, a], [a, c, a, b, a]]), _scores(bigrams, [[b, a, a, c, a]])
    assert np.allclose(same[0], same[1], atol=1e-6) and not np.allclose(same[0], other[0], atol=1e-4)
    # padding never enters: a text alone or padded beside a longer one
    padded = _scores(bigrams, [[a, b, a, c, a], [a, b, c, a, b, c, a, b, c, a, b, c]])
    assert np.allclose(padded[0], same[0], atol=1e-6)


def test_ngram_hashing_is_fasttexts_and_masks_padding():
    tokens, lengths = jnp.array([[3, 4, 5, 0]], jnp.int32), jnp.array([3], jnp.int32)
    ids = np.asarray(ngram_ids(tokens, lengths, 2, 10, 97))
    expected = [10 + (3 * 116049371 + 4) % 2**32 % 97, 10 + (4 * 116049371 + 5) % 2**32 % 97, -1, -1]
    assert ids.tolist() == [expected]
    assert np.asarray(ngram_ids(tokens, lengths, 3, 10, 97))[0, 1:].tolist() == [-1, -1, -1]


def _step_params(steps_cls, optimizer, batches, **cfg):
    cfg = FastTextConfig(embed_dim=4, buckets=40, optimizer=optimizer, learning_rate=0.1, clip_norm=0.5, **cfg)
    steps = steps_cls(BagOfNgrams(12, 1, cfg, rngs=nnx.Rngs(0)), cfg, BINARY, 0, [6], 6, 8)
    params, opt = jax.tree.map(jnp.copy, steps.params), None
    opt = steps.tx.init(params)
    for i, (tokens, lengths) in enumerate(batches):
        batch = Batch(np.asarray(tokens, np.int32), np.asarray(lengths, np.int32), np.array([0, 1]),
                      np.ones(2, np.float32), np.arange(2))
        params, opt, _, _ = steps.train_step(params, opt, batch, i)
    return jax.tree.leaves(jax.device_get(params))


def _table(leaves):
    (table,) = [leaf for leaf in leaves if leaf.shape == (12 + 40, 4)]
    return table


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam", "momentum"])
def test_the_sparse_step_is_the_dense_update_where_it_should_be(optimizer):
    """fastText's step updates only the rows a batch has (repeated words and n-grams summed once, the
    gradient's norm clipped as the dense one): the dense update for sgd and adagrad at every step, and for
    every optimizer while the rows outside the batch have no moments yet (the first step trains only the
    zero-initialised linear layer; the second the rows of its batch)."""
    batches = [([[2, 3, 2, 3, 4, 0], [5, 2, 0, 0, 0, 0]], [5, 2]), ([[7, 8, 9, 7, 8, 9], [3, 3, 3, 0, 0, 0]], [6, 3]),
               ([[2, 5, 0, 0, 0, 0], [9, 9, 8, 0, 0, 0]], [2, 3])]
    steps = 3 if optimizer in ("sgd", "adagrad") else 2
    sparse = _step_params(SparseSteps, optimizer, batches[:steps])
    dense = _step_params(BatchSteps, optimizer, batches[:steps])
    for s, d in zip(sparse, dense):
        np.testing.assert_allclose(s, d, rtol=1e-5, atol=1e-7)
    assert not np.allclose(_table(sparse), _table(_step_params(SparseSteps, optimizer, [])))  # the table learned


def test_lazy_adam_leaves_the_rows_a_batch_lacks_alone():
    """Adam's moments of a row move only in the steps whose batch has it: word 8, trained in the second step
    (the first trains the linear layer alone), is not in the third, so the third leaves it where it was,
    where dense Adam moves it on its moments."""
    batches = [([[2, 3, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0]], [2, 1]), ([[7, 8, 0, 0, 0, 0], [8, 0, 0, 0, 0, 0]], [2, 1]),
               ([[7, 9, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0]], [2, 1])]
    two, three = (_table(_step_params(SparseSteps, "adam", batches[:n])) for n in (2, 3))
    dense = _table(_step_params(BatchSteps, "adam", batches))
    assert np.array_equal(two[8], three[8]) and not np.allclose(dense[8], three[8])
    assert not np.allclose(two[9], three[9]) and np.allclose(dense[9], three[9], rtol=1e-5)


def test_the_transformer_reads_order_and_never_the_padding():
    """Reordered tokens change its output; padding a text to a wider batch does not (its length masks the
    keys, mean pooling counts real tokens only); a learned first token and sinusoids work alike."""
    for cfg in (TransformerConfig(width=16, heads=2, ffn=16, dropout=0.0),
                TransformerConfig(width=16, heads=4, ffn=16, dropout=0.0, pooling="first", positions="sinusoidal")):
        enc = _random_head(Encoder(20, 1, 32, cfg, rngs=nnx.Rngs(0)))
        alone = _scores(enc, [[5, 6, 7]])
        np.testing.assert_allclose(_scores(enc, [[5, 6, 7], list(range(2, 20))])[0], alone[0], rtol=1e-5, atol=1e-6)
        assert not np.allclose(_scores(enc, [[7, 6, 5]])[0], alone[0], atol=1e-4)


@pytest.mark.parametrize("kind, space", [
    ("fasttext", {"fasttext.learning_rate": [0.05, 0.0001], "fasttext.embed_dim": [8]}),
    ("transformer", {"transformer.learning_rate": [0.01, 0.00001], "transformer.positions": ["alibi"]}),
])
def test_search_tunes_the_kind_like_any_other(tmp_path, kind, space):
    """``search.<kind>``: a grid of two learning rates, pruned by successive halving; its trials are runs,
    the chosen one is the kind's point on the curve, and the table counts the trials."""
    cfg = write_config(tmp_path / "c.yaml", experiment={"seeds": [0]},
                       data={"synthetic": {"train_size": 500, "test_size": 100}, "sizes": [300], "val_max": 100},
                       **{kind: {**TINY[kind], "epochs": 2}},
                       search={kind: {"space": space, "pruner": "halving"}})
    r = CliRunner().invoke(main, ["compare", str(cfg), "--models", f"linear,{kind}"])
    assert r.exit_code == 0, r.output
    exp = next(p for p in tmp_path.rglob("curves.csv")).parent
    rows = {row["model"]: row for row in csv.DictReader(open(exp / "curves.csv"))}
    assert rows[kind]["tuned"] == "tuned" and float(rows[kind]["trials"]) == 2, rows[kind]
    summary = json.loads((exp / "search" / f"{kind}-n300-s0.json").read_text())
    assert len(summary["trials"]) == 2 and {t["state"] for t in summary["trials"]} <= {"complete", "pruned"}
