"""The data and config commands, and the one-line exit-2 errors."""

import pytest
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
                 "amazon-polarity", "blog-authorship", "zhang-csv", "csv", "jsonl"):
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
    assert r.exit_code == 0 and "0: " in r.output


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
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rnn: {}\n")
    r = run(*[a.format(cfg=cfg) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_malformed_yaml_exit_2_with_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  sizes: [1, 2\n")
    r = run("config", "show", str(p))
    assert r.exit_code == 2 and "line" in r.output
