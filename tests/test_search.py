"""A fair fight: every model kind tuned on validation by a search, its budget shown beside its score."""

import csv
import json

import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main

QUICK = {"synthetic": {"train_size": 2500, "test_size": 400}, "sizes": [2000], "val_max": 300}
GRU = {"embed_dim": 32, "hidden_dim": 64, "batch_size": 32, "learning_rate": 0.003, "epochs": 4, "patience": 2}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def config(tmp_path, name="c.yaml", **sections):
    base = {"experiment": {"name": "s", "seeds": [0], "output_dir": str(tmp_path / "runs")}, "data": dict(QUICK),
            "linear": {"min_df": [1, 2], "C": [1.0, 10.0]}, "tokenizer": {"min_df": 2}, "rnn": dict(GRU)}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) and k != "search" else v
    path = tmp_path / name
    path.write_text(yaml.safe_dump(base))
    return path


def table(tmp_path):
    return {r["model"]: r for r in csv.DictReader(open(tmp_path / "runs" / "s" / "curves.csv"))}


@pytest.mark.parametrize("search, message", [
    ({"rnn": {"space": {"rnn.hiden_dim": [64]}}}, "search.rnn.space.rnn.hiden_dim: rnn has no option 'rnn.hiden_dim'"),
    ({"rnn": {"space": {"linear.C": [1.0]}}}, "search.rnn.space.linear.C: rnn has no option"),
    ({"rnn": {"space": {"rnn.dropout": [0.0, 2.0]}}}, "search.rnn.space.rnn.dropout: rnn.dropout: must be <= 0.95"),
    ({"rnn": {"space": {}}}, "search.rnn.space is empty"),
    ({"rnn": {"space": {"rnn.learning_rate": {"low": 0.1, "high": 0.001}}, "sampler": "tpe"}},
     "search.rnn.space.rnn.learning_rate: low 0.1 is above high 0.001"),
    ({"rnn": {"space": {"rnn.learning_rate": {"low": 0.001, "high": 0.1}}}}, "a grid needs values (or a range with a step)"),
    ({"linear": {"pruner": "hyperband"}}, "search.linear.pruner: linear reports no validation curve"),
    ({"rnn": {"space": {"rnn.learning_rate": [0.001]}, "at_sizes": [500]}}, "search.rnn.at_sizes: 500 is not one of data.sizes"),
    ({"svm": {"space": {}}}, "search.svm: unknown model kind 'svm'"),
    ({"linear": {"space": {"data.max_len": [64]}}}, "search.linear.space.data.max_len: linear has no option"),
])
def test_a_bad_search_is_one_line_exit_2_nothing_written(tmp_path, search, message):
    r = cli("compare", config(tmp_path, search=search))
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_search_over_the_learning_rate_rescues_a_bad_recipe(tmp_path):
    """On the quickstart's corpus the GRU at learning rate 1e-5 learns nothing in its epochs; the same config
    searching the learning rate (pruned by successive halving) finds a recipe within 1 point of the default
    recipe's test score, records its trials (pruned ones with the epoch they reached) and its budget."""
    default = cli("compare", config(tmp_path, "default.yaml"), "--models", "rnn")
    assert default.exit_code == 0, default.output
    good = float(table(tmp_path)["rnn"]["accuracy"])
    bad = cli("compare", config(tmp_path, "bad.yaml", rnn={"learning_rate": 1e-5}), "--models", "rnn")
    assert bad.exit_code == 0, bad.output
    assert float(table(tmp_path)["rnn"]["accuracy"]) < 0.56 < good - 0.1  # learned nothing: near chance
    space = {"rnn": {"space": {"rnn.learning_rate": [3e-3, 1e-5, 1e-4, 1e-3, 1e-2]}, "pruner": "halving"}}
    tuned = cli("compare", config(tmp_path, "tuned.yaml", rnn={"learning_rate": 1e-5}, search=space), "--models", "rnn")
    assert tuned.exit_code == 0, tuned.output
    row = table(tmp_path)["rnn"]
    assert abs(float(row["accuracy"]) - good) <= 0.01 and row["tuned"] == "tuned" and float(row["trials"]) == 5
    summary = json.loads((tmp_path / "runs" / "s" / "search" / "rnn-n2000-s0.json").read_text())
    states = [t["state"] for t in summary["trials"]]
    assert len(states) == 5 and summary["budget"]["pruned"] == states.count("pruned") >= 1
    for t in summary["trials"]:
        result = json.loads((tmp_path / "runs" / "s" / "runs" / t["run"] / "result.json").read_text())
        assert result["trial"].get("number", t["number"]) == t["number"]  # (3e-3: the default run, made earlier)
        if t["state"] == "pruned":
            assert result["status"] == "pruned" and result["reason"].startswith("pruned at epoch")
            assert result["training"]["epochs_run"] < GRU["epochs"]
    md = (tmp_path / "runs" / "s" / "crossover.md").read_text()
    assert "## Selection budget" in md and f"| 2,000 | rnn | tuned | 5 | {summary['budget']['pruned']} |" in md
    status = cli("status", tmp_path / "runs" / "s", "--trials")
    assert "rnn-n2000-s0: " in status.output and "trial 0 " in status.output and "pruned" in status.output
    again = cli("compare", config(tmp_path, "tuned.yaml", rnn={"learning_rate": 1e-5}, search=space), "--models", "rnn")
    assert again.exit_code == 0 and "finished earlier" in again.stderr  # the search is not redone


@pytest.mark.slow
def test_edges_grow_and_tuned_sizes_carry_their_recipe(tmp_path):
    """A grid whose best learning rate is its largest grows one step past it (extend_edges); a size not in
    at_sizes trains the recipe tuned at the size below; the linear model's grid is flagged at its edge."""
    space = {"rnn": {"space": {"rnn.learning_rate": [3e-4, 1e-3]}, "extend_edges": True, "max_extensions": 1,
                     "at_sizes": [2000]}}
    cfg = config(tmp_path, search=space, data={"sizes": [1500, 2000]})
    r = cli("compare", cfg)
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "runs" / "s" / "search" / "rnn-n2000-s0.json").read_text())
    (step,) = [e["extended"]["rnn.learning_rate"] for e in summary["extensions"]]
    assert step in (pytest.approx(1e-3 * 1e-3 / 3e-4), pytest.approx(3e-4 * 3e-4 / 1e-3))  # one step past an edge
    assert not (tmp_path / "runs" / "s" / "search" / "rnn-n1500-s0.json").exists()
    rows = list(csv.DictReader(open(tmp_path / "runs" / "s" / "curves.csv")))
    rnn = {int(x["size"]): x for x in rows if x["model"] == "rnn"}
    assert rnn[2000]["tuned"] == "tuned" and rnn[1500]["tuned"] == "from 2,000"  # below the first tuned size
    chosen = summary["chosen"]["settings"]["rnn.learning_rate"]
    run_1500 = next(p for p in (tmp_path / "runs" / "s" / "runs").iterdir() if p.name.startswith("rnn-n1500"))
    assert yaml.safe_load((run_1500 / "config.yaml").read_text())["rnn"]["learning_rate"] == chosen
    md = (tmp_path / "runs" / "s" / "crossover.md").read_text()
    assert "| 1,500 | rnn | from 2,000 |" in md and "linear.min_df = 1 is the smallest tried" in md


def test_configs_without_a_search_keep_their_run_keys(tmp_path):
    from rnnbench.config import load_config
    from rnnbench.runs import run_path

    plain = load_config(config(tmp_path))
    searched = load_config(config(tmp_path, "s.yaml", search={"rnn": {"space": {"rnn.learning_rate": [0.001]}}}))
    assert run_path(plain, "rnn", 2000, 0) == run_path(searched, "rnn", 2000, 0)  # a search names trials, not keys
