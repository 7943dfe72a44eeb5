"""``rnnbench data download``: fetch a data set from its publisher into ``$RNNBENCH_DATA``.

Resumes a partial download (HTTP Range), shows a progress bar and verifies the sha256: against a
published checksum where we have one we could verify, otherwise against the checksum pinned at the
first complete download (``<file>.sha256`` beside it). A mismatch deletes the file and fails.
``--from FILE`` registers a local copy instead (checked by loading it), without copying it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .datasets import Source, data_home, get_info, load
from .errors import RnnbenchError
from .fileio import atomic_write_json, atomic_write_text

_REGISTRY_FILE = "registered.json"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _registered() -> dict[str, str]:
    f = data_home() / _REGISTRY_FILE
    return json.loads(f.read_text()) if f.exists() else {}


def registered_path(name: str) -> Path | None:
    """A ``--from`` copy, else a downloaded file in the cache, else None."""
    reg = _registered()
    if name in reg and Path(reg[name]).exists():
        return Path(reg[name])
    info = get_info(name)
    if info.source:
        p = data_home() / name / info.source.filename
        if p.exists():
            return p
    return None


def register_local(name: str, path: Path, **load_options):
    """Check that ``path`` loads as data set ``name`` and remember it; returns (path, corpus)."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise RnnbenchError(f"--from: no such file or folder: {path}")
    corpus = load(name, str(path), **load_options)  # raises a clear error on a corrupt file
    reg = _registered()
    reg[name] = str(path)
    atomic_write_json(data_home() / _REGISTRY_FILE, reg)
    return path, corpus


def download(name: str, source: Source | None = None, quiet: bool = False) -> Path:
    info = get_info(name)
    source = source or info.source
    if source is None:
        raise RnnbenchError(
            f"'{name}' has no canonical download URL; get it from {info.origin} and run "
            f"`rnnbench data download {name} --from FILE`")
    dest = data_home() / name / source.filename
    pin = dest.with_name(dest.name + ".sha256")
    expected = source.sha256 or (pin.read_text().strip() if pin.exists() else None)
    if dest.exists():
        _verify(dest, expected, pin)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(source.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            if have and resp.status != 206:  # server ignored the range: start over
                have = 0
            total = resp.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            with open(part, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=source.filename, disable=True if quiet else None
            ) as bar:
                while block := resp.read(1 << 16):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as e:
        raise RnnbenchError(f"download of {source.url} failed ({e}); run the command again to resume") from None
    if source.size is not None and part.stat().st_size != source.size:
        raise RnnbenchError(
            f"{part} has {part.stat().st_size} bytes, expected {source.size}; run again to resume")
    _verify(part, expected, None)
    shutil.move(part, dest)
    if expected is None:  # nothing published: check the archive opens, then pin what we got
        try:
            load(name, str(dest))
        except RnnbenchError:
            dest.unlink()
            raise
        atomic_write_text(pin, sha256_of(dest) + "\n")
    return dest


def _verify(path: Path, expected: str | None, pin: Path | None) -> None:
    if expected is None:
        return
    got = sha256_of(path)
    if got != expected:
        path.unlink()
        raise RnnbenchError(f"checksum mismatch for {path.name}: expected sha256 {expected}, got {got}; file deleted")
