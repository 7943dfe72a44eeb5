"""The RNN through `rnnbench train --model rnn`: results, determinism, resume, failure, compiles."""

import collections
import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from click.testing import CliRunner
from flax import nnx

from rnnbench.cli import main
from rnnbench.data import Task
from rnnbench.models.jaxtrain.loop import moving_average
from rnnbench.models.rnn.model import SequenceModel
from rnnbench.models.rnn.spec import RnnConfig
from rnnbench.models.rnn.train import Steps
from rnnbench.runs import Run
from tests.helpers import write_config

TIMING = {"time", "wall_seconds", "tokens_per_s"}  # what differs between two runs of the same settings
TINY = {"embed_dim": 16, "hidden_dim": 24, "batch_size": 32, "epochs": 2, "buckets": 2, "learning_rate": 0.01}


def rnn_config(tmp_path, name="c.yaml", rnn=None, data=None, **sections):
    return write_config(tmp_path / name, rnn={**TINY, **(rnn or {})},
                        data={"synthetic": {"train_size": 600, "test_size": 200}, **(data or {})}, **sections)


def train(*args):
    r = CliRunner().invoke(main, ["train", *map(str, args), "--model", "rnn"])
    run_dir = r.output.strip().splitlines()[-1] if r.output.strip() else None
    return r, run_dir


def result(run_dir):
    return json.loads(open(f"{run_dir}/result.json").read())


def test_rnn_run_has_the_same_result_keys_and_predicts(tmp_path):
    r, run_dir = train(rnn_config(tmp_path))
    assert r.exit_code == 0, r.output
    res = result(run_dir)
    assert res["status"] == "ok" and res["model"] == "rnn"
    assert {"accuracy", "roc_auc", "log_loss"} <= set(res["metrics"]) and set(res["validation"]) == set(res["metrics"])
    assert {"fit", "predict"} <= set(res["timings"]) and res["versions"]["flax"] and res["device"].startswith("cpu")
    assert res["training"]["compiled_programs"] <= 16 and set(res["chosen"]) == {"best_epoch"}
    rows = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")]
    train_rows = [x for x in rows if x.get("event") == "train"]
    assert {"step", "epoch", "train_loss", "grad_norm", "tokens_per_s", "wall_seconds"} <= set(train_rows[0])
    evals = [x for x in rows if x.get("event") == "eval"]
    # the reported validation scores are the restored best parameters' scores
    assert res["validation"]["accuracy"] == pytest.approx(max(x["val_accuracy"] for x in evals))
    assert evals[-1]["epoch"] == res["training"]["epochs_run"]
    p = CliRunner().invoke(main, ["predict", run_dir, "the plot was good .", "the plot was not good ."])
    assert p.exit_code == 0, p.output
    assert all(0.5 <= float(line.split("\t")[1]) <= 1 for line in p.output.strip().splitlines())


@pytest.mark.parametrize("keep", ["first", "last"])
def test_max_len_reads_the_first_or_last_tokens_of_long_texts(tmp_path, keep):
    from rnnbench.experiment import load_model

    r, run_dir = train(rnn_config(tmp_path, data={"max_len": 6, "keep": keep}, rnn={"epochs": 1}))
    assert r.exit_code == 0, r.output
    model = load_model(run_dir)
    start, end = "the film was good and i", "liked every minute of it ."  # six tokens each
    words = "plot bad awful great boring the".split()
    fillers = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    scores = model.predict_scores([f"{start} {f} {end}" for f in fillers])[:, 1]
    assert np.ptp(scores) == 0.0  # the middle of a long text never reaches the model
    other_end = model.predict_scores([f"{start} {fillers[0]} awful boring bad plot . !"])[0, 1]
    other_start = model.predict_scores([f"awful boring bad plot . ! {fillers[0]} {end}"])[0, 1]
    changed, unchanged = (other_end, other_start) if keep == "last" else (other_start, other_end)
    assert unchanged == scores[0] and changed != scores[0]


@pytest.mark.slow
def test_same_seed_identical_metrics(tmp_path):
    cfg = rnn_config(tmp_path)
    _, a = train(cfg)
    _, b = train(cfg, "--force")
    _, c = train(cfg, "--seed", 1)
    assert a == b  # same settings, same run directory (b overwrote a)
    first = result(b)["metrics"]
    _, d = train(rnn_config(tmp_path, "d.yaml", experiment={"output_dir": str(tmp_path / "other")}))
    assert result(d)["metrics"] == first
    assert result(c)["metrics"] != first


def test_divergence_is_a_recorded_failure(tmp_path):
    cfg = rnn_config(tmp_path, rnn={"optimizer": "sgd", "learning_rate": 1e30, "clip_norm": None})
    r, run_dir = train(cfg)
    assert r.exit_code == 3 and "run failed" in r.output  # errors.EXIT_RUNS_FAILED: 1 is an OS error
    res = result(run_dir)
    assert res["status"] == "failed" and ("nan" in res["reason"] or "inf" in res["reason"])
    p = CliRunner().invoke(main, ["predict", run_dir, "x"])
    assert p.exit_code == 2 and "failed" in p.output


def test_the_gradient_norm_stays_finite_while_the_gradient_is():
    """An exploding GRU gradient (1e30) has a finite norm, whose plain float32 sum of squares overflowed
    and stopped a healthy 600k-post run; an infinite or NaN element still gives a non-finite norm."""
    import optax

    from rnnbench.models.jaxtrain.optim import global_norm

    huge = {"a": np.array([1e30, -3e29], np.float32), "b": np.ones(3, np.float32)}
    assert not np.isfinite(float(optax.tree.norm(huge)))  # the overflow
    assert float(global_norm(huge)) == pytest.approx(np.sqrt(1e60 + 9e58 + 3), rel=1e-6)
    usual = {"a": np.array([0.3, -1.2, 2.0], np.float32), "b": np.arange(5.0, dtype=np.float32)}
    assert float(global_norm(usual)) == pytest.approx(float(optax.tree.norm(usual)), rel=1e-6)
    assert float(global_norm({"a": np.zeros(3, np.float32)})) == 0.0
    assert np.isinf(float(global_norm({"a": np.array([1.0, np.inf], np.float32)})))
    assert np.isnan(float(global_norm({"a": np.array([1.0, np.nan], np.float32)})))


def test_divergence_after_a_validated_epoch_keeps_that_epoch(tmp_path, monkeypatch):
    """Training that blows up after a validated epoch ends as early stopping would: the best epoch's
    model is scored and kept, and the run says why it stopped (on the full blog corpus a GPU run's
    gradient norm overflowed in its third epoch, after its best first one, and the run was lost)."""
    import rnnbench.models.jaxtrain.loop as loop_mod

    evaluations = [0]
    real_evaluate, real_step = loop_mod.evaluate, Steps.train_step

    def counting_evaluate(*args, **kwargs):
        evaluations[0] += 1
        return real_evaluate(*args, **kwargs)

    def step_then_blow_up(self, *args):
        params, opt_state, loss, gnorm = real_step(self, *args)
        return (params, opt_state, loss * np.nan, gnorm) if evaluations[0] else (params, opt_state, loss, gnorm)

    monkeypatch.setattr(loop_mod, "evaluate", counting_evaluate)
    monkeypatch.setattr(Steps, "train_step", step_then_blow_up)
    r, run_dir = train(rnn_config(tmp_path, rnn={"epochs": 3}))
    assert r.exit_code == 0, r.output
    res = result(run_dir)
    assert res["status"] == "ok" and res["chosen"]["best_epoch"] == 1.0
    assert res["training"]["diverged"].startswith("loss became nan") and "kept the best epoch (1)" in res["training"]["diverged"]
    assert 0.0 < res["metrics"]["accuracy"] <= 1.0
    events = [json.loads(line)["event"] for line in open(f"{run_dir}/metrics.jsonl")]
    assert events.count("eval") == 1 and events[-2:] == ["diverged", "done"]


@pytest.mark.slow
@pytest.mark.parametrize("cell, task", [("lstm", "sentiment"), ("simple", "sentiment"), ("gru", "score")])
def test_other_cells_and_regression(tmp_path, cell, task):
    r, run_dir = train(rnn_config(tmp_path, rnn={"cell": cell, "epochs": 1}, data={"task": task}))
    assert r.exit_code == 0, r.output
    res = result(run_dir)
    assert res["status"] == "ok"
    assert ("rmse" in res["metrics"]) == (task == "score")


def test_learning_rate_is_a_runtime_value_not_a_recompile():
    cfg = RnnConfig(**{k: v for k, v in TINY.items() if k in ("embed_dim", "hidden_dim")})
    steps = Steps(SequenceModel(30, 1, cfg, rngs=nnx.Rngs(0)), cfg, Task("t", "binary", 2), 0)
    tokens, lengths = np.ones((4, 6), np.int32), np.full(4, 6, np.int32)
    y, w = np.array([0, 1, 0, 1]), np.ones(4, np.float32)
    outs = []
    for lr in (1e-3, 1e-1):
        params = jax.tree.map(jax.numpy.copy, steps.params)  # the step donates its inputs
        opt = steps.tx.init(params)
        opt.hyperparams["learning_rate"] = jax.numpy.asarray(lr)
        params, opt, _, _ = steps.update(params, opt, tokens, lengths, y, w, 0, steps.base_key)
        outs.append(jax.tree.leaves(params)[0])
    assert steps.compiled_programs() == 4  # forward, head, backward, update: once each for both rates
    assert not np.allclose(outs[0], outs[1])


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL after the first epoch's checkpoint; the rerun resumes and matches an uninterrupted run."""
    rnn = {"epochs": 3, "patience": 5}
    data = {"synthetic": {"train_size": 3000, "test_size": 200}}
    cfg = rnn_config(tmp_path, rnn=rnn, data=data)
    proc = subprocess.Popen([sys.executable, "-m", "rnnbench.cli", "train", str(cfg), "--model", "rnn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "runs" / "t" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if [p for p in runs.glob("*/checkpoints/*") if p.name.isdigit()]:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = list(runs.iterdir())
    assert not (run_dir / "DONE").exists(), "the run finished before it could be killed"
    r, resumed_dir = train(cfg)
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in open(f"{resumed_dir}/metrics.jsonl")]
    assert any(x.get("event") == "resumed" for x in rows)
    _, clean_dir = train(rnn_config(tmp_path, "clean.yaml", rnn=rnn, data=data,
                                    experiment={"output_dir": str(tmp_path / "clean")}))
    assert result(resumed_dir)["metrics"] == result(clean_dir)["metrics"]
    assert result(resumed_dir)["training"]["steps"] == result(clean_dir)["training"]["steps"]
    # the learning curve from before the kill survives, and the whole curve is the uninterrupted run's
    clean = [json.loads(line) for line in open(f"{clean_dir}/metrics.jsonl")]
    curve = lambda rows: [{k: v for k, v in x.items() if k not in TIMING} for x in rows  # noqa: E731
                          if x.get("event") in ("train", "eval", "epoch")]
    first_epoch = [x for x in curve(rows) if x["epoch"] <= 1]
    assert first_epoch and first_epoch == [x for x in curve(clean) if x["epoch"] <= 1]
    assert curve(rows) == curve(clean)  # tokens included: the x axes continue across the resume
    for event in ("train", "eval"):
        logged = [x["step"] for x in rows if x.get("event") == event]
        assert logged == sorted(set(logged))  # strictly increasing: none logged twice
    walls = [x["wall_seconds"] for x in rows if "wall_seconds" in x]
    assert walls == sorted(walls)


def test_eval_every_n_steps_and_at_epoch_ends(tmp_path):
    r, run_dir = train(rnn_config(tmp_path, rnn={"eval_every": 5, "epochs": 2, "patience": 100}))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")]
    evals = [x for x in rows if x.get("event") == "eval"]
    epoch_ends = [x["step"] for x in rows if x.get("event") == "epoch"]
    assert len(epoch_ends) == 2
    assert {x["step"] for x in evals} == {s for s in range(5, epoch_ends[-1] + 1, 5)} | set(epoch_ends)


@pytest.mark.slow
def test_compiled_programs_are_bounded_by_jax_compile_log(caplog):
    """Count compilations in JAX's own log over a whole training run: at most eight programs,
    whatever the lengths (texts are read chunk by chunk), however many length buckets: the head and the
    update once, the forward, backward and evaluation chunks once per chunk size (full and half)."""
    import logging

    from rnnbench.config import Config
    from rnnbench.data import Split, generate
    from rnnbench.models.rnn.model_api import RNNClassifier

    texts, y = generate(900, seed=11, mean_tokens=60)
    cfg = Config().replace(**{"rnn.embed_dim": 8, "rnn.hidden_dim": 8, "rnn.epochs": 2, "rnn.batch_size": 16})
    model = RNNClassifier(cfg, Task("sentiment", "binary", 2), seed=0)
    names = ("forward_chunk", "head_step", "backward_chunk", "apply_step", "predict_chunk")
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        model.fit(Split(texts[:800], y[:800]), Split(texts[800:], y[800:]), progress=False)
        model.predict_scores(texts[800:])
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling ")
                and any(f"jit({n})" in r.getMessage() for n in names)]
    assert len(model.boundaries_) > 5 and all(b % cfg.rnn.chunk == 0 for b in model.boundaries_)
    counts = collections.Counter(m.split("(")[1].split(")")[0] for m in compiled)
    assert set(counts) == set(names) and counts["head_step"] == counts["apply_step"] == 1
    assert all(counts[n] <= 2 for n in names) and len(compiled) <= 8, counts
    assert counts["forward_chunk"] == counts["backward_chunk"] == 2  # these batches use both sizes
    assert len(compiled) == model.training_["compiled_programs"]
    assert model.training_["train_programs"] == "per-chunk"  # auto, on a CPU


@pytest.mark.slow
def test_per_batch_programs_are_bounded_by_the_length_classes(caplog):
    """compute.train_programs: per-batch compiles one training program per length class its batches
    reach (fewer than the buckets), plus evaluation's chunks; none of the chunked trainer's. Its batches
    padded to the classes' widths, it trains to the chunked trainer's validation scores."""
    import logging

    from rnnbench.config import Config
    from rnnbench.data import Split, generate
    from rnnbench.models.jaxtrain.batching import Batcher
    from rnnbench.models.rnn.model_api import RNNClassifier
    from rnnbench.models.rnn.train import length_class

    texts, y = generate(900, seed=11, mean_tokens=60)
    cfg = Config().replace(**{"rnn.embed_dim": 8, "rnn.hidden_dim": 8, "rnn.epochs": 2, "rnn.batch_size": 16,
                              "rnn.chunk": 4, "compute.train_programs": "per-batch"})  # buckets of 1 to 30 chunks
    model = RNNClassifier(cfg, Task("sentiment", "binary", 2), seed=0)
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        model.fit(Split(texts[:800], y[:800]), Split(texts[800:], y[800:]), progress=False)
    compiled = [r.getMessage().split("(")[1].split(")")[0] for r in caplog.records
                if r.getMessage().startswith("Compiling jit(")]
    counts = collections.Counter(n for n in compiled if n in ("batch_step", "forward_chunk", "backward_chunk",
                                                              "head_step", "apply_step", "predict_chunk"))
    # the classes of the widths an epoch's batches have (a bucket too small to fill a batch moves up a bucket)
    batcher = Batcher(model._sequences(texts[:800]), y[:800], 16, model.boundaries_, cfg.data.max_len)
    reached = {length_class(int(model.boundaries_[b]), cfg.rnn.chunk) for b, _ in batcher.epoch(0, 0)}
    assert len(model.boundaries_) > len(reached) == counts["batch_step"] >= 2, counts
    assert set(counts) == {"batch_step", "predict_chunk"} and counts["predict_chunk"] <= 2, counts
    assert sum(counts.values()) == model.training_["compiled_programs"]
    assert model.training_["train_programs"] == "per-batch"
    chunked = RNNClassifier(cfg.replace(**{"compute.train_programs": "per-chunk"}), Task("sentiment", "binary", 2), seed=0)
    chunked.fit(Split(texts[:800], y[:800]), Split(texts[800:], y[800:]), progress=False)
    assert chunked.training_["train_programs"] == "per-chunk" and chunked.training_["steps"] == model.training_["steps"]
    assert model.validation_["log_loss"] == pytest.approx(chunked.validation_["log_loss"], rel=1e-4)
    assert model.validation_["roc_auc"] == pytest.approx(chunked.validation_["roc_auc"], abs=0.01)


@pytest.mark.slow
def test_a_run_resumed_at_its_last_checkpoint_reports_the_programs_its_training_compiled(tmp_path):
    from rnnbench.config import Config
    from rnnbench.data import Split, generate
    from rnnbench.models.rnn.model_api import RNNClassifier

    texts, y = generate(300, seed=5, mean_tokens=30)
    cfg = Config().replace(**{"rnn.embed_dim": 8, "rnn.hidden_dim": 8, "rnn.epochs": 1, "rnn.batch_size": 32})
    train_split, val = Split(texts[:250], y[:250]), Split(texts[250:], y[250:])
    first = RNNClassifier(cfg, Task("sentiment", "binary", 2), seed=0).fit(train_split, val, run=Run(tmp_path),
                                                                          progress=False)
    again = RNNClassifier(cfg, Task("sentiment", "binary", 2), seed=0).fit(train_split, val, run=Run(tmp_path),
                                                                          progress=False)
    assert again.training_["steps"] == first.training_["steps"]  # nothing left to train: restored, not rerun
    assert again.training_["compiled_programs"] == first.training_["compiled_programs"] >= 4


def _small_fit(run_dir, programs="auto", **rnn):
    from rnnbench.config import Config
    from rnnbench.data import Split, generate
    from rnnbench.models.rnn.model_api import RNNClassifier

    texts, y = generate(300, seed=5, mean_tokens=30)
    overrides = {"rnn.embed_dim": 8, "rnn.hidden_dim": 8, "rnn.batch_size": 32, "rnn.patience": 10,
                 "rnn.learning_rate": 0.01, "compute.train_programs": programs, **{f"rnn.{k}": v for k, v in rnn.items()}}
    model = RNNClassifier(Config().replace(**overrides), Task("sentiment", "binary", 2), seed=0)
    model.fit(Split(texts[:250], y[:250]), Split(texts[250:], y[250:]), run=Run(run_dir) if run_dir else None,
              progress=False)
    return model, texts[250:]


@pytest.mark.slow
def test_learning_rate_decays_after_each_epoch(tmp_path):
    """lr_decay 0: the second epoch's updates are all zero, so its validation score repeats the first's."""
    r, run_dir = train(rnn_config(tmp_path, rnn={"epochs": 3, "lr_decay": 0.0, "patience": 10}))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")]
    assert [x["learning_rate"] for x in rows if x.get("event") == "epoch"] == [0.01, 0.0, 0.0]
    evals = [x["val_metric"] for x in rows if x.get("event") == "eval"]
    assert len(evals) == 3 and evals[1] == evals[2] == evals[0]
    _, halved = train(rnn_config(tmp_path, "half.yaml", rnn={"epochs": 3, "lr_decay": 0.5, "patience": 10}))
    lrs = [json.loads(line).get("learning_rate") for line in open(f"{halved}/metrics.jsonl")]
    assert [x for x in lrs if x is not None] == [0.01, 0.005, 0.0025]


@pytest.mark.slow
def test_weight_average_is_what_is_validated_kept_and_resumed(tmp_path):
    """rnn.ema: the moving average (not the last weights) is validated and kept, and it is checkpointed,
    so a run stopped after one epoch and resumed for a second equals a two-epoch run."""
    plain, texts = _small_fit(None, epochs=2)
    averaged, _ = _small_fit(None, epochs=2, ema=0.9)
    assert not np.allclose(plain.predict_scores(texts), averaged.predict_scores(texts))
    _small_fit(tmp_path / "run", epochs=1, ema=0.9)
    resumed, _ = _small_fit(tmp_path / "run", epochs=2, ema=0.9)
    np.testing.assert_array_equal(resumed.predict_scores(texts), averaged.predict_scores(texts))
    cfg = RnnConfig(embed_dim=4, hidden_dim=4, ema=0.75)
    steps = Steps(SequenceModel(30, 1, cfg, rngs=nnx.Rngs(0)), cfg, Task("t", "binary", 2), 0)
    ones = jax.tree.map(jax.numpy.ones_like, steps.params)
    avg = moving_average(cfg.ema)(jax.tree.map(jax.numpy.zeros_like, steps.params), ones)
    assert all(np.allclose(leaf, 0.25) for leaf in jax.tree.leaves(avg))


def _losses(cfg, steps_to_try):
    """The training loss of one fixed batch at each step number (dropout keys follow the step)."""
    steps = Steps(SequenceModel(50, 1, cfg, rngs=nnx.Rngs(0)), cfg, Task("t", "binary", 2), 0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, 50, (6, 12)).astype(np.int32)
    lengths = np.array([12, 9, 5, 12, 3, 7], np.int32)
    y, w = np.array([0, 1, 1, 0, 1, 0]), np.ones(6, np.float32)
    return [float(steps.gradients(steps.params, tokens, lengths, y, w, s, steps.base_key)[0]) for s in steps_to_try]


@pytest.mark.slow
@pytest.mark.parametrize("option", ["dropout", "input_dropout"])
def test_dropout_masks_follow_the_step_and_never_touch_predictions(option):
    from rnnbench.data import Ragged
    from rnnbench.models.rnn.train import predict

    small = {"embed_dim": 8, "hidden_dim": 8, "chunk": 4, "layers": 2}
    noisy, plain = RnnConfig(**small, **{option: 0.5}), RnnConfig(**small)
    a, again, b = _losses(noisy, [3, 3, 4])
    p3, p4 = _losses(plain, [3, 4])
    assert a == again and a != b  # the same step draws the same masks, another step others
    assert p3 == p4 and a != p3
    texts = Ragged.from_sequences([[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [3]])
    scores = [predict(s, s.params, texts, 100) for s in
              (Steps(SequenceModel(50, 1, c, rngs=nnx.Rngs(0)), c, Task("t", "binary", 2), 0) for c in (noisy, plain))]
    np.testing.assert_array_equal(*scores)


@pytest.mark.slow
def test_input_dropout_drops_that_share_of_the_embedded_inputs():
    """Passage's p_drop: the probability of dropping each unit of the embedded tokens (not of keeping it)."""
    cfg = RnnConfig(embed_dim=32, hidden_dim=8, input_dropout=0.75)
    model = SequenceModel(50, 1, cfg, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (20, 16, 32))
    remaining = np.full(16, 20, np.int32)

    def dx(key):
        return jax.grad(lambda x: sum(s[0].sum() for s in model.advance(x, remaining, model.initial_states(16), key)))(x)

    dropped = float(np.mean(dx(jax.random.key(2)) == 0))
    assert 0.72 < dropped < 0.78, dropped  # 10,240 units: the binomial's sd is 0.004
    assert float(np.mean(dx(None) == 0)) < 0.01  # no key (prediction): nothing dropped


def test_a_long_epoch_says_how_long_it_will_take_and_logs_progress_without_a_terminal(monkeypatch, capsys,
                                                                                       stderr_log):
    """After the compiling steps, the epoch's expected time at the measured rate; with no progress bar (a
    log file), a line a minute with the share done, the rate and the time left."""
    from rnnbench.models.jaxtrain import loop as loop_mod

    now = [0.0]
    monkeypatch.setattr(loop_mod.time, "perf_counter", lambda: now[0])
    meter = loop_mod._EpochMeter("epoch 1/2", batches=1000, tokens=1_000_000, enabled=True, lines=True)
    for step in range(1, 31):  # 1,000 tokens a batch at 100 batches/s after the warm-up
        now[0] += 0.01 if step > 3 else 5.0
        meter.update(step, step * 1000)
    first = capsys.readouterr().err.splitlines()
    assert first == ["epoch 1/2: 1,000 batches, 1.0M tokens; at 100,000 tokens/s (steps 3-23) about 10 s"]
    now[0] += 61
    meter.update(600, 600_000)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("epoch 1/2:  60% (600/1,000 batches), ") and line.endswith(" left")
    quiet = loop_mod._EpochMeter("epoch 1/2", batches=1000, tokens=10**6, enabled=False, lines=True)
    for step in range(1, 31):
        quiet.update(step, step * 1000)
    assert capsys.readouterr().err == ""


class _Crash(BaseException):
    """A kill at a chosen step (a BaseException: nothing in the trainer catches it)."""


def _crash_at(monkeypatch, step: int) -> None:
    real = Steps.train_step

    def train_step(self, params, opt_state, batch, s):
        if s == step:
            raise _Crash(f"killed before step {step}")
        return real(self, params, opt_state, batch, s)

    monkeypatch.setattr(Steps, "train_step", train_step)


def _curve(run_dir):
    rows = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")]
    return [{k: v for k, v in x.items() if k not in TIMING} for x in rows if x.get("event") in ("train", "eval", "epoch")]


@pytest.mark.slow  # (tests/test_faults.py resumes mid-epoch after a SIGTERM, in the fast set)
@pytest.mark.parametrize("kill_step, programs", [(3, "per-chunk"), (11, "per-chunk"), (11, "per-batch")])
def test_killed_mid_epoch_resumes_from_the_step_checkpoint_to_the_same_result(tmp_path, monkeypatch, kill_step,
                                                                              programs):
    """rnn.checkpoint_every_s 0 checkpoints after every step: a run killed mid-epoch resumes at that step
    (data order position, losses so far, dropout keys, the weights' average) and ends exactly as an
    uninterrupted run: the same predictions and the same learning curve, every line logged once. With 8
    batches an epoch, step 3 is inside the first epoch and 11 inside the second; per-batch programs (a
    GPU's) resume as the chunked ones do."""
    settings = {"epochs": 2, "checkpoint_every_s": 0, "input_dropout": 0.2, "ema": 0.5, "eval_every": 5,
                "programs": programs}
    clean, texts = _small_fit(tmp_path / "clean", **settings)
    with monkeypatch.context() as m:
        _crash_at(m, kill_step)
        with pytest.raises(_Crash):
            _small_fit(tmp_path / "run", **settings)
    (ckpt,) = [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()]
    assert int(ckpt.name) == kill_step  # saved between the steps, not only at the epoch's end
    resumed, _ = _small_fit(tmp_path / "run", **settings)
    np.testing.assert_array_equal(resumed.predict_scores(texts), clean.predict_scores(texts))
    # (a resumed process may compile a program again for the restored arrays: compiled_programs aside)
    drop = lambda d: {k: v for k, v in d.items() if k != "compiled_programs"}  # noqa: E731
    assert drop(resumed.training_) == drop(clean.training_) and resumed.chosen_ == clean.chosen_
    assert resumed.training_["train_programs"] == programs
    # its cost counts the training before the kill too (to the checkpoint it resumed from)
    assert clean.timings_["train_wall"] == pytest.approx(clean.timings_["train_loop"], abs=0.05)
    assert resumed.timings_["fit"] > resumed.timings_["train_wall"] > resumed.timings_["train_loop"] + 0.05
    assert _curve(tmp_path / "run") == _curve(tmp_path / "clean")
    (event,) = [json.loads(x) for x in open(tmp_path / "run" / "metrics.jsonl") if '"resumed"' in x]
    assert event["step"] == kill_step and event["batch"] == kill_step % 8


def test_checkpoint_every_null_keeps_epoch_checkpoints_only(tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _crash_at(m, 11)
        with pytest.raises(_Crash):
            _small_fit(tmp_path / "run", epochs=2, checkpoint_every_s=None)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()) == ["8"]


def _legacy_save(manager, params, opt_state, best_params, state, ema_params=None):
    """How rnnbench wrote checkpoints before mid-epoch ones (epoch ends only; six metadata keys)."""
    import orbax.checkpoint as ocp

    extra = {} if ema_params is None else {"ema_params": ema_params}
    tree = {"params": params, "opt_state": opt_state, "best_params": best_params, **extra,
            "meta": {"epoch": np.array(state.epoch, np.int64), "step": np.array(state.step, np.int64),
                     "best_metric": np.array(np.nan if state.best_metric is None else state.best_metric, np.float64),
                     "best_epoch": np.array(state.best_epoch, np.float64),
                     "bad_evals": np.array(state.bad_evals, np.int64),
                     "compiled_programs": np.array(state.compiled_programs, np.int64)}}
    manager.save(state.step, args=ocp.args.StandardSave(tree))
    manager.wait_until_finished()


def test_a_checkpoint_in_the_earlier_format_still_resumes(tmp_path, monkeypatch):
    """A run stopped at an epoch's end by an earlier rnnbench (its checkpoint format) resumes here."""
    from rnnbench.models.jaxtrain import checkpoints

    clean, texts = _small_fit(tmp_path / "clean", epochs=2, ema=0.5)
    with monkeypatch.context() as m:
        m.setattr(checkpoints, "save", _legacy_save)
        _small_fit(tmp_path / "run", epochs=1, ema=0.5)
    resumed, _ = _small_fit(tmp_path / "run", epochs=2, ema=0.5)
    np.testing.assert_array_equal(resumed.predict_scores(texts), clean.predict_scores(texts))
    assert _curve(tmp_path / "run") == _curve(tmp_path / "clean")


@pytest.mark.slow
def test_sigterm_checkpoints_exits_143_and_resumes_to_the_same_result(tmp_path):
    """What a scheduler sends first: the trainer saves a checkpoint at the next step boundary and exits
    143 within seconds; the same command then resumes mid-epoch and ends as an uninterrupted run."""
    rnn = {"epochs": 2, "patience": 5}
    data = {"synthetic": {"train_size": 3000, "test_size": 200}}
    cfg = rnn_config(tmp_path, rnn=rnn, data=data)
    proc = subprocess.Popen([sys.executable, "-m", "rnnbench.cli", "train", str(cfg), "--model", "rnn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "runs" / "t" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        metrics = list(runs.glob("*/metrics.jsonl"))
        if metrics and '"train"' in metrics[0].read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert time.time() - sent < 60 and "Terminated" in err and "Traceback" not in err
    (run_dir,) = list(runs.iterdir())
    assert not (run_dir / "DONE").exists()
    (ckpt,) = [p for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()]
    assert int(ckpt.name) > 0
    r, resumed_dir = train(cfg)
    assert r.exit_code == 0, r.output
    _, clean_dir = train(rnn_config(tmp_path, "clean.yaml", rnn=rnn, data=data,
                                    experiment={"output_dir": str(tmp_path / "clean")}))
    assert result(resumed_dir)["metrics"] == result(clean_dir)["metrics"]
    assert _curve(resumed_dir) == _curve(clean_dir)
