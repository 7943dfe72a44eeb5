"""Where ``compare`` and ``sweep`` run their runs: in this process, in local worker processes, on a Ray
cluster or on a Slurm cluster. One interface for all (:func:`execute`), four backends behind it.

- **serial** (``--executor local``, one worker): each run in this process, one after another.
- **local** (``--workers N``): a fresh process per run, N at once. On a machine with GPUs each run of a
  kind that wants one (``rnn``) gets its own ``CUDA_VISIBLE_DEVICES``: whole GPUs (``--gpus-per-run 2``), a share of one
  (``--gpus-per-run 0.25``: four runs per GPU, with ``XLA_PYTHON_CLIENT_PREALLOCATE=false``), or by
  default one worker per GPU, round-robin. The other runs (``linear``) see no GPU. A worker that dies (killed, out of
  memory) is started again, up to ``compute.retries`` times; the run resumes from its last checkpoint.
  Workers get SIGTERM when the driver dies, even by SIGKILL (a checkpoint, then exit); a later driver
  removes the job folders a killed one left.
- **ray** (``--executor ray``, ``pip install -e '.[ray]'``): each run a Ray task reserving the run's
  threads (``num_cpus``) and ``num_gpus`` (Ray assigns the devices), a fresh worker process per run
  (``max_calls=1``: JAX gives its GPU memory back), a runtime environment carrying ``RNNBENCH_DATA``, the
  compile cache and preallocation off, and Ray's own retries of a task whose worker died. Stopped, it
  cancels its tasks gently: each saves its checkpoint, and is killed only after a grace period.
- **slurm** (``--executor slurm``, ``pip install -e '.[slurm]'``): each run a Slurm job through
  submitit (or one job array), checkpointed and requeued on preemption or at its time limit.

A worker uses the threads its task or job reserved (:func:`use_threads`), and refuses a run from a
driver of another rnnbench version. The run store is the meeting point: every run claims its folder
(:mod:`rnnbench.lease`) before it starts, so a run claimed by another process (another compare, another
machine) is skipped and waited for, and after each run the driver checks that its ``DONE`` is visible
here (if not, the output folder is not shared between the nodes). Workers print a progress line per run
every ``compute.progress_every`` seconds; Ray forwards them to the driver's terminal (a Slurm job's go
to its log).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import lease, models
from .config import THREADS_ENV, ComputeConfig
from .errors import RnnbenchError
from .log import level as log_level
from .runs import RUNS, Run, RunResult

log = logging.getLogger("rnnbench.executor")  # by name: a local worker runs this module as __main__

RAY_HINT = "pip install -e '.[ray]'"
# settings a worker on another node needs from the driver's environment, when they are set here
PASSED_ENV = ("RNNBENCH_DATA", "JAX_COMPILATION_CACHE_DIR", "RNNBENCH_KERNELS", "RNNBENCH_NATIVE", "JAX_PLATFORMS")
VISIBLE_WAIT_S = 10.0  # how long the driver looks for a finished run's DONE (network filesystems lag)
WAIT_POLL_S = 1.0


# ---------------------------------------------------------------------------------------- the settings


@dataclass
class SlurmSettings:
    """``--executor slurm``: where and how long each job runs (``compute.slurm_*``, docs/distributed.md)."""

    partition: str | None = None
    time_min: int = 60
    array_parallelism: int | None = None  # None: a job per run; else one array, this many at once
    options: dict = field(default_factory=dict)  # more sbatch options: name -> value
    setup: list = field(default_factory=list)  # shell lines each job runs first
    cluster: str = "slurm"  # or "local": submitit's local executor


@dataclass
class ExecutorSpec:
    """How to run: ``kind`` local, ray or slurm, ``workers`` at once (None: local 1, ray and slurm as many
    as fit), the CPU threads and GPUs of each run, the Ray cluster's address, the Slurm settings, retries
    of a run whose worker died."""

    kind: str = "local"
    workers: int | None = None
    gpus_per_run: float | None = None
    address: str | None = None
    retries: int = 2
    progress_every: float = 20.0
    threads: int | None = None
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    @classmethod
    def resolve(cls, compute: ComputeConfig, executor: str | None = None, workers: int | None = None,
                gpus_per_run: float | None = None, address: str | None = None, threads: int | None = None,
                partition: str | None = None, time_min: int | None = None, array_parallelism: int | None = None,
                sbatch: tuple[str, ...] = ()) -> ExecutorSpec:
        """The config's ``compute`` settings with the command line's flags over them, checked; errors name
        the flag."""
        for flag, value in (("--workers", workers), ("--threads", threads), ("--time-min", time_min),
                            ("--array-parallelism", array_parallelism)):
            if value is not None and value < 1:
                raise RnnbenchError(f"{flag} must be at least 1, got {value}")
        if gpus_per_run is not None and (gpus_per_run < 0 or not math.isfinite(gpus_per_run)):
            raise RnnbenchError(f"--gpus-per-run must be 0 or more, got {gpus_per_run:g}")
        slurm = SlurmSettings(
            partition=partition if partition is not None else compute.slurm_partition,
            time_min=time_min if time_min is not None else compute.slurm_time_min,
            array_parallelism=array_parallelism if array_parallelism is not None else compute.slurm_array_parallelism,
            options={**compute.slurm_options, **sbatch_options(sbatch)}, setup=list(compute.slurm_setup),
            cluster=compute.slurm_cluster)
        spec = cls(kind=executor or compute.executor, workers=workers if workers is not None else compute.workers,
                   gpus_per_run=gpus_per_run if gpus_per_run is not None else compute.gpus_per_run,
                   address=address if address is not None else compute.address, retries=compute.retries,
                   progress_every=compute.progress_every, threads=threads if threads is not None else compute.threads,
                   slurm=slurm)
        if spec.kind not in ("local", "ray", "slurm"):
            raise RnnbenchError(f"--executor must be local, ray or slurm, got {spec.kind!r}")
        g = spec.gpus_per_run
        if g is not None and g > 1 and g != int(g):
            raise RnnbenchError(f"--gpus-per-run {g:g}: above 1 it must be a whole number of GPUs")
        if g is not None and 0 < g < 1 and spec.kind == "slurm":
            raise RnnbenchError(f"--gpus-per-run {g:g}: Slurm gives a job whole GPUs; use 1 or more (or 0), or "
                                "--executor ray to share a GPU between runs")
        if spec.address and spec.kind != "ray":
            raise RnnbenchError(f"--address {spec.address} is for --executor ray (the executor is {spec.kind})")
        for flag, value in (("--partition", partition), ("--time-min", time_min),
                            ("--array-parallelism", array_parallelism), ("--sbatch", " ".join(sbatch) or None)):
            if value is not None and spec.kind != "slurm":
                raise RnnbenchError(f"{flag} {value} is for --executor slurm (the executor is {spec.kind})")
        return spec

    def run_threads(self) -> int | None:
        """The CPU threads each run gets: ``threads``, else on Ray and Slurm 1 (what a task or job reserves
        by default), locally None (the usable cores)."""
        return self.threads or (1 if self.kind in ("ray", "slurm") else None)


def sbatch_options(items) -> dict:
    """``--sbatch KEY=VALUE`` flags as sbatch options (``account=lab``, ``qos=high``, ``exclusive=``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key or not all(c.isalnum() or c in "-_" for c in key):
            raise RnnbenchError(f"--sbatch {item}: expected KEY=VALUE, an sbatch option without its dashes "
                                "(account=lab, qos=high, mem=16G)")
        out[key.replace("-", "_")] = value if value != "" else True  # exclusive=: a flag without a value
    return out


@dataclass
class Job:
    """One run to make: what ``train_one`` takes, and where the driver expects the run's folder."""

    cfg: dict
    model: str
    size: int | None
    seed: int
    force: bool
    path: str  # the run folder, as the driver computes it
    label: str  # what the run is, for the terminal: "rnn size 200 seed 0" (and a sweep's point)
    point: str = ""  # a sweep's point alone: "rnn.cell=gru" (for its one-line summary)
    trial: dict = field(default_factory=dict)  # a search's trial (rnnbench.search): its study, to report to
    key: str = ""  # unique per job and driver: a retry of the job may take over its own lease
    env: dict = field(default_factory=dict)  # set in the worker before anything loads JAX
    progress_every: float = 20.0  # seconds between a worker's progress lines
    threads: int | None = None  # a worker's CPU threads for the run (the CPUs its task or job reserved)
    version: str = ""  # the driver's rnnbench: a worker with another one refuses the run
    log_level: int = logging.INFO  # what a worker shows on stderr: the driver's level (rnnbench.log)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def jobs_for(planned, force: bool = False) -> list[Job]:
    """A job per planned run (:class:`rnnbench.plan.PlannedRun`, sizes resolved), in their order."""
    return [Job(cfg=p.cfg.to_dict(), model=p.model, size=p.size, seed=p.seed, force=force, path=str(p.run.path),
                label=p.describe(), point=p.point()) for p in planned]


@dataclass
class JobOutcome:
    result: RunResult
    run: Run | None  # None: the run crashed before it had a folder
    skipped: bool  # finished earlier (or by another process): not trained now
    host: str = ""
    attempts: int = 1


# ---------------------------------------------------------------------------------------- in the worker


# A write that fails for these reasons stops the whole command (one line, exit 1; what is finished is
# kept and the same command resumes once there is room): a full disk is not one run's failure.
MACHINE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def run_job(job: dict, in_worker: bool = True, progress: bool = False) -> dict:
    """Make one run, in whatever process the backend chose. Never raises: a crash is a failed run, a run
    claimed by another process is reported as such, and so is a driver of another rnnbench version (the
    run is not started). Returns a JSON-able dict."""
    host = socket.gethostname()
    base = {"host": host, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "version": _version()}
    if job.get("version") and job["version"] != base["version"]:
        return {**base, "wrong_version": job["version"], "run": None}
    if in_worker:
        os.environ.update(job.get("env") or {})  # before JAX loads: the GPUs this worker may use
        from .log import configure

        configure(job.get("log_level", logging.INFO))
        lease.set_owner(job["key"])
        _start_progress(job)
    from .config import from_dict
    from .experiment import train_one

    before = set(lease.held())
    try:
        if in_worker and job.get("threads"):
            use_threads(int(job["threads"]), job["model"])
        cfg = from_dict(job["cfg"])
        out = train_one(cfg, job["model"], size=job["size"], seed=job["seed"], force=job["force"],
                        progress=progress, trial=job.get("trial") or None)
        return {**base, "result": out.result.to_dict(), "run": str(out.run.path), "skipped": out.skipped}
    except lease.Claimed as e:
        holder = None if e.holder is None else {"host": e.holder.host, "pid": e.holder.pid,
                                                 "text": e.holder.describe()}
        return {**base, "claimed": holder, "finished": e.finished, "run": str(e.run)}
    except OSError as e:
        if e.errno in MACHINE_ERRNOS:  # the machine, not this run: every other run would fail the same way
            return {**base, "fatal": {"errno": e.errno, "strerror": e.strerror, "filename": e.filename}, "run": None}
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        failed = RunResult(model=job["model"], size=job["size"], seed=job["seed"], status="failed", reason=reason)
        return {**base, "result": failed.to_dict(), "run": None, "skipped": False}
    except Exception as e:  # noqa: BLE001 - one broken run must not take the others down
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        failed = RunResult(model=job["model"], size=job["size"], seed=job["seed"], status="failed", reason=reason)
        return {**base, "result": failed.to_dict(), "run": None, "skipped": False}
    finally:
        for run in set(lease.held()) - before:
            lease.release(run)


def use_threads(n: int, model: str) -> None:
    """In a worker process, before its run starts: make the run use ``n`` CPU threads, the CPUs its Ray
    task or Slurm job reserved, whatever the node's core count (so runs packed on one node do not
    oversubscribe it, and a run's numbers do not change with the node it lands on).

    :func:`rnnbench.config.usable_cores` then says ``n`` (the linear grid's workers, the run's device
    label). XLA sizes its CPU thread pool from the process's CPU affinity when its client starts, so a
    kind whose model loads JAX has the client started here on ``n`` of the allowed cores; then every
    thread gets all of them back: the pool keeps ``n`` threads and the OS places them."""
    os.environ[THREADS_ENV] = str(n)
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # no affinity API (macOS): the linear grid's workers are still n
        return
    if n >= len(allowed) or "jax" in sys.modules:
        return
    models.get(model).model_class()  # its module: does it load JAX?
    if "jax" not in sys.modules:
        return
    os.sched_setaffinity(0, sorted(allowed)[:n])
    try:
        import jax

        jax.devices()  # the clients start: the CPU's intra-op pool has n threads
    except RuntimeError:
        pass
    finally:
        for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else [os.getpid()]:
            try:
                os.sched_setaffinity(int(tid), allowed)
            except OSError:  # a thread that ended meanwhile
                pass


def _version() -> str:
    from . import __version__

    return __version__


def _start_progress(job: dict) -> None:
    """In a worker: a line on each run this process trains, every ``progress_every`` seconds."""
    every = float(job.get("progress_every") or 20.0)
    host = socket.gethostname()

    def loop():
        from .status import progress_line

        while True:
            time.sleep(every)
            for run in lease.held():
                log.info(f"  {job['label']} on {host}: {progress_line(run)}")

    threading.Thread(target=loop, name="rnnbench-progress", daemon=True).start()


def _worker_main(argv: list[str]) -> int:
    """``python -m rnnbench.executor JOB.json RESULT.json [DRIVER_PID]``: a local worker process. It gets
    SIGTERM when the driver dies (even by SIGKILL): a checkpoint at the next safe point, then exit."""
    job_file, result_file, *driver = argv
    from .termination import EXIT_CODE, Terminated, die_with_parent, install

    install()
    if driver:
        die_with_parent(int(driver[0]), signal.SIGTERM)
    job = json.loads(Path(job_file).read_text())
    try:
        out = run_job(job, in_worker=True)
    except (Terminated, KeyboardInterrupt):
        return EXIT_CODE
    from .fileio import atomic_write_text

    atomic_write_text(result_file, json.dumps(out, default=str))
    return 0


def _ray_task(job: dict) -> dict:
    """A Ray task. Ray's cancel (``ray.cancel`` without force: a SIGINT in the task) is served like
    SIGTERM: the run saves a checkpoint at its next step boundary and the task ends."""
    import ray

    from .termination import Terminated, install

    install(signal.SIGINT)
    reserved = ray.get_runtime_context().get_assigned_resources()
    os.environ[lease.RESERVED_ENV] = json.dumps({k: v for k, v in reserved.items() if k in ("CPU", "GPU")})
    try:
        return run_job(job, in_worker=True)
    except Terminated as e:
        return {"host": socket.gethostname(), "stopped": str(e), "run": None}


# ---------------------------------------------------------------------------------------- GPUs, locally


def local_gpus() -> list[str]:
    """The GPUs of this machine that workers may be given: ``CUDA_VISIBLE_DEVICES`` when it is set, else
    what ``nvidia-smi`` lists (no JAX here: the driver must not take GPU memory)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()] if out.returncode == 0 else []


@dataclass
class Placement:
    env: dict
    gpus: list[str]


class GpuSlots:
    """Which GPUs each local worker sees. ``per_run``: None (one GPU per worker, round-robin; several
    workers per GPU when there are more workers than GPUs), a fraction (that many runs share one GPU), or
    a whole number of GPUs per run. A linear run, or ``per_run`` 0, sees no GPU."""

    def __init__(self, gpus: list[str], per_run: float | None, workers: int):
        self.gpus, self.per_run, self.workers = list(gpus), per_run, workers
        self.count = {g: 0 for g in self.gpus}
        if per_run is not None and per_run > 0 and not self.gpus:
            raise RnnbenchError(f"--gpus-per-run {per_run:g}: this machine has no GPU (nvidia-smi lists none, or "
                                "CUDA_VISIBLE_DEVICES hides them); use --gpus-per-run 0 or --executor ray")
        if per_run is not None and per_run > len(self.gpus):
            raise RnnbenchError(f"--gpus-per-run {per_run:g} is more than this machine's {len(self.gpus)} GPU(s)")
        if per_run is None:
            self.capacity = math.inf
        elif 0 < per_run < 1:
            self.capacity = math.floor(1 / per_run + 1e-9)
        else:
            self.capacity = 1
        self.packing = bool(self.gpus) and ((per_run is None and workers > len(self.gpus))
                                            or (per_run is not None and 0 < per_run < 1))

    def take(self, model: str) -> Placement | None:
        """A placement for a run, or None if no GPU has room for it now."""
        if not self.gpus:
            return Placement({}, [])
        if not models.get(model).gpu or self.per_run == 0:
            return Placement({"CUDA_VISIBLE_DEVICES": ""}, [])
        if self.per_run is not None and self.per_run >= 1:
            free = [g for g in self.gpus if self.count[g] == 0][: int(self.per_run)]
            if len(free) < int(self.per_run):
                return None
            chosen = free
        else:
            room = [g for g in self.gpus if self.count[g] < self.capacity]
            if not room:
                return None
            chosen = [min(room, key=lambda g: (self.count[g], self.gpus.index(g)))]
        for g in chosen:
            self.count[g] += 1
        env = {"CUDA_VISIBLE_DEVICES": ",".join(chosen)}
        if self.packing:
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # several runs on one GPU: each takes what it needs
        return Placement(env, chosen)

    def give_back(self, p: Placement) -> None:
        for g in p.gpus:
            self.count[g] -= 1


# ---------------------------------------------------------------------------------------- backends


class SerialBackend:
    """Each run in this process, one at a time (``--workers 1``, the default)."""

    name = "serial"

    def __init__(self, progress: bool):
        self.progress, self.todo = progress, None

    def free(self, job: Job) -> bool:
        return self.todo is None

    def submit(self, i: int, job: Job) -> None:
        self.todo = (i, job)

    def busy(self) -> int:
        return int(self.todo is not None)

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        if self.todo is None:
            time.sleep(timeout)
            return []
        (i, job), self.todo = self.todo, None
        return [(i, run_job(job.to_dict(), in_worker=False, progress=self.progress))]

    def close(self) -> None:
        pass


class LocalBackend:
    """A fresh process per run (``python -m rnnbench.executor``), ``workers`` at once, each with its GPUs."""

    name = "local"

    def __init__(self, spec: ExecutorSpec, gpus: list[str]):
        self.workers = spec.workers or 1
        self.slots = GpuSlots(gpus, spec.gpus_per_run, self.workers)
        self.procs: dict[int, tuple[subprocess.Popen, Path, Placement]] = {}
        remove_abandoned_job_folders()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{JOBS_PREFIX}{os.getpid()}-"))

    def free(self, job: Job) -> bool:
        if len(self.procs) >= self.workers:
            return False
        p = self.slots.take(job.model)
        if p is None:
            return False
        self.slots.give_back(p)
        return True

    def submit(self, i: int, job: Job) -> None:
        placement = self.slots.take(job.model)
        job_file, result_file = self.tmp / f"{i}-{uuid.uuid4().hex[:8]}.job.json", self.tmp / f"{i}.result.json"
        result_file.unlink(missing_ok=True)
        job_file.write_text(json.dumps({**job.to_dict(), "env": {**job.env, **placement.env}}))
        env = {**os.environ, **placement.env}
        proc = subprocess.Popen([sys.executable, "-m", "rnnbench.executor", str(job_file), str(result_file),
                                 str(os.getpid())], env=env)
        self.procs[i] = (proc, result_file, placement)

    def busy(self) -> int:
        return len(self.procs)

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        deadline = time.monotonic() + timeout
        while True:
            done = [(i, p) for i, p in self.procs.items() if p[0].poll() is not None]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        out = []
        for i, (proc, result_file, placement) in done:
            del self.procs[i]
            self.slots.give_back(placement)
            try:
                out.append((i, json.loads(result_file.read_text())))
            except (OSError, ValueError):
                code = proc.returncode
                why = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else \
                    f"exit code {code}"
                out.append((i, {"died": why, "pid": proc.pid}))
        return out

    def close(self) -> None:
        for proc, _, _ in self.procs.values():
            if proc.poll() is None:
                proc.terminate()  # SIGTERM: the run stops at a safe point and resumes next time
        for proc, _, _ in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


JOBS_PREFIX = "rnnbench-jobs-"  # + the driver's pid: a local driver's job and result files, in the temp folder


def remove_abandoned_job_folders() -> list[Path]:
    """Remove the job folders that local drivers of this machine left behind when they were killed (the
    pid in the name no longer runs). Returns what was removed."""
    from .fileio import pid_alive

    gone = []
    for folder in Path(tempfile.gettempdir()).glob(f"{JOBS_PREFIX}*"):
        pid = folder.name[len(JOBS_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
    return gone


def import_ray():
    try:
        import ray
    except ImportError:
        raise RnnbenchError(f"--executor ray needs Ray, which is not installed: {RAY_HINT}") from None
    return ray


def _check_address(address: str) -> None:
    """Fail fast, in one line, when nothing listens at HOST:PORT (ray.init would retry for a minute)."""
    host, sep, port = address.rpartition(":")
    if address.startswith("ray://"):
        host, sep, port = address[len("ray://"):].rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise RnnbenchError(f"--address {address}: expected auto or HOST:PORT of the Ray head (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise RnnbenchError(f"--address {address}: nothing answers there ({e.strerror or e}); start the head node "
                            "with `ray start --head` and give its HOST:PORT, or --address auto on a node of the "
                            "cluster") from None


_RAY_STARTED = False  # whether this process started (and so must stop) the Ray connection


def connect_ray(spec: ExecutorSpec, device: str = "auto"):
    """Join the cluster ``spec.address`` names (or start a local Ray instance; or use the one this process
    already has) and check ``--gpus-per-run`` against its nodes. Returns (ray, GPUs of each RNN run)."""
    global _RAY_STARTED
    ray = import_ray()
    if not ray.is_initialized():
        if spec.address and spec.address != "auto":
            _check_address(spec.address)
        try:
            if spec.address:
                ray.init(address=spec.address, log_to_driver=True)
            else:
                ray.init(include_dashboard=False, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"--address {spec.address}" if spec.address else "a local Ray instance"
            raise RnnbenchError(f"{where}: Ray did not start or answer ({(str(e).splitlines() or [''])[0]}); "
                                "start the cluster with `ray start --head` (and `ray start --address HEAD:6379` "
                                "on the other nodes)") from None
        _RAY_STARTED = True
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    most = max((n.get("Resources", {}).get("GPU", 0.0) for n in nodes), default=0.0)
    cpus = max((n.get("Resources", {}).get("CPU", 0.0) for n in nodes), default=0.0)
    if spec.run_threads() > cpus:
        disconnect_ray()
        raise RnnbenchError(f"--threads {spec.run_threads()} is more than any node of the Ray cluster has (the most: "
                            f"{cpus:g} CPU(s) on one node, {len(nodes)} node(s)): each run's task reserves its threads")
    g = spec.gpus_per_run
    if g is None:
        g = 1.0 if most >= 1 and device != "cpu" else 0.0
    if g > most:
        disconnect_ray()
        raise RnnbenchError(f"--gpus-per-run {g:g} is more than any node of the Ray cluster has (the most: "
                            f"{most:g} GPU(s) on one node, {len(nodes)} node(s))")
    return ray, g


def disconnect_ray() -> None:
    """Stop the Ray connection if this process started it (a cluster's nodes keep running)."""
    global _RAY_STARTED
    if _RAY_STARTED:
        import ray

        ray.shutdown()
        _RAY_STARTED = False


def remote_env() -> dict:
    """What a worker on another node needs from this process's environment: the data home (absolute),
    :data:`PASSED_ENV` where set, and no GPU memory preallocation (runs may share a GPU)."""
    from .data import data_home

    env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "RNNBENCH_DATA": str(data_home().expanduser().absolute())}
    env.update({k: os.environ[k] for k in PASSED_ENV if os.environ.get(k) and k != "RNNBENCH_DATA"})
    return env


RAY_GRACE_S = 30.0  # after a cancel, how long the driver waits for tasks to save their checkpoints


class RayBackend:
    """Each run a Ray task: ``num_cpus`` its threads, ``num_gpus`` of the run, a fresh worker process,
    Ray's retries. Stopped (Ctrl-C), it cancels its tasks gently: each saves a checkpoint, and only those
    still running after :data:`RAY_GRACE_S` are killed."""

    name = "ray"
    remote = True

    def __init__(self, spec: ExecutorSpec, device: str):
        self.inflight: dict[Any, int] = {}
        self.ray, self.gpus = connect_ray(spec, device)
        self.limit = spec.workers or math.inf
        self.retries = spec.retries
        self.threads = spec.run_threads()
        self.env = remote_env()
        self.fn = self.ray.remote(max_calls=1)(_ray_task)

    def free(self, job: Job) -> bool:
        return len(self.inflight) < self.limit

    def submit(self, i: int, job: Job) -> None:
        gpus = self.gpus if models.get(job.model).gpu else 0.0
        env = dict(job.env)
        if not gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU task: JAX must not take a GPU another task was given
        ref = self.fn.options(num_cpus=self.threads, num_gpus=gpus, max_retries=self.retries, retry_exceptions=False,
                              runtime_env={"env_vars": self.env}).remote({**job.to_dict(), "env": env})
        self.inflight[ref] = i

    def busy(self) -> int:
        return len(self.inflight)

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        if not self.inflight:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=timeout)
        out = []
        for ref in ready:
            i = self.inflight.pop(ref)
            try:
                out.append((i, self.ray.get(ref)))
            except Exception as e:  # noqa: BLE001 - the worker died more often than Ray retries it
                out.append((i, {"died": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}", "final": True}))
        return out

    def close(self) -> None:
        refs = list(self.inflight)
        if refs:
            log.info(f"stopping {len(refs)} Ray task(s): each saves its checkpoint (at most {RAY_GRACE_S:.0f} s)")
            self.cancel(refs, force=False)
            try:
                _, refs = self.ray.wait(refs, num_returns=len(refs), timeout=RAY_GRACE_S)
            except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
                pass
            self.cancel(refs, force=True)
        self.inflight.clear()
        disconnect_ray()

    def cancel(self, refs: list, force: bool) -> None:
        for ref in refs:
            try:
                self.ray.cancel(ref, force=force)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass


# ---------------------------------------------------------------------------------------- Slurm


SLURM_HINT = "pip install -e '.[slurm]'"
SLURM_FOLDER = "slurm"  # in an experiment folder: submitit's job files and logs, a folder per job
SLURM_MAX_TIMEOUTS = 100  # times one job is requeued at its time limit (a long run in short jobs); preemptions: no limit


def import_submitit():
    try:
        import submitit
    except ImportError:
        raise RnnbenchError(f"--executor slurm needs submitit, which is not installed: {SLURM_HINT}") from None
    return submitit


def check_slurm(spec: ExecutorSpec):
    """submitit installed and, for a real cluster, ``sbatch`` here; returns the submitit module."""
    submitit = import_submitit()
    if spec.slurm.cluster == "slurm" and shutil.which("sbatch") is None:
        raise RnnbenchError("--executor slurm: no sbatch on this machine; run the command on a login node of the "
                            "cluster (or set compute.slurm_cluster: local to try it with local processes)")
    return submitit


class SlurmRun:
    """One run as a submitit job, checkpointable by submitit's protocol.

    Slurm warns a job that it is preempted or at its time limit with submitit's signal (SIGUSR2): the
    run saves a checkpoint at its next step boundary (:mod:`rnnbench.termination`), then submitit calls
    :meth:`checkpoint` (the same run again), requeues the job and ends this process; the requeued job
    resumes the run from that checkpoint. A SIGTERM alone (``scancel``, a preemption that cancels) saves
    the checkpoint too and ends the job without a result: Slurm requeues it, or the driver starts the
    run again (``compute.retries``)."""

    def __init__(self, job: dict):
        self.job = job

    def __call__(self) -> dict:
        import submitit

        from .termination import EXIT_CODE, Terminated, install, received

        usr = getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}")
        requeue = signal.getsignal(usr)  # submitit's: self.checkpoint(), requeue the job, exit
        install(usr, signal.SIGINT)
        cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
        if cpus.isdigit():
            os.environ[lease.RESERVED_ENV] = json.dumps({"CPU": int(cpus)})
        try:
            return run_job(self.job, in_worker=True)
        except Terminated:
            if usr in received() and callable(requeue):
                requeue(usr, None)
            sys.exit(EXIT_CODE)  # no result: the job did not end, Slurm or the driver starts it again

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmRun(self.job))


class SlurmBackend:
    """Each run a Slurm job through submitit (``--executor slurm``): ``cpus_per_task`` its threads, whole
    GPUs for a kind that wants them, the partition, time limit and sbatch options of ``compute.slurm_*``;
    a job per run, or one job array per kind of resources with ``slurm_array_parallelism``. The job
    files and logs go to ``<experiment>/slurm/<job id>/``, beside the run store every node shares."""

    name = "slurm"
    remote = True

    def __init__(self, spec: ExecutorSpec, device: str):
        self.submitit = check_slurm(spec)
        self.spec, self.device = spec, device
        self.limit = spec.workers or math.inf
        self.inflight: dict[int, Any] = {}  # job index -> submitit job
        self.pending: list[tuple[int, Job]] = []  # submitted together at the next poll (a job array)
        self.env = remote_env()
        self.local_gpus = local_gpus() if spec.slurm.cluster == "local" and device != "cpu" else []

    def free(self, job: Job) -> bool:
        return len(self.inflight) + len(self.pending) < self.limit

    def gpus(self, job: Job) -> int:
        if not models.get(job.model).gpu or self.device == "cpu":
            return 0
        if self.spec.gpus_per_run is not None:
            return int(self.spec.gpus_per_run)
        return 1 if self.spec.slurm.cluster == "slurm" or self.local_gpus else 0

    def executor(self, job: Job, gpus: int):
        s = self.spec.slurm
        run = Path(job.path)
        folder = (run.parent.parent if run.parent.name == RUNS else run.parent) / SLURM_FOLDER / "%j"
        ex = self.submitit.AutoExecutor(folder=folder, cluster=s.cluster, slurm_max_num_timeout=SLURM_MAX_TIMEOUTS,
                                        local_max_num_timeout=SLURM_MAX_TIMEOUTS)
        params = {"name": "rnnbench", "timeout_min": s.time_min, "cpus_per_task": self.spec.run_threads(),
                  "gpus_per_node": gpus, "nodes": 1, "tasks_per_node": 1}
        if s.cluster == "slurm":
            params.update(slurm_partition=s.partition, slurm_array_parallelism=s.array_parallelism,
                          slurm_additional_parameters=dict(s.options) or None, slurm_setup=list(s.setup) or None)
        ex.update_parameters(**params)
        return ex

    def submit(self, i: int, job: Job) -> None:
        self.pending.append((i, job))
        if self.spec.slurm.array_parallelism is None:
            self.flush()

    def flush(self) -> None:
        """Submit what is pending: one job each, or one array per GPU count."""
        groups: dict[int, list[tuple[int, Job]]] = {}
        for i, job in self.pending:
            groups.setdefault(self.gpus(job), []).append((i, job))
        self.pending = []
        for gpus, batch in groups.items():
            ex = self.executor(batch[0][1], gpus)
            calls = [SlurmRun({**job.to_dict(), "env": {**self.env, **job.env, **({} if gpus else
                                                                           {"CUDA_VISIBLE_DEVICES": ""})}})
                     for _, job in batch]
            try:
                if len(calls) > 1:
                    with ex.batch():
                        jobs = [ex.submit(c) for c in calls]
                else:
                    jobs = [ex.submit(calls[0])]
            except Exception as e:  # noqa: BLE001 - submitit's FailedJobError: sbatch refused (its message)
                raise RnnbenchError(f"--executor slurm: the job was not submitted: {_first_line(e)}") from None
            for (i, _), j in zip(batch, jobs):
                self.inflight[i] = j

    def busy(self) -> int:
        return len(self.inflight) + len(self.pending)

    def poll(self, timeout: float) -> list[tuple[int, dict]]:
        if self.pending:
            self.flush()
        deadline = time.monotonic() + timeout
        while True:
            done = [(i, j) for i, j in self.inflight.items() if j.done()]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
        out = []
        for i, j in done:
            del self.inflight[i]
            try:
                out.append((i, j.result()))
            except Exception as e:  # noqa: BLE001 - the job ended without a result: start the run again
                out.append((i, {"died": f"Slurm job {j.job_id}: {_first_line(e)}"}))
        return out

    def close(self) -> None:
        if self.inflight:
            log.info(f"cancelling {len(self.inflight)} Slurm job(s): each saves its checkpoint on Slurm's SIGTERM")
        for j in self.inflight.values():
            try:
                j.cancel(check=False)
            except Exception:  # noqa: BLE001 - already ended
                pass
        self.inflight.clear()


def _first_line(e: BaseException) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0] if lines else ''}" + (f" ... {lines[-1]}" if len(lines) > 1 else "")


def preflight(spec: ExecutorSpec, device: str = "auto") -> None:
    """The checks that need no data: Ray or submitit installed, the Ray cluster answering at the address
    (Slurm's sbatch here), the GPUs asked for present on a node (on this machine, locally). Each failure
    is one line (exit 2)."""
    if spec.kind == "ray":
        connect_ray(spec, device)  # joined now, before any data is read; the run reuses the connection
        return
    if spec.kind == "slurm":
        check_slurm(spec)
        return
    if spec.gpus_per_run:
        GpuSlots([] if device == "cpu" else local_gpus(), spec.gpus_per_run, spec.workers or 1)


def make_backend(spec: ExecutorSpec, device: str = "auto", progress: bool = True):
    if spec.kind == "ray":
        return RayBackend(spec, device)
    if spec.kind == "slurm":
        return SlurmBackend(spec, device)
    gpus = [] if device == "cpu" else local_gpus()
    if (spec.workers or 1) <= 1:
        if spec.gpus_per_run:
            GpuSlots(gpus, spec.gpus_per_run, 1)  # the same checks: a GPU count this machine has
        return SerialBackend(progress)
    return LocalBackend(spec, gpus)


# ---------------------------------------------------------------------------------------- the driver


def portable(cfg_dict: dict) -> dict:
    """The config as a worker on another node needs it: the output folder and data files as absolute
    paths (a relative one would land in the worker's own folder)."""
    d = json.loads(json.dumps(cfg_dict))
    d["experiment"]["output_dir"] = str(Path(d["experiment"]["output_dir"]).expanduser().absolute())
    def absolute(p: str) -> str:  # a file, folder or glob pattern: the run hash reads the files the same way
        return str(Path(p).expanduser().absolute())

    for key in ("path", "test_path"):
        value = d["data"].get(key)
        if isinstance(value, str) and value:
            d["data"][key] = absolute(value)
        elif isinstance(value, list):
            d["data"][key] = [absolute(v) for v in value]
    return d


def not_shared_message(path: Path, host: str) -> str:
    return (f"run {path.name} finished on {host}, but its DONE is not visible here at {path}: the output folder "
            "is not shared between the nodes. Put experiment.output_dir on a filesystem every node mounts at "
            "the same path (NFS, a cluster filesystem) and run the command again")


def visible(path: Path, wait: float | None = None) -> bool:
    """Whether a finished run's ``DONE`` can be seen here, allowing a network filesystem ``wait`` seconds
    (default :data:`VISIBLE_WAIT_S`)."""
    return Run(path).wait_visible(VISIBLE_WAIT_S if wait is None else wait)


def execute(jobs: list[Job], spec: ExecutorSpec, *, device: str = "auto", progress: bool = True,
            desc: str = "runs") -> list[JobOutcome]:
    """Make every job's run through the backend ``spec`` names; return their outcomes in job order.

    Finished runs are skipped here without starting a worker. A run claimed by another live process is
    put aside and, once everything else is done, waited for (with ``force`` in a job, it is reported as
    claimed instead). A run whose local worker died is started again (``spec.retries``). Where no progress
    bar shows, a line per finished run goes to stderr."""
    driver = _Driver(jobs, spec, make_backend(spec, device, progress), progress, desc)
    try:
        driver.drive()
    finally:
        driver.close()
    return driver.outcomes  # type: ignore[return-value]


class _Driver:
    """:func:`execute`'s state: the queue, the runs waited for, the outcomes, the progress bar."""

    def __init__(self, jobs: list[Job], spec: ExecutorSpec, backend, progress: bool, desc: str):
        from tqdm import tqdm

        self.jobs, self.spec, self.backend, self.progress = jobs, spec, backend, progress
        driver_key = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        for i, job in enumerate(jobs):
            job.key = f"{driver_key}:{i}"
            job.progress_every = spec.progress_every
            job.version, job.threads = _version(), spec.run_threads()
            if spec.threads:  # --threads over compute.threads: the linear grid's workers in this process too
                job.cfg = {**job.cfg, "compute": {**job.cfg["compute"], "threads": spec.threads}}
            job.log_level = log_level()
            if getattr(backend, "remote", False):
                job.cfg = portable(job.cfg)
        n = len(jobs)
        self.outcomes: list[JobOutcome | None] = [None] * n
        self.attempts = [0] * n
        self.queue = deque(range(n))
        self.waiting: dict[int, str] = {}  # job -> who holds it
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.bar = tqdm(total=n, desc=desc, unit="run", disable=None if progress else True, dynamic_ncols=True)
        self.here = socket.gethostname()
        self.last_wait_line = 0.0

    def drive(self) -> None:
        while any(o is None for o in self.outcomes):
            self.start_what_fits()
            for i, res in self.backend.poll(timeout=0.2 if self.waiting or self.backend.busy() else 0.0):
                self.take(i, res)
            if self.waiting and not self.queue and not self.backend.busy():
                self.check_waiting()

    def close(self) -> None:
        self.backend.close()
        self.bar.close()

    def finish(self, i: int, out: JobOutcome) -> None:
        from .experiment import run_summary

        self.outcomes[i] = out
        self.counts["skipped" if out.skipped else "done"] += 1
        self.counts["failed"] += not out.result.ok and out.result.status != "claimed"
        self.bar.set_postfix(**self.counts)
        self.bar.update(1)
        if self.progress and self.bar.disable:  # no terminal: one line per run instead of a bar
            where = f" on {out.host}" if out.host and out.host != self.here and not out.skipped else ""
            text = run_summary(out.result, out.skipped) if out.result.status != "claimed" else \
                f"{self.jobs[i].label}: {out.result.reason}"
            point = self.jobs[i].point
            done = sum(o is not None for o in self.outcomes)
            log.info(f"[{done}/{len(self.jobs)}] {point + ': ' if point else ''}{text}{where}")

    def finished_here(self, i: int) -> JobOutcome | None:
        run = Run(Path(self.jobs[i].path))
        if run.done:
            return JobOutcome(run.result(), run, skipped=True)
        return None

    def note(self, i: int, text: str, level: int = logging.INFO) -> None:
        log.log(level, f"  {self.jobs[i].label}: {text}")

    def start_what_fits(self) -> None:
        """Start what has room, in order; runs finished earlier are skipped without a worker."""
        for i in list(self.queue):
            job = self.jobs[i]
            if not self.backend.free(job):
                continue
            self.queue.remove(i)
            if not job.force:
                out = self.finished_here(i)
                if out is not None:
                    self.finish(i, out)
                    continue
            holder = lease.holder_of(Path(job.path))
            if holder is not None and not holder.stale() and holder.owner != job.key and \
                    not (holder.host == self.here and holder.pid == os.getpid()):
                self.claimed(i, holder.describe())
                continue
            self.attempts[i] += 1
            log.debug(f"{job.label}: starting ({self.backend.name}, attempt {self.attempts[i]}): {job.path}")
            self.backend.submit(i, job)

    def take(self, i: int, res: dict) -> None:
        """What a worker reported on job ``i``: its worker died, the machine failed, the run was claimed
        elsewhere, or its result."""
        job = self.jobs[i]
        if "died" in res:
            if not res.get("final") and self.attempts[i] <= self.spec.retries:
                self.note(i, f"its worker died ({res['died']}); starting it again ({self.attempts[i]}/"
                             f"{self.spec.retries}): it resumes from its last checkpoint")
                self.queue.appendleft(i)
                return
            failed = RunResult(model=job.model, size=job.size, seed=job.seed, status="failed",
                               reason=f"its worker died {self.attempts[i]} time(s): {res['died']}")
            self.finish(i, JobOutcome(failed, None, False, attempts=self.attempts[i]))
            return
        if "fatal" in res:
            f = res["fatal"]
            raise OSError(f["errno"], f["strerror"], f["filename"])
        if "claimed" in res:
            if res.get("finished"):
                out = self.finished_here(i)
                if out is None:
                    raise RnnbenchError(not_shared_message(Path(job.path), res.get("host", "?")))
                self.finish(i, out)
                return
            self.claimed(i, res["claimed"]["text"])
            return
        if res.get("wrong_version") or (res.get("version") and res["version"] != _version()):
            raise RnnbenchError(f"rnnbench {res.get('version')} on {res.get('host', '?')}, {_version()} on this "
                                f"machine ({self.here}): install the same rnnbench on every node (the same checkout, "
                                "pip install -e .) and run the command again")
        if "stopped" in res:  # cancelled (Ctrl-C): its checkpoint is saved; the same command resumes it
            self.finish(i, JobOutcome(RunResult(model=job.model, size=job.size, seed=job.seed, status="failed",
                                                reason=f"stopped: {res['stopped']}"), None, False))
            return
        result = RunResult.from_dict(res["result"])
        run = Run(Path(res["run"])) if res.get("run") else None
        if run is not None and not visible(run.path):
            raise RnnbenchError(not_shared_message(run.path, res.get("host", "?")))
        self.finish(i, JobOutcome(result, run, bool(res.get("skipped")), host=res.get("host", ""),
                                  attempts=self.attempts[i]))

    def check_waiting(self) -> None:
        """Runs claimed elsewhere: taken when their claim goes stale, read when they finish."""
        for i in list(self.waiting):
            out = self.finished_here(i)
            if out is not None:
                del self.waiting[i]
                self.finish(i, out)
                continue
            holder = lease.holder_of(Path(self.jobs[i].path))
            if holder is None or holder.stale():
                del self.waiting[i]
                self.queue.append(i)  # its holder stopped without finishing it: make it here
        if self.waiting and time.monotonic() - self.last_wait_line >= 30:
            self.last_wait_line = time.monotonic()
            log.info(f"waiting for {len(self.waiting)} run(s) claimed by other processes: "
                     + "; ".join(f"{self.jobs[i].label} ({self.waiting[i]})" for i in sorted(self.waiting)))
        if self.waiting:
            time.sleep(WAIT_POLL_S)

    def claimed(self, i: int, who: str) -> None:
        """A run another process holds: wait for it, or (``--force``) say who has it and leave it."""
        job = self.jobs[i]
        if job.force:
            result = RunResult(model=job.model, size=job.size, seed=job.seed, status="claimed",
                               reason=f"not rerun: claimed by {who}")
            self.finish(i, JobOutcome(result, None, False))
            return
        if i not in self.waiting:
            self.note(i, f"claimed by {who}: waiting for it after the other runs")
        self.waiting[i] = who


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
