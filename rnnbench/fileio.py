"""Atomic file writes: a reader (or a killed process) never sees a half-written file.

A write goes to a temp file beside its target, named ``.<name>.<host>-<pid>.<random>.tmp``, which is
renamed over the target once whole. A process killed mid-write (SIGKILL, power loss) leaves its temp file
behind; the next write of the same target removes such leftovers of processes of this host that are no
longer running, so a rerun after a kill leaves no orphans. A write that fails (a full disk: ``ENOSPC``)
removes its temp file and raises ``OSError``; the target keeps its previous content.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files 0600


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs: another user's counts as running, an unknown
    pid (0 or less) too; a zombie (killed, not yet reaped by its parent) does not: it holds nothing."""
    if pid <= 0 or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Temp files in ``folder`` (of target ``name``, else of any) left by writers of this host that are no
    longer running: a killed write's leftovers."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m and (name is None or m["name"] == name) and m["host"] == _HOST and not pid_alive(int(m["pid"])):
            out.append(Path(entry.path))
    return out


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None) -> int:
    """Remove :func:`stale_temps`; how many were removed."""
    n = 0
    for p in stale_temps(folder, name):
        try:
            p.unlink()
            n += 1
        except OSError:
            pass
    return n


def why_not_folder(path: str | os.PathLike) -> str:
    """Why ``path`` is no folder to read or create, in words that name the cause: it does not exist, it is a
    file, or a file stands where one of its parents should be."""
    path = Path(path)
    for p in [path, *path.parents]:
        if p.exists() or p.is_symlink():
            if p.is_dir():
                return f"no such directory: {path}"
            what = "a file" if p.is_file() else "not a file nor a folder (a device? a broken link?)"
            return f"{p} is {what}, not a folder" + (f" (the path {path} goes through it)" if p != path else "")
    return f"no such directory: {path}"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    path = Path(path)
    if path.is_dir():  # say it of the target, not of the temp file the replace would fail on
        raise IsADirectoryError(errno.EISDIR, "Is a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp")
    try:
        try:
            _write_all(fd, data, path)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_all(fd: int, data: bytes, path: Path) -> None:
    """Every byte written to the target ``path`` goes through here (the fault battery fails it on purpose:
    ``scripts/faults.py``)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:  # name the file: "No space left on device: <path>"
        if e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line. A torn last line (a kill or a full disk mid-write) is skipped by
    :func:`read_jsonl`, and the next append starts on a line of its own, so it does not take the record
    after it down with it."""
    line = (json.dumps(record, default=_json_default) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, _FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        _write_all(fd, line, Path(path))
    finally:
        os.close(fd)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    rows = []
    if not Path(path).exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill: ignore it
                continue
    return rows


def tail_jsonl(path: str | os.PathLike, nbytes: int = 1 << 16) -> list[dict]:
    """The last lines of a JSONL file (about ``nbytes`` of it), parsed; torn lines skipped."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            data = f.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > nbytes:
        lines = lines[1:]  # the first is probably cut
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
