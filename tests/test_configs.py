"""Every config in configs/ parses, and those on real data sets load and train (tiny sizes)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.config import load_config
from rnnbench.data import get_info

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
REAL = {  # config -> file under ../shared/data
    "imdb.yaml": "aclImdb_v1.tar.gz",
    "sst2.yaml": "sst2",
    "amazon-helpfulness.yaml": "amazon-musical-instruments-5core/Musical_instruments_reviews.csv",
    "clothing-rating.yaml": "womens-clothing-reviews",
    "rt-polarity.yaml": "rt-polarity",
}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_opens_with_a_comment(path):
    cfg = load_config(path)
    assert path.read_text().startswith("#")
    info = get_info(cfg.data.dataset)
    assert (cfg.data.task or next(iter(info.tasks))) in info.tasks
    assert cfg.data.sizes == sorted(cfg.data.sizes)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_data_configs_train_end_to_end(shared, tmp_path, name):
    path = Path(__file__).resolve().parents[1] / "configs" / name
    r = CliRunner().invoke(main, ["train", str(path), "--size", "200", "--out", str(tmp_path),
                                  "--set", f"data.path={shared / REAL[name]}", "--set", "linear.min_df=[1]",
                                  "--set", "linear.C=[1.0]", "--set", "linear.alpha=[1.0]"])
    assert r.exit_code == 0, r.output
    assert ("rmse" in r.output) == (name in ("amazon-helpfulness.yaml", "clothing-rating.yaml"))


def test_config_list_and_copy_give_the_shipped_configs(tmp_path, monkeypatch):
    """`config list` names every file of configs/ (what the package ships); `config copy NAME DEST` writes
    the same bytes, into a folder or to a file, and keeps an existing file unless --force."""
    root = Path(__file__).resolve().parents[1] / "configs"
    listed = CliRunner().invoke(main, ["config", "list"])
    assert listed.exit_code == 0, listed.output
    names = [line.split()[0] for line in listed.output.splitlines()[2:]]
    assert names == [n for n in names if "/" not in n] + [n for n in names if "/" in n]  # top level first
    assert sorted(names) == sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))
    assert "quickstart  " in listed.output and "linear vs GRU on the built-in synthetic corpus" in listed.output

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["config", "copy", "quickstart"])
    assert r.exit_code == 0 and r.output == "quickstart.yaml\n", r.output
    assert (tmp_path / "quickstart.yaml").read_bytes() == (root / "quickstart.yaml").read_bytes()
    r = CliRunner().invoke(main, ["config", "copy", "configs/examples/jsonl.yaml", "new/"])
    assert r.exit_code == 0 and (tmp_path / "new" / "jsonl.yaml").read_bytes() == (root / "examples/jsonl.yaml").read_bytes()
    r = CliRunner().invoke(main, ["config", "copy", "imdb", "mine.yaml"])
    assert r.exit_code == 0 and (tmp_path / "mine.yaml").read_bytes() == (root / "imdb.yaml").read_bytes()
    assert load_config(tmp_path / "quickstart.yaml").experiment.name == "quickstart"

    (tmp_path / "quickstart.yaml").write_text("# mine\n")
    kept = CliRunner().invoke(main, ["config", "copy", "quickstart", "."])
    assert kept.exit_code == 2 and kept.output == "Error: config copy: quickstart.yaml exists (use --force to overwrite it)\n"
    assert (tmp_path / "quickstart.yaml").read_text() == "# mine\n"
    forced = CliRunner().invoke(main, ["config", "copy", "quickstart", ".", "--force"])
    assert forced.exit_code == 0 and (tmp_path / "quickstart.yaml").read_bytes() == (root / "quickstart.yaml").read_bytes()
    typo = CliRunner().invoke(main, ["config", "copy", "quikstart", "x.yaml"])
    assert typo.exit_code == 2 and len(typo.output.splitlines()) == 1 and "did you mean 'quickstart'" in typo.output
    assert not (tmp_path / "x.yaml").exists()
