import csv
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rnnbench import lease
from rnnbench.config import load_config
from rnnbench.runs import Run
from tests.helpers import write_config


@pytest.fixture(autouse=True)
def _no_leases_left():
    yield
    lease.release_all()
    lease.set_owner("")


def run_dir(tmp_path) -> Path:
    return tmp_path / "exp" / "runs" / "rnn-n100-s0-abc"


def write_lease(run: Path, host="node7", pid=4242, age=0.0, timeout=300.0, owner="", token="theirs") -> Path:
    path = lease.lease_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    path.write_text(json.dumps({"host": host, "pid": pid, "started": now - age - 5, "heartbeat": now - age,
                                "timeout": timeout, "token": token, "owner": owner}))
    os.utime(path, (now - age, now - age))  # written at its heartbeat: the filesystem's clock agrees
    return path


def log_lines(run: Path) -> list[dict]:
    p = lease.log_path(run)
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_claim_writes_who_holds_it_and_release_removes_it(tmp_path):
    run = run_dir(tmp_path)
    held = lease.claim(run, timeout=60)
    path = tmp_path / "exp" / "leases" / f"{run.name}.lease"
    assert lease.lease_path(run) == path and path.exists()
    on_disk = lease.read(path)
    assert (on_disk.host, on_disk.pid, on_disk.token) == (lease.HOST, os.getpid(), held.token)
    assert on_disk.started <= on_disk.heartbeat <= time.time() and on_disk.timeout == 60
    assert lease.claim(run) is held  # re-entrant in one process
    assert [x["event"] for x in log_lines(run)] == ["claim"] and log_lines(run)[0]["run"] == run.name
    assert lease.held() == [run]
    lease.release(run)
    assert not path.exists() and lease.held() == []


def test_a_live_claim_elsewhere_is_refused_and_named(tmp_path):
    run = run_dir(tmp_path)
    write_lease(run, host="node7", pid=4242, age=10)
    with pytest.raises(lease.Claimed) as e:
        lease.claim(run)
    assert "claimed by node7 pid 4242" in str(e.value) and "heartbeat 10 s ago" in str(e.value)
    assert lease.read(lease.lease_path(run)).token == "theirs"  # untouched
    assert log_lines(run) == []


def test_a_stale_claim_is_taken_over_and_the_takeover_logged(tmp_path):
    run = run_dir(tmp_path)
    write_lease(run, host="node7", pid=4242, age=400, timeout=300)
    assert lease.holder_of(run).stale()
    mine = lease.claim(run)
    assert lease.read(lease.lease_path(run)).token == mine.token
    (line,) = log_lines(run)
    assert line["took_over"]["host"] == "node7" and line["took_over"]["pid"] == 4242


def test_a_dead_process_on_this_host_holds_nothing(tmp_path):
    run = run_dir(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    write_lease(run, host=lease.HOST, pid=proc.pid, age=0)  # fresh heartbeat, but its process is gone
    assert lease.holder_of(run).stale()
    lease.claim(run)
    assert log_lines(run)[0]["took_over"]["pid"] == proc.pid


def test_the_retry_of_a_job_takes_over_its_own_claim(tmp_path):
    run = run_dir(tmp_path)
    write_lease(run, host="node7", owner="driver:1:job3", age=1)  # its worker died on another node
    lease.set_owner("driver:1:job4")
    with pytest.raises(lease.Claimed):
        lease.claim(run)
    lease.set_owner("driver:1:job3")
    assert lease.claim(run).owner == "driver:1:job3"


def test_heartbeat_refreshes_and_a_lost_claim_is_dropped_with_a_warning(tmp_path, capsys, stderr_log):
    run = run_dir(tmp_path)
    mine = lease.claim(run)
    path = lease.lease_path(run)
    first = lease.read(path).heartbeat
    time.sleep(0.01)
    lease.beat()
    assert lease.read(path).heartbeat > first and lease.read(path).token == mine.token
    write_lease(run, host="node9", pid=77, token="new")  # someone decided we were dead
    lease.beat()
    assert "taken over by node9 pid 77" in capsys.readouterr().err
    assert lease.held() == [] and lease.read(path).token == "new"
    lease.release(run)  # not ours any more: left alone
    assert lease.read(path).token == "new"


def test_a_run_finished_meanwhile_gives_the_claim_back(tmp_path):
    run = run_dir(tmp_path)
    with pytest.raises(lease.Claimed) as e:
        lease.claim(run, unless=lambda: True)
    assert e.value.finished and not lease.lease_path(run).exists() and log_lines(run) == []


def test_run_begin_takes_the_claim_and_touches_nothing_when_refused(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml"))
    run = Run(run_dir(tmp_path))
    run.path.mkdir(parents=True)
    (run.path / "metrics.jsonl").write_text('{"event": "train", "step": 1}\n')
    write_lease(run.path, age=1)
    with pytest.raises(lease.Claimed):
        run.begin(cfg)
    assert (run.path / "metrics.jsonl").read_text() == '{"event": "train", "step": 1}\n'
    lease.lease_path(run.path).unlink()
    run.begin(cfg)
    assert lease.holder_of(run.path).pid == os.getpid()
    from rnnbench.runs import RunResult

    run.finish(RunResult(model="rnn", size=100, seed=0))
    assert lease.holder_of(run.path) is None  # finishing releases it


RACE = textwrap.dedent("""
    import sys, time
    from rnnbench import lease
    t = float(sys.argv[2])
    while time.time() < t:
        time.sleep(0.001)
    try:
        lease.claim(sys.argv[1])
        print("won", flush=True)
        time.sleep(1.0)
    except lease.Claimed:
        print("lost", flush=True)
""")


@pytest.mark.parametrize("stale_first", [False, True], ids=["fresh", "stale"])
def test_processes_racing_for_one_run_exactly_one_wins(tmp_path, stale_first):
    run = run_dir(tmp_path)
    if stale_first:  # all of them take over the same abandoned claim at once
        write_lease(run, age=1000)
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(run), str(start)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["lost", "lost", "lost", "won"]
    assert len(log_lines(run)) == 1


# ------------------------------------------------------------------------------ two commands at once

TINY_RNN = {"embed_dim": 16, "hidden_dim": 24, "batch_size": 32, "epochs": 2, "buckets": 2, "learning_rate": 0.01}


def tiny_compare(tmp_path, name, out):
    return write_config(tmp_path / name, rnn=TINY_RNN, experiment={"output_dir": str(out), "seeds": [0]},
                        data={"synthetic": {"train_size": 700, "test_size": 200}, "sizes": [100, 300]})


def table(out: Path, name: str) -> list[dict]:
    drop = ("run_dir", "train_seconds", "predict_seconds", "search_seconds")
    return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(open(out / "t" / name))]


@pytest.mark.slow
def test_two_compares_at_once_make_each_run_once_and_the_same_tables(tmp_path):
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "shared")
    cmd = [sys.executable, "-m", "rnnbench.cli", "compare", str(cfg)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    claims = [json.loads(x) for x in (tmp_path / "shared" / "t" / "leases" / "log.jsonl").read_text().splitlines()]
    runs = sorted(p.name for p in (tmp_path / "shared" / "t" / "runs").iterdir())
    assert len(runs) == 4 and sorted(c["run"] for c in claims) == runs  # each run trained exactly once
    assert not any("took_over" in c for c in claims)
    assert len({c["pid"] for c in claims}) == 2  # both commands trained some of them
    assert sum("claimed by" in err for _, err in outs) >= 1  # and one waited for the other's
    assert list((tmp_path / "shared" / "t" / "leases").glob("*.lease")) == []
    one = tiny_compare(tmp_path, "one.yaml", tmp_path / "one")
    single = subprocess.run([sys.executable, "-m", "rnnbench.cli", "compare", str(one)], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    for name in ("curves.csv", "crossover.csv"):
        assert table(tmp_path / "shared", name) == table(tmp_path / "one", name)
    assert outs[0][0].split("## Cost")[0] == outs[1][0].split("## Cost")[0] == single.stdout.split("## Cost")[0]
