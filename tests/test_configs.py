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
