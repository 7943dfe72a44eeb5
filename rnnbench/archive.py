"""Results that outlive the machine: ``rnnbench export results`` packs an experiment's finished runs (no
weights) into one compressed archive; ``rnnbench import`` unpacks one into a run store.

An archive is a ``.tar.gz`` of ``manifest.json`` (its format, the rnnbench version that wrote it, the
experiment's name and config, each run's machine and dates) and, per finished run, the files that make
its numbers: its resolved config, its result, its metrics log (``--max-points`` thins the training
curve's lines) and its test predictions (so intervals are recomputed), and ``IMPORTED``, which tells a
run's weights were left behind. Members are written in a fixed order with fixed times, so exporting the
same runs twice gives the same bytes (an archive kept in git changes only when its runs do).

Importing keeps what is there: a run folder that exists already (the same key is the same run) is not
touched. A damaged, foreign or hostile archive (a path outside the store, a link, members that expand
beyond :data:`MAX_BYTES` or :data:`MAX_RATIO` times the archive's size, told by their headers before they
are expanded) is one error and nothing is imported: everything is unpacked and checked in a folder
beside the store first, a block at a time, then each run is moved in.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

from . import __version__
from .config import check_folder_name
from .errors import RnnbenchError
from .runs import RUNS, runs_of

FORMAT = "rnnbench-results/1"
MANIFEST = "manifest.json"
MAX_BYTES = 2 << 30  # what an archive may expand to, in all
MAX_RATIO = 200  # ... and at most this many times its own size (beyond 64 MB): results compress ~10x, a bomb 1000x
SMALL_BYTES = 64 << 20  # what any archive may expand to, whatever its size
MAX_MEMBERS = 200_000


# ------------------------------------------------------------------------------------ export


def export_results(experiment: Path, out: Path, max_points: int | None = 200) -> dict:
    """Write the archive of ``experiment``'s finished runs to ``out``; returns what it holds."""
    experiment = Path(experiment)
    if not (experiment / RUNS).is_dir():
        raise RnnbenchError(f"{experiment}: not an experiment folder (no runs/ inside)")
    runs = [r for r in runs_of(experiment) if r.done]
    if not runs:
        raise RnnbenchError(f"{experiment}: no finished runs to export")
    members: list[tuple[str, bytes]] = []
    listing = []
    for run in runs:
        files = run.archive_files(max_points)
        members += [(f"{RUNS}/{run.path.name}/{name}", data) for name, data in files.items()]
        r = run.result()
        listing.append({"run": run.path.name, "model": r.model, "size": r.size, "seed": r.seed, "status": r.status,
                        "device": r.device, "finished": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                      time.localtime(run.finished_ns() / 1e9))})
    newest = max(runs, key=lambda r: r.finished_ns())
    manifest = {"format": FORMAT, "rnnbench": __version__, "experiment": experiment.name,
                "exported": time.strftime("%Y-%m-%d"), "runs": listing, "config": newest.settings(),
                "devices": sorted({x["device"] for x in listing if x["device"]}),
                "versions": newest.result().versions}
    members.insert(0, (MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode()))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from .fileio import atomic_write_bytes

    atomic_write_bytes(out, _tar_gz(members))
    return {"path": out, "runs": len(runs), "bytes": out.stat().st_size}


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    """A gzipped tar of ``members`` in the order given, every time stamp and owner fixed: the same members
    give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# ------------------------------------------------------------------------------------ import


def import_results(archive: Path, into: Path) -> dict:
    """Unpack ``archive`` into the run store ``into`` (``<into>/<experiment>/runs/...``): the runs not there
    yet are added, the others kept. Returns the experiment folder and what was added and kept."""
    archive = Path(archive)
    if not archive.is_file():
        raise RnnbenchError(f"{archive}: a folder, not an archive" if archive.is_dir() else
                            f"{archive}: not a regular file (a pipe or a device), not an archive" if archive.exists()
                            else f"no such archive: {archive}")
    into = Path(into).expanduser()
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rnnbench-import-", dir=into) as tmp:
        manifest = _unpack(archive, Path(tmp))
        name = manifest.get("experiment")
        try:
            check_folder_name(name if isinstance(name, str) else "", "experiment")
        except RnnbenchError:
            raise RnnbenchError(f"{archive}: its manifest names no usable experiment ({name!r:.80})") from None
        staged = runs_of(Path(tmp))
        for run in staged:  # every run must read back whole before any is moved in
            try:
                run.result()
            except RnnbenchError as e:
                raise RnnbenchError(f"{archive}: run {run.path.name} is damaged ({e})") from None
            if not run.done:
                raise RnnbenchError(f"{archive}: run {run.path.name} is not a finished run")
        target = into / name / RUNS
        target.mkdir(parents=True, exist_ok=True)
        added, kept = [], []
        for run in staged:
            dest = target / run.path.name
            if dest.exists():
                kept.append(dest.name)
                continue
            run.path.rename(dest)
            added.append(dest.name)
    return {"dir": into / name, "added": added, "kept": kept, "manifest": manifest}


def _unpack(archive: Path, dest: Path) -> dict:
    """Check and extract every member into ``dest`` (as ``runs/<run>/<file>``); the manifest."""
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise RnnbenchError(f"{archive}: not an rnnbench results archive ({type(e).__name__}: {e})") from None
    manifest, total, count = None, 0, 0
    limit = min(MAX_BYTES, max(SMALL_BYTES, MAX_RATIO * archive.stat().st_size))
    with tar:
        try:
            for info in tar:
                count += 1
                if count > MAX_MEMBERS:
                    raise RnnbenchError(f"{archive}: more than {MAX_MEMBERS:,} members: not an rnnbench archive")
                path = _checked_name(archive, info)
                total += info.size
                if total > limit:  # told by the member's header, before its bytes are expanded
                    raise RnnbenchError(f"{archive}: expands beyond {limit >> 20:,} MB (from "
                                        f"{archive.stat().st_size / 1e6:.1f} MB): not a results archive; refused")
                if path == PurePosixPath(MANIFEST):
                    manifest = _manifest(archive, _read_member(archive, tar, info, SMALL_BYTES))
                    continue
                out = dest.joinpath(*path.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                _copy_member(archive, tar, info, out)
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as e:
            if isinstance(e, OSError) and getattr(e, "errno", None):
                raise
            raise RnnbenchError(f"{archive}: damaged archive ({type(e).__name__}: {e})") from None
    if manifest is None:
        raise RnnbenchError(f"{archive}: no {MANIFEST}: not an rnnbench results archive")
    return manifest


def _read_member(archive: Path, tar: tarfile.TarFile, info: tarfile.TarInfo, most: int) -> bytes:
    if info.size > most:
        raise RnnbenchError(f"{archive}: member {info.name} is {info.size:,} bytes: not an rnnbench archive")
    data = tar.extractfile(info).read()
    if len(data) != info.size:
        raise RnnbenchError(f"{archive}: member {info.name} is truncated")
    return data


def _copy_member(archive: Path, tar: tarfile.TarFile, info: tarfile.TarInfo, out: Path) -> None:
    """A member into ``out``, a block at a time (never whole in memory)."""
    src, left = tar.extractfile(info), info.size
    with open(out, "wb") as f:
        while left:
            block = src.read(min(left, 1 << 20))
            if not block:
                raise RnnbenchError(f"{archive}: member {info.name} is truncated")
            f.write(block)
            left -= len(block)


def _checked_name(archive: Path, info: tarfile.TarInfo) -> PurePosixPath:
    """A member's path, if it is a plain file at ``manifest.json`` or ``runs/<run>/<file>``."""
    path = PurePosixPath(info.name)
    if not info.isfile():
        raise RnnbenchError(f"{archive}: member {info.name!r} is not a plain file (links and devices are refused)")
    ok = path == PurePosixPath(MANIFEST) or (
        len(path.parts) >= 3 and path.parts[0] == RUNS and not path.is_absolute()
        and all(p not in ("", ".", "..") and not p.startswith(".") for p in path.parts))
    if not ok:
        raise RnnbenchError(f"{archive}: member {info.name!r} lies outside an experiment's runs: refused")
    return path


def _manifest(archive: Path, data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        raise RnnbenchError(f"{archive}: its {MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RnnbenchError(f"{archive}: not an rnnbench results archive (format "
                            f"{manifest.get('format') if isinstance(manifest, dict) else None!r}, expected {FORMAT})")
    return manifest

