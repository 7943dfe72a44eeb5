"""The metric the user chose drives everything: model selection and early stopping, a threshold metric's
decision rule, the tables, the forecast; and JSON files as APIs ship them."""

import csv
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.config import load_config
from rnnbench.data import Task
from rnnbench.metrics import decide, evaluate, selection_score, tune_decision

BINARY = Task("t", "binary", 2)
SIGNAL = ["superb", "wonderful", "brilliant", "delightful", "gripping"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def skewed_reviews(path, n=3000, seed=0):
    """85/15 reviews as JSON lines, the text nested (``review.body``): a positive review holds two of a few
    signal words among filler, a negative one at most one."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)]
    with open(path, "w") as f:
        for _ in range(n):
            pos = rng.random() < 0.15
            toks = list(rng.choice(words, rng.integers(15, 40)))
            for _ in range(2 if pos else int(rng.random() < 0.25)):
                toks.insert(rng.integers(0, len(toks) + 1), rng.choice(SIGNAL))
            f.write(json.dumps({"review": {"body": " ".join(toks)}, "label": "pos" if pos else "neg"}) + "\n")
    return path


# ------------------------------------------------------------------------------------ decision rules


def test_the_binary_threshold_is_the_best_cut_on_validation():
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.2).astype(int)
    p1 = np.clip(0.15 + 0.3 * y + rng.normal(0, 0.12, 400), 0.001, 0.999)
    scores = np.stack([1 - p1, p1], 1)
    for metric in ("balanced_accuracy", "macro_f1"):
        rule = tune_decision(BINARY, y, scores, metric)
        brute = max(evaluate(BINARY, y, scores, {"threshold": t})[metric] for t in np.unique(p1))
        assert rule["validation"] == pytest.approx(brute) == evaluate(BINARY, y, scores, rule)[metric]
        assert rule["validation"] > evaluate(BINARY, y, scores)[metric]  # argmax predicts the majority
    assert tune_decision(BINARY, y, scores, "accuracy") is None  # the most probable class is accuracy's rule
    assert evaluate(BINARY, y, scores, rule)["roc_auc"] == evaluate(BINARY, y, scores)["roc_auc"]


def test_multiclass_class_weights_help_balanced_accuracy():
    task = Task("t", "multiclass", 3)
    rng = np.random.default_rng(2)
    y = rng.choice(3, 600, p=[0.7, 0.2, 0.1])
    logits = rng.normal(0, 1, (600, 3)) + 1.2 * np.eye(3)[y] + np.array([1.5, 0, 0])
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rule = tune_decision(task, y, scores, "balanced_accuracy")
    assert len(rule["weights"]) == 3
    assert selection_score(task, y, scores, "balanced_accuracy") == rule["validation"]
    assert rule["validation"] > evaluate(task, y, scores)["balanced_accuracy"] + 0.05
    assert set(decide(scores, rule)) == {0, 1, 2}


# ------------------------------------------------------------------------------------ selection, end to end


@pytest.mark.slow
def test_skewed_data_selected_on_balanced_accuracy_learns_where_accuracy_predicts_one_class(tmp_path):
    """85/15 reviews at 800 examples: selected and stopped on accuracy, the GRU predicts the majority class
    for every text; with experiment.metric balanced_accuracy every model kind selects and stops on it,
    tunes its threshold on validation, and beats the majority reference."""
    data = skewed_reviews(tmp_path / "reviews.jsonl")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "experiment": {"name": "skew", "seeds": [0], "output_dir": str(tmp_path / "runs")},
        "data": {"dataset": "jsonl", "path": str(data), "text_columns": ["review.body"], "label_column": "label",
                 "sizes": [800], "val_max": 300},
        "rnn": {"embed_dim": 16, "hidden_dim": 16, "batch_size": 32, "epochs": 4, "patience": 1,
                "learning_rate": 0.003},
        "tokenizer": {"min_df": 2}, "linear": {"min_df": [1], "C": [1.0, 10.0]}}))
    results = {}
    for metric in ("accuracy", "balanced_accuracy"):
        r = cli("compare", cfg, "--set", f"experiment.metric={metric}")
        assert r.exit_code == 0, r.output
        for d in (tmp_path / "runs" / "skew" / "runs").iterdir():
            res = json.loads((d / "result.json").read_text())
            results.setdefault(res["selection"] or "accuracy", {})[res["model"]] = (res, d)
    on_accuracy, on_balanced = results["accuracy"], results["balanced_accuracy"]
    rnn = on_accuracy["rnn"][0]
    assert rnn["metrics"]["balanced_accuracy"] == 0.5 and rnn["decision"] is None  # one class for every text
    for model, (res, run_dir) in on_balanced.items():
        assert res["decision"]["metric"] == "balanced_accuracy" and 0 < res["decision"]["threshold"] < 0.5
        assert res["metrics"]["balanced_accuracy"] > res["reference"]["balanced_accuracy"] + 0.1, model
        log = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        if model == "rnn":  # early stopping read balanced accuracy at each evaluation
            assert {x["metric"] for x in log if x["event"] == "eval"} == {"balanced_accuracy"}
        else:  # the grid's points were scored on it
            assert all("val_balanced_accuracy" in x for x in log if x["event"] == "grid_point")
    table = (tmp_path / "runs" / "skew" / "crossover.md").read_text()
    assert "models selected on validation by balanced_accuracy" in table and "roc_auc, which does not depend" in table
    # predict labels with the run's tuned threshold
    run_dir = on_balanced["linear"][1]
    p = cli("predict", run_dir, "w1 w2 superb w3 gripping w4", "w1 w2 w3 w4 w5 w6")
    assert p.exit_code == 0 and [x.split("\t")[0] for x in p.stdout.splitlines()] == ["pos", "neg"], p.output
    assert "labels by the run's balanced_accuracy rule (threshold" in p.stderr


def test_the_selection_metric_enters_the_run_key_only_where_it_changes_selection(tmp_path):
    from rnnbench.runs import run_path

    plain = load_config(None, [f"experiment.output_dir={tmp_path}"])
    keys = {m: run_path(plain.replace(**{"experiment.metric": m}), "linear", 100, 0).name
            for m in ("accuracy", "balanced_accuracy", "macro_f1")}
    assert keys["accuracy"] == run_path(plain, "linear", 100, 0).name  # stored runs are found as before
    assert len(set(keys.values())) == 3
    tables_only = plain.replace(**{"experiment.metric": "macro_f1", "experiment.selection_metric": "accuracy"})
    assert run_path(tables_only, "rnn", 100, 0) == run_path(plain, "rnn", 100, 0)


def test_a_selection_metric_of_the_wrong_kind_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": {"selection_metric": "rmse", "output_dir": str(tmp_path)},
                                   "data": {"sizes": [100], "synthetic": {"train_size": 300, "test_size": 100}}}))
    r = cli("compare", cfg)
    assert r.exit_code == 2 and "experiment.selection_metric: 'rmse' is not a classification metric" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "experiment" / "runs").exists()


# ------------------------------------------------------------------------------------ the tables


def _rows(values: dict, reference: float, metric: str, seeds=(0,)):
    return [{"size": n, "seed": s, "model": m, "status": "ok", "reason": "", "train_seconds": 1.0,
             "predict_seconds": 0.1, "device": "cpu", "run_dir": "", metric: v[n], f"reference_{metric}": reference}
            for n in sorted(next(iter(values.values()))) for s in seeds for m, v in values.items()]


def test_no_crossover_is_claimed_between_models_that_learned_nothing(tmp_path):
    """Both models at (or just under) the majority reference, the RNN a hair above the baseline at the
    largest size: that is no crossover (an 85/15 sentence-polarity set once "crossed" at 2,968 this way)."""
    from rnnbench.compare import write_outputs

    cfg = load_config(None, ["data.sizes=[1000, 2000, 3000]", f"experiment.output_dir={tmp_path}",
                             "experiment.metric=balanced_accuracy"])
    rows = _rows({"linear": {1000: 0.5, 2000: 0.5, 3000: 0.4998}, "rnn": {1000: 0.499, 2000: 0.4995, 3000: 0.5}},
                 0.5, "balanced_accuracy")
    out = write_outputs(cfg, BINARY, rows)
    cross = json.loads((out["dir"] / "crossover.json").read_text())["models"]["rnn"]
    assert cross["crossover_size"] is None and "no better than the text-blind reference" in cross["withheld"]
    assert "**rnn vs linear:** no crossover claimed: rnn scored no better than" in out["markdown"]
    assert "overtakes" not in out["markdown"]


def test_one_seed_says_so_instead_of_a_zero_spread_and_an_interval(tmp_path):
    from rnnbench.compare import write_outputs

    cfg = load_config(None, ["data.sizes=[500, 1000, 2000]", "experiment.seeds=[0]", f"experiment.output_dir={tmp_path}"])
    rows = _rows({"linear": {500: 0.7, 1000: 0.72, 2000: 0.74}, "rnn": {500: 0.6, 1000: 0.7, 2000: 0.8}}, 0.5,
                 "accuracy")
    md = write_outputs(cfg, BINARY, rows)["markdown"]
    assert "± 0.0000" not in md and "| 0.7000 (1 seed) |" in md
    assert "rnn overtakes linear at about" in md and "(one seed: no interval)" in md and "95%" not in md.split(
        "**Forecast")[0]
    assert "a crossover is a lead that lasts" in md and "most frequent class predicted for every test text" in md


def test_the_forecast_command_agrees_with_compare_on_the_experiments_metric(tmp_path):
    """A folder made with experiment.metric macro_f1: `rnnbench forecast` forecasts macro F1 (not
    accuracy), as compare did; another metric goes to its own files, leaving compare's alone."""
    from rnnbench.runs import Run, RunResult

    exp = tmp_path / "runs" / "exp"
    truth = {"linear": lambda n: 0.80 - 0.4 * n ** -0.3, "rnn": lambda n: 0.95 - 8.0 * n ** -0.45}
    for n in (1000, 2000, 4000, 8000):
        for s in (0, 1):
            for m, f in truth.items():
                run = Run(exp / "runs" / f"{m}-n{n}-s{s}-0123456789")
                run.path.mkdir(parents=True)
                cfg = load_config(None, ["experiment.metric=macro_f1", f"experiment.output_dir={tmp_path / 'runs'}"])
                (run.path / "config.yaml").write_text(cfg.to_yaml())
                run.finish(RunResult(model=m, size=n, seed=s, task={"name": "t", "kind": "binary", "n_classes": 2},
                                     metrics={"accuracy": 0.5, "macro_f1": f(n) + 0.001 * s}, pool_size=20_000,
                                     timings={"fit": 1.0}, device="cpu"))
    r = cli("forecast", exp)
    assert r.exit_code == 0, r.output
    fc = json.loads((exp / "forecast.json").read_text())
    assert fc["metric"] == "macro_f1" and fc["crossover"]["rnn"]["status"] == "crossover"
    measured = fc["measured_crossover"]["rnn"]["crossover_size"]
    assert 1000 < measured < 8000
    # compare's tables of the same runs, on the same metric, find the same crossover
    from rnnbench.compare import write_outputs
    from rnnbench.curves import rows_from_experiment

    rows, _, _ = rows_from_experiment(exp)
    cfg = load_config(None, ["experiment.metric=macro_f1", f"experiment.output_dir={tmp_path / 'tables'}",
                             "experiment.name=exp", "data.sizes=[1000, 2000, 4000, 8000]", "experiment.seeds=[0, 1]"])
    out = write_outputs(cfg, Task("t", "binary", 2), rows)
    assert out["crossover"]["rnn"]["crossover_size"] == pytest.approx(measured)
    # the horizons beyond the 20,000 examples the data has are marked
    assert [h["beyond_data"] for h in fc["horizons"]] == [False, True, True]
    assert "† more training examples than this data set has (20,000)" in (exp / "forecast.md").read_text()
    before = (exp / "forecast.json").read_text()
    r = cli("forecast", exp, "--metric", "accuracy")
    assert r.exit_code == 0 and (exp / "forecast-accuracy.json").exists(), r.output
    assert (exp / "forecast.json").read_text() == before
    assert cli("forecast", exp, "--metric", "rmse").exit_code == 2


# ------------------------------------------------------------------------------------ JSON as APIs ship it


def test_a_folder_of_api_responses_loads_with_a_record_path_a_nested_field_and_a_row_filter(tmp_path):
    folder = tmp_path / "responses"
    folder.mkdir()
    langs = ["english", "english", "german", "english"]
    for page in range(3):
        reviews = [{"id": f"{page}-{i}", "author": {"name": f"a{i % 5}"}, "language": langs[i % 4],
                    "content": {"text": f"review {page} {i} " + ("great fun" if i % 2 else "dull and slow")},
                    "stars": 5 if i % 2 else 1} for i in range(20)]
        (folder / f"page{page}.json").write_text(json.dumps({"success": 1, "page": page, "reviews": reviews},
                                                            indent=2))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {
        "dataset": "json", "path": str(folder), "records": "reviews", "text_columns": ["content.text"],
        "label_column": "stars", "group_column": "author.name", "where": {"language": "english"},
        "label_map": {"1": "neg", "5": "pos"}, "test_fraction": 0.2}}))
    r = cli("data", "info", "--config", cfg)
    assert r.exit_code == 0, r.output
    from rnnbench.experiment import load_corpus

    corpus = load_corpus(load_config(cfg))
    assert len(corpus.train) + len(corpus.test) == 45  # 60 read, 15 in German
    assert corpus.report.read == {"train": 60} and corpus.report.dropped == {"not kept by data.where (language)": 15}
    assert corpus.task.class_names == ["neg", "pos"] and "not kept by data.where (language)" in r.output
    # the mistakes a user makes with such files, each one line naming the fix
    for override, message in (
            ({"records": None}, "is a JSON dict, not a list of records: name the list of records with data.records "
                                "(lists here: reviews)"),
            ({"records": "items"}, "data.records 'items': the document has no key 'items' (keys: success, page, reviews)"),
            ({"dataset": "jsonl", "records": None}, "is one JSON document, not JSON lines"),
            ({"dataset": "csv"}, "data.records is for json files")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({"data": {**yaml.safe_load(cfg.read_text())["data"], **override}}))
        r = cli("data", "info", "--config", bad)
        assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_data_info_names_the_validation_split_and_the_largest_size(tmp_path):
    r = cli("data", "info", "synthetic", "--set", "data.synthetic.train_size=1000", "--set",
            "data.synthetic.test_size=100", "--set", "data.val_max=80")
    assert r.exit_code == 0, r.output
    assert "validation: 80 of the 1,000 training examples" in r.output
    assert "the largest training size (--size, data.sizes) is 920" in r.output


def test_a_linear_runs_timings_name_the_chosen_points_fit(tmp_path):
    from tests.helpers import write_config

    cfg = write_config(tmp_path / "c.yaml")
    r = cli("train", cfg)
    assert r.exit_code == 0, r.output
    timings = json.loads(open(r.output.strip().splitlines()[-1] + "/result.json").read())["timings"]
    assert "chosen_point" in timings and "fit_chosen" not in timings


def test_crossover_csv_rows_carry_their_metric(tmp_path):
    from rnnbench.compare import write_outputs

    cfg = load_config(None, ["data.sizes=[500, 1000]", f"experiment.output_dir={tmp_path}",
                             "experiment.metric=balanced_accuracy"])
    rows = _rows({"linear": {500: 0.7, 1000: 0.72}, "rnn": {500: 0.6, 1000: 0.75}}, 0.5, "balanced_accuracy")
    for r in rows:
        r["roc_auc"] = {"linear": 0.8, "rnn": 0.7}[r["model"]]
    out = write_outputs(cfg, BINARY, rows)
    table = list(csv.DictReader(open(out["dir"] / "crossover.csv")))
    assert [t["metric"] for t in table] == ["balanced_accuracy"] * 4 + ["roc_auc"] * 4
    assert "**The two disagree** at 1,000 (rnn: rnn on balanced_accuracy, linear on roc_auc)" in out["markdown"]
