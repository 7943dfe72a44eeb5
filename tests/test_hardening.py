"""Issue #44: what an independent attack on runs, leases, configs and files broke, each case kept as a test
(the fault battery, ``scripts/faults.py``, repeats them as its ``hardening`` kind)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rnnbench.cli import main
from rnnbench.errors import RnnbenchError
from rnnbench.runs import Run, RunResult
from tests.helpers import write_config

SMALL = {"synthetic": {"train_size": 300, "test_size": 100}, "sizes": [100]}
TINY_RNN = {"embed_dim": 8, "hidden_dim": 8, "batch_size": 32, "epochs": 2, "buckets": 2, "learning_rate": 0.01}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def config(tmp_path, name="c.yaml", **sections):
    return write_config(tmp_path / name, data={**SMALL, **sections.pop("data", {})},
                        linear={"min_df": [1], "C": [1.0]}, rnn={**TINY_RNN, **sections.pop("rnn", {})}, **sections)


def one_error_line(r) -> str:
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith(("data:", "rnnbench: the RNN"))]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return lines[0]


def run_dir_of(r) -> Path:
    return Path(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- damaged results


@pytest.mark.parametrize("damage", [{"metrics": {"accuracy": "x"}}, {"metrics": None}, {"timings": {"fit": None}},
                                    {"status": 3}, {"classes": "ab"}, {"n_train": -1}, {"decision": {"metric": 1}}])
def test_a_result_of_the_wrong_types_is_damaged_not_a_crash(tmp_path, damage):
    """A result.json that parses but holds the wrong types (a hand edit, a bad disk): status says damaged,
    compare redoes the run instead of crashing while formatting it."""
    cfg = config(tmp_path, experiment={"models": ["linear"]})
    assert cli("compare", cfg).exit_code == 0
    (run,) = (tmp_path / "runs" / "t" / "runs").iterdir()
    good = json.loads((run / "result.json").read_text())
    (run / "result.json").write_text(json.dumps({**good, **damage}))
    with pytest.raises(RnnbenchError, match="unreadable run result"):
        Run(run).result()
    status = cli("status", tmp_path / "runs" / "t")
    assert status.exit_code == 0 and "damaged" in status.output and status.output.splitlines()[-1].endswith(
        "1 damaged"), status.output
    again = cli("compare", cfg)
    assert again.exit_code == 0, again.output
    assert "has DONE but" in again.stderr and "redone" in again.stderr
    assert json.loads((run / "result.json").read_text())["metrics"] == good["metrics"]
    assert "1 done" in cli("status", tmp_path / "runs" / "t").output


def test_a_result_nested_too_deeply_is_damaged_not_a_crash(tmp_path):
    (tmp_path / "DONE").write_text("x")
    (tmp_path / "result.json").write_text("[" * 100_000 + "]" * 100_000)
    assert not Run(tmp_path).done
    with pytest.raises(RnnbenchError, match="unreadable run result"):
        Run(tmp_path).result()


def test_what_rnnbench_writes_validates():
    r = RunResult(model="rnn", size=3, seed=-1, metrics={"accuracy": 0.5}, decision={"metric": "macro_f1",
                  "weights": [1.0, 2.0], "validation": 0.5}, pool_size=None)
    assert RunResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    undefined = RunResult.from_dict(json.loads(json.dumps({**r.to_dict(), "metrics": {"roc_auc": float("nan")}})))
    assert undefined.metrics["roc_auc"] != undefined.metrics["roc_auc"]  # a metric may be undefined (NaN)
