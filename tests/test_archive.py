"""Results that outlive the machine: export an experiment's runs, import them anywhere, rebuild the tables."""

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from rnnbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished compare: linear and a tiny GRU, two sizes, two seeds."""
    tmp = tmp_path_factory.mktemp("study")
    cfg = tmp / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "experiment": {"name": "s", "seeds": [0, 1], "output_dir": str(tmp / "runs")},
        "data": {"synthetic": {"train_size": 700, "test_size": 200}, "sizes": [100, 300]},
        "rnn": {"embed_dim": 8, "hidden_dim": 8, "batch_size": 16, "epochs": 2}, "linear": {"min_df": [1], "C": [1.0]}}))
    r = cli("compare", cfg)
    assert r.exit_code == 0, r.output
    return cfg, tmp / "runs" / "s"


def test_export_import_and_tables_only_give_the_same_tables(study, tmp_path):
    cfg, exp = study
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert cli("export", "results", exp, "-o", a).exit_code == 0
    assert cli("export", "results", exp, "-o", b, "--max-points", 2).exit_code == 0
    assert cli("export", "results", exp, "-o", tmp_path / "c.tar.gz", "--max-points", 2).exit_code == 0
    assert (tmp_path / "c.tar.gz").read_bytes() == b.read_bytes()  # the same runs: the same bytes
    with tarfile.open(b) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        metrics = [json.loads(x) for x in tar.extractfile(next(n for n in names if n.startswith("runs/rnn-n300")
                                                               and n.endswith("metrics.jsonl"))).read().splitlines()]
    assert manifest["format"] == "rnnbench-results/1" and len(manifest["runs"]) == 8
    assert manifest["config"]["experiment"]["name"] == "s" and manifest["devices"]
    assert not any(n.endswith(("params.npz", "model.pkl", "tokenizer.json")) or "/checkpoints/" in n for n in names)
    assert sum(n.endswith("predictions.npz") for n in names) == 8
    assert sum(m["event"] == "train" for m in metrics) <= 2 and any(m["event"] == "eval" for m in metrics)

    store = tmp_path / "store"
    r = cli("import", a, "--into", store)
    assert r.exit_code == 0 and r.output.startswith("8 run(s) added, 0 already there"), r.output
    again = cli("import", a, "--into", store)
    assert again.exit_code == 0 and again.output.startswith("0 run(s) added, 8 already there")
    tables = cli("compare", cfg, "--tables-only", "--set", f"experiment.output_dir={store}")
    assert tables.exit_code == 0, tables.output
    for name in ("crossover.md", "crossover.csv", "curves.csv", "forecast.json"):
        assert (store / "s" / name).read_text() == (exp / name).read_text(), name
    status = cli("status", store / "s")
    assert "8 runs: 8 done" in status.output
    run = next(p for p in (store / "s" / "runs").iterdir() if p.name.startswith("rnn-"))
    p = cli("predict", run, "a text")
    assert p.exit_code == 2 and "imported from a results archive: its weights were not exported" in p.output
    e = cli("embed", run)
    assert e.exit_code == 2 and "weights were not exported" in e.output


def _tar(tmp_path, members, name="x.tar.gz", manifest=True):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        if manifest:
            data = json.dumps({"format": "rnnbench-results/1", "experiment": "e"}).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path = tmp_path / name
    path.write_bytes(raw.getvalue())
    return path


def _write(path, data):
    path.write_bytes(data)
    return path


def _member(name, data=b"x", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("make, message", [
    (lambda p, s: _write(p / "t.tar.gz", s.read_bytes()[:300]), "damaged archive"),
    (lambda p, s: _write(p / "n.tar.gz", b"not an archive at all"), "not an rnnbench results"),
    (lambda p, s: _tar(p, [_member("runs/r/DONE")], manifest=False), "no manifest.json"),
    (lambda p, s: _tar(p, [_member("../../evil")]), "lies outside an experiment's runs"),
    (lambda p, s: _tar(p, [_member("/etc/evil")]), "lies outside an experiment's runs"),
    (lambda p, s: _tar(p, [_member("runs/r/link", kind=tarfile.SYMTYPE, link="/etc/passwd")]), "not a plain file"),
    (lambda p, s: _tar(p, [_member("runs/r/DONE", b"x"), _member("runs/r/result.json", b"{}")]), "is damaged"),
])
def test_a_damaged_foreign_or_hostile_archive_is_one_line_and_imports_nothing(study, tmp_path, make, message):
    _, exp = study
    good = tmp_path / "good.tar.gz"
    cli("export", "results", exp, "-o", good)
    store = tmp_path / "store"
    r = cli("import", make(tmp_path, good), "--into", store)
    assert r.exit_code == 2 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (store / "e").exists() and not (store / "s").exists() and not list(store.glob(".rnnbench-import-*"))


def test_an_archive_that_expands_too_far_is_refused(study, tmp_path, monkeypatch):
    import rnnbench.archive as archive

    _, exp = study
    cli("export", "results", exp, "-o", tmp_path / "a.tar.gz")
    monkeypatch.setattr(archive, "MAX_BYTES", 1000)
    r = cli("import", tmp_path / "a.tar.gz", "--into", tmp_path / "store")
    assert r.exit_code == 2 and "expands beyond" in r.output and not (tmp_path / "store" / "s").exists()


def test_published_results_stay_small():
    total = sum(p.stat().st_size for p in (ROOT / "results").rglob("*") if p.is_file())
    assert total <= 50 * 1024 * 1024, f"results/ holds {total / 1e6:.1f} MB"


def test_every_published_table_is_rebuilt_from_its_archive():
    """`make results`' check: each generated block of docs/results/*.md equals the table rebuilt from
    results/<study>.tar.gz alone (no training, no data)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_results.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["archives"] >= 1 and figures["blocks"] >= 1 and figures["differ"] == 0


def test_an_old_gzip_without_tar_is_not_taken_for_an_archive(tmp_path):
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(gzip.compress(b"hello"))
    r = cli("import", path, "--into", tmp_path / "store")
    assert r.exit_code == 2 and "rnnbench results archive" in r.output
