"""``rnnbench data download``: fetch a data set from its publisher into ``$RNNBENCH_DATA``.

Resumes a partial download (HTTP Range), shows a progress bar and verifies the sha256: against a
published checksum where we have one we could verify, otherwise against the checksum pinned at the
first complete download (``<file>.sha256`` beside it). A mismatch deletes the file and fails.
``--from FILE`` registers a local copy instead (checked by loading it), without copying it; the files of a
data set with pinned checksums (``DatasetInfo.sha256``) are checked against them first, and a mismatch
fails without registering (nor deleting: the copy is the user's).
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import RnnbenchError
from ..fileio import atomic_write_text
from .registry import data_home, get_info, load, remember_copy


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def register_local(name: str, path: Path):
    """Check that ``path`` loads as data set ``name`` and remember it; returns (path, corpus)."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise RnnbenchError(f"--from: no such file or folder: {path}")
    folder = path if path.is_dir() else path.parent
    for filename, expected in get_info(name).sha256.items():
        f = folder / filename
        if f.is_file() and (got := sha256_of(f)) != expected:
            raise RnnbenchError(f"checksum mismatch for {f}: expected sha256 {expected}, got {got}; "
                                f"not the published {name}, nothing registered")
    corpus = load(name, str(path))  # raises a clear error on a corrupt file
    remember_copy(name, path)
    return path, corpus


def download(name: str, quiet: bool = False) -> Path:
    info = get_info(name)
    source = info.source
    if source is None:
        raise RnnbenchError(f"'{name}': {info.how_to_get}")
    dest = data_home() / name / source.filename
    pin = dest.with_name(dest.name + ".sha256")
    expected = source.sha256 or (pin.read_text().strip() if pin.exists() else None)
    if dest.exists():
        _verify(dest, expected)
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
    _verify(part, expected)
    shutil.move(part, dest)
    if expected is None:  # nothing published: check the archive opens, then pin what we got
        try:
            load(name, str(dest))
        except RnnbenchError:
            dest.unlink()
            raise
        atomic_write_text(pin, sha256_of(dest) + "\n")
    return dest


def _verify(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    got = sha256_of(path)
    if got != expected:
        path.unlink()
        raise RnnbenchError(f"checksum mismatch for {path.name}: expected sha256 {expected}, got {got}; file deleted")
