"""Choosing what "better" means: the crossover's metric, the text-blind reference beside the models,
plots that read plainly, and a report that takes what each folder holds."""

import csv
import json

import pytest
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.compare import write_outputs
from rnnbench.config import load_config
from rnnbench.data import Task
from rnnbench.plots import figure, seeds_label, size_axis, size_label
from tests.test_compare import compare, compare_config

BINARY = Task("sentiment", "binary", 2)


def rows_for(sizes, seeds, scores, reference=None, metric="accuracy"):
    """Finished rows as compare reads them: ``scores[model][size]`` for every seed."""
    return [{"size": n, "seed": s, "model": m, "status": "ok", "reason": "", "train_seconds": 1.0,
             "predict_seconds": 0.1, "device": "cpu", "run_dir": f"/r/{m}-{n}-{s}",
             metric: scores[m][n] + 0.001 * s,
             **({f"reference_{metric}": reference[n]} if reference else {})}
            for n in sizes for s in seeds for m in ("linear", "rnn")]


def test_the_crossover_is_decided_on_the_chosen_metric(tmp_path):
    sizes = [500, 1000, 2000]
    cfg = load_config(None, [f"data.sizes={sizes}", "experiment.seeds=[0, 1]", f"experiment.output_dir={tmp_path}",
                             "experiment.metric=macro_f1"])
    # by accuracy the RNN never wins; by macro F1 it overtakes between 1,000 and 2,000
    rows = rows_for(sizes, [0, 1], {"linear": {500: 0.7, 1000: 0.72, 2000: 0.74},
                                    "rnn": {500: 0.6, 1000: 0.7, 2000: 0.8}}, metric="macro_f1")
    for r in rows:
        r["accuracy"] = 0.5
    out = write_outputs(cfg, BINARY, rows)
    table = list(csv.DictReader(open(out["dir"] / "crossover.csv")))
    # the decision metric's rows, and (macro F1 being a threshold metric) the threshold-free check's
    assert {t["metric"] for t in table} == {"macro_f1", "roc_auc"}
    assert all(t["mean"] != "nan" for t in table if t["metric"] == "macro_f1")
    assert 1000 < out["crossover"]["rnn"]["crossover_size"] < 2000
    assert "macro_f1" in out["markdown"].splitlines()[0]


def test_a_model_at_the_majority_rate_is_called_out(tmp_path):
    sizes = [500, 1000, 2000]
    cfg = load_config(None, [f"data.sizes={sizes}", "experiment.seeds=[0]", f"experiment.output_dir={tmp_path}"])
    majority = {n: 0.8027 for n in sizes}
    rows = rows_for(sizes, [0], {"linear": {500: 0.81, 1000: 0.83, 2000: 0.85},
                                 "rnn": {500: 0.8027, 1000: 0.8027, 2000: 0.86}}, reference=majority)
    out = write_outputs(cfg, BINARY, rows)
    md = out["markdown"].splitlines()
    assert md[0].endswith("accuracy, one seed)")
    assert md[2].rstrip("|").split("|")[-1].strip() == "majority class"
    assert md[4].rstrip("|").split("|")[-1].strip() == "0.8027"
    assert ("**Learned nothing:** the rnn at 500 and 1,000 examples scored no better than the majority class"
            in out["markdown"])
    assert [float(t["reference"]) for t in csv.DictReader(open(out["dir"] / "crossover.csv"))] == [0.8027] * 6


def test_runs_without_the_metric_are_named_not_counted(tmp_path):
    sizes = [500, 1000]
    cfg = load_config(None, [f"data.sizes={sizes}", f"experiment.output_dir={tmp_path}",
                             "experiment.metric=balanced_accuracy"])
    rows = rows_for(sizes, [0], {"linear": {500: 0.7, 1000: 0.72}, "rnn": {500: 0.6, 1000: 0.7}},
                    metric="balanced_accuracy")
    del rows[0]["balanced_accuracy"]  # a run made before the metric existed
    md = write_outputs(cfg, BINARY, rows)["markdown"]
    assert "**1 run(s) did not record balanced_accuracy**" in md and rows[0]["run_dir"] in md


@pytest.mark.parametrize("metric,message", [
    ("rmse", "experiment.metric: 'rmse' is not a classification metric"),
])
def test_a_metric_of_the_wrong_kind_is_one_line_exit_2_before_any_run(tmp_path, metric, message):
    cfg = compare_config(tmp_path, experiment={"metric": metric})
    r = compare(cfg)
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "runs" / "t" / "runs").exists()


def test_roc_auc_needs_a_binary_task(tmp_path):
    from rnnbench.errors import RnnbenchError
    from rnnbench.metrics import decision_metric

    cfg = load_config(None, ["experiment.metric=roc_auc"])
    assert decision_metric(cfg, BINARY) == ("roc_auc", True)
    with pytest.raises(RnnbenchError, match="roc_auc needs a binary task"):
        decision_metric(cfg, Task("age", "multiclass", 3))


def test_size_ticks_read_plainly_and_titles_say_one_seed():
    assert [size_label(n) for n in (500, 1000, 2000, 10_000, 100_000, 1_500_000)] == \
        ["500", "1k", "2k", "10k", "100k", "1.5M"]
    assert seeds_label(1) == "one seed" and seeds_label(3) == "mean ± std over 3 seeds"
    ax = figure().subplots()
    ax.plot([1000, 100_000], [0.5, 0.6])
    size_axis(ax)
    assert ax.get_xscale() == "log" and ax.xaxis.get_major_formatter()(10_000, 0) == "10k"


def test_report_takes_what_each_folder_holds(tmp_path):
    """A folder of single runs (`rnnbench train`) gives a table of them; an empty folder is listed as
    skipped; only when no folder holds anything is it an error."""
    runs = tmp_path / "single"
    cfg = compare_config(tmp_path, data={"sizes": [100]}, experiment={"seeds": [0]})
    r = CliRunner().invoke(main, ["train", str(cfg), "--model", "linear", "--out", str(runs)])
    assert r.exit_code == 0, r.output
    result = json.loads(next((runs / "t" / "runs").glob("linear-*/result.json")).read_text())
    assert 0.3 < result["reference"]["accuracy"] < 0.7 and result["reference"]["roc_auc"] == 0.5  # the majority class
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["report", str(runs / "t"), str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert f"skipped {tmp_path / 'empty'}" in r.stderr
    md = (tmp_path / "r.md").read_text()
    assert "## Runs: t" in md and "| linear | 100 | 0 | ok | accuracy 0." in md
    assert "Classes: 0: 0, 1: 1." in md  # the synthetic corpus' classes are named by number
    assert "Skipped (no results)" in md
    r = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r2.html")])
    assert r.exit_code == 2 and "has no results" in r.output and not (tmp_path / "r2.html").exists()


def test_timing_keeps_each_device_apart(tmp_path):
    """A GPU's runs are never averaged with a CPU's: one row per size, model and device."""
    sizes = [1000]
    cfg = load_config(None, [f"data.sizes={sizes}", "experiment.seeds=[0, 1, 2]", f"experiment.output_dir={tmp_path}"])
    rows = rows_for(sizes, [0, 1, 2], {"linear": {1000: 0.7}, "rnn": {1000: 0.6}})
    for r in rows:
        r["train_seconds"] = {"linear": 10.0, "rnn": 1000.0 if r["seed"] == 0 else 60.0}[r["model"]]
        r["device"] = "gpu (H200)" if r["model"] == "rnn" and r["seed"] else "cpu"
    out = write_outputs(cfg, BINARY, rows)
    timing = {(t["model"], t["device"]): (t["seconds"], t["runs"], t["vs_baseline"]) for t in out["timing"]}
    assert timing == {("linear", "cpu"): (10.0, 3, 1.0), ("rnn", "cpu"): (1000.0, 1, 100.0),
                      ("rnn", "gpu (H200)"): (60.0, 2, 6.0)}
    assert "| 1,000 | rnn | gpu (H200) | 60.0 | 2 | 6.00× |" in out["markdown"]
