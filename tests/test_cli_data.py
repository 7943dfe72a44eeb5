"""The data and config commands, and the one-line exit-2 errors."""

import re

import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_lists_commands():
    r = run("--help")
    assert r.exit_code == 0 and "data" in r.output and "config" in r.output


def test_data_list():
    r = run("data", "list")
    assert r.exit_code == 0
    for name in ("synthetic", "imdb", "sst2", "rt-polarity", "amazon-helpfulness", "clothing-reviews",
                 "amazon-polarity", "blog-authorship", "zhang-csv", "csv", "jsonl", "parquet"):
        assert f"\n{name} " in r.output


def test_data_info_synthetic_needs_no_download():
    r = run("data", "info", "synthetic", "--set", "data.synthetic.train_size=500", "--set", "data.synthetic.test_size=100")
    assert r.exit_code == 0, r.output
    assert "train  500" in r.output and "tokens mean" in r.output


@pytest.mark.shared_data
def test_data_info_real(shared):
    r = run("data", "info", "clothing-reviews", "--path", str(shared / "womens-clothing-reviews"))
    assert r.exit_code == 0, r.output
    assert "845 (empty text)" in r.output and "mean" in r.output
    r = run("data", "info", "rt-polarity", "--path", str(shared / "rt-polarity"))
    assert r.exit_code == 0 and "(binary, 2 classes: neg, pos)" in r.output and "neg: 4" in r.output


def test_config_show_resolves_defaults_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("rnn:\n  hidden_dim: 64\n")
    r = run("config", "show", str(p), "--set", "rnn.cell=lstm")
    assert r.exit_code == 0
    assert "hidden_dim: 64" in r.output and "cell: lstm" in r.output and "embed_dim: 256" in r.output


@pytest.mark.parametrize("args, message", [
    (("config", "show", "/nonexistent.yaml"), "config file not found"),
    (("config", "show", "{cfg}", "--set", "rnn.hiden_dim=3"), "did you mean 'rnn.hidden_dim'"),
    (("config", "show", "{cfg}", "--set", "rnn.hidden_dim=big"), "rnn.hidden_dim: expected int"),
    (("config", "show", "{cfg}", "--set", "novalue"), "--set expects key=value"),
    (("data", "info", "imdb", "--path", "/nonexistent"), "data path does not exist"),
    (("data", "info", "nope"), "unknown data set 'nope'"),
    (("data", "download", "sst2"), "there is no download URL we can rely on"),
    (("data", "download", "blog-authorship"), "no download URL we can rely on: get it from Schler et al. 2006"),
    (("data", "download", "blog-authorship"), "`rnnbench data download blog-authorship --from FOLDER` (the folder "
                                              "holding train.tsv.xz and test.tsv.xz)"),
    (("data", "info", "blog-authorship"), "no local copy of 'blog-authorship': there is no download URL"),
    (("data", "info", "blog-authorship", "--task", "age"), "--from FOLDER"),
    (("data", "info", "blog-authorship", "--set", "data.group_column=gender"), "always groups rows by blog_id"),
    (("data", "info", "imdb", "--set", "data.group_column=author"), "'imdb' cannot group rows"),
    (("data", "info"), "data info: give a data set NAME (`rnnbench data list`), or --config CONFIG"),
    (("data", "info", "csv"), "data set 'csv' reads your file: set data.path"),
    (("data", "info", "csv", "--path", "{tmp}", "--set", "data.text_columns=[t]", "--set", "data.label_column=y"),
     "no .csv file in folder"),
    (("data", "info", "csv", "--path", "{tmp}", "--set", "data.label_column=y"), "needs data.text_columns"),
    (("data", "info", "tsv", "--path", "{tmp}/c.yaml", "--set", "data.text_columns=[t]", "--set",
      "data.label_from_path=x"), "data.label_from_path: needs exactly one group"),
    (("data", "info", "imdb", "--set", "data.path=[{tmp}, {tmp}]"), "'imdb' reads one file or folder"),
    (("data", "info", "csv", "--set", "data.quoting=double"), "data.quoting: expected one of 'csv', 'none'"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rnn: {}\n")
    r = run(*[a.format(cfg=cfg, tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_malformed_yaml_exit_2_with_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  sizes: [1, 2\n")
    r = run("config", "show", str(p))
    assert r.exit_code == 2 and "line" in r.output


def _stars(tmp_path, **data):
    (tmp_path / "stars.csv").write_text("text,stars\n" + "".join(f"review {i},{1 + i % 5}\n" for i in range(100)))
    cfg = {"data": {"dataset": "csv", "path": str(tmp_path / "stars.csv"), "text_columns": ["text"],
                    "label_column": "stars", **data}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def test_data_info_with_a_config_alone_shows_class_names(tmp_path):
    """Stars 1-5 appeared as 0-4; `data info --config` needed a NAME that the config already gives."""
    r = run("data", "info", "--config", str(_stars(tmp_path, task_kind="multiclass")))
    assert r.exit_code == 0, r.output
    assert "(multiclass, 5 classes: 1, 2, 3, 4, 5)" in r.output
    assert re.search(r"train +80 +1: \d+, 2: \d+, 3: \d+, 4: \d+, 5: \d+ ", r.output)
    r = run("data", "info", "--config", str(_stars(tmp_path, label_map={1: "neg", 2: "neg", 3: None, 4: "pos",
                                                                         5: "pos"})))
    assert r.exit_code == 0, r.output
    assert "(binary, 2 classes: neg, pos)" in r.output and "neg: " in r.output
    assert "read 100 rows; dropped 20 (label mapped to null)" in r.output
    assert run("data", "info", "csv", "--config", str(_stars(tmp_path, task_kind="multiclass"))).exit_code == 0


def test_data_info_name_that_disagrees_with_the_config_is_an_error(tmp_path):
    r = run("data", "info", "tsv", "--config", str(_stars(tmp_path)))
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "NAME 'tsv' disagrees with data.dataset 'csv'" in r.output
    (tmp_path / "plain.yaml").write_text("rnn: {hidden_dim: 8}\n")  # no data set named: NAME says which
    r = run("data", "info", "synthetic", "--config", str(tmp_path / "plain.yaml"), "--set",
            "data.synthetic.train_size=200", "--set", "data.synthetic.test_size=50")
    assert r.exit_code == 0, r.output


def test_data_info_shows_warnings(tmp_path):
    (tmp_path / "s.tsv").write_text("text\tlabel\n" + "".join(
        ('"' if i == 3 else "") + f"sentence {i}\t{i % 2}\n" for i in range(40)))
    r = run("data", "info", "tsv", "--path", str(tmp_path / "s.tsv"), "--set", "data.text_columns=[text]",
            "--set", "data.label_column=label", "--set", "data.quoting=csv")
    assert r.exit_code == 0, r.output
    assert "warning: " in r.output and "unbalanced double quotes may have merged rows" in r.output
