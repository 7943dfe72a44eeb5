import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import rnnbench
from rnnbench import executor, lease
from rnnbench.cli import main
from rnnbench.config import load_config
from rnnbench.errors import RnnbenchError
from rnnbench.executor import ExecutorSpec, GpuSlots, Job, execute
from rnnbench.runs import Run, RunResult, run_path
from tests.helpers import write_config

TINY_RNN = {"embed_dim": 16, "hidden_dim": 24, "batch_size": 32, "epochs": 2, "buckets": 2, "learning_rate": 0.01}
LONG_RNN = {**TINY_RNN, "epochs": 4, "patience": 5}  # long enough to be killed after its first checkpoint
DATA = {"synthetic": {"train_size": 700, "test_size": 200}, "sizes": [100, 300]}


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def tiny_compare(tmp_path, name, out, **over):
    sections = {"rnn": dict(TINY_RNN), "experiment": {"output_dir": str(out), "seeds": [0]}, "data": dict(DATA)}
    for k, v in over.items():
        sections[k] = {**sections.get(k, {}), **v}
    return write_config(tmp_path / name, **sections)


def table(out: Path, name: str = "curves.csv") -> list[dict]:
    """A table's rows without what differs between equal runs: timings, folders, and the device label,
    which names the run's threads (a Ray task's or Slurm job's CPUs, not this machine's cores)."""
    drop = ("run_dir", "train_seconds", "predict_seconds", "search_seconds", "device")
    return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(open(out / "t" / name))]


def claims(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "t" / "leases" / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def warm_home(tmp_path_factory):
    """One data home for the module's end-to-end tests: the JAX compile cache is shared, so the many
    worker processes compile the tiny GRU once."""
    return tmp_path_factory.mktemp("data-home")


@pytest.fixture(scope="module")
def serial(tmp_path_factory, warm_home):
    """The tiny compare, serially in this process: the tables every executor must reproduce."""
    tmp = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNBENCH_DATA", str(warm_home))
        r = cli("compare", tiny_compare(tmp, "c.yaml", tmp / "out"))
    assert r.exit_code == 0, r.output
    return tmp / "out"


# ------------------------------------------------------------------------------ GPUs of local workers


def test_round_robin_one_gpu_per_worker():
    slots = GpuSlots(["0", "1"], None, workers=2)
    a, b = slots.take("rnn"), slots.take("rnn")
    assert (a.env, b.env) == ({"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"})
    slots.give_back(a)
    assert slots.take("rnn").env == {"CUDA_VISIBLE_DEVICES": "0"}


def test_more_workers_than_gpus_pack_them_without_preallocation():
    slots = GpuSlots(["0", "1"], None, workers=4)
    envs = [slots.take("rnn").env for _ in range(4)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1"]
    assert all(e["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for e in envs)


def test_fractions_share_a_gpu_up_to_its_capacity():
    slots = GpuSlots(["0", "1"], 0.5, workers=8)
    envs = [slots.take("rnn") for _ in range(4)]
    assert sorted(p.env["CUDA_VISIBLE_DEVICES"] for p in envs) == ["0", "0", "1", "1"]
    assert all(p.env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" for p in envs)
    assert slots.take("rnn") is None  # both GPUs full
    assert slots.take("linear").env == {"CUDA_VISIBLE_DEVICES": ""}  # the linear model needs no GPU
    slots.give_back(envs[2])
    assert slots.take("rnn").env["CUDA_VISIBLE_DEVICES"] == envs[2].env["CUDA_VISIBLE_DEVICES"]


def test_whole_gpus_per_run():
    slots = GpuSlots(["0", "1", "2", "3"], 2, workers=4)
    a, b = slots.take("rnn"), slots.take("rnn")
    assert (a.env, b.env) == ({"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"})
    assert slots.take("rnn") is None
    assert GpuSlots([], None, 4).take("rnn").env == {}  # no GPU: nothing set


@pytest.mark.parametrize("gpus, per_run, message", [
    ([], 0.25, "this machine has no GPU"),
    (["0", "1"], 3, "more than this machine's 2 GPU(s)"),
])
def test_gpus_asked_for_must_exist(gpus, per_run, message):
    with pytest.raises(RnnbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GpuSlots(gpus, per_run, 2)


def test_local_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert executor.local_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert executor.local_gpus() == []


def test_executor_settings_never_move_a_run_hash(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml"))
    spread = cfg.replace(**{"compute.executor": "ray", "compute.workers": 8, "compute.gpus_per_run": 0.25,
                            "compute.address": "10.0.0.1:6379", "compute.retries": 5, "compute.lease_timeout": 60.0,
                            "compute.progress_every": 5.0, "compute.threads": 3, "compute.slurm_partition": "gpu",
                            "compute.slurm_time_min": 5, "compute.slurm_array_parallelism": 4,
                            "compute.slurm_options": {"qos": "high"}, "compute.slurm_setup": ["module load cuda"],
                            "compute.slurm_cluster": "local"})
    for model in ("linear", "rnn"):
        assert run_path(cfg, model, 100, 0) == run_path(spread, model, 100, 0)


# ------------------------------------------------------------------------------ bad input: exit 2, one line


def one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("args, needles", [
    (["--workers", "-2"], ["--workers must be at least 1, got -2"]),
    (["--workers", "0"], ["--workers must be at least 1"]),
    (["--gpus-per-run", "-1"], ["--gpus-per-run must be 0 or more"]),
    (["--gpus-per-run", "1.5"], ["whole number of GPUs"]),
    (["--address", "10.0.0.1:6379"], ["--address 10.0.0.1:6379 is for --executor ray"]),
    (["--workers", "2", "--gpus-per-run", "0.5"], ["--gpus-per-run 0.5: this machine has no GPU"]),
    (["--threads", "0"], ["--threads must be at least 1, got 0"]),
    (["--partition", "gpu"], ["--partition gpu is for --executor slurm (the executor is local)"]),
    (["--executor", "ray", "--sbatch", "qos=high"], ["--sbatch qos=high is for --executor slurm"]),
    (["--executor", "slurm", "--gpus-per-run", "0.5"], ["--gpus-per-run 0.5: Slurm gives a job whole GPUs"]),
    (["--executor", "slurm", "--sbatch", "account"], ["--sbatch account: expected KEY=VALUE"]),
    (["--executor", "slurm", "--time-min", "0"], ["--time-min must be at least 1, got 0"]),
])
@pytest.mark.parametrize("command", ["compare", "sweep"])
def test_bad_executor_flags(tmp_path, monkeypatch, command, args, needles):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "out", sweep={"grid": {"rnn.cell": ["gru"]}})
    one_line_error(cli(command, cfg, *args), *needles)
    assert not (tmp_path / "out").exists()  # nothing written


def test_gpus_per_run_above_this_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    one_line_error(cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--workers", "2",
                       "--gpus-per-run", "4"), "--gpus-per-run 4 is more than this machine's 2 GPU(s)")


def test_ray_without_the_extra_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    one_line_error(cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--executor", "ray"),
                   "--executor ray needs Ray", "pip install -e '.[ray]'")


def test_slurm_without_the_extra_or_without_sbatch(tmp_path, monkeypatch):
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "out")
    monkeypatch.setitem(sys.modules, "submitit", None)
    one_line_error(cli("compare", cfg, "--executor", "slurm"), "--executor slurm needs submitit",
                   "pip install -e '.[slurm]'")
    monkeypatch.undo()
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    one_line_error(cli("compare", cfg, "--executor", "slurm"), "no sbatch on this machine", "compute.slurm_cluster")
    assert not (tmp_path / "out").exists()


def test_slurm_settings_reach_the_job_script(tmp_path, monkeypatch):
    """What sbatch gets: the partition, time limit, CPUs (the run's threads), GPUs, array limit and extra
    options, from the config with the flags over them (submitit's script, without a cluster)."""
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(executor.shutil, "which", lambda name: f"/usr/bin/{name}")
    cfg = load_config(tiny_compare(tmp_path, "c.yaml", tmp_path / "out", compute={
        "slurm_partition": "cpu", "slurm_options": {"account": "lab", "exclusive": True}, "slurm_time_min": 30}))
    spec = ExecutorSpec.resolve(cfg.compute, "slurm", threads=4, partition="gpu", array_parallelism=8,
                                sbatch=("qos=high", "mail-type=END"))
    backend = executor.SlurmBackend(spec, "auto")
    path = run_path(cfg, "rnn", 100, 0)
    job = Job(cfg=cfg.to_dict(), model="rnn", size=100, seed=0, force=False, path=str(path), label="rnn")
    ex = backend.executor(job, backend.gpus(job))
    assert isinstance(ex._executor, submitit.SlurmExecutor)
    script = ex._executor._make_submission_file_text("python -m submitit.core._submit x", "uid")
    for line in ("--partition=gpu", "--time=30", "--cpus-per-task=4", "--gpus-per-node=1", "--account=lab",
                 "--exclusive", "--qos=high", "--mail-type=END", "--signal=USR2@"):
        assert f"#SBATCH {line}" in script, (line, script)
    assert ex._executor.parameters["array_parallelism"] == 8
    assert ex._executor.max_num_timeout == executor.SLURM_MAX_TIMEOUTS  # a long run in many short jobs
    linear = Job(cfg=cfg.to_dict(), model="linear", size=100, seed=0, force=False, path=str(path), label="linear")
    assert backend.gpus(linear) == 0  # a kind that wants no GPU asks for none
    assert str(path.parent.parent / "slurm") in str(ex._executor.folder)  # beside the shared run store


def test_an_address_that_does_not_answer(tmp_path):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    one_line_error(cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--executor", "ray",
                       "--address", f"127.0.0.1:{port}"), f"--address 127.0.0.1:{port}: nothing answers there",
                   "ray start --head")
    one_line_error(cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--executor", "ray",
                       "--address", "nowhere"), "expected auto or HOST:PORT")


# ------------------------------------------------------------------------------ the driver


def test_a_run_whose_done_is_not_visible_here_says_the_folder_is_not_shared(tmp_path, monkeypatch):
    """A worker on another node wrote the run into its own disk: the driver's folder has no DONE."""
    cfg = load_config(tiny_compare(tmp_path, "c.yaml", tmp_path / "out"))
    path = run_path(cfg, "linear", 100, 0)

    def elsewhere(job, in_worker=True, progress=False):
        ok = RunResult(model="linear", size=100, seed=0, metrics={"accuracy": 0.5})
        return {"host": "node7", "result": ok.to_dict(), "run": job["path"], "skipped": False}

    monkeypatch.setattr(executor, "run_job", elsewhere)
    monkeypatch.setattr(executor, "VISIBLE_WAIT_S", 0.2)
    job = Job(cfg=cfg.to_dict(), model="linear", size=100, seed=0, force=False, path=str(path), label="linear")
    with pytest.raises(RnnbenchError, match="finished on node7, but its DONE is not visible here") as e:
        execute([job], ExecutorSpec(), progress=False)
    assert "the output folder is not shared between the nodes" in str(e.value)


def claimed_by_node7(tmp_path):
    """A tiny experiment whose linear n100 run is held by a live process on another host."""
    cfg = load_config(tiny_compare(tmp_path, "c.yaml", tmp_path / "out"))
    path = run_path(cfg, "linear", 100, 0)
    lp = lease.lease_path(path)
    lp.parent.mkdir(parents=True)
    now = time.time()
    lp.write_text(json.dumps({"host": "node7", "pid": 4242, "started": now, "heartbeat": now, "token": "x"}))
    return cfg, path


def test_force_on_a_run_claimed_elsewhere_says_by_whom_and_leaves_it(tmp_path, capsys, stderr_log):
    cfg, path = claimed_by_node7(tmp_path)
    job = Job(cfg=cfg.to_dict(), model="linear", size=100, seed=0, force=True, path=str(path), label="linear n100")
    (out,) = execute([job], ExecutorSpec(), progress=True)
    assert out.result.status == "claimed" and "claimed by node7 pid 4242" in out.result.reason
    assert not path.exists() and "claimed by node7 pid 4242" in capsys.readouterr().err


def test_a_claimed_run_is_waited_for_then_read(tmp_path, monkeypatch):
    """Another process holds the run: the driver does the others, waits, and takes the result it wrote."""
    cfg, path = claimed_by_node7(tmp_path)
    monkeypatch.setattr(executor, "WAIT_POLL_S", 0.05)

    def other_finishes():  # while the driver waits, the holder finishes the run and lets it go
        Run(path).path.mkdir(parents=True)
        Run(path).finish(RunResult(model="linear", size=100, seed=0, metrics={"accuracy": 0.75}))
        lease.lease_path(path).unlink()

    timer = threading.Timer(0.5, other_finishes)
    timer.start()
    job = Job(cfg=cfg.to_dict(), model="linear", size=100, seed=0, force=False, path=str(path), label="linear n100")
    (out,) = execute([job], ExecutorSpec(), progress=False)
    timer.join()
    assert out.skipped and out.result.metrics == {"accuracy": 0.75}
    assert not (path / "config.yaml").exists()  # it was never begun here


# ------------------------------------------------------------------------------ local workers, end to end


@pytest.mark.slow
def test_local_workers_with_faked_gpus_give_the_serial_tables(tmp_path, monkeypatch, serial, warm_home):
    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two GPUs, as far as the driver can tell
    r = cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--workers", 2, "--gpus-per-run", 0.5)
    assert r.exit_code == 0, r.output
    for name in ("curves.csv", "crossover.csv"):
        assert table(tmp_path / "out", name) == table(serial, name)
    seen = {c["run"].split("-")[0]: [] for c in claims(tmp_path / "out")}
    for c in claims(tmp_path / "out"):
        seen[c["run"].split("-")[0]].append((c["cuda_visible_devices"], c["xla_preallocate"]))
    assert set(seen["linear"]) == {("", None)}  # no GPU for the linear model
    assert all(gpu in ("0", "1") and prealloc == "false" for gpu, prealloc in seen["rnn"])  # its own, shared
    assert len({c["pid"] for c in claims(tmp_path / "out")}) == 4  # a fresh process per run


def wait_for_checkpoint(runs: Path, proc=None, deadline_s=300, pattern="rnn-*/checkpoints/*") -> Path:
    deadline = time.time() + deadline_s
    while time.time() < deadline and (proc is None or proc.poll() is None):
        found = [p for p in runs.glob(pattern) if p.name.isdigit()]
        if found:
            return found[0].parent.parent
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_a_local_worker_killed_mid_run_is_retried_and_resumes(tmp_path, serial_long, warm_home, monkeypatch):
    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "out", rnn=LONG_RNN, data={"sizes": [300]},
                       experiment={"models": ["rnn"]}, compute={"progress_every": 1.0})
    proc = subprocess.Popen([sys.executable, "-m", "rnnbench.cli", "compare", str(cfg), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = wait_for_checkpoint(tmp_path / "out" / "t" / "runs", proc)
    status = cli("status", tmp_path / "out" / "t")  # what a user sees meanwhile
    assert status.exit_code == 0 and "running" in status.output and lease.HOST in status.output
    holder = lease.holder_of(run)
    os.kill(holder.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "its worker died (signal SIGKILL); starting it again (1/2)" in err
    assert f"on {lease.HOST}: epoch" in err  # the workers' progress lines reach the driver's terminal
    rows = [json.loads(x) for x in open(run / "metrics.jsonl")]
    assert any(x.get("event") == "resumed" for x in rows)
    (first, second) = claims(tmp_path / "out")
    assert second["took_over"]["pid"] == holder.pid == first["pid"]
    assert table(tmp_path / "out") == table(serial_long)


@pytest.mark.slow
def test_a_killed_compare_takes_its_workers_along_and_the_next_one_cleans_up(tmp_path, serial_long, warm_home,
                                                                             monkeypatch):
    """SIGKILL the driver of ``compare --workers 2``: its workers get SIGTERM (a checkpoint, then exit) at
    once instead of training on unsupervised; the next compare removes the job folder it left and
    resumes the interrupted run."""
    import tempfile

    from rnnbench.fileio import pid_alive

    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the driver's job folder lands here
    monkeypatch.setattr(tempfile, "tempdir", None)
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "out", rnn=LONG_RNN, experiment={"models": ["rnn"]})
    with open(tmp_path / "driver.err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "rnnbench.cli", "compare", str(cfg), "--workers", "2"],
                                stdout=subprocess.DEVNULL, stderr=err)
    exp = tmp_path / "out" / "t"
    run = wait_for_checkpoint(exp / "runs", proc, pattern="rnn-n300-*/checkpoints/*")
    holders = [lease.holder_of(exp / "runs" / name) for name in lease.claimed(exp)]
    workers = {h.pid for h in holders if h is not None}
    assert workers and proc.pid not in workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(pid_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in workers), "a worker outlived its killed driver"
    left = list((tmp_path / "tmp").glob(f"rnnbench-jobs-{proc.pid}-*"))
    assert left  # what the killed driver could not remove
    assert not Run(run).done and Run(run).checkpoint_step is not None  # stopped mid-run, checkpoint saved
    r = cli("compare", cfg, "--workers", 2)
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in left)
    rows = [json.loads(x) for x in open(run / "metrics.jsonl")]
    assert any(x.get("event") == "resumed" for x in rows)
    assert [row for row in table(tmp_path / "out") if row["size"] == "300"] == table(serial_long)


@pytest.fixture(scope="module")
def serial_long(tmp_path_factory, warm_home):
    tmp = tmp_path_factory.mktemp("serial-long")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNBENCH_DATA", str(warm_home))
        r = cli("compare", tiny_compare(tmp, "c.yaml", tmp / "out", rnn=LONG_RNN, data={"sizes": [300]},
                                        experiment={"models": ["rnn"]}))
    assert r.exit_code == 0, r.output
    return tmp / "out"


# ------------------------------------------------------------------------------ Ray


@pytest.fixture(scope="module")
def ray_cluster(warm_home):
    """One local Ray instance for the module: 2 CPUs and 2 logical GPUs."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=True)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_compare_and_sweep_give_the_serial_tables_each_task_its_gpu(tmp_path, ray_cluster, serial, warm_home,
                                                                         monkeypatch):
    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    r = cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--executor", "ray")
    assert r.exit_code == 0, r.output
    for name in ("curves.csv", "crossover.csv"):
        assert table(tmp_path / "out", name) == table(serial, name)
    by_model = {}
    for c in claims(tmp_path / "out"):
        by_model.setdefault(c["run"].split("-")[0], []).append(c)
    assert all(c["cuda_visible_devices"] in ("0", "1") for c in by_model["rnn"])  # Ray's assignment, one GPU each
    assert all(c["cuda_visible_devices"] == "" for c in by_model["linear"])
    assert all(c["xla_preallocate"] == "false" for c in claims(tmp_path / "out"))  # the runtime environment
    assert len({c["pid"] for c in claims(tmp_path / "out")}) == 4  # a fresh worker per run
    # each task reserves the CPUs its run uses: by default one
    assert all(c["reserved"]["CPU"] == c["threads"] == 1 for c in claims(tmp_path / "out"))
    assert {row["device"] for row in csv.DictReader(open(tmp_path / "out" / "t" / "curves.csv"))
            if row["model"] == "rnn"} == {"cpu (jax, 1 core)"}
    # a sweep through Ray (two GRUs sharing one GPU each) against the same sweep in this process
    sweep = {"model": "rnn", "size": 100, "grid": {"rnn.hidden_dim": [8, 24]}}
    plot = [{"x": "step", "y": "train_loss"}]
    a = write_config(tmp_path / "a.yaml", rnn=TINY_RNN, data=DATA, sweep=sweep, plot=plot,
                     experiment={"output_dir": str(tmp_path / "sa"), "seeds": [0]})
    b = write_config(tmp_path / "b.yaml", rnn=TINY_RNN, data=DATA, sweep=sweep, plot=plot,
                     experiment={"output_dir": str(tmp_path / "sb"), "seeds": [0]})
    assert cli("sweep", a).exit_code == 0
    r = cli("sweep", b, "--executor", "ray", "--gpus-per-run", 0.5, "--threads", 2)
    assert r.exit_code == 0, r.output
    assert table(tmp_path / "sa", "sweep.csv") == table(tmp_path / "sb", "sweep.csv")
    assert all(c["cuda_visible_devices"] in ("0", "1") for c in claims(tmp_path / "sb"))
    # --threads 2: each task reserves two CPUs (Ray's own record of it, read in the task), its run uses two
    assert all(c["reserved"] == {"CPU": 2.0, "GPU": 0.5} and c["threads"] == 2 for c in claims(tmp_path / "sb"))


@pytest.mark.slow  # starting Ray takes about 10 s here
def test_ray_gpus_per_run_above_any_node(tmp_path, ray_cluster):
    one_line_error(cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--executor", "ray",
                       "--gpus-per-run", 3), "--gpus-per-run 3 is more than any node of the Ray cluster has",
                   "2 GPU(s)")
    one_line_error(cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--executor", "ray",
                       "--threads", 3), "--threads 3 is more than any node of the Ray cluster has", "2 CPU(s)")
    assert ray_cluster.is_initialized()  # the test's instance is left running


@pytest.mark.slow
def test_a_ray_worker_killed_mid_run_is_retried_and_resumes(tmp_path, ray_cluster, serial_long, warm_home,
                                                            monkeypatch):
    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "out", rnn=LONG_RNN, data={"sizes": [300]},
                       experiment={"models": ["rnn"]})
    runs = tmp_path / "out" / "t" / "runs"
    killed = {}

    def killer():
        run = wait_for_checkpoint(runs)
        killed["pid"] = lease.holder_of(run).pid
        killed["run"] = run
        os.kill(killed["pid"], signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    r = cli("compare", cfg, "--executor", "ray")
    t.join()
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in open(killed["run"] / "metrics.jsonl")]
    assert any(x.get("event") == "resumed" for x in rows)
    first, second = claims(tmp_path / "out")
    assert first["pid"] == killed["pid"] and second["took_over"]["pid"] == killed["pid"]
    assert table(tmp_path / "out") == table(serial_long)


def wait_for_training(runs: Path, pattern: str = "rnn-*", deadline_s=300) -> tuple[Path, int]:
    """The first run (of ``pattern``) whose metrics log has a training step, and that step."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        for run in runs.glob(pattern):
            steps = [r["step"] for r in Run(run).metrics() if r.get("event") == "train"]
            if steps:
                return run, steps[-1]
        time.sleep(0.05)
    raise AssertionError("no run started training")


def resumed_at(run: Path) -> int:
    (event,) = [r for r in Run(run).metrics() if r.get("event") == "resumed"]
    return event["step"]


@pytest.mark.slow
def test_ctrl_c_cancels_ray_tasks_after_each_saves_its_checkpoint(tmp_path, ray_cluster, serial_long, warm_home,
                                                                  monkeypatch):
    """Ctrl-C in the driver: each Ray task is cancelled gently (SIGINT in the task: a checkpoint at the
    next step), not killed; the same command resumes the run from there."""
    import _thread

    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "out", rnn=LONG_RNN, data={"sizes": [300]},
                       experiment={"models": ["rnn"]})
    seen = {}

    def interrupt():
        seen["run"], seen["step"] = wait_for_training(tmp_path / "out" / "t" / "runs")
        _thread.interrupt_main()  # Ctrl-C

    t = threading.Thread(target=interrupt)
    t.start()
    r = cli("compare", cfg, "--executor", "ray")
    t.join()
    assert r.exit_code == 130 and "stopping 1 Ray task(s): each saves its checkpoint" in r.output, r.output
    run = seen["run"]
    assert not Run(run).done and Run(run).checkpoint_step >= seen["step"]  # saved when cancelled
    assert lease.holder_of(run) is None  # the task let its claim go
    r = cli("compare", cfg, "--executor", "ray")
    assert r.exit_code == 0, r.output
    assert resumed_at(run) >= seen["step"]
    assert table(tmp_path / "out") == table(serial_long)


def test_a_worker_of_another_rnnbench_version_is_an_error_naming_both(tmp_path, monkeypatch):
    cfg = load_config(tiny_compare(tmp_path, "c.yaml", tmp_path / "out"))
    path = run_path(cfg, "linear", 100, 0)
    job = Job(cfg=cfg.to_dict(), model="linear", size=100, seed=0, force=False, path=str(path), label="linear")
    report = executor.run_job({**job.to_dict(), "version": "0.0.9"}, in_worker=False)
    assert report["wrong_version"] == "0.0.9" and not path.exists()  # the worker refuses: nothing trained

    def old_worker(job, in_worker=True, progress=False):  # a node with rnnbench 0.0.9: it refuses the run
        return {"host": "node7", "version": "0.0.9", "wrong_version": job["version"], "run": None}

    monkeypatch.setattr(executor, "run_job", old_worker)
    here = re.escape(rnnbench.__version__)
    with pytest.raises(RnnbenchError, match=rf"rnnbench 0\.0\.9 on node7, {here} on this machine .*install the same"):
        execute([job], ExecutorSpec(), progress=False)
    assert not path.exists()


def test_a_worker_given_fewer_threads_sizes_xla_and_the_linear_grid_to_them():
    """A Ray task's or Slurm job's run uses the CPUs reserved for it, not the node's cores: XLA's CPU
    pool has that many threads, yet they may run on any of the process's cores."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    code = ("import os; from rnnbench.executor import use_threads; from rnnbench.config import usable_cores\n"
            "use_threads(1, 'rnn')\n"
            "import jax.numpy as jnp; (jnp.ones((256, 256)) @ jnp.ones((256, 256))).block_until_ready()\n"
            "tasks = os.listdir('/proc/self/task')\n"
            "pool = sum(open(f'/proc/self/task/{t}/comm').read().strip() == 'tf_XLAEigen' for t in tasks)\n"
            "print(pool, usable_cores(), all(os.sched_getaffinity(int(t)) == os.sched_getaffinity(0) for t in tasks),"
            " len(os.sched_getaffinity(0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == ["1", "1", "True"] and int(out[3]) >= 2


# ------------------------------------------------------------------------------ Slurm (submitit's local executor)


@pytest.mark.slow
def test_a_slurm_run_preempted_mid_training_is_requeued_and_resumes_to_the_same_tables(tmp_path, serial_long,
                                                                                    warm_home, monkeypatch):
    """A compare through submitit (its local executor: the jobs are processes here, as Slurm would start
    them). Mid-training the run's job gets the signal Slurm sends before preemption or the time limit:
    it saves a checkpoint, submitit requeues it, and the requeued job resumes: the tables equal those of
    a compare that was never interrupted."""
    submitit = pytest.importorskip("submitit")
    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    cfg = tiny_compare(tmp_path, "c.yaml", tmp_path / "out", rnn=LONG_RNN, data={"sizes": [300]},
                       experiment={"models": ["rnn"]}, compute={"slurm_cluster": "local"})
    seen = {}

    def preempt():
        seen["run"], seen["step"] = wait_for_training(tmp_path / "out" / "t" / "runs")
        seen["pid"] = lease.holder_of(seen["run"]).pid  # the job's process
        os.kill(seen["pid"], getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}"))

    t = threading.Thread(target=preempt)
    t.start()
    r = cli("compare", cfg, "--executor", "slurm")
    t.join()
    assert r.exit_code == 0, r.output
    assert resumed_at(seen["run"]) >= seen["step"]  # from the checkpoint saved on the signal
    first, second = claims(tmp_path / "out")
    assert first["pid"] == seen["pid"] != second["pid"]  # the requeued job: a new process
    assert first["threads"] == second["threads"] == 1  # a job's CPUs, by default one
    logs = "".join(p.read_text() for p in (tmp_path / "out" / "t" / "slurm").glob("*/*_log.*"))
    assert "Requeued job" in logs and "this job is preempted" in logs
    assert table(tmp_path / "out") == table(serial_long)


@pytest.mark.slow
def test_slurm_job_array_gives_the_serial_tables(tmp_path, warm_home, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("RNNBENCH_DATA", str(warm_home))
    a = tiny_compare(tmp_path, "a.yaml", tmp_path / "a", experiment={"models": ["linear"]})
    b = tiny_compare(tmp_path, "b.yaml", tmp_path / "b", experiment={"models": ["linear"]},
                     compute={"slurm_cluster": "local", "slurm_array_parallelism": 2})
    assert cli("compare", a).exit_code == 0
    r = cli("compare", b, "--executor", "slurm")
    assert r.exit_code == 0, r.output
    assert table(tmp_path / "b") == table(tmp_path / "a")
    jobs = [p for p in (tmp_path / "b" / "t" / "slurm").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2  # a job per run, submitted together


def test_configs_sent_to_other_nodes_carry_absolute_paths_and_the_same_run_hash(tmp_path, monkeypatch):
    from rnnbench.config import from_dict

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"w{i % 7} x,{i % 2}\n" for i in range(50)))
    cfg = load_config(None, ["data.dataset=csv", "data.path=d.csv", "data.text_columns=[text]",
                             "data.label_column=label", "experiment.output_dir=out"])
    sent = executor.portable(cfg.to_dict())
    assert sent["experiment"]["output_dir"] == str(tmp_path / "out")
    assert sent["data"]["path"] == str(tmp_path / "d.csv")
    here = tmp_path / run_path(cfg, "linear", 20, 0)  # the folder the driver expects
    monkeypatch.chdir("/")  # a worker's own folder
    assert run_path(from_dict(sent), "linear", 20, 0) == here


@pytest.mark.parametrize("code, fatal", [(28, True), (30, True), (2, False)])  # ENOSPC, EROFS; ENOENT
def test_a_full_disk_stops_the_command_but_one_runs_missing_file_fails_only_that_run(tmp_path, monkeypatch, code, fatal):
    """A write the machine refuses (no space, read-only) would fail every run: the compare stops with one
    line and exit 1 (finished runs kept, the same command resumes); any other error is one failed run."""
    import rnnbench.experiment

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / "out" / "t" / "runs" / "x" / "result.json"))

    monkeypatch.setattr(rnnbench.experiment, "train_one", refuse)
    r = cli("compare", tiny_compare(tmp_path, "c.yaml", tmp_path / "out"), "--models", "linear")
    if fatal:
        errors = [x for x in r.stderr.splitlines() if x.startswith("Error: ")]  # after the loader's report
        assert r.exit_code == 1 and len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0], r.output
        assert os.strerror(code) in errors[0] and "result.json" in errors[0]
    else:
        assert r.exit_code == 0 and "FileNotFoundError" in r.output, r.output
