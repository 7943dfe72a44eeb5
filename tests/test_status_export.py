import json
import os
import struct
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnbench import lease
from rnnbench.cli import main
from rnnbench.config import load_config
from rnnbench.runs import Run, RunResult
from rnnbench.status import collect, progress_of
from tests.helpers import write_config


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def make_run(exp: Path, name: str, rows=(), result=None, rnn=None, epochs=4, **sections) -> Path:
    """A run folder as a run leaves it: config.yaml, metrics.jsonl, and when finished result.json + DONE.
    ``sections``: other config sections' settings (``data={...}``), as in :func:`write_config`."""
    path = exp / "runs" / name
    path.mkdir(parents=True)
    cfg = load_config(write_config(exp.parent / "c.yaml", rnn={"epochs": epochs, **(rnn or {})}, **sections))
    (path / "config.yaml").write_text(cfg.to_yaml())
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if result is not None:
        Run(path).finish(result)
    return path


def write_lease(run: Path, host: str, pid: int, age: float, gpu: str | None = None) -> None:
    p = lease.lease_path(run)
    p.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    p.write_text(json.dumps({"host": host, "pid": pid, "started": now - age - 60, "heartbeat": now - age,
                             "timeout": 300, "token": "t", "cuda_visible_devices": gpu}))
    os.utime(p, (now - age, now - age))  # written at its heartbeat


TRAINING = [
    {"event": "train", "step": 20, "epoch": 0.5, "train_loss": 0.69, "grad_norm": 1.0, "tokens_per_s": 21000.0,
     "wall_seconds": 30.0, "tokens": 5000, "time": 1000.0},
    {"event": "epoch", "epoch": 1, "step": 40, "train_loss_epoch": 0.6, "learning_rate": 0.001, "time": 1001.0},
    {"event": "eval", "step": 40, "epoch": 1.0, "val_accuracy": 0.71, "val_metric": 0.71, "wall_seconds": 60.0,
     "time": 1002.0},
    {"event": "train", "step": 60, "epoch": 1.5, "train_loss": 0.5, "grad_norm": 0.8, "tokens_per_s": 22000.0,
     "wall_seconds": 90.0, "tokens": 15000, "time": 1003.0},
]


@pytest.fixture
def experiment(tmp_path):
    exp = tmp_path / "runs" / "t"
    ok = RunResult(model="linear", size=100, seed=0, metrics={"accuracy": 0.8125})
    make_run(exp, "linear-n100-s0-aaa", [{"event": "grid_point", "min_df": 1, "C": 1.0, "val_accuracy": 0.7}], ok)
    bad = RunResult(model="rnn", size=100, seed=0, status="failed", reason="loss became nan at step 12")
    make_run(exp, "rnn-n100-s0-bbb", [], bad)
    running = make_run(exp, "rnn-n300-s0-ccc", TRAINING)
    write_lease(running, "node7", 4242, age=3, gpu="1")
    stale = make_run(exp, "rnn-n300-s1-ddd", TRAINING[:1])
    write_lease(stale, "node8", 99, age=1200)
    interrupted = make_run(exp, "rnn-n1000-s0-eee", TRAINING[:2])
    (interrupted / "checkpoints" / "40").mkdir(parents=True)
    write_lease(exp / "runs" / "linear-n1000-s0-fff", "node9", 5, age=1)  # claimed, no folder yet
    return exp


def test_status_lists_every_state_with_where_and_progress(experiment):
    by_name = {s.name: s for s in collect(experiment)}
    assert {n: s.state for n, s in by_name.items()} == {
        "linear-n100-s0-aaa": "done", "rnn-n100-s0-bbb": "failed", "rnn-n300-s0-ccc": "running",
        "rnn-n300-s1-ddd": "stale", "rnn-n1000-s0-eee": "to do", "linear-n1000-s0-fff": "running"}
    assert by_name["linear-n100-s0-aaa"].result == "test accuracy 0.8125"
    assert by_name["rnn-n100-s0-bbb"].result == "loss became nan at step 12"
    run = by_name["rnn-n300-s0-ccc"]
    assert run.where == "node7 pid 4242, GPU 1"
    # epoch 1.5 of 4 after 90 s: 2.5 epochs to go at 60 s each, at most; the second ends in 30 s
    assert run.info["progress"]["eta_seconds"] == pytest.approx(150.0)
    assert run.info["progress"]["epoch_ends_seconds"] == pytest.approx(30.0)
    assert run.progress == "epoch 1.50/4, step 60, val 0.7100, 22,000 tok/s, epoch 2 ends in ~30 s, ETA <= 2 min"
    assert "heartbeat 20 min ago" in by_name["rnn-n300-s1-ddd"].progress
    # its newest checkpoint, step 40 (the log's train row: 20 steps make half an epoch)
    assert by_name["rnn-n1000-s0-eee"].progress == "resumes at step 40 (epoch 1.00/4)"
    assert all(not s.variant for s in by_name.values())  # no two runs share a model, size and seed


def test_status_says_at_which_step_a_run_resumes_and_what_tells_runs_of_one_seed_apart(tmp_path):
    exp = tmp_path / "runs" / "t"
    short = make_run(exp, "rnn-n500-s0-aaa", TRAINING[:1], rnn={"hidden_dim": 16})
    for step in ("20", "60", "8", "80.orbax-checkpoint-tmp-1", "²"):  # the newest complete one counts
        (short / "checkpoints" / step).mkdir(parents=True, exist_ok=True)
    long = make_run(exp, "rnn-n500-s0-bbb", rnn={"hidden_dim": 32, "checkpoint_every_s": 60})
    other_seed = make_run(exp, "rnn-n500-s1-ccc", rnn={"hidden_dim": 64})
    garbled = make_run(exp, "rnn-n500-s0-ddd")
    (garbled / "config.yaml").write_bytes(b"rnn: gru\ndata: [1]\n\xff\xfe")
    by_name = {s.name: s for s in collect(exp)}
    assert by_name[short.name].progress == "resumes at step 60 (epoch 1.50/4)"
    assert by_name[long.name].progress == "interrupted: starts again"
    # how often a run checkpoints never changes its result: not a difference worth naming; a config.yaml
    # that cannot be read names nothing and hides nothing
    assert (by_name[short.name].variant, by_name[long.name].variant) == ("rnn.hidden_dim=16", "rnn.hidden_dim=32")
    assert by_name[other_seed.name].variant == by_name[garbled.name].variant == ""
    out = cli("status", exp).output
    assert "rnn-n500-s0-aaa (rnn.hidden_dim=16)" in out and "rnn-n500-s0-bbb (rnn.hidden_dim=32)" in out


def test_status_names_only_the_settings_a_model_reads(tmp_path):
    exp = tmp_path / "runs" / "t"
    # the baseline reads every text whole and has no GRU: max_len and rnn.* tell its runs apart in nothing
    make_run(exp, "linear-n500-s0-aaa", rnn={"hidden_dim": 16})
    make_run(exp, "linear-n500-s0-bbb", rnn={"hidden_dim": 32})
    # the GRU: a neutral option written out (a newer run) equals its absence (an older run's config.yaml)
    make_run(exp, "rnn-n500-s0-ccc", rnn={"lr_decay": 1.0, "hidden_dim": 16})
    old = make_run(exp, "rnn-n500-s0-ddd", rnn={"hidden_dim": 24, "embed_dim": 8, "cell": "lstm", "epochs": 3})
    text = (old / "config.yaml").read_text()
    (old / "config.yaml").write_text("\n".join(x for x in text.splitlines() if "lr_decay" not in x) + "\n")
    by_name = {s.name: s for s in collect(exp)}
    assert by_name["linear-n500-s0-aaa"].variant == by_name["linear-n500-s0-bbb"].variant == ""
    assert by_name["rnn-n500-s0-ccc"].variant == "rnn.cell=gru, rnn.embed_dim=256, rnn.epochs=4, +1 more"
    assert by_name["rnn-n500-s0-ddd"].variant == "rnn.cell=lstm, rnn.embed_dim=8, rnn.epochs=3, +1 more"


def test_status_command_prints_a_table_and_counts(experiment):
    r = cli("status", experiment)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["run", "state", "where", "progress", "result"]
    assert lines[-1] == "6 runs: 1 done, 1 failed, 2 running, 1 stale, 1 to do"
    assert any("rnn-n300-s0-ccc" in x and "node7 pid 4242" in x and "ETA" in x for x in lines)
    assert cli("status", experiment / "runs").output == r.output  # its runs/ folder works too


def test_status_json_is_one_document_with_the_same_keys_for_every_run(experiment):
    """`status --json`: for scripts and dashboards, every run with its state, where, progress (the same
    keys for each, null where a run has none) and result, and the counts the table ends with."""
    r = cli("status", experiment, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert set(doc) == {"runs", "counts"}
    assert doc["counts"] == {"done": 1, "failed": 1, "running": 2, "stale": 1, "to do": 1}
    keys = {"name", "path", "model", "size", "seed", "state", "variant", "where", "progress", "resumes_at_step",
            "result", "text"}
    assert all(set(run) == keys for run in doc["runs"])
    assert len({tuple(sorted(run["progress"])) for run in doc["runs"]}) == 1
    by_name = {run["name"]: run for run in doc["runs"]}
    done, failed = by_name["linear-n100-s0-aaa"], by_name["rnn-n100-s0-bbb"]
    assert (done["model"], done["size"], done["seed"], done["state"]) == ("linear", 100, 0, "done")
    assert done["result"] == {"status": "ok", "metrics": {"accuracy": 0.8125}, "reason": None}
    assert failed["result"] == {"status": "failed", "metrics": {}, "reason": "loss became nan at step 12"}
    running = by_name["rnn-n300-s0-ccc"]
    assert {k: running["where"][k] for k in ("host", "pid", "gpus")} == {"host": "node7", "pid": 4242, "gpus": "1"}
    assert running["progress"]["step"] == 60 and running["progress"]["epochs"] == 4
    assert running["progress"]["eta_seconds"] == pytest.approx(150.0) and running["progress"]["grid_total"] is None
    assert running["result"] is None and running["text"]["progress"].endswith("ETA <= 2 min")
    assert by_name["rnn-n1000-s0-eee"]["resumes_at_step"] == 40 and by_name["rnn-n1000-s0-eee"]["where"] is None
    assert by_name["rnn-n300-s1-ddd"]["state"] == "stale" and by_name["rnn-n300-s1-ddd"]["where"]["host"] == "node8"
    assert str(experiment) in done["path"] and all(run["variant"] is None for run in doc["runs"])


def test_status_of_a_config_lists_runs_not_started(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", data={"sizes": [100, 200]}, experiment={"seeds": [0, 1]})
    r = cli("status", cfg)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == "8 runs: 0 done, 0 failed, 0 running, 0 stale, 8 to do"
    bad = cli("status", tmp_path / "nowhere")
    assert bad.exit_code == 2 and "no such experiment folder or config" in bad.output


def test_progress_reads_only_the_tail_of_a_long_log(tmp_path):
    exp = tmp_path / "runs" / "t"
    rows = [{"event": "train", "step": i, "epoch": i / 1000, "wall_seconds": i / 10, "tokens_per_s": 1.0}
            for i in range(1, 20001)]
    run = make_run(exp, "rnn-n5-s0-x", rows, epochs=40)
    p = progress_of(run)
    assert p["step"] == 20000 and p["epoch"] == 20.0 and p["eta_seconds"] == pytest.approx(2000.0)
    assert "epoch_ends_seconds" not in p  # at an epoch's end: the next has not started


# ------------------------------------------------------------------------------ TensorBoard


def read_events(folder: Path) -> list:
    """Scalars of TensorBoard event files, read from the TFRecord framing with tensorboardX's protos."""
    from tensorboardX.proto import event_pb2

    out = []
    for f in sorted(folder.glob("events.out.tfevents.*")):
        data = f.read_bytes()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            ev = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in ev.summary.value:
                out.append((v.tag, ev.step, round(v.simple_value, 6)))
    return out


def test_export_tensorboard_one_named_run_per_run(tmp_path):
    pytest.importorskip("tensorboardX")
    exp = tmp_path / "runs" / "t"
    done = TRAINING + [{"event": "done", "test_accuracy": 0.75, "time": 1004.0}]
    for cell, h in (("gru", "a"), ("lstm", "b")):
        make_run(exp, f"rnn-n300-s0-{h}", done, RunResult(model="rnn", size=300, seed=0), rnn={"cell": cell})
    make_run(exp, "linear-n300-s0-c", [{"event": "grid_point", "min_df": 1, "C": 1.0, "val_accuracy": 0.6},
                                       {"event": "grid_point", "min_df": 1, "C": 4.0, "val_accuracy": 0.65},
                                       {"event": "done", "test_accuracy": 0.7}], RunResult(model="linear", size=300, seed=0))
    r = cli("export", "tensorboard", exp)
    assert r.exit_code == 0, r.output
    assert "3 run(s)" in r.output and f"tensorboard --logdir {exp / 'tensorboard'}" in r.output
    names = sorted(p.name for p in (exp / "tensorboard").iterdir())
    assert names == ["linear-n300-s0", "rnn-n300-s0-rnn.cell=gru", "rnn-n300-s0-rnn.cell=lstm"]
    gru = read_events(exp / "tensorboard" / "rnn-n300-s0-rnn.cell=gru")
    assert ("train/loss", 20, 0.69) in gru and ("train/loss", 60, 0.5) in gru
    assert ("val/accuracy", 40, 0.71) in gru and ("train/loss_epoch", 40, 0.6) in gru
    assert ("test/accuracy", 60, 0.75) in gru and ("train/tokens_per_s", 60, 22000.0) in gru
    lin = read_events(exp / "tensorboard" / "linear-n300-s0")
    assert [x for x in lin if x[0] == "val/accuracy"] == [("val/accuracy", 1, 0.6), ("val/accuracy", 2, 0.65)]
    assert cli("export", "tensorboard", exp).exit_code == 0  # again: replaced, not doubled
    assert read_events(exp / "tensorboard" / "rnn-n300-s0-rnn.cell=gru") == gru
    assert len(list((exp / "tensorboard" / "linear-n300-s0").iterdir())) == 1
    assert not [p for p in (exp / "tensorboard").iterdir() if p.name.startswith(".")]


def test_export_names_runs_by_the_settings_their_model_reads(tmp_path):
    pytest.importorskip("tensorboardX")
    exp = tmp_path / "runs" / "t"
    synthetic = {"dataset": "synthetic", "synthetic": {"train_size": 1200, "test_size": 400}}
    # a GRU run made before the config's baseline grid changed: the grid tells GRU runs apart in nothing;
    # a nested setting (the synthetic corpus's noise) is named by its own key
    make_run(exp, "rnn-n300-s0-a", TRAINING, linear={"C": [1.0]}, data=synthetic)
    make_run(exp, "rnn-n300-s0-b", TRAINING, linear={"C": [2.0]},
             data={**synthetic, "synthetic": {**synthetic["synthetic"], "noise": 0.1}})
    # the baseline reads every text whole: max_len tells its runs apart in nothing, the grid does
    make_run(exp, "linear-n300-s0-c", linear={"C": [1.0]}, data={"max_len": 64})
    make_run(exp, "linear-n300-s1-d", linear={"C": [2.0]}, data={"max_len": 128})
    # a config.yaml that cannot be read names nothing and makes no setting of the others look varying
    garbled = make_run(exp, "rnn-n300-s1-e", TRAINING)
    (garbled / "config.yaml").write_bytes(b"rnn: gru\ndata: [1]\n\xff\xfe")
    assert cli("export", "tensorboard", exp).exit_code == 0
    assert sorted(p.name for p in (exp / "tensorboard").iterdir()) == [
        "linear-n300-s0-linear.C=1.0", "linear-n300-s1-linear.C=2.0",
        "rnn-n300-s0-data.synthetic.noise=0.0", "rnn-n300-s0-data.synthetic.noise=0.1", "rnn-n300-s1"]


def test_export_run_names_stay_short_enough_for_a_folder(tmp_path):
    from rnnbench.export import MAX_NAME, run_names

    exp = tmp_path / "runs" / "t"
    many = [{"cell": c, "gate": g, "init": i, "optimizer": o, "learning_rate": lr, "batch_size": b, "hidden_dim": h,
             "embed_dim": e, "clip_norm": cn, "input_dropout": d, "learned_init_state": li, "momentum": m}
            for c, g, i, o, lr, b, h, e, cn, d, li, m in (("gru", "sigmoid", "gaussian", "adam", 0.1, 16, 8, 8, 1.0, 0.1,
                                                           True, 0.5),
                                                          ("lstm", "hard_sigmoid", "uniform", "rmsprop", 0.2, 32, 16,
                                                           16, 2.0, 0.2, False, 0.6))]
    runs = [make_run(exp, f"rnn-n300-s0-{h}", rnn=rnn) for h, rnn in zip(("aaa", "bbb"), many)]
    names = run_names(runs)
    assert all(len(n) <= MAX_NAME for n in names.values()) and len(set(names.values())) == 2
    assert names[runs[0]].startswith("rnn-n300-s0-rnn.batch_size=16-rnn.cell=gru") and names[runs[0]].endswith("-aaa")


def test_export_without_tensorboardx_names_the_extra(tmp_path, monkeypatch):
    exp = tmp_path / "runs" / "t"
    make_run(exp, "rnn-n300-s0-a", TRAINING)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    r = cli("export", "tensorboard", exp)
    assert r.exit_code == 2 and "pip install -e '.[tensorboard]'" in r.output
    assert not (exp / "tensorboard").exists()


def test_export_of_a_folder_with_no_runs(tmp_path):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    r = cli("export", "tensorboard", tmp_path / "empty")
    assert r.exit_code == 2 and "no run with a metrics.jsonl" in r.output


# ------------------------------------------------------------------------------ MLflow


def mlflow_store(tmp_path, monkeypatch):
    """MLflow's own client on the local file store the export wrote (MLflow 3 wants it allowed)."""
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return mlflow_tracking.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())


def test_export_mlflow_one_run_per_run_with_settings_metrics_tags_and_the_curve(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from rnnbench.export import scalars

    exp = tmp_path / "runs" / "t"
    done = TRAINING + [{"event": "done", "test_accuracy": 0.75, "time": 1004.0}]
    runs = [make_run(exp, f"rnn-n300-s0-{h}", done, RunResult(model="rnn", size=300, seed=0, device="cpu (jax, 2 cores)"),
                     rnn={"cell": cell}) for cell, h in (("gru", "a"), ("lstm", "b"))]
    runs.append(make_run(exp, "linear-n300-s1-c", [{"event": "grid_point", "min_df": 1, "C": 1.0, "val_accuracy": 0.6},
                                                   {"event": "done", "test_accuracy": 0.7, "time": 1001.0}],
                         RunResult(model="linear", size=300, seed=1, device="cpu (scikit-learn)")))
    runs.append(make_run(exp, "rnn-n1000-s0-d", TRAINING[:2]))  # still training
    (exp / "learning_curve.png").write_bytes(b"\x89PNG not really")
    r = cli("export", "mlflow", exp, "--tracking-uri", tmp_path / "mlruns")
    assert r.exit_code == 0, r.output
    assert "4 run(s) (4 new, 0 updated)" in r.output and (tmp_path / "mlruns").as_uri() in r.output
    client = mlflow_store(tmp_path, monkeypatch)
    eid = client.get_experiment_by_name("t").experiment_id

    def read_back():
        found = {x.data.tags["rnnbench.run"]: x for x in client.search_runs([eid])}
        histories = {name: {key: [(m.step, m.value) for m in client.get_metric_history(x.info.run_id, key)]
                            for key in x.data.metrics} for name, x in found.items()}
        return found, histories

    found, histories = read_back()
    assert sorted(found) == sorted(p.name for p in runs)
    for run in runs:  # every run, with every metric of its log at its step
        expected: dict = {}
        for tag, value, step, _ in scalars(run):
            expected.setdefault(tag, []).append((step, value))
        assert {k: sorted(v) for k, v in histories[run.name].items()} == {k: sorted(v) for k, v in expected.items()}
    gru = found["rnn-n300-s0-a"]
    assert gru.info.run_name == "rnn-n300-s0-rnn.cell=gru" and gru.info.status == "FINISHED"
    assert {k: gru.data.tags[k] for k in ("model", "size", "seed", "experiment", "device")} == {
        "model": "rnn", "size": "300", "seed": "0", "experiment": "t", "device": "cpu (jax, 2 cores)"}
    assert gru.data.params["rnn.cell"] == "gru" and gru.data.params["rnn.epochs"] == "4"
    assert found["linear-n300-s1-c"].data.params["linear.C"] == "[1.0, 10.0]"
    assert "linear.C" not in gru.data.params and "rnn.cell" not in found["linear-n300-s1-c"].data.params
    assert histories["rnn-n300-s0-a"]["train/loss"] == [(20, 0.69), (60, 0.5)]
    assert histories["rnn-n300-s0-a"]["test/accuracy"] == [(60, 0.75)]
    assert found["rnn-n1000-s0-d"].info.status == "RUNNING" and "device" not in found["rnn-n1000-s0-d"].data.tags
    assert [a.path for a in client.list_artifacts(gru.info.run_id)] == ["learning_curve.png"]
    # again, after the unfinished run went on: the same MLflow runs, only the new step added
    Run(runs[3]).log({"event": "train", "step": 60, "train_loss": 0.4, "time": 1003.0})
    r = cli("export", "mlflow", exp, "--tracking-uri", tmp_path / "mlruns")
    assert r.exit_code == 0 and "4 run(s) (0 new, 4 updated), 1 metric values" in r.output, r.output
    again, histories_again = read_back()
    assert {k: x.info.run_id for k, x in again.items()} == {k: x.info.run_id for k, x in found.items()}
    assert histories_again["rnn-n1000-s0-d"]["train/loss"] == [(20, 0.69), (60, 0.4)]
    assert histories_again["rnn-n300-s0-a"] == histories["rnn-n300-s0-a"]


def test_export_mlflow_without_mlflow_names_the_extra(tmp_path, monkeypatch):
    exp = tmp_path / "runs" / "t"
    make_run(exp, "rnn-n300-s0-a", TRAINING)
    for name in ("mlflow", "mlflow.entities", "mlflow.tracking"):
        monkeypatch.setitem(sys.modules, name, None)
    r = cli("export", "mlflow", exp, "--tracking-uri", tmp_path / "mlruns")
    assert r.exit_code == 2 and "pip install -e '.[mlflow]'" in r.output
    assert not (tmp_path / "mlruns").exists()


def test_export_mlflow_defaults_to_mlruns_here_or_the_environment(tmp_path, monkeypatch):
    from rnnbench.export import tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(None) == (tmp_path / "mlruns").as_uri()
    assert tracking_uri("store") == (tmp_path / "store").as_uri()
    assert tracking_uri("http://mlflow.lab:5000") == "http://mlflow.lab:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert tracking_uri(None) == "sqlite:///mlflow.db"
