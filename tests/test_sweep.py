import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.config import load_config
from rnnbench.plan import sweep_plan
from rnnbench.sweep import first_reach, mean_band
from tests.helpers import write_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_RNN = {"embed_dim": 8, "hidden_dim": 8, "batch_size": 32, "epochs": 1, "buckets": 2}


def sweep_config(tmp_path, name="s.yaml", sweep=None, plot=None, **sections):
    return write_config(tmp_path / name, rnn=TINY_RNN, data={"synthetic": {"train_size": 500, "test_size": 100}},
                        sweep=sweep or {"model": "rnn", "size": 200, "grid": {"rnn.cell": ["gru", "lstm"]},
                                        "zip": {"rnn.learning_rate": [0.01, 0.001], "rnn.clip_norm": [1.0, None]}},
                        plot=plot or [{"x": "step", "y": "train_loss", "by": "rnn.cell"}], **sections)


def sweep(*args):
    return CliRunner().invoke(main, ["sweep", *map(str, args)])


def test_expand_grid_times_zip_times_seeds(tmp_path):
    cfg = load_config(sweep_config(tmp_path, experiment={"seeds": [0, 1]}))
    runs = sweep_plan(cfg)
    assert len(runs) == 2 * 2 * 2
    labels = {tuple(sorted(r.label.items(), key=str)) for r in runs}
    assert len(labels) == 4  # zip lists are walked together, not crossed
    assert {(r.cfg.rnn.learning_rate, r.cfg.rnn.clip_norm) for r in runs} == {(0.01, 1.0), (0.001, None)}
    assert len({r.run.path for r in runs}) == 8


@pytest.mark.parametrize("sweep_section, plot, message", [
    ({"grid": {"rnn.hiden_dim": [1]}}, None, "did you mean 'rnn.hidden_dim'"),
    ({"grid": {"rnn.cell": ["transformer"]}}, None, "rnn.cell: expected one of"),
    ({"zip": {"rnn.cell": ["gru"], "rnn.learning_rate": [0.1, 0.2]}}, None, "same length"),
    ({"grdi": {}}, None, "unknown config key 'sweep.grdi'"),
    ({"grid": {"rnn.cell": ["gru"]}}, [{"x": "time", "y": "train_loss"}], "plot[0].x: expected one of"),
    ({"grid": {"rnn.cell": ["gru"]}}, [{"x": "step", "y": "train_loss", "by": "rnn.gate"}], "not a swept key"),
])
def test_bad_sweep_config(tmp_path, sweep_section, plot, message):
    r = sweep(sweep_config(tmp_path, sweep=sweep_section, plot=plot), "--dry-run")
    assert r.exit_code == 2 and message in r.output, r.output


def test_a_sweep_with_a_failed_run_writes_its_table_then_exits_3(tmp_path):
    """One point diverges (a recorded failure): the others run, sweep.csv and sweep.md list it, and the
    command exits 3 (errors.EXIT_RUNS_FAILED) after printing the summary."""
    section = {"model": "rnn", "size": 100, "zip": {"rnn.optimizer": ["sgd", "adam"],
                                                    "rnn.learning_rate": [1e30, 0.01], "rnn.clip_norm": [None, 1.0]}}
    cfg = sweep_config(tmp_path, sweep=section, plot=[{"x": "step", "y": "train_loss"}])
    r = sweep(cfg)
    assert r.exit_code == 3, r.output
    out = tmp_path / "runs" / "t"
    assert r.stdout.strip().splitlines()[-1] == str(out) and "Failed runs:" in r.stdout
    assert r.stderr.splitlines()[-1] == "1 run(s) failed (listed above): exit 3"
    assert [row["status"] for row in csv.DictReader(open(out / "sweep.csv"))] == ["failed", "ok"]


@pytest.mark.slow
def test_sweep_outputs_dry_run_and_skip(tmp_path):
    cfg = sweep_config(tmp_path, plot=[{"x": "step", "y": "train_loss", "by": "rnn.cell"},
                                       {"x": "step", "y": "train_loss", "by": "rnn.cell", "target": 1e6},
                                       {"x": "step", "y": "train_loss", "target": 1e6}])
    dry = sweep(cfg, "--dry-run")
    assert dry.exit_code == 0 and "4 runs: 0 finished, 4 to run" in dry.output
    r = sweep(cfg)
    assert r.exit_code == 0, r.output
    out = tmp_path / "runs" / "t"
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert len(rows) == 4 and {"rnn.cell", "rnn.learning_rate", "rnn.clip_norm", "seed", "status",
                               "test_accuracy"} <= set(rows[0])
    assert (out / "plot1-train_loss-vs-step.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "sweep.md").read_text()
    assert "| rnn.cell |" in md
    # every line is under the (huge) target from its first logged step on; so is each of its two runs,
    # which are not two seeds (one seed here) but the two zip rows a line by rnn.cell pools
    plot2, plot3 = md.split("(plot2-")[1].split("(plot3-")
    assert "each run (the lines pool the values of rnn.clip_norm, rnn.learning_rate)" in plot2
    assert "| line | step, mean line | × slower than the fastest | each run |" in plot2
    for cell in ("gru", "lstm"):
        assert re.search(rf"\| rnn\.cell={cell} \| (\d+) \| 1\.0× \| \1, \1 \|", plot2), md
    # without `by` a line is one point of the sweep: its runs are its seeds
    assert "| line | step, mean line | × slower than the fastest | each seed |" in plot3 and "pool" not in plot3
    assert "4 runs: 4 finished, 0 to run" in sweep(cfg, "--dry-run").output
    lines = [x for x in r.stderr.splitlines() if x.startswith("[")]  # no terminal: one line per run
    assert sorted(x[:5] for x in lines) == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert all(" rnn size " in x and "test accuracy" in x for x in lines)
    points = {frozenset(x.split("] ", 1)[1].split(": rnn size")[0].split(", ")) for x in lines}
    assert points == {frozenset({f"rnn.cell={c}", f"rnn.learning_rate={lr}", f"rnn.clip_norm={clip}"})
                      for c in ("gru", "lstm") for lr, clip in ((0.01, 1.0), (0.001, "null"))}  # each names its point


@pytest.mark.slow
def test_parallel_workers_give_the_same_table(tmp_path):
    serial = sweep_config(tmp_path, "a.yaml", experiment={"output_dir": str(tmp_path / "a")})
    parallel = sweep_config(tmp_path, "b.yaml", experiment={"output_dir": str(tmp_path / "b")})
    assert sweep(serial).exit_code == 0
    r = sweep(parallel, "--workers", 2)
    assert r.exit_code == 0, r.output
    strip = lambda p: [{k: v for k, v in row.items() if k not in ("run_dir", "train_seconds")}  # noqa: E731
                       for row in csv.DictReader(open(p))]
    assert strip(tmp_path / "a" / "t" / "sweep.csv") == strip(tmp_path / "b" / "t" / "sweep.csv")


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_matches_uninterrupted(tmp_path):
    section = {"model": "rnn", "size": 200, "grid": {"rnn.learning_rate": [0.01, 0.003, 0.001, 0.0003]}}
    cfg = sweep_config(tmp_path, sweep=section, plot=[{"x": "step", "y": "train_loss"}])
    proc = subprocess.Popen([sys.executable, "-m", "rnnbench.cli", "sweep", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = tmp_path / "runs" / "t" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(runs.glob("*/DONE"))) < 1:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name for p in runs.glob("*/DONE")}
    assert 1 <= len(done_before) < 4
    r = sweep(cfg)
    assert r.exit_code == 0, r.output
    assert all((d / "DONE").exists() for d in runs.iterdir() if not d.name.startswith("."))
    assert len([d for d in runs.iterdir() if not d.name.startswith(".")]) == 4
    for d in done_before:  # finished runs were skipped, not redone
        assert not any(json.loads(x).get("event") == "resumed" for x in open(runs / d / "metrics.jsonl"))
    clean = sweep_config(tmp_path, "clean.yaml", sweep=section, plot=[{"x": "step", "y": "train_loss"}],
                         experiment={"output_dir": str(tmp_path / "clean")})
    assert sweep(clean).exit_code == 0
    metrics = lambda p: [{k: v for k, v in row.items() if k.startswith(("test_", "val_")) or k == "rnn.learning_rate"}  # noqa: E731
                         for row in csv.DictReader(open(p))]
    assert metrics(tmp_path / "runs" / "t" / "sweep.csv") == metrics(tmp_path / "clean" / "t" / "sweep.csv")


def test_mean_band_interpolates_on_a_common_grid_and_spans_the_seeds():
    import numpy as np

    x, mean, low, high, used = mean_band([(np.array([0, 10.0]), np.array([0, 10.0])),
                                          (np.array([0, 5, 10.0]), np.array([2, 7, 12.0])),
                                          (np.array([0, 12.0]), np.array([0.5, 0.5]))])  # x beyond the others: cut
    assert used == 3 and x[0] == 0 and x[-1] == 10 and len(x) == 60
    assert mean[0] == pytest.approx(2.5 / 3) and mean[-1] == pytest.approx(22.5 / 3)
    # the band is the seeds' range, never below the lowest seed (a loss band cannot go negative)
    assert (low[0], high[0]) == (0, 2) and low[-1] == pytest.approx(0.5) and high[-1] == pytest.approx(12.0)
    # curves logged at the same steps are compared at those steps, up to the shortest
    steps = np.array([20, 40, 60, 80.0])
    x, mean, low, high, used = mean_band([(steps, np.array([4, 3, 2, 1.0])), (steps[:3], np.array([2, 1, 0.0])),
                                          (np.zeros(0), np.zeros(0))])  # a run with no logged point: not a seed
    assert used == 2 and list(x) == [20, 40, 60] and list(mean) == [3, 2, 1] and list(low) == [2, 1, 0]


@pytest.mark.parametrize("by, pooled, legend", [
    ("label", ["rnn.cell"], "rnn.cell"),  # each line: one zip row, both cells, two seeds
    ("rnn.cell", ["label"], "label"),  # each line: both zip rows, named once by their label (not their keys)
    (None, [], None),  # each line: one point of the sweep, its seeds
])
def test_a_line_that_pools_other_swept_keys_says_so(tmp_path, monkeypatch, by, pooled, legend):
    from types import SimpleNamespace

    import numpy as np

    from rnnbench import sweep as sweep_module

    section = {"model": "rnn", "size": 200, "grid": {"rnn.cell": ["gru", "lstm"]}, "labels": ["plain", "tuned"],
               "zip": {"rnn.learning_rate": [0.01, 0.001], "rnn.clip_norm": [1.0, None]}, "seeds": [0, 1]}
    spec = {"x": "step", "y": "train_loss", **({"by": by} if by else {})}
    cfg = load_config(sweep_config(tmp_path, sweep=section, plot=[spec]))
    runs = sweep_plan(cfg)
    ok = SimpleNamespace(result=SimpleNamespace(ok=True), run=object())
    monkeypatch.setattr(sweep_module, "series", lambda run, x, y: (np.array([20.0, 40.0]), np.array([0.7, 0.3])))
    texts = []
    monkeypatch.setattr("matplotlib.axes.Axes.legend", lambda ax, *a, **kw: texts.append(
        (kw.get("title"), [line.get_label() for line in ax.get_lines()])))
    _, _, got = sweep_module.plot_series(tmp_path, cfg, 0, cfg.plot[0], runs, [ok] * len(runs))
    assert got == pooled
    title, labels = texts[0]
    per_line = 8 // len(labels)  # 2 cells x 2 zip rows x 2 seeds, shared among the lines
    if legend:
        assert title == f"lines: mean over runs (seeds × {legend}); bands: their range"
        assert all(label.endswith(f"({per_line} runs)") for label in labels), labels
    else:
        assert title == "lines: mean over seeds; bands: their range"
        assert all(label.endswith("(2 seeds)") for label in labels) and len(labels) == 4, labels


def test_first_reach_interpolates_between_the_logged_points_around_the_target():
    import numpy as np

    x, y = np.array([20, 40, 60.0]), np.array([0.7, 0.5, 0.3])
    assert first_reach(x, y, 0.4) == pytest.approx(50.0)
    assert first_reach(x, y, 0.7) == 20.0 and first_reach(x, y, 0.1) == float("inf")


FIGURES = sorted(CONFIGS.glob("fig*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", FIGURES, ids=lambda p: p.stem)
def test_every_figure_config_runs_at_smoke_size(path, tmp_path, request):
    head = path.read_text().splitlines()[0]
    assert head.startswith("# Talk figure") and "rnnbench sweep configs/" in path.read_text()
    args = [path, "--smoke", "--set", f"experiment.output_dir={tmp_path}"]
    if load_config(path).data.dataset == "imdb":
        shared = request.getfixturevalue("shared")
        args += ["--set", f"data.path={shared / 'aclImdb_v1.tar.gz'}"]
    r = sweep(*args)
    assert r.exit_code == 0, r.output
    out = Path(r.output.strip().splitlines()[-1])
    assert (out / "sweep.md").exists()
    assert list(out.glob("*.png"))
    if yaml.safe_load(path.read_text())["sweep"].get("kind") != "toy-optimizers":
        assert all(row["status"] == "ok" or "failed" in row["status"] for row in csv.DictReader(open(out / "sweep.csv")))
