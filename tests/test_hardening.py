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


@pytest.fixture(autouse=True)
def _no_leases_left():
    from rnnbench import lease

    yield
    lease.release_all()


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


# ------------------------------------------------------------------------------------------- --force


ROOT = Path(__file__).resolve().parents[1]


def killed_at(spec: str, *args) -> int:
    """The CLI run by the fault battery's child mode, SIGKILLed at ``spec`` (``write:NAME:N``, ``save:N``)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "faults.py"), "--child", spec, "--",
                           *map(str, args)], env=env, capture_output=True, timeout=600).returncode


def whole(run: Path) -> dict:
    """What a finished run holds, read back in full (its model too): the proof it survived."""
    r = Run(run).require_done()
    assert (run / ("model.pkl" if r.model == "linear" else "params.npz")).stat().st_size > 0
    return r.metrics


@pytest.mark.parametrize("spec", ["write:model.pkl:1", "write:result.json:1", "write:DONE:1"])
def test_a_forced_rerun_killed_at_any_write_leaves_the_finished_run_whole(tmp_path, spec):
    """`train --force` used to delete the finished run before training: a SIGKILL (an OOM) during the rerun
    left nothing. Now the rerun trains beside it and replaces it only once finished."""
    cfg = config(tmp_path)
    first = cli("train", cfg)
    run = run_dir_of(first)
    before = whole(run)
    assert killed_at(spec, "train", cfg, "--force") == -9
    assert whole(run) == before  # the old run, untouched
    assert cli("status", run.parent.parent).output.splitlines()[-1].startswith("1 runs: 1 done")
    again = cli("train", cfg, "--force")
    assert again.exit_code == 0 and "already finished" not in again.output, again.output
    assert whole(run) == before and sorted(p.name for p in run.parent.iterdir()) == [run.name]  # no staging left


def test_a_forced_rerun_replaces_the_run_only_when_finished(tmp_path, monkeypatch):
    from rnnbench.models.linear.model import LinearBaseline

    cfg = config(tmp_path)
    run = run_dir_of(cli("train", cfg))
    stamp = (run / "DONE").read_text()
    real_fit, seen = LinearBaseline.fit, []

    def fit(self, train, val, *, run=None, **kw):
        seen.append(run.path)
        assert (run.final / "DONE").read_text() == stamp  # the finished run stands while its rerun trains
        status = cli("status", run.final.parent.parent).output
        assert "running" in status and "rerun (--force)" in status and "1 runs: 0 done" in status, status
        return real_fit(self, train, val, run=run, **kw)

    monkeypatch.setattr(LinearBaseline, "fit", fit)
    r = cli("train", cfg, "--force")
    assert r.exit_code == 0 and run_dir_of(r) == run
    assert seen == [run.parent / f".{run.name}.force"] and not seen[0].exists()
    assert whole(run) and sorted(p.name for p in run.parent.iterdir()) == [run.name]


def test_a_swap_cut_between_its_two_renames_is_completed(tmp_path, monkeypatch):
    """Where the filesystem cannot exchange two folders in one step, the old run is moved aside before the
    new one moves in; a kill between leaves the new one whole under a hidden name: the next use puts it in."""
    from rnnbench import runs

    cfg = config(tmp_path)
    run = run_dir_of(cli("train", cfg))
    monkeypatch.setattr(runs, "_exchange", lambda a, b: False)
    real_rename, calls = Path.rename, []

    def rename(self, target):
        calls.append(Path(target).name)
        if Path(target) == run and len(calls) > 1:
            raise KeyboardInterrupt  # the kill, between the two renames
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    cli("train", cfg, "--force")
    monkeypatch.setattr(Path, "rename", real_rename)
    assert not run.exists() and (run.parent / f".{run.name}.swap" / "DONE").exists()
    r = cli("train", cfg)
    assert r.exit_code == 0 and "already finished" in r.output, r.output
    assert whole(run) and sorted(p.name for p in run.parent.iterdir()) == [run.name]


# ------------------------------------------------------------------------------------------- hostile configs


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["data:", "  where:", '    k0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"    k{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_one_line_at_once(tmp_path):
    """1 kB that stands for 4 billion values: config show used to grow to gigabytes; now refused unexpanded."""
    import time

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    t0 = time.perf_counter()
    r = cli("config", "show", bomb)
    assert r.exit_code == 2 and time.perf_counter() - t0 < 5
    assert "aliases" in one_error_line(r) and str(bomb) in r.stderr
    for args in (["--set", "smoke=&a [*a]"], ["--set", "data.where={x: &b [*b]}"]):
        r = cli("config", "show", config(tmp_path), *args)
        assert r.exit_code == 2 and "holds itself" in one_error_line(r)
    (tmp_path / "cycle.yaml").write_text("smoke: &a {x: *a}\n")
    assert "holds itself" in one_error_line(cli("config", "show", tmp_path / "cycle.yaml"))
    aliases = tmp_path / "fine.yaml"  # aliases that stay small are YAML, and fine
    aliases.write_text("linear: {min_df: &m [1, 2]}\nsearch: {linear: {space: {linear.min_df: *m}}}\n")
    assert cli("config", "show", aliases).exit_code == 0


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "a\nb", "..", ".", "", "a/b", "a\\b", "tab\there", "x" * 300])
def test_experiment_name_is_one_plain_folder_name(tmp_path, name):
    """Used to write runs outside output_dir (../../x, an absolute path) or put a line break in a folder name."""
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"experiment": {"name": name, "output_dir": str(tmp_path / "out")}}))
    r = cli("train", path)
    assert r.exit_code == 2 and "experiment.name" in one_error_line(r)
    assert not any(tmp_path.rglob("runs")) and not (tmp_path.parent / "x").exists()


def test_a_config_path_that_is_a_folder_or_a_device_says_so(tmp_path):
    """It used to say "config file not found" of a folder that exists; an endless device read for ever."""
    assert "a folder, not a config file" in one_error_line(cli("config", "show", tmp_path))
    r = cli("config", "show", "/dev/zero")
    assert r.exit_code == 2 and "not a regular file" in one_error_line(r)
    assert "not found" in one_error_line(cli("config", "show", tmp_path / "nope.yaml"))


@pytest.mark.parametrize("setting", ["experiment.seeds=[0, 0]", "sweep.seeds=[1, 1]", "linear.C=[1.0, 1]",
                                     "linear.min_df=[2, 2]", "data.text_columns=[a, a]", "search.linear.at_sizes=[100, 100]",
                                     "sweep.grid={rnn.hidden_dim: [8, 8]}", "sweep.grid={rnn.learning_rate: [0.001, 1e-3]}",
                                     "sweep.labels=[a, a]"])
def test_a_value_listed_twice_is_refused(tmp_path, setting):
    """A sweep listing a value twice ran one run twice and counted it twice in every mean and interval."""
    cfg = config(tmp_path, sweep={"model": "rnn", "grid": {"rnn.hidden_dim": [8]}, "zip": {"rnn.cell": ["gru", "lstm"]},
                                  "labels": ["g", "l"]})
    r = cli("sweep", cfg, "--dry-run", "--set", setting)
    assert r.exit_code == 2 and "twice" in one_error_line(r), r.output


# ------------------------------------------------------------------------------------------- leases


def lease_file(cfg_path: Path, tmp_path: Path, text: str, age: float = 0.0) -> Path:
    """The lease file of the linear run of ``cfg_path``, holding ``text``, last written ``age`` s ago."""
    import os
    import time

    from rnnbench import lease
    from rnnbench.config import load_config
    from rnnbench.runs import run_path

    path = lease.lease_path(run_path(load_config(cfg_path), "linear", 100, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (time.time() - age, time.time() - age))
    return path


@pytest.mark.parametrize("text", ["garbage{", '{"host": 1, "pid": "x", "started": "y", "heartbeat": null}',
                                  '{"host": "n", "pid": 1, "started": 0, "heartbeat": NaN, "timeout": 300}',
                                  '{"host": "n", "pid": 1, "started": 0, "heartbeat": 0, "timeout": -1}', "[1, 2]"])
def test_a_lease_file_that_holds_no_lease_counts_only_for_the_configured_timeout(tmp_path, text):
    """Garbage counted as live for a fixed 300 s whatever compute.lease_timeout said; wrong JSON types were a
    traceback in train and status. Now such a file proves its mtime alone, judged by the configured timeout."""
    cfg = config(tmp_path, compute={"lease_timeout": 10})
    path = lease_file(cfg, tmp_path, text, age=3)
    r = cli("train", cfg)
    assert r.exit_code == 2 and "unreadable lease file" in one_error_line(r)  # written 3 s ago: held still
    status = cli("status", cfg)
    assert status.exit_code == 0 and "unreadable lease file" in status.output, status.output
    lease_file(cfg, tmp_path, text, age=12)  # older than compute.lease_timeout: taken over
    assert "1 stale" in cli("status", cfg).output
    r = cli("train", cfg)
    assert r.exit_code == 0, r.output
    assert not path.exists()  # finished and released


def test_a_lease_path_that_is_a_folder_says_so(tmp_path):
    cfg = config(tmp_path)
    path = lease_file(cfg, tmp_path, "")
    path.unlink()
    path.mkdir()
    for r in (cli("train", cfg), cli("status", cfg)):
        assert r.exit_code == 2 and "a folder where the lease file" in one_error_line(r)


def write_holder(path: Path, heartbeat: float, mtime: float, host="node7", token="theirs") -> None:
    import os
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": 4242, "started": heartbeat - 5, "heartbeat": heartbeat,
                                "timeout": 300.0, "token": token}))
    os.utime(path, (time.time() + mtime, time.time() + mtime))


def test_clocks_that_disagree_between_hosts(tmp_path):
    """A holder's heartbeat is its host's clock, the file's mtime the filesystem's: a holder whose clock is
    10 min behind is not taken for dead, one whose clock is a day ahead is not taken for alive for a day,
    and a file this process watched stay unchanged for the timeout is abandoned whatever the clocks say."""
    import time

    from rnnbench import lease

    path = tmp_path / "exp" / "leases" / "x.lease"
    now = time.time()
    write_holder(path, heartbeat=now - 600, mtime=0, token="a")  # alive; its clock 10 min behind
    assert not lease.read(path, 60).stale(now)
    write_holder(path, heartbeat=now + 86400, mtime=-400, token="b")  # dead 400 s ago; its clock a day ahead
    assert lease.read(path, 60).stale(now)
    write_holder(path, heartbeat=now + 86400, mtime=0, token="other")  # alive, clock ahead: live
    first = lease.read(path, 60)
    assert not first.stale(now)
    lease._SEEN[str(path)] = (path.read_bytes(), time.monotonic() - 61, False)  # watched, unchanged, for 61 s
    assert lease.read(path, 60).stale(now)
    write_holder(path, heartbeat=now - 3600, mtime=-3600, token="other")  # it beat (the file changed):
    assert not lease.read(path, 60).stale(now)  # alive, though both clocks say an hour ago


def test_a_heartbeat_from_a_holder_with_a_huge_timeout_is_bounded(tmp_path):
    import time

    from rnnbench import lease

    path = tmp_path / "exp" / "leases" / "x.lease"
    path.parent.mkdir(parents=True)
    now = time.time()
    path.write_text(json.dumps({"host": "n", "pid": 1, "started": now - 900, "heartbeat": now - 900,
                                "timeout": 1e12, "token": "t"}))
    import os

    os.utime(path, (now - 900, now - 900))
    assert lease.read(path, 300).stale(now)  # not for 30,000 years
    assert not lease.read(path, 300).stale(now - 800)


def test_a_claim_taken_over_stops_its_first_holder_with_who_took_it(tmp_path, monkeypatch):
    """The first holder of a claim another process took over (it looked dead: suspended, a clock) went on
    training into the other's folder and failed with a misleading "checkpoint not written"; now its next
    write stops it, naming who holds the run."""
    from rnnbench import lease
    from rnnbench.models.linear.model import LinearBaseline

    cfg = config(tmp_path)
    real_fit = LinearBaseline.fit

    def fit(self, train, val, *, run=None, **kw):
        write_holder(lease.lease_path(run.path), time.time(), 0, host="node9", token="new")
        return real_fit(self, train, val, run=run, **kw)

    import time

    monkeypatch.setattr(LinearBaseline, "fit", fit)
    r = cli("train", cfg)
    assert r.exit_code == 2
    line = one_error_line(r)
    assert "taken over by node9 pid 4242" in line and "stopped without writing" in line
    assert not list((tmp_path / "runs").rglob("DONE"))


# ------------------------------------------------------------------------------------------- sizes that cannot fit


@pytest.mark.parametrize("setting,key", [("rnn.hidden_dim=1000000", "rnn.hidden_dim"),
                                         ("rnn.batch_size=1000000000", "rnn.batch_size"),
                                         ("data.max_len=1000000000", "data.max_len"),
                                         ("rnn.embed_dim=100000000", "rnn.embed_dim")])
def test_a_size_that_cannot_fit_is_refused_before_allocating(tmp_path, setting, key):
    """These ran for up to a minute, took gigabytes, then died with a JAX or numpy traceback."""
    import resource
    import time

    cfg = config(tmp_path)
    t0, rss = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = cli("train", cfg, "--model", "rnn", "--set", setting)
    line = one_error_line(r)
    assert r.exit_code == 2 and line.startswith(f"Error: {key}: a run needs about ") and "this machine has" in line
    assert time.perf_counter() - t0 < 60 and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 500_000
    assert not list((tmp_path / "runs").rglob("checkpoints/*")) and not list((tmp_path / "runs").rglob("DONE"))


def test_the_memory_estimate_names_the_option_and_spares_what_fits():
    from rnnbench.errors import RnnbenchError
    from rnnbench.models.rnn.memory import check_fits, estimate
    from rnnbench.models.rnn.spec import RnnConfig

    talk = RnnConfig(embed_dim=256, hidden_dim=512, batch_size=64)  # the talk's GRU on IMDB: 100k words
    parts = estimate(talk, 400, 100_000, 1, 400)
    assert 0.5e9 < sum(parts.values()) < 4e9  # about a gigabyte: fits a laptop
    check_fits(talk, 400, 100_000, 1, 400, (8 << 30, "RAM"))
    check_fits(talk, 400, 100_000, 1, 400, None)  # memory unknown: nothing refused
    with pytest.raises(RnnbenchError, match=r"^tokenizer.max_features: .* this machine has 1.1 GB of RAM$"):
        check_fits(talk, 400, 5_000_000, 1, 400, (1 << 30, "RAM"))
    wide = RnnConfig(embed_dim=256, hidden_dim=512, batch_size=64, layers=8)
    with pytest.raises(RnnbenchError, match="^rnn.layers: "):
        check_fits(wide, 400, 1000, 1, 400, (200 << 20, "memory on a GPU"))


# ------------------------------------------------------------------------------------------- late cleanup


def test_a_full_disk_whose_failure_orbax_repeats_at_close_is_still_one_line(tmp_path, monkeypatch, capfd):
    """A disk that fills during a checkpoint: orbax raises the failure from the save, then again from the close
    of its manager (which used to replace the first with a ~130-line traceback), and its abandoned threads go
    on printing "Event loop is closed" after the save's quiet block."""
    import threading
    import time

    import orbax.checkpoint as ocp

    cfg = config(tmp_path)
    real_save, real_close, calls = ocp.CheckpointManager.save, ocp.CheckpointManager.close, []

    def late_failure():
        time.sleep(0.3)
        raise RuntimeError("Event loop is closed")

    def save(self, step, *a, **k):
        calls.append(step)
        if len(calls) == 2:
            threading.Thread(target=late_failure).start()
            raise ValueError("RESOURCE_EXHAUSTED: Error writing local file: No space left on device")
        return real_save(self, step, *a, **k)

    def close(self):
        real_close(self)
        if len(calls) >= 2:
            raise ValueError("RESOURCE_EXHAUSTED: Error opening \"zarr\" driver: No space left on device")

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    monkeypatch.setattr(ocp.CheckpointManager, "close", close)
    r = cli("train", cfg, "--model", "rnn")
    time.sleep(0.6)
    assert r.exit_code == 1 and "No space left on device" in one_error_line(r)
    assert "Traceback" not in capfd.readouterr().err


def test_a_reader_that_leaves_is_no_error(tmp_path):
    """`rnnbench status DIR | head -1` said "Error: Broken pipe ... run the same command again"."""
    import os
    import subprocess
    import sys

    cfg = config(tmp_path, experiment={"models": ["linear"]})
    assert cli("compare", cfg).exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["config", "reference"], ["status", str(tmp_path / "runs" / "t")]):
        p = subprocess.run(f"{sys.executable} -m rnnbench.cli {' '.join(args)} | head -c 1 > /dev/null; "
                           "echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash", capture_output=True,
                           text=True, env=env, timeout=120)
        assert p.stdout.strip() in ("0", "141") and p.stderr == "", (args, p.stdout, p.stderr)


# ------------------------------------------------------------------------------------------- archives


def zero_bomb(path: Path, size: int, manifest: bytes | None = None) -> Path:
    """A results archive whose one run file is ``size`` zero bytes: a few hundred kB compressed."""
    import gzip
    import io
    import tarfile

    class Zeros(io.RawIOBase):
        def __init__(self, n):
            self.n = n

        def readable(self):
            return True

        def readinto(self, b):
            k = min(len(b), self.n)
            b[:k] = bytes(k)
            self.n -= k
            return k

    manifest = manifest or json.dumps({"format": "rnnbench-results/1", "experiment": "bomb"}).encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz, \
            tarfile.open(fileobj=gz, mode="w|") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        info = tarfile.TarInfo("runs/linear-n1-s0-a/metrics.jsonl")
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(size), 1 << 20))
    return path


def test_an_archive_whose_members_expand_far_beyond_its_size_is_refused_unexpanded(tmp_path):
    """A 0.1 MB archive holding 80 MB of zeros passed the 2 GB cap and was read whole into memory."""
    import resource

    bomb = zero_bomb(tmp_path / "bomb.tar.gz", 80 << 20)
    assert bomb.stat().st_size < 1 << 20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = cli("import", bomb, "--into", tmp_path / "store")
    assert r.exit_code == 2 and "expands beyond" in one_error_line(r)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 50_000  # kB: nothing expanded
    assert list((tmp_path / "store").iterdir()) == []
    deep = zero_bomb(tmp_path / "deep.tar.gz", 10, manifest=b"[" * 100_000 + b"]" * 100_000)
    assert "is not JSON" in one_error_line(cli("import", deep, "--into", tmp_path / "store"))


# ------------------------------------------------------------------------------------------- signals twice


def signalled_twice(cfg: Path, sig: int, gap: float, out: Path) -> tuple[int, str]:
    """An RNN ``train`` into ``out`` sent ``sig`` twice, ``gap`` seconds apart, once it trains."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    ctrl_c = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "  # as from a terminal, also
              "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")  # where these tests run in the background
    p = subprocess.Popen([sys.executable, "-c", ctrl_c, "-m", "rnnbench.cli", "train", str(cfg), "--model", "rnn",
                          "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None and not any(
            '"train"' in f.read_text() for f in out.rglob("metrics.jsonl")):
        time.sleep(0.05)
    p.send_signal(sig)
    time.sleep(gap)
    p.send_signal(sig)
    _, err = p.communicate(timeout=300)
    return p.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(15, 143), (2, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_that_arrives_twice_is_still_one_clean_exit(tmp_path, sig, code):
    """A second SIGTERM during the first one's way out raised again inside JAX's exit cleanup (a traceback),
    or, later, killed the process (exit -15 instead of 143). Now repeats are ignored; a second Ctrl-C stops at
    once, quietly. Either way the same command then resumes."""
    cfg = config(tmp_path, rnn={"epochs": 200, "patience": 200})
    for gap in (0.0, 0.4):
        rc, err = signalled_twice(cfg, sig, gap, tmp_path / f"out-{gap}")
        assert rc == code and "Traceback" not in err, (rc, err)
        r = cli("train", cfg, "--model", "rnn", "--out", tmp_path / f"out-{gap}")
        assert r.exit_code == 0, r.output


# ------------------------------------------------------------------------------------------- endless inputs, causes


def test_predict_streams_an_input_that_never_ends(tmp_path):
    """`yes TEXT | rnnbench predict RUN --file -` read stdin whole before predicting (memory without bound, no
    output ever); a file without line breaks (/dev/zero) was one endless line. Now texts stream through a batch
    at a time, and a line longer than 16 MB is one line of error."""
    import os
    import subprocess
    import sys

    run = run_dir_of(cli("train", config(tmp_path)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(f"yes 'a good film' | {sys.executable} -m rnnbench.cli predict {run} --file - | head -n 5000 "
                       "| wc -l; echo ${PIPESTATUS[1]}", shell=True, executable="/bin/bash", capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.stdout.split() == ["5000", "141"] and p.stderr == "", (p.stdout, p.stderr)
    r = cli("predict", run, "--file", "/dev/zero")
    assert r.exit_code == 2 and "longer than 16 MB" in one_error_line(r)


def test_a_data_path_that_is_a_pipe_is_refused_not_read_for_ever(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = cli("data", "info", "jsonl", "--path", fifo, "--set", "data.text_columns=[text]", "--set", "data.label_column=label")
    assert r.exit_code == 2 and "not a regular file (a pipe or a device)" in one_error_line(r)


def test_messages_name_the_real_cause(tmp_path):
    """A file where a folder belongs was "no such directory" (it exists), "Not a directory ... run the same
    command again" (running again changes nothing), or a temp file's name."""
    a_file = tmp_path / "afile"
    a_file.write_text("")
    cfg = config(tmp_path)
    cases = [(["train", cfg, "--out", a_file], f"{a_file} is a file, not a folder"),
             (["predict", a_file, "x"], f"{a_file} is a file, not a folder"),
             (["forecast", a_file], f"{a_file} is a file, not a folder"),
             (["import", tmp_path, "--into", tmp_path / "s"], "a folder, not an archive"),
             (["import", "/dev/null", "--into", tmp_path / "s"], "not a regular file")]
    for args, cause in cases:
        r = cli(*args)
        assert r.exit_code == 2 and cause in one_error_line(r), (args, r.output)
    run = run_dir_of(cli("train", cfg))
    r = cli("export", "results", run.parent.parent, "-o", tmp_path)
    line = one_error_line(r)
    assert r.exit_code == 1 and f": {tmp_path} (a file or folder is in the way" in line and "run the same" not in line


def test_a_key_written_twice_in_a_config_is_refused(tmp_path):
    """YAML keeps the last of two equal keys silently: a second `rnn:` section dropped the first's settings, and
    the run trained with others than written."""
    path = tmp_path / "dup.yaml"
    path.write_text("experiment: {name: d}\nrnn: {hidden_dim: 8}\nrnn: {epochs: 3}\n")
    r = cli("config", "show", path)
    assert r.exit_code == 2 and "the key 'rnn' is written twice" in one_error_line(r) and "line 3" in r.stderr
    merged = tmp_path / "merge.yaml"  # a merge key overrides, as YAML says
    merged.write_text("smoke: &base {rnn.epochs: 1}\nat_size: {'100': {<<: *base, rnn.epochs: 2}}\n")
    r = cli("config", "show", merged)
    assert r.exit_code == 0 and "rnn.epochs: 2" in r.output, r.output
