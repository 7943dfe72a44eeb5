"""A claim on a run: one process trains it, the others skip it and wait.

Before a run starts, :meth:`rnnbench.runs.Run.begin` takes its lease: a small JSON file created
exclusively (a hard link of a whole temp file, so a reader never sees half of one) holding the holder's
host, pid, start time and heartbeat. A thread refreshes the heartbeat while the run trains; the lease is
released when the run finishes. A second process, on this machine or another one sharing the folder,
finds the lease and gets :class:`Claimed` (who holds it, since when); the executor then skips the run
and waits for it. A lease whose heartbeat is older than its ``timeout`` (the holder died or lost the
folder), or whose holder is a dead process on this host, is taken over. The executor's retry of a run
whose worker died passes the same ``owner`` key and takes the lease over at once.

Where: ``<experiment>/leases/<run folder name>.lease`` for a run inside ``<experiment>/runs/``, else
``.<name>.lease`` beside the run folder. Every claim is also appended to ``leases/log.jsonl`` (run,
host, pid, time, the GPUs the worker saw, the CPU threads it used and what its scheduler reserved for it,
whose lease it took over): who trained what, where.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .config import usable_cores
from .errors import RnnbenchError
from .fileio import append_jsonl, atomic_write_text, pid_alive, why_not_folder

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0  # seconds without a heartbeat after which a lease counts as abandoned
LOG = "log.jsonl"
RESERVED_ENV = "RNNBENCH_RESERVED"  # set in a worker: JSON of what its scheduler reserved for the run
HOST = socket.gethostname()


@dataclass
class Holder:
    """What a lease file holds."""

    host: str
    pid: int
    started: float  # unix time the claim was taken
    heartbeat: float  # unix time of the last refresh
    timeout: float = DEFAULT_TIMEOUT
    token: str = ""  # unique per claim: tells a lease from its successor
    owner: str = ""  # the executor's key of the job: its retry may take the lease over
    cuda_visible_devices: str | None = None
    extra: dict = field(default_factory=dict)
    # what the reader saw, never written: whether the file held a lease at all (else only its mtime proves
    # anything), its mtime (the filesystem's clock), how long this process has seen it unchanged, whether it
    # has seen it change, and the lease timeout the reader is configured with
    proven: bool = True
    mtime: float | None = None
    unchanged_for: float = 0.0
    changed: bool = False
    reader_timeout: float | None = None

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if not self.proven:
            return f"an unreadable lease file (written {ago(now - self.heartbeat)} ago)"
        return (f"{self.host} pid {self.pid} since {time.strftime('%H:%M:%S', time.localtime(self.started))} "
                f"(heartbeat {ago(now - self.heartbeat)} ago)")

    def limit(self, timeout: float | None = None) -> float:
        """Seconds without a heartbeat after which the claim counts as abandoned: the holder's timeout,
        bounded by the reader's (``timeout``, else the one it read the lease with, else the default) but
        never under two of the holder's heartbeats (every 30 s at most); a file that holds no lease proves
        nothing but its mtime, and gets the reader's timeout."""
        mine = timeout if timeout is not None else self.reader_timeout if self.reader_timeout is not None \
            else DEFAULT_TIMEOUT
        if not self.proven:
            return mine
        return min(self.timeout, max(mine, 2 * min(self.timeout / 4, BEAT_MAX)))

    def stale(self, now: float | None = None, timeout: float | None = None) -> bool:
        """Abandoned: its process is gone (seen from its host); or this process has watched the file stay the
        same for :meth:`limit` seconds of its own clock; or, unless it has seen the file change (a heartbeat:
        alive, whatever the clocks say), its last heartbeat is older than that by the clocks. The heartbeat is
        the holder's clock, the file's mtime the filesystem's: the later of the two counts (a holder whose
        clock is behind is not taken for dead), and a heartbeat from the future beyond the limit counts as
        its mtime (a dead holder whose clock is ahead is not taken for alive)."""
        now = time.time() if now is None else now
        limit = self.limit(timeout)
        if self.proven and self.host == HOST and not pid_alive(self.pid):
            return True
        if self.unchanged_for > limit:
            return True
        if self.changed:
            return False
        last = self.heartbeat
        if self.mtime is not None:
            last = self.mtime if last > now + limit else max(last, self.mtime)
        return now - last > limit

    @classmethod
    def from_dict(cls, d: dict) -> Holder | None:
        """The holder a lease file's JSON names, or None where it is not one (wrong types, times that are
        not finite: a damaged or foreign file)."""
        if not isinstance(d, dict):
            return None
        known = {k: d[k] for k in WRITTEN if k in d}
        checks = {"host": lambda v: isinstance(v, str), "pid": lambda v: type(v) is int,
                  "started": _finite, "heartbeat": _finite, "timeout": lambda v: _finite(v) and v > 0,
                  "token": lambda v: isinstance(v, str), "owner": lambda v: isinstance(v, str),
                  "cuda_visible_devices": lambda v: v is None or isinstance(v, str),
                  "extra": lambda v: isinstance(v, dict)}
        if any(k not in known for k in ("host", "pid", "started", "heartbeat")) or \
                not all(checks[k](v) for k, v in known.items()):
            return None
        return cls(**known)


WRITTEN = ("host", "pid", "started", "heartbeat", "timeout", "token", "owner", "cuda_visible_devices", "extra")
BEAT_MAX = 30.0  # the longest a holder waits between two heartbeats


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _record(h: Holder) -> str:
    """The JSON a lease file holds (what the reader saw is not written)."""
    return json.dumps({k: getattr(h, k) for k in WRITTEN})


class Claimed(RnnbenchError):
    """The run is claimed by another live process (``holder``), or was finished by one while this one
    waited for the claim (``finished``)."""

    def __init__(self, run: Path, holder: Holder | None, finished: bool = False):
        self.run, self.holder, self.finished = Path(run), holder, finished
        if finished:
            msg = f"run {self.run.name} was finished by another process meanwhile"
        else:
            msg = (f"run {self.run.name} is claimed by {holder.describe()}; it is being trained there "
                   f"(a claim with no heartbeat for {holder.timeout:.0f} s is taken over)")
        super().__init__(msg)


class LeaseLost(Claimed):
    """Another process took this process's claim over (it held no heartbeat for the timeout: suspended,
    starved, its clock far off) and trains the run now: this one stops without writing to it."""

    def __init__(self, run: Path, holder: Holder | None, mine: Holder | None = None):
        self.run, self.holder, self.finished = Path(run), holder, False
        quiet = f" (no heartbeat from here for {mine.timeout:.0f} s: was this process suspended?)" if mine else ""
        if holder is not None and holder.proven:
            what = f"was taken over by {holder.describe()}{quiet}: that process trains it now"
        else:
            what = f"was taken from this process (its lease file was removed or replaced){quiet}"
        RnnbenchError.__init__(self, f"run {self.run.name} {what}; this one stopped without writing to it")


LEASES = "leases"  # an experiment folder's leases (and their log)
SUFFIX = ".lease"


def leases_dir(experiment: Path) -> Path:
    return Path(experiment) / LEASES


def lease_path(run_path: Path) -> Path:
    run_path = Path(run_path)
    if run_path.parent.name == "runs":
        return leases_dir(run_path.parent.parent) / f"{run_path.name}{SUFFIX}"
    return run_path.parent / f".{run_path.name}{SUFFIX}"


def claimed(experiment: Path) -> list[str]:
    """The names of the runs of an experiment folder that have a lease file (live or not)."""
    folder = leases_dir(experiment)
    return sorted(p.name[: -len(SUFFIX)] for p in folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def log_path(run_path: Path) -> Path:
    return lease_path(run_path).parent / LOG if Path(run_path).parent.name == "runs" else \
        Path(run_path).parent / f".{LOG}"


def read(path: Path, timeout: float | None = None) -> Holder | None:
    """The holder of a lease file, None if there is none (or it vanished while being read). A file that holds
    no lease (garbage, wrong types: a torn write on a filesystem without hard links, damage) proves only its
    mtime: it counts as held until the reader's ``timeout`` has passed since. A folder where the file belongs
    is a one-line error that says so."""
    path = Path(path)
    try:
        data, mtime = path.read_bytes(), path.stat().st_mtime
    except IsADirectoryError:
        raise RnnbenchError(f"{path}: a folder where the lease file of run {path.name[: -len(SUFFIX)]} belongs "
                            "(remove it)") from None
    except OSError:
        return None
    try:
        holder = Holder.from_dict(json.loads(data))
    except (ValueError, RecursionError):
        holder = None
    if holder is None:  # proves nothing but when it was written
        holder = Holder(host="?", pid=-1, started=mtime, heartbeat=mtime, token="?", proven=False)
    holder.mtime, holder.reader_timeout = mtime, timeout
    _watch(path, holder, data)
    return holder


_SEEN: dict[str, tuple[bytes, float, bool]] = {}  # lease file -> (its bytes, since when, seen changing)


def _watch(path: Path, holder: Holder, data: bytes) -> None:
    """Tell ``holder`` how long this process has seen its file unchanged (by its own monotonic clock: no
    other host's clock involved) and whether it saw the same claim's heartbeat change."""
    now, key = time.monotonic(), str(path)
    seen = _SEEN.get(key)
    if seen is not None and seen[0] == data:
        holder.unchanged_for, holder.changed = now - seen[1], seen[2]
        return
    same_claim = seen is not None and holder.proven and _token(seen[0]) == holder.token
    _SEEN[key] = (data, now, same_claim)
    holder.changed = same_claim


def _token(data: bytes) -> str | None:
    try:
        d = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return d.get("token") if isinstance(d, dict) else None


def holder_of(run_path: Path, timeout: float | None = None) -> Holder | None:
    """Who holds this run's lease (None: nobody); ``timeout``: the reader's ``compute.lease_timeout``."""
    return read(lease_path(run_path), timeout)


# ---------------------------------------------------------------------------------------- this process

_HELD: dict[str, Holder] = {}  # lease file -> our claim
_LOST: dict[str, Holder | None] = {}  # lease file -> who took our claim over (None: its file vanished)
_LOCK = threading.Lock()
_THREAD: threading.Thread | None = None
_OWNER = ""  # set by the executor in a worker: the job's key


def set_owner(key: str) -> None:
    """The executor's key of the job this process runs: a retry of it may take its lease over."""
    global _OWNER
    _OWNER = key


def held() -> list[Path]:
    """The run folders whose leases this process holds."""
    with _LOCK:
        return [Path(h.extra["run"]) for h in _HELD.values()]


def claim(run_path: Path, timeout: float = DEFAULT_TIMEOUT, unless=None) -> Holder:
    """Take the lease of the run in ``run_path`` or raise :class:`Claimed`. Re-entrant in one process.
    ``unless``: a check made once the lease is taken (the run was finished by another process meanwhile):
    if it returns true, the lease is given back and ``Claimed(finished=True)`` raised."""
    run_path = Path(run_path)
    path = lease_path(run_path)
    key = str(path)
    with _LOCK:
        if key in _HELD and _is_ours(read(path)):
            return _HELD[key]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder should be: name it
        raise RnnbenchError(f"cannot create run directory {run_path}: {why_not_folder(path.parent)}") from None
    except OSError as e:
        raise RnnbenchError(f"cannot create run directory {run_path} (its lease folder {path.parent}): "
                            f"{e.strerror}") from None
    now = time.time()
    mine = Holder(host=HOST, pid=os.getpid(), started=now, heartbeat=now, timeout=float(timeout),
                  token=uuid.uuid4().hex, owner=_OWNER, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                  extra={"run": str(run_path)})
    took_over = None
    for _ in range(20):
        try:
            created = _create(path, mine)
        except OSError as e:
            raise RnnbenchError(f"cannot write the lease of run {run_path.name} in {path.parent}: {e.strerror}") from None
        if created:
            break
        other = read(path, timeout)
        if other is None:  # released between our attempt and the read
            continue
        if other.proven and other.host == HOST and other.pid == os.getpid():  # ours, from an earlier claim here
            _replace(path, mine)
            break
        if not ((_OWNER and other.owner == _OWNER) or other.stale(timeout=timeout)):
            raise Claimed(run_path, other)
        if _take_over(path, other):
            took_over = other
    else:
        raise RnnbenchError(f"{path}: could not take the lease (other processes keep taking it)")
    with _LOCK:
        _HELD[key] = mine
        _LOST.pop(key, None)
    _start_heartbeat()
    if unless is not None and unless():
        release(run_path)
        raise Claimed(run_path, None, finished=True)
    record = {"event": "claim", "run": run_path.name, "host": HOST, "pid": mine.pid, "time": now,
              "owner": mine.owner, "cuda_visible_devices": mine.cuda_visible_devices,
              "xla_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"), "threads": usable_cores()}
    if os.environ.get(RESERVED_ENV):  # what the scheduler reserved for this run (Ray's resources, Slurm's CPUs)
        try:
            record["reserved"] = json.loads(os.environ[RESERVED_ENV])
        except ValueError:
            pass
    if took_over is not None:
        record["took_over"] = {"host": took_over.host, "pid": took_over.pid, "heartbeat": took_over.heartbeat}
    try:
        append_jsonl(log_path(run_path), record)
    except OSError:
        pass  # the log is for people; the lease is what counts
    return mine


def release(run_path: Path) -> None:
    """Give up this process's lease on the run (nothing happens if it holds none)."""
    path = lease_path(run_path)
    with _LOCK:  # not between a heartbeat's read and its rewrite, which would bring the lease back
        mine = _HELD.pop(str(path), None)
        if mine is None:
            return
        try:
            current = read(path)
        except RnnbenchError:  # a folder where the file was: not ours to remove (and at exit, no traceback)
            return
        if current is not None and current.token == mine.token:
            try:
                path.unlink()
            except OSError:  # gone, or the folder turned read-only: the heartbeat stops, it goes stale
                pass


def check(run_path: Path) -> None:
    """Raise :class:`LeaseLost` if this process claimed the run and another process has taken the claim over
    since (its lease file names another holder, or is gone): before writing to the run."""
    path = lease_path(run_path)
    key = str(path)
    with _LOCK:
        mine, lost = _HELD.get(key), key in _LOST
    if lost:
        raise LeaseLost(Path(run_path), _LOST[key])
    if mine is None:
        return
    current = read(path)
    if current is None or current.token != mine.token:
        with _LOCK:
            if _HELD.get(key) is mine:
                _HELD.pop(key)
            _LOST[key] = current
        raise LeaseLost(Path(run_path), current, mine)


def release_all() -> None:
    for run in held():
        release(run)


atexit.register(release_all)


def _is_ours(h: Holder | None) -> bool:
    return h is not None and h.host == HOST and h.pid == os.getpid()


def _create(path: Path, h: Holder) -> bool:
    """Create the lease file exclusively, whole. False if one exists."""
    data = _record(h)
    tmp = path.with_name(f".{path.name}.{h.token}.tmp")
    tmp.write_text(data)
    try:
        os.link(tmp, path)  # atomic and exclusive, also on NFS
        return True
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: exclusive create, then write
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(data)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _replace(path: Path, h: Holder) -> None:
    atomic_write_text(path, _record(h))


def _take_over(path: Path, seen: Holder) -> bool:
    """Remove an abandoned lease, if it is still the one seen (another process may have taken it over
    and claimed it anew in between). True if it was removed."""
    grave = path.with_name(f".{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return False
    got = read(grave)
    _SEEN.pop(str(grave), None)
    if got is not None and got.token != seen.token:  # a fresh claim, not the abandoned one: put it back
        try:
            os.link(grave, path)
        except OSError:
            pass
        grave.unlink(missing_ok=True)
        return False
    grave.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------------------- heartbeat


def _start_heartbeat() -> None:
    global _THREAD
    with _LOCK:
        if _THREAD is not None and _THREAD.is_alive():
            return
        _THREAD = threading.Thread(target=_beat_forever, name="rnnbench-lease-heartbeat", daemon=True)
        _THREAD.start()


def _beat_forever() -> None:
    while True:
        with _LOCK:
            interval = min([h.timeout / 4 for h in _HELD.values()] or [DEFAULT_TIMEOUT / 4])
        time.sleep(min(interval, BEAT_MAX))
        try:
            beat()
        except Exception:  # noqa: BLE001 - a heartbeat that fails once is missed, not a traceback in a thread
            pass


def beat() -> None:
    """Refresh the heartbeat of every lease this process holds; warn about one taken over meanwhile."""
    with _LOCK:
        for key, mine in list(_HELD.items()):
            path = Path(key)
            try:
                current = read(path)
            except RnnbenchError:  # a folder in its place: taken from us, by whoever put it there
                current = None
            if current is None or current.token != mine.token:
                _HELD.pop(key, None)
                _LOST[key] = current  # the run's next write stops this process (check)
                if current is not None:
                    log.warning(f"rnnbench: warning: the claim on run {Path(mine.extra['run']).name} was taken over "
                                f"by {current.host} pid {current.pid} (no heartbeat from here for {mine.timeout:.0f} s?)")
                continue
            mine.heartbeat = time.time()
            try:
                _replace(path, mine)
            except OSError:
                pass


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
