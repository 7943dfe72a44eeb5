"""`rnnbench train` / `predict` with the linear model, and the run store's guarantees."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.errors import RnnbenchError
from tests.helpers import write_config


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_writes_a_complete_run_and_prints_its_dir_last(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    r = run("train", cfg)
    assert r.exit_code == 0, r.output
    run_dir = r.output.strip().splitlines()[-1]
    files = set(os.listdir(run_dir))
    assert {"config.yaml", "metrics.jsonl", "result.json", "model.pkl", "DONE"} <= files
    result = json.loads(open(f"{run_dir}/result.json").read())
    assert result["status"] == "ok" and result["model"] == "linear"
    assert {"accuracy", "roc_auc", "log_loss"} <= set(result["metrics"]) <= set(result["validation"]) | {"roc_auc"}
    assert {"vectorize", "fit", "predict"} <= set(result["timings"])
    assert set(result["chosen"]) == {"min_df", "C"} and "jax" in result["versions"] and result["device"]
    lin = yaml.safe_load(open(f"{run_dir}/config.yaml"))["linear"]
    assert result["training"] == {"grid_points": len(lin["min_df"]) * len(lin["C"])} and result["reason"] == ""
    assert yaml.safe_load(open(f"{run_dir}/config.yaml"))["linear"]["C"] == [1.0, 10.0]
    assert result["n_train"] + result["n_val"] == 1200


def test_same_settings_same_dir_skip_and_force(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    first = run("train", cfg).output.strip().splitlines()[-1]
    done_mtime = os.stat(f"{first}/DONE").st_mtime_ns
    again = run("train", cfg)
    assert "already finished" in again.output and again.output.strip().splitlines()[-1] == first
    assert os.stat(f"{first}/DONE").st_mtime_ns == done_mtime
    forced = run("train", cfg, "--force")
    assert "already finished" not in forced.output and os.stat(f"{first}/DONE").st_mtime_ns != done_mtime
    other = run("train", cfg, "--seed", 1).output.strip().splitlines()[-1]
    assert other != first
    smaller = run("train", cfg, "--size", 300).output.strip().splitlines()[-1]
    assert smaller != first and "n300" in smaller


def test_predict_prints_label_and_probability(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    run_dir = run("train", cfg).output.strip().splitlines()[-1]
    r = run("predict", run_dir, "the plot was very good .", "the cast was extremely awful .")
    assert r.exit_code == 0, r.output
    lines = [line.split("\t") for line in r.output.strip().splitlines()]
    assert [line[0] for line in lines] == ["1", "0"] and all(0.5 <= float(line[1]) <= 1 for line in lines)
    f = tmp_path / "texts.txt"
    f.write_text("the plot was good .\n\nthe plot was bad .\n")
    assert len(run("predict", run_dir, "--file", f).stdout.strip().splitlines()) == 2
    full = [line.split("\t") for line in run("predict", run_dir, "--proba", "the plot was very good .").output.splitlines()]
    assert full[0] == ["label", "p(0)", "p(1)", "text"]  # a header names the classes
    label, p0, p1, text = full[1]
    assert label == "1" and float(p0) + float(p1) == pytest.approx(1.0, abs=2e-4) and p1 == lines[0][1]


def test_regression_run(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", data={"task": "score"}, linear={"alpha": [1.0]})
    r = run("train", cfg)
    assert r.exit_code == 0, r.output
    result = json.loads(open(r.output.strip().splitlines()[-1] + "/result.json").read())
    assert set(result["metrics"]) == {"rmse", "mae", "r2", "spearman"} and result["chosen"]["alpha"] == 1.0


@pytest.mark.parametrize("args, message", [
    (("--model", "svm"), "unknown model kind 'svm'"),
    (("--set", "linear.min_df=[]"), "linear.min_df: needs at least 1"),
    (("--set", "linear.C=[a]"), "linear.C[0]: expected float"),
    (("--size", "99999"), "larger than the 1080 examples available"),
])
def test_train_bad_input(tmp_path, args, message):
    cfg = write_config(tmp_path / "c.yaml")
    r = run("train", cfg, *args)
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = write_config(tmp_path / "c.yaml", experiment={"output_dir": str(blocker / "sub")})
    r = run("train", cfg)
    assert r.exit_code == 2 and "cannot create run directory" in r.output


def test_predict_bad_input(tmp_path):
    r = run("predict", tmp_path / "nope", "text")
    assert r.exit_code == 2 and "no such run directory" in r.output
    (tmp_path / "half").mkdir()
    r = run("predict", tmp_path / "half", "text")
    assert r.exit_code == 2 and "not finished" in r.output


@pytest.mark.slow
def test_sigkill_leaves_no_done_and_rerun_completes(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", data={"synthetic": {"train_size": 30000, "test_size": 400}},
                       linear={"min_df": [1, 2, 3], "C": [1.0, 10.0, 100.0]})
    proc = subprocess.Popen([sys.executable, "-m", "rnnbench.cli", "train", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    runs = tmp_path / "runs" / "t" / "runs"
    deadline = time.time() + 120
    while time.time() < deadline and not list(runs.glob("*/config.yaml")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_dir,) = list(runs.iterdir())
    assert not (run_dir / "DONE").exists()
    yaml.safe_load((run_dir / "config.yaml").read_text())  # whatever was written is whole
    (run_dir / ".model.pkl.abc.tmp").write_bytes(b"half")  # as a write killed mid-way leaves it
    r = run("train", cfg)
    assert r.exit_code == 0 and "already finished" not in r.output
    assert (run_dir / "DONE").exists() and json.loads((run_dir / "result.json").read_text())["status"] == "ok"
    assert not list(run_dir.glob(".*.tmp"))


def test_run_directory_does_not_depend_on_how_the_data_path_is_spelled(tmp_path, monkeypatch):
    from rnnbench.config import load_config
    from rnnbench.runs import Run

    (tmp_path / "d").mkdir()
    monkeypatch.chdir(tmp_path / "d")
    absolute = load_config(None, [f"data.path={tmp_path / 'data.csv'}"])
    relative = load_config(None, ["data.path=../data.csv"])
    assert Run.for_config(absolute, "rnn", 100, 0).path == Run.for_config(relative, "rnn", 100, 0).path
    other = load_config(None, ["data.path=../other.csv"])
    assert Run.for_config(other, "rnn", 100, 0).path != Run.for_config(relative, "rnn", 100, 0).path


def test_how_much_of_a_text_the_rnn_reads_does_not_rerun_the_baseline():
    from rnnbench.config import load_config
    from rnnbench.runs import Run

    short, long = load_config(None, ["data.max_len=100"]), load_config(None, ["data.max_len=1000", "data.keep=last"])
    assert Run.for_config(short, "linear", 100, 0).path == Run.for_config(long, "linear", 100, 0).path
    assert Run.for_config(short, "rnn", 100, 0).path != Run.for_config(long, "rnn", 100, 0).path


def test_options_added_later_leave_older_runs_where_they_were():
    """A run's directory is its key: adding a config option must not move every stored run (they would
    all be redone). These names are what rnnbench gave the default config before `rnn.lr_decay`,
    `rnn.ema` and `rnn.input_dropout` existed (f3a8598~1); at their neutral values (runs.NEUTRAL_OPTIONS)
    those options leave the name alone, at any other value they move it. If this fails after adding an
    option, register its neutral value there."""
    from rnnbench.config import load_config
    from rnnbench.runs import Run

    assert Run.for_config(load_config(None), "rnn", 100, 0).path.name == "rnn-n100-s0-a64aecb8d2"
    assert Run.for_config(load_config(None), "linear", 100, 0).path.name == "linear-n100-s0-8dc1a446cf"
    names = {Run.for_config(load_config(None, [o]), "rnn", 100, 0).path.name
             for o in ("rnn.input_dropout=0.5", "rnn.lr_decay=0.5", "rnn.ema=0.99", "rnn.input_dropout=0")}
    assert len(names) == 4 and "rnn-n100-s0-a64aecb8d2" in names  # the neutral value is the old run


def test_run_result_reads_runs_written_before_it_existed(tmp_path):
    """Finished runs are reused, not redone: a result.json of the previous version reads as a RunResult, an
    RNN's old `chosen` (its training statistics) split into `chosen` (the best epoch) and `training`."""
    from rnnbench.runs import Run, RunResult

    old_rnn = {"model": "rnn", "size": 300, "seed": 1, "dataset": "synthetic", "status": "ok",
               "task": {"name": "sentiment", "kind": "binary", "n_classes": 2}, "n_train": 300, "n_val": 120,
               "n_test": 400, "metrics": {"accuracy": 0.8}, "validation": {"accuracy": 0.75},
               "timings": {"fit": 3.0, "predict": 0.1}, "device": "cpu (jax, 2 cores)", "versions": {"jax": "0.10"},
               "chosen": {"best_epoch": 2.0, "epochs_run": 3, "steps": 30, "vocab_size": 99, "buckets": [16, 32],
                          "real_token_fraction": 0.9, "compiled_programs": 7}}
    (tmp_path / "result.json").write_text(json.dumps(old_rnn))
    (tmp_path / "DONE").write_text("x")
    r = Run(tmp_path).require_done()
    assert r.chosen == {"best_epoch": 2.0} and r.training["epochs_run"] == 3 and r.training["compiled_programs"] == 7
    assert "best_epoch" not in r.training and r.ok and r.reason == "" and r.metrics == {"accuracy": 0.8}
    old_linear = {**old_rnn, "model": "linear", "chosen": {"min_df": 2, "C": 4.0}}
    lin = RunResult.from_dict(old_linear)
    assert lin.chosen == {"min_df": 2, "C": 4.0} and lin.training == {}
    failed = RunResult.from_dict({"model": "rnn", "size": 300, "seed": 0, "status": "failed", "reason": "nan"})
    assert not failed.ok and failed.chosen == failed.training == failed.metrics == {}
    assert RunResult.from_dict(r.to_dict()) == r  # what is written reads back the same
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(RnnbenchError, match="not a run result"):
        Run(tmp_path).result()


def test_an_older_resumed_rnn_result_counts_its_earlier_sessions_training_time(tmp_path):
    """Results written before `train_wall` timed a resumed run's last process only; read back, they add the
    training that the run's log clocked before it (its wall_seconds run on across resumes)."""
    from rnnbench.runs import Run

    def stored(train_loop, logged_wall):
        (tmp_path / "result.json").write_text(json.dumps({
            "model": "rnn", "status": "ok", "size": 300, "seed": 0,
            "timings": {"vectorize": 5.0, "train_loop": train_loop, "fit": train_loop + 10.0, "predict": 2.0,
                        "total": train_loop + 12.0}}))
        (tmp_path / "metrics.jsonl").write_text("".join(
            json.dumps({"event": "train", "step": s, "wall_seconds": logged_wall * s / 3}) + "\n" for s in (1, 2, 3)))
        return Run(tmp_path).result().timings

    resumed = stored(train_loop=300.0, logged_wall=1000.0)  # 700 s of training happened in an earlier process
    assert resumed["fit"] == 1010.0 and resumed["total"] == 1012.0 and resumed["train_wall"] == 1000.0
    once = stored(train_loop=300.0, logged_wall=298.0)  # one process: the log's clock stops a little short
    assert once["fit"] == 310.0 and once["total"] == 312.0 and once["train_wall"] == 300.0


def test_a_fitted_model_satisfies_the_model_contract(tmp_path):
    """Only a fitted model is a Model (learned state is set in fit), and every fit takes run/progress/prune by
    keyword."""
    import inspect

    from rnnbench.config import load_config
    from rnnbench.data import Split, Task, generate
    from rnnbench.models.base import Model, model_class
    from rnnbench.runs import Run

    texts, y = generate(300, seed=2, mean_tokens=30)
    cfg = load_config(write_config(tmp_path / "c.yaml", rnn={"embed_dim": 8, "hidden_dim": 8, "epochs": 1}))
    for kind in ("linear", "rnn"):
        cls = model_class(kind)
        params = inspect.signature(cls.fit).parameters
        assert [p for p in params if params[p].kind is inspect.Parameter.KEYWORD_ONLY] == ["run", "progress", "prune"]
        model = cls.from_config(cfg, Task("sentiment", "binary", 2), 0)
        assert model.kind == kind and not isinstance(model, Model)
        run = Run(tmp_path / kind)
        run.begin(cfg)
        model.fit(Split(texts[:200], y[:200]), Split(texts[200:], y[200:]), run=run, progress=False)
        assert isinstance(model, Model) and model.timings_["fit"] > 0 and model.device_.startswith("cpu")
        assert set(model.validation_) >= {"accuracy"} and model.chosen_
        assert (set(model.chosen_) == {"best_epoch"}) == (kind == "rnn") and bool(model.training_)
        assert run.metrics()  # it logged to the run


def test_runs_copied_from_another_machine_are_found_not_redone(tmp_path):
    """A data file counts by its content, not its path: runs made elsewhere (another checkout, a GPU box)
    against a copy of the same file, copied into this run store, are finished runs here."""
    import shutil

    from rnnbench.config import load_config
    from rnnbench.runs import Run

    here, there = tmp_path / "here" / "posts.csv", tmp_path / "there" / "posts.csv"
    for path in (here, there):
        path.parent.mkdir()
        path.write_text("text,label\n" + "".join(f"{'good fine' if i % 2 else 'bad poor'} text {i},{i % 2}\n"
                                                 for i in range(300)))
    common = ["data.dataset=csv", "data.text_columns=[text]", "data.label_column=label", "data.val_max=30",
              "linear.min_df=[1]", "linear.C=[1.0]"]
    made = run("train", write_config(tmp_path / "c.yaml"), "--size", 100, "--out", tmp_path / "gpu-box",
               *sum((["--set", o] for o in [*common, f"data.path={there}"]), []))
    assert made.exit_code == 0, made.output
    made_dir = made.output.strip().splitlines()[-1]
    shutil.copytree(tmp_path / "gpu-box", tmp_path / "store")
    cfg = load_config(tmp_path / "c.yaml", [*common, f"data.path={here}", f"experiment.output_dir={tmp_path / 'store'}"])
    assert Run.for_config(cfg, "linear", 100, 0).path.name == os.path.basename(made_dir)
    again = run("train", tmp_path / "c.yaml", "--size", 100, "--out", tmp_path / "store",
                *sum((["--set", o] for o in [*common, f"data.path={here}"]), []))
    assert again.exit_code == 0 and "already finished" in again.output
    here.write_text(here.read_text() + "one more row,1\n")  # other content: another run
    assert Run.for_config(cfg, "linear", 100, 0).path.name != os.path.basename(made_dir)


def test_a_run_stored_under_its_path_based_name_is_adopted(tmp_path):
    """Runs stored when a data file counted by its resolved path are found (a compare's tables include them)
    and renamed to the content-based name when used, not redone."""
    from rnnbench.config import load_config
    from rnnbench.runs import Run, run_path

    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"w{i % 7} x,{i % 2}\n" for i in range(50)))
    cfg = load_config(None, [f"data.path={data}", f"experiment.output_dir={tmp_path}"])
    old = run_path(cfg, "linear", 20, 0, by_content=False)
    old.mkdir(parents=True)
    (old / "result.json").write_text('{"model": "linear", "status": "ok", "size": 20, "seed": 0}')
    (old / "DONE").write_text("x")  # (a DONE beside no readable result counts as unfinished)
    listed = Run.for_config(cfg, "linear", 20, 0)  # listing finds it where it is
    assert listed.path == old and listed.done
    used = Run.for_config(cfg, "linear", 20, 0, adopt=True)  # a run about to be used is renamed
    assert used.path == run_path(cfg, "linear", 20, 0) != old and used.done and not old.exists()
