"""Where ``compare`` and ``sweep`` run their runs: in this process, in local worker processes, or on a Ray
cluster. One interface for both commands (:func:`execute`), three backends behind it.

- **serial** (``--executor local``, one worker): each run in this process, one after another.
- **local** (``--workers N``): a fresh process per run, N at once. On a machine with GPUs each run of a
  kind that wants one (``rnn``) gets its own ``CUDA_VISIBLE_DEVICES``: whole GPUs (``--gpus-per-run 2``), a share of one
  (``--gpus-per-run 0.25``: four runs per GPU, with ``XLA_PYTHON_CLIENT_PREALLOCATE=false``), or by
  default one worker per GPU, round-robin. The other runs (``linear``) see no GPU. A worker that dies (killed, out of
  memory) is started again, up to ``compute.retries`` times; the run resumes from its last checkpoint.
- **ray** (``--executor ray``, ``pip install -e '.[ray]'``): each run a Ray task with ``num_gpus`` set
  (Ray assigns the devices), a fresh worker process per run (``max_calls=1``: JAX gives its GPU memory
  back), a runtime environment carrying ``RNNBENCH_DATA``, the compile cache and preallocation off, and
  Ray's own retries of a task whose worker died.

The run store is the meeting point: every run claims its folder (:mod:`rnnbench.lease`) before it
starts, so a run claimed by another process (another compare, another machine) is skipped and waited
for, and after each run the driver checks that its ``DONE`` is visible here (if not, the output folder
is not shared between the nodes). Workers print a progress line per run every ``compute.progress_every``
seconds; Ray forwards them to the driver's terminal.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
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
from .config import ComputeConfig
from .errors import RnnbenchError
from .log import level as log_level
from .runs import Run, RunResult

log = logging.getLogger("rnnbench.executor")  # by name: a local worker runs this module as __main__

RAY_HINT = "pip install -e '.[ray]'"
# settings a worker on another node needs from the driver's environment, when they are set here
PASSED_ENV = ("RNNBENCH_DATA", "JAX_COMPILATION_CACHE_DIR", "RNNBENCH_KERNELS", "RNNBENCH_NATIVE", "JAX_PLATFORMS")
VISIBLE_WAIT_S = 10.0  # how long the driver looks for a finished run's DONE (network filesystems lag)
WAIT_POLL_S = 1.0


# ---------------------------------------------------------------------------------------- the settings


@dataclass
class ExecutorSpec:
    """How to run: ``kind`` local or ray, ``workers`` at once (None: local 1, ray as many as fit), the GPUs
    of each RNN run, the Ray cluster's address, retries of a run whose worker died."""

    kind: str = "local"
    workers: int | None = None
    gpus_per_run: float | None = None
    address: str | None = None
    retries: int = 2
    progress_every: float = 20.0

    @classmethod
    def resolve(cls, compute: ComputeConfig, executor: str | None = None, workers: int | None = None,
                gpus_per_run: float | None = None, address: str | None = None) -> ExecutorSpec:
        """The config's ``compute`` settings with the command line's flags over them, checked; errors name
        the flag."""
        if workers is not None and workers < 1:
            raise RnnbenchError(f"--workers must be at least 1, got {workers}")
        if gpus_per_run is not None and (gpus_per_run < 0 or not math.isfinite(gpus_per_run)):
            raise RnnbenchError(f"--gpus-per-run must be 0 or more, got {gpus_per_run:g}")
        spec = cls(kind=executor or compute.executor, workers=workers if workers is not None else compute.workers,
                   gpus_per_run=gpus_per_run if gpus_per_run is not None else compute.gpus_per_run,
                   address=address if address is not None else compute.address, retries=compute.retries,
                   progress_every=compute.progress_every)
        if spec.kind not in ("local", "ray"):
            raise RnnbenchError(f"--executor must be local or ray, got {spec.kind!r}")
        g = spec.gpus_per_run
        if g is not None and g > 1 and g != int(g):
            raise RnnbenchError(f"--gpus-per-run {g:g}: above 1 it must be a whole number of GPUs")
        if spec.address and spec.kind != "ray":
            raise RnnbenchError(f"--address {spec.address} is for --executor ray (the executor is {spec.kind})")
        return spec


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
    key: str = ""  # unique per job and driver: a retry of the job may take over its own lease
    env: dict = field(default_factory=dict)  # set in the worker before anything loads JAX
    progress_every: float = 20.0  # seconds between a worker's progress lines
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
    claimed by another process is reported as such. Returns a JSON-able dict."""
    if in_worker:
        os.environ.update(job.get("env") or {})  # before JAX loads: the GPUs this worker may use
        from .log import configure

        configure(job.get("log_level", logging.INFO))
        lease.set_owner(job["key"])
        _start_progress(job)
    from .config import from_dict
    from .experiment import train_one

    before = set(lease.held())
    host = socket.gethostname()
    base = {"host": host, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "version": _version()}
    try:
        cfg = from_dict(job["cfg"])
        out = train_one(cfg, job["model"], size=job["size"], seed=job["seed"], force=job["force"],
                        progress=progress)
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
    """``python -m rnnbench.executor JOB.json RESULT.json``: a local worker process."""
    job_file, result_file = argv
    try:  # SIGTERM (the driver stopping): a checkpoint at the next safe point, then exit
        from .termination import EXIT_CODE, Terminated, install
    except ImportError:
        EXIT_CODE, Terminated, install = 143, KeyboardInterrupt, lambda: None
    install()
    job = json.loads(Path(job_file).read_text())
    try:
        out = run_job(job, in_worker=True)
    except (Terminated, KeyboardInterrupt):
        return EXIT_CODE
    from .fileio import atomic_write_text

    atomic_write_text(result_file, json.dumps(out, default=str))
    return 0


def _ray_task(job: dict) -> dict:
    return run_job(job, in_worker=True)


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
        self.tmp = Path(tempfile.mkdtemp(prefix="rnnbench-jobs-"))

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
        proc = subprocess.Popen([sys.executable, "-m", "rnnbench.executor", str(job_file), str(result_file)], env=env)
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
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


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


class RayBackend:
    """Each run a Ray task: ``num_gpus`` of the run, a fresh worker process, Ray's retries."""

    name = "ray"

    def __init__(self, spec: ExecutorSpec, device: str):
        self.inflight: dict[Any, int] = {}
        self.ray, self.gpus = connect_ray(spec, device)
        self.limit = spec.workers or math.inf
        self.retries = spec.retries
        self.env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
        from .data import data_home

        self.env["RNNBENCH_DATA"] = str(data_home().expanduser().absolute())
        self.env.update({k: os.environ[k] for k in PASSED_ENV if os.environ.get(k) and k != "RNNBENCH_DATA"})
        self.fn = self.ray.remote(max_calls=1)(_ray_task)

    def free(self, job: Job) -> bool:
        return len(self.inflight) < self.limit

    def submit(self, i: int, job: Job) -> None:
        gpus = self.gpus if models.get(job.model).gpu else 0.0
        env = dict(job.env)
        if not gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU task: JAX must not take a GPU another task was given
        ref = self.fn.options(num_cpus=1, num_gpus=gpus, max_retries=self.retries, retry_exceptions=False,
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
        for ref in list(self.inflight):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        self.inflight.clear()
        disconnect_ray()


def preflight(spec: ExecutorSpec, device: str = "auto") -> None:
    """The checks that need no data: Ray installed, the cluster answering at the address, the GPUs asked
    for present on a node (on this machine, locally). Each failure is one line (exit 2)."""
    if spec.kind == "ray":
        connect_ray(spec, device)  # joined now, before any data is read; the run reuses the connection
        return
    if spec.gpus_per_run:
        GpuSlots([] if device == "cpu" else local_gpus(), spec.gpus_per_run, spec.workers or 1)


def make_backend(spec: ExecutorSpec, device: str = "auto", progress: bool = True):
    if spec.kind == "ray":
        return RayBackend(spec, device)
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
            job.log_level = log_level()
            if backend.name == "ray":
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
        if res.get("version") and res["version"] != _version():
            self.note(i, f"warning: rnnbench {res['version']} on {res['host']}, {_version()} here", logging.WARNING)
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
