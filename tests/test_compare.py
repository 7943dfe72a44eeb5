import csv
import json
import re

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.curves import Curve, bootstrap_crossover, crossover_size
from tests.helpers import write_config

TINY_RNN = {"embed_dim": 16, "hidden_dim": 24, "batch_size": 32, "epochs": 2, "buckets": 2, "learning_rate": 0.01}


def compare_config(tmp_path, **over):
    sections = {"rnn": dict(TINY_RNN), "data": {"synthetic": {"train_size": 700, "test_size": 200}, "sizes": [100, 300]},
                "experiment": {"seeds": [0, 1]}}
    for k, v in over.items():
        sections.setdefault(k, {}).update(v)
    return write_config(tmp_path / "c.yaml", **sections)


def compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


@pytest.mark.slow
def test_compare_writes_tables_and_plots_and_resumes(tmp_path):
    cfg = compare_config(tmp_path)
    r = compare(cfg)
    assert r.exit_code == 0, r.output
    out = tmp_path / "runs" / "t"
    assert r.output.strip().splitlines()[-1] == str(out)
    assert "| size | linear | rnn |" in r.output
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert len(rows) == 2 * 2 * 2 and {"size", "seed", "model", "accuracy", "train_seconds", "predict_seconds",
                                       "device"} <= set(rows[0])
    table = list(csv.DictReader(open(out / "crossover.csv")))  # long form: a row per size and model kind
    assert list(table[0]) == ["size", "model", "metric", "mean", "std", "n", "low", "high", "diff_vs_baseline",
                              "diff_low", "diff_high", "rel_error_reduction", "winner", "reference"]
    assert [(int(t["size"]), t["model"]) for t in table] == [(100, "linear"), (100, "rnn"), (300, "linear"), (300, "rnn")]
    for t in table:  # the table is the mean of the curves, and the winner follows from it
        mean = np.mean([float(x["accuracy"]) for x in rows if x["model"] == t["model"] and x["size"] == t["size"]])
        assert float(t["mean"]) == pytest.approx(mean, abs=1e-5) and t["n"] == "2"
        if t["model"] == "rnn":
            base = next(float(b["mean"]) for b in table if b["model"] == "linear" and b["size"] == t["size"])
            assert float(t["diff_vs_baseline"]) == pytest.approx(float(t["mean"]) - base, abs=1e-5)
            tie = float(t["diff_low"]) <= 0 <= float(t["diff_high"])  # the difference within noise
            assert t["winner"] == ("tie" if tie else "rnn" if float(t["mean"]) > base else "linear")
        else:
            assert t["winner"] == "" and t["diff_vs_baseline"] == "nan"
    cross = json.loads((out / "crossover.json").read_text())
    assert cross["baseline"] == "linear" and set(cross["models"]["rnn"]) >= {"crossover_size", "low", "high"}
    for png in ("learning_curve.png", "timing.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "crossover.md").read_text()
    assert "Cost: training time" in md and "**rnn vs linear:**" in md
    before = (out / "crossover.csv").read_text()
    again = compare(cfg)  # everything is finished: all runs skipped, same table
    assert again.exit_code == 0 and (out / "crossover.csv").read_text() == before
    assert sum(1 for p in (out / "runs").iterdir()) == 8
    # not a terminal: no bar, but one line per run (here all finished earlier)
    lines = [x for x in again.stderr.splitlines() if x.startswith("[")]
    assert len(lines) == 8 and lines[-1].startswith("[8/8] ") and all("finished earlier" in x for x in lines)
    assert sum(" test accuracy 0." in x for x in lines) == 8


@pytest.mark.slow
def test_failed_runs_are_reported_then_exit_3(tmp_path):
    """A failed run does not stop the others: the tables are written and list it, then compare exits 3
    (errors.EXIT_RUNS_FAILED) so that scripts and CI can tell; the same holds when nothing is rerun."""
    cfg = compare_config(tmp_path, rnn={"optimizer": "sgd", "learning_rate": 1e30, "clip_norm": None},
                         experiment={"seeds": [0]})
    r = compare(cfg)
    assert r.exit_code == 3, r.output
    out = tmp_path / "runs" / "t"
    assert r.stdout.strip().splitlines()[-1] == str(out) and "Failed runs" in r.stdout
    assert r.stderr.splitlines()[-1] == "2 run(s) failed (listed above): exit 3"
    md = (out / "crossover.md").read_text()
    assert "Failed runs" in md and "rnn seed 0" in md
    table = list(csv.DictReader(open(out / "crossover.csv")))
    assert all(t["mean"] not in ("", "nan") for t in table if t["model"] == "linear")
    assert all(t["winner"] == "n/a" for t in table if t["model"] == "rnn")
    again = compare(cfg, "--tables-only")
    assert again.exit_code == 3 and (out / "crossover.md").read_text() == md
    linear = compare(cfg, "--set", "experiment.models=[linear]", "--set", "experiment.output_dir=" + str(tmp_path / "ok"))
    assert linear.exit_code == 0, linear.output


@pytest.mark.parametrize("over, message", [
    ({"data": {"sizes": [300, 100]}}, "strictly increasing"),
    ({"data": {"sizes": [100, 5000]}}, "larger than the 630 training examples available"),
    ({"data": {"sizes": []}}, "data.sizes is empty"),
    ({"experiment": {"seeds": []}}, "experiment.seeds: needs at least 1"),
    ({"experiment": {"models": ["linear", "svm"]}}, "experiment.models: unknown model kind 'svm' (known: linear, rnn"),
    ({"experiment": {"baseline": "svm"}}, "experiment.baseline: unknown model kind 'svm'"),
    ({"experiment": {"models": ["rnn", "rnn"]}}, "experiment.models: 'rnn' is listed twice"),
])
def test_compare_bad_input(tmp_path, over, message):
    r = compare(compare_config(tmp_path, **over))
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("models, message", [("linear,svm", "--models: unknown model kind 'svm'"),
                                             ("", "--models: name at least one model kind")])
def test_compare_models_option_bad_input(tmp_path, models, message):
    r = compare(compare_config(tmp_path), "--models", models)
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_compare_runs_the_models_listed_and_tables_every_finished_run(tmp_path):
    """`--models linear` (or experiment.models) runs one side: the other shows "—" and no crossover is claimed;
    the other side run later (as if on another machine) joins the same tables, its runs not redone."""
    cfg = compare_config(tmp_path, experiment={"seeds": [0]})
    out = tmp_path / "runs" / "t"
    r = compare(cfg, "--models", "linear")
    assert r.exit_code == 0, r.output
    assert {p.name.split("-")[0] for p in (out / "runs").iterdir()} == {"linear"}
    table = list(csv.DictReader(open(out / "crossover.csv")))
    assert all((t["mean"] == "nan" and t["winner"] == "n/a") if t["model"] == "rnn" else t["mean"] != "nan"
               for t in table)
    md = (out / "crossover.md").read_text()
    assert "| — ± — |" in md and "**rnn vs linear:** no crossover: no finished rnn runs" in md and "overtake" not in md
    assert json.loads((out / "crossover.json").read_text())["models"]["rnn"]["crossover_size"] is None
    assert {x["model"] for x in csv.DictReader(open(out / "curves.csv"))} == {"linear"}

    linear_done = {p: (p / "DONE").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    only_rnn = compare_config(tmp_path, experiment={"seeds": [0], "models": ["rnn"]})
    r = compare(only_rnn)
    assert r.exit_code == 0, r.output
    assert {p: (p / "DONE").stat().st_mtime_ns for p in linear_done} == linear_done  # not redone
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert [(int(x["size"]), x["model"]) for x in rows] == [(100, "linear"), (100, "rnn"), (300, "linear"), (300, "rnn")]
    table = list(csv.DictReader(open(out / "crossover.csv")))
    assert all(t["mean"] != "nan" for t in table) and all(t["winner"] != "n/a" for t in table if t["model"] == "rnn")
    assert "no finished" not in (out / "crossover.md").read_text()
    before = (out / "crossover.csv").read_text()
    both = compare(compare_config(tmp_path, experiment={"seeds": [0], "models": ["linear", "rnn"]}))
    assert both.exit_code == 0 and (out / "crossover.csv").read_text() == before
    assert all("finished earlier" in x for x in both.stderr.splitlines() if x.startswith("["))


def test_compare_tables_only_runs_nothing_and_tables_what_is_finished(tmp_path):
    """`--tables-only` writes the tables from the finished runs (here the linear side at seed 0) and runs
    none of the missing ones; with --force it is a one-line error."""
    out = tmp_path / "runs" / "t"
    r = compare(compare_config(tmp_path, experiment={"seeds": [0]}), "--models", "linear")
    assert r.exit_code == 0, r.output
    finished = {p.name: (p / "DONE").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    (out / "curves.csv").unlink()
    wider = compare_config(tmp_path, experiment={"seeds": [0, 1]})  # seed 1 and the rnn never run
    r = compare(wider, "--tables-only")
    assert r.exit_code == 0, r.output
    assert {p.name: (p / "DONE").stat().st_mtime_ns for p in (out / "runs").iterdir()} == finished
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert sorted((int(x["size"]), int(x["seed"]), x["model"]) for x in rows) == [(100, 0, "linear"), (300, 0, "linear")]
    assert "| size | linear | rnn |" in r.output
    assert len(re.findall(r"\(1 seed\) \[[0-9.]+, [0-9.]+\] \| — ± — \|", r.output)) == 2  # one run of two seeds
    r = compare(wider, "--tables-only", "--force")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--tables-only" in r.output


def test_plots_leave_matplotlib_backend_alone(tmp_path):
    """Importing rnnbench and drawing its figures never switches the global backend (a notebook's stays)."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import numpy as np\n"
            "import rnnbench.compare, rnnbench.sweep, rnnbench.toy, rnnbench.embed, rnnbench.cli\n"
            "from rnnbench.plots import learning_curve_plot\n"
            "from rnnbench.curves import Curve\n"
            "curve = Curve(np.array([10.0, 100.0]), {'linear': np.array([[0.6], [0.7]]), 'rnn': np.full((2, 1), np.nan)})\n"
            f"learning_curve_plot({str(tmp_path / 'c.png')!r}, curve, 'accuracy', 't')\n"
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crossover_interpolates_in_log_size():
    sizes = np.array([1e3, 1e4, 1e5, 1e6])
    assert crossover_size(sizes, np.array([-2.0, -1.0, 1.0, 3.0])) == pytest.approx(10 ** 4.5)
    assert crossover_size(sizes, np.array([-2.0, -1.0, -0.5, -0.1])) is None  # never overtakes
    assert crossover_size(sizes, np.array([1.0, 2.0, 3.0, 4.0])) is None  # ahead from the start
    assert crossover_size(sizes, np.array([-1.0, 1.0, -1.0, 1.0])) == pytest.approx(10 ** 5.5)  # for good


def test_bootstrap_interval_brackets_the_estimate():
    sizes = np.array([1e3, 1e4, 1e5])
    rng = np.random.default_rng(0)
    lin = np.array([[0.80], [0.85], [0.88]]) + rng.normal(0, 0.003, (3, 5))
    rnn = np.array([[0.75], [0.84], [0.92]]) + rng.normal(0, 0.003, (3, 5))
    out = bootstrap_crossover(Curve(sizes, {"linear": lin, "rnn": rnn}), "rnn", "linear", higher_better=True, n_boot=300)
    assert 1e4 < out["crossover_size"] < 1e5
    assert out["low"] <= out["crossover_size"] <= out["high"]
    rmse = bootstrap_crossover(Curve(sizes, {"linear": 1 - lin, "rnn": 1 - rnn}), "rnn", "linear", higher_better=False,
                               n_boot=50)
    assert rmse["crossover_size"] == pytest.approx(out["crossover_size"])


def test_a_size_missing_one_side_claims_no_crossover(tmp_path):
    """While one model's larger runs are still to do (or on another machine), the table says so instead of
    'the RNN does not overtake by N examples'."""
    from rnnbench.compare import write_outputs
    from rnnbench.config import load_config
    from rnnbench.data import Task

    cfg = load_config(None, ["data.sizes=[100, 300]", f"experiment.output_dir={tmp_path}"])
    rows = [{"size": n, "seed": 0, "model": m, "status": "ok", "reason": "", "train_seconds": 1.0,
             "predict_seconds": 0.1, "device": "cpu", "run_dir": "", "accuracy": acc}
            for n, m, acc in ((100, "linear", 0.7), (100, "rnn", 0.6), (300, "linear", 0.75))]
    md = write_outputs(cfg, Task("sentiment", "binary", 2), rows)["markdown"]
    assert "**rnn vs linear:** no crossover claimed: one model has no finished run at 300 examples" in md
    assert "overtake" not in md


@pytest.mark.slow  # an end-to-end run: in CI's full suite, not the edit loop
def test_at_size_sets_one_sizes_runs_apart_and_leaves_the_others_keys(tmp_path):
    """`at_size` changes the runs of one training size alone: those train with (and store) its settings, and
    the other sizes' runs keep their keys, so runs made before it are still found and not redone."""
    out = tmp_path / "runs" / "t"
    cfg = compare_config(tmp_path, experiment={"seeds": [0], "models": ["rnn"]})
    r = compare(cfg)
    assert r.exit_code == 0, r.output
    before = {p.name: (p / "DONE").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    wider = compare_config(tmp_path, experiment={"seeds": [0], "models": ["rnn"]},
                           at_size={300: {"rnn.batch_size": 64, "rnn.epochs": 1}})
    r = compare(wider)
    assert r.exit_code == 0, r.output
    after = {p.name: p for p in (out / "runs").iterdir()}
    small = [n for n in before if "-n100-" in n]
    assert all(before[n] == (after[n] / "DONE").stat().st_mtime_ns for n in small)  # size 100: the same run
    (new,) = set(after) - set(before)
    assert "-n300-" in new
    stored = yaml.safe_load((after[new] / "config.yaml").read_text())
    assert stored["rnn"]["batch_size"] == 64 and stored["rnn"]["epochs"] == 1
    metrics = [json.loads(x) for x in (after[new] / "metrics.jsonl").read_text().splitlines()]
    assert max(m.get("epoch", 0) for m in metrics if m["event"] == "epoch") == 1
    assert [int(x["size"]) for x in csv.DictReader(open(out / "curves.csv"))] == [100, 300]


def test_quiet_and_verbose_choose_what_stderr_shows_not_the_results(tmp_path):
    """The library logs; the command line shows each message's text on stderr at INFO (the default),
    WARNING (-q: a damaged run's warning still shows) or DEBUG (-v); stdout is the same at every level,
    and a local worker shows what its driver does."""
    cfg = compare_config(tmp_path, experiment={"seeds": [0], "models": ["linear"]},
                         linear={"min_df": [1], "C": [1.0]})

    def run(*args):  # the level's flag goes before the command
        level = [a for a in args if a in ("-q", "-v", "--quiet", "--verbose")]
        return CliRunner().invoke(main, [*level, "compare", str(cfg), *(a for a in args if a not in level)])

    first = run()
    assert first.exit_code == 0, first.output
    assert [x.split(":")[0] for x in first.stderr.splitlines() if not x.startswith("data: ")] == [
        "[1/2] linear size 100 seed 0", "[2/2] linear size 300 seed 0"]  # (the data line: once per process)
    tables, quiet = run("--tables-only"), run("-q", "--tables-only")
    assert quiet.stdout == tables.stdout and quiet.exit_code == tables.exit_code == 0
    verbose = run("-v", "--force", "--workers", "2")
    assert verbose.exit_code == 0, verbose.output
    debug = [x for x in verbose.stderr.splitlines() if x.startswith("debug: ")]
    assert len(debug) == 2 and all(": starting (local, attempt 1): " in x for x in debug)
    silent = run("--quiet", "--force", "--workers", "2")
    assert silent.exit_code == 0 and silent.stderr == "", silent.stderr  # the workers too
    (damaged,) = [p for p in (tmp_path / "runs" / "t" / "runs").iterdir() if p.name.startswith("linear-n100")]
    (damaged / "result.json").write_text("{")
    warned = run("-q", "--tables-only")
    assert warned.stderr.startswith(f"warning: {damaged} has DONE but ") and len(warned.stderr.splitlines()) == 1
    both = CliRunner().invoke(main, ["-q", "-v", "compare", str(cfg)])
    assert both.exit_code == 2 and both.output == "Error: -q/--quiet and -v/--verbose: give one of them\n"
