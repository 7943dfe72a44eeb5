import os
import shutil
import subprocess
import sys

import pytest

from rnnbench.config import Config, config_hash, load_config
from rnnbench.errors import RnnbenchError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_are_the_talks_gru():
    cfg = load_config(None)
    assert (cfg.rnn.cell, cfg.rnn.embed_dim, cfg.rnn.hidden_dim) == ("gru", 256, 512)
    assert cfg.rnn.gate == "steeper_sigmoid" and cfg.rnn.init == "orthogonal" and cfg.rnn.optimizer == "adam"
    assert cfg.data.dataset == "synthetic"


def test_file_values_and_overrides_parse_as_yaml(tmp_path):
    p = write(tmp_path, "rnn:\n  hidden_dim: 64\nexperiment:\n  seeds: [1, 2]\n")
    cfg = load_config(p, ["rnn.learning_rate=0.01", "data.sizes=[100, 200]", "rnn.clip_norm=null"])
    assert cfg.rnn.hidden_dim == 64 and cfg.experiment.seeds == [1, 2]
    assert cfg.rnn.learning_rate == 0.01 and cfg.data.sizes == [100, 200] and cfg.rnn.clip_norm is None


def test_unknown_key_names_full_path_and_suggests(tmp_path):
    p = write(tmp_path, "rnn:\n  hiden_dim: 3\n")
    with pytest.raises(RnnbenchError, match=r"rnn\.hiden_dim.*did you mean 'rnn\.hidden_dim'"):
        load_config(p)
    with pytest.raises(RnnbenchError, match=r"unknown config key 'data\.synthetic\.trian_size'"):
        load_config(None, ["data.synthetic.trian_size=3"])


@pytest.mark.parametrize("override, match", [
    ("rnn.hidden_dim=abc", r"rnn\.hidden_dim: expected int, got 'abc'"),
    ("rnn.hidden_dim=1.5", r"rnn\.hidden_dim: expected int"),
    ("rnn.cell=transformer", r"rnn\.cell: expected one of 'gru', 'lstm', 'simple'"),
    ("rnn.dropout=2", r"rnn\.dropout: must be <= 0\.95"),
    ("experiment.seeds=[]", r"experiment\.seeds: needs at least 1"),
    ("linear.C=[1, x]", r"linear\.C\[1\]: expected float"),
    ("rnn.learned_init_state=3", r"expected bool"),
])
def test_wrong_types_and_ranges_name_the_key(override, match):
    with pytest.raises(RnnbenchError, match=match):
        load_config(None, [override])


def test_malformed_yaml_reports_line(tmp_path):
    p = write(tmp_path, "rnn:\n  cell: gru\n  hidden_dim: [1, 2\n")
    with pytest.raises(RnnbenchError, match=r"malformed YAML .* line \d+"):
        load_config(p)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(RnnbenchError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(RnnbenchError, match="must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_replace_and_hash():
    cfg = Config()
    other = cfg.replace(**{"rnn.cell": "lstm"})
    assert other.rnn.cell == "lstm" and cfg.rnn.cell == "gru"
    assert config_hash(cfg.to_dict()) == config_hash(Config().to_dict())
    assert config_hash(cfg.to_dict()) != config_hash(other.to_dict())
    with pytest.raises(RnnbenchError):
        cfg.replace(**{"rnn.cell": "nope"})


def test_at_size_overrides_one_sizes_rnn_and_linear_settings():
    from rnnbench.runs import run_spec

    cfg = load_config(None, ["at_size={600000: {rnn.batch_size: 256, linear.C: [1.0]}}"])
    big, small = cfg.for_size(600000), cfg.for_size(100000)
    assert (big.rnn.batch_size, big.linear.C) == (256, [1.0])
    assert small is cfg and small.rnn.batch_size == 64 and cfg.for_size(None) is cfg
    plain = Config()
    assert run_spec(cfg, "rnn", 100000, 0) == run_spec(plain, "rnn", 100000, 0)  # other sizes: the same key
    assert run_spec(cfg, "rnn", 600000, 0) == run_spec(plain.replace(**{"rnn.batch_size": 256}), "rnn", 600000, 0)
    assert run_spec(cfg, "rnn", 600000, 0) != run_spec(plain, "rnn", 600000, 0)


def test_an_explicit_value_wins_over_at_size(tmp_path):
    """--set, a sweep's axis (replace) and smoke hold at every size; keys given as ints in Python work too."""
    p = write(tmp_path, "at_size: {600000: {rnn.batch_size: 256, rnn.epochs: 2}}\n")
    assert load_config(p).for_size(600000).rnn.batch_size == 256
    cli = load_config(p, ["rnn.batch_size=32"])
    assert (cli.for_size(600000).rnn.batch_size, cli.for_size(600000).rnn.epochs) == (32, 2)
    swept = load_config(p).replace(**{"rnn.batch_size": 16})
    assert (swept.for_size(600000).rnn.batch_size, swept.for_size(600000).rnn.epochs) == (16, 2)
    assert Config(at_size={600000: {"rnn.epochs": 3}}).for_size(600000).rnn.epochs == 3


@pytest.mark.parametrize("override, match", [
    ("at_size={big: {rnn.batch_size: 2}}", r"at_size: keys are training sizes \(positive integers\), got 'big'"),
    ("at_size={0: {rnn.batch_size: 2}}", r"at_size: keys are training sizes"),
    ("at_size={1000: {data.max_len: 64}}", r"at_size\.1000\.data\.max_len: only model kinds. keys \(linear\.\*, rnn\.\*, fasttext\.\*, transformer\.\*\)"),
    ("at_size={1000: {rnn.batch_size: 0}}", r"at_size\.1000: rnn\.batch_size: must be >= 1, got 0"),
    ("at_size={1000: {rnn.batchsize: 2}}", r"at_size\.1000: unknown config key 'rnn\.batchsize' \(did you mean"),
    ("at_size={1000: 5}", r"at_size\.1000: expected a mapping"),
])
def test_at_size_errors_name_the_key(override, match):
    with pytest.raises(RnnbenchError, match=match):
        load_config(None, [override])


@pytest.mark.skipif(shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"),
                    reason="needs Linux's taskset")
def test_cores_are_counted_from_the_cpu_affinity():
    """A run pinned to one core (taskset, a container's cpuset) reports and uses one core, not the machine's."""
    code = ("from rnnbench.config import usable_cores; from rnnbench.models.base import cpu_device; "
            "print(usable_cores(), cpu_device())")
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(maxsplit=1)
    assert out[0] == "1" and out[1].startswith("cpu (1 core,")


def test_sweep_and_plot_are_typed_sections(tmp_path):
    cfg = load_config(write(tmp_path, "sweep:\n  size: 300\n  grid: {rnn.cell: [gru, lstm]}\n"
                                      "plot:\n  - {x: step, y: grad_norm, by: rnn.cell, target: 0.4}\n"))
    assert cfg.sweep.size == 300 and cfg.sweep.grid == {"rnn.cell": ["gru", "lstm"]} and cfg.sweep.model == "rnn"
    assert cfg.plot[0].y == "grad_norm" and cfg.plot[0].target == 0.4 and cfg.plot[0].ylog is False
    assert load_config(None).sweep is None  # no sweep section: not a sweep
    assert load_config(None, ["sweep.size=5"]).sweep.size == 5  # --set creates the section


@pytest.mark.parametrize("override, match", [
    ("sweep.sizee=3", r"unknown config key 'sweep\.sizee' \(did you mean 'sweep\.size'\?\)"),
    ("sweep.kind=grid", r"sweep\.kind: expected one of 'runs', 'toy-optimizers'"),
    ("sweep.grid={rnn.cell: gru}", r"sweep\.grid\.rnn\.cell: expected a list"),
    ("sweep.learning_rates={adam: fast}", r"sweep\.learning_rates\.adam: expected float"),
    ("plot=[{x: steps, y: train_loss}]", r"plot\[0\]\.x: expected one of 'step', 'epoch'"),
    ("plot=[{x: step, y: train_loss, colour: red}]", r"unknown config key 'plot\[0\]\.colour'"),
    ("plot=3", r"plot: expected a list of a mapping"),
])
def test_sweep_and_plot_errors_name_the_key(override, match):
    with pytest.raises(RnnbenchError, match=match):
        load_config(None, [override])


def test_an_output_dir_given_with_a_tilde_lands_in_the_home_folder(tmp_path, monkeypatch):
    # `--set experiment.output_dir=~/runs` reaches rnnbench unexpanded: no shell expands `~` after `=`
    from rnnbench.runs import experiment_dir, run_path

    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(None, ["experiment.output_dir=~/runs", "experiment.name=x"])
    assert experiment_dir(cfg) == tmp_path / "runs" / "x"
    assert run_path(cfg, "linear", 100, 0).parent == tmp_path / "runs" / "x" / "runs"


def test_an_exponent_without_a_dot_is_the_number_it_means(tmp_path):
    """YAML 1.1 reads ``1e-3`` as text; a float option takes it as 0.001 (in a file and with --set), and a
    search's values too."""
    path = tmp_path / "c.yaml"
    path.write_text("rnn: {learning_rate: 1e-3, clip_norm: 5E+0}\n")
    cfg = load_config(path, ["rnn.lr_decay=5e-1"])
    assert cfg.rnn.learning_rate == 0.001 and cfg.rnn.clip_norm == 5.0 and cfg.rnn.lr_decay == 0.5
    with pytest.raises(RnnbenchError, match="rnn.embed_dim: expected int"):
        load_config(None, ["rnn.embed_dim=1e3"])  # an int option is not given a float
    from rnnbench.search import dims

    searched = load_config(None, ["search={rnn: {space: {rnn.learning_rate: [3e-05, 1e-3]}}}"])
    assert dims(searched, "rnn")[0].values == (3e-05, 1e-3)
