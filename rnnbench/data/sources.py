"""The files a generic data set (csv, tsv, jsonl, parquet) is read from, and what each file really is.

``data.path`` names a file, a folder (the files in it of the data set's format, or with
``data.label_from_path`` those the expression matches), a glob, or a list of these (:func:`data_files`).
Each file is opened by what its bytes are, never by its name alone (:func:`open_source`): gzip, bz2 and
xz are decompressed; a zip or tar archive gives its single file, or the one ``data.member`` names; a file
that is none of these is read as it is. Parquet in place of text, 7z, RAR, zstd, UTF-16 and other binary
files are errors that say what the file is, so an archive is never read as text.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import os
import re
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import RnnbenchError
from .files import reading

# the suffixes of each format's files, looked for in a folder (after a compression or .zip suffix)
SUFFIXES = {"csv": (".csv",), "tsv": (".tsv", ".tab", ".txt"), "json": (".json",),
            "jsonl": (".jsonl", ".ndjson", ".json"),
            "parquet": (".parquet", ".pq")}
_WRAPPERS = (".gz", ".bz2", ".xz", ".zip")
_GLOB_CHARS = re.compile(r"[*?\[]")

# a compression -> its reader over a file name or a binary file object
_DECOMPRESS = {"gzip": lambda f: gzip.GzipFile(f, "rb") if isinstance(f, (str, Path)) else gzip.GzipFile(fileobj=f),
               "bz2": lambda f: bz2.BZ2File(f, "rb"), "xz": lambda f: lzma.LZMAFile(f, "rb")}
# what a file's first bytes say it is, besides text (bz2: "BZh", a block size digit, the block magic)
_MAGIC = (
    (re.compile(rb"\x1f\x8b"), "gzip"), (re.compile(rb"BZh[1-9]1AY&SY"), "bz2"),
    (re.compile(rb"\xfd7zXZ\x00"), "xz"), (re.compile(rb"PK(\x03\x04|\x05\x06)"), "zip"),
    (re.compile(rb"PAR1"), "parquet"), (re.compile(rb"7z\xbc\xaf\x27\x1c"), "7z"),
    (re.compile(rb"Rar!\x1a\x07"), "rar"), (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),
    (re.compile(rb"\xff\xfe|\xfe\xff"), "utf-16"),
)
_UNSUPPORTED = {
    "7z": "a 7z archive: extract it, or repack it as .zip or .tar.gz",
    "rar": "a RAR archive: extract it, or repack it as .zip or .tar.gz",
    "zstd": "zstd-compressed: decompress it (zstd -d), or recompress it as .gz or .xz",
    "utf-16": "UTF-16 text: save it as UTF-8",
}


def kind_of(head: bytes) -> str:
    """What a file's first bytes say it is: a compression, an archive, parquet, ... or "text"."""
    for pattern, kind in _MAGIC:
        if pattern.match(head):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "text"


# ------------------------------------------------------------------------------ which files


@dataclass(frozen=True)
class DataFile:
    path: Path
    shown: str  # the path as the user wrote it or the glob found it (relative to the folder given): labels
    # from data.label_from_path are read off this, and messages name it


def is_glob(spec: str) -> bool:
    return bool(_GLOB_CHARS.search(spec)) and not Path(spec).expanduser().exists()


def _hidden(parts) -> bool:
    return any(p.startswith((".", "__MACOSX")) for p in parts)


_DOCS = re.compile(r"(readme|licen[cs]e|copying|notice|changelog|citation)([._-]|$)", re.IGNORECASE)  # not data


def _of_format(name: str, fmt: str) -> bool:
    if _DOCS.match(name):
        return False
    name = name.lower()
    for suffix in _WRAPPERS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name.endswith(SUFFIXES[fmt]) or name.endswith(".zip")


def data_files(spec: str | list[str], fmt: str, label_re: re.Pattern | None = None,
               key: str = "data.path") -> tuple[list[DataFile], list[str]]:
    """The files ``spec`` names (a file, folder, glob, or a list of them), in order, each once; and the files
    of a folder that were left out (not of the format, or not matched by ``label_re``)."""
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise RnnbenchError(f"{key}: an empty list names no file")
    found: list[DataFile] = []
    ignored: list[str] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            inside = [f for f in sorted(p.rglob("*")) if f.is_file() and not _hidden(f.relative_to(p).parts)]
            picked = []
            for f in inside:
                rel = f.relative_to(p).as_posix()
                ok = label_re.search(rel) if label_re is not None else _of_format(f.name, fmt)
                (picked if ok else ignored).append(DataFile(f, rel) if ok else rel)
            if not picked:
                what = (f"no file whose path matches data.label_from_path {label_re.pattern!r}" if label_re
                        else f"no {'/'.join(SUFFIXES[fmt])} file")
                listing = ", ".join(f.relative_to(p).as_posix() for f in inside[:8]) or "nothing"
                raise RnnbenchError(f"{key}: {what} in folder {p} (it holds: {listing})")
            found += picked
        elif p.is_file():
            found.append(DataFile(p, str(item)))
        elif p.exists():  # a pipe that may never end, a device: read more than once, or for ever
            raise RnnbenchError(f"{key}: {p} is not a regular file (a pipe or a device): rnnbench reads a data file "
                                "more than once (its checksum, then its rows); save the data to a file")
        elif is_glob(str(item)):
            matches = sorted(m for m in glob.glob(os.path.expanduser(str(item)), recursive=True) if Path(m).is_file())
            if not matches:
                raise RnnbenchError(f"{key}: no file matches {item!r}")
            found += [DataFile(Path(m), m) for m in matches]
        else:
            raise RnnbenchError(f"data path does not exist: {p}")
    seen, unique = set(), []
    for f in found:
        if f.path.resolve() not in seen:
            seen.add(f.path.resolve())
            unique.append(f)
    if label_re is not None:
        for f in unique:
            if not label_re.search(f.shown):
                raise RnnbenchError(f"data.label_from_path: {label_re.pattern!r} does not match {f.shown}: "
                                    f"every file needs its label in its path")
    return unique, ignored


def path_key_files(spec: str | list[str]) -> list[Path] | None:
    """The files a ``data.path`` given as a glob or a list names (for a run's hash; those that exist), or None
    when it is one file or folder (hashed as before)."""
    if isinstance(spec, str) and not is_glob(spec):
        return None
    files = []
    for item in spec if isinstance(spec, list) else [spec]:
        p = Path(item).expanduser()
        if p.exists():
            files.append(p)
        elif is_glob(str(item)):
            files += [Path(m) for m in sorted(glob.glob(os.path.expanduser(str(item)), recursive=True))
                      if Path(m).is_file()]
    return files


# ------------------------------------------------------------------------------ opening one file


def _peek(raw: BinaryIO, n: int = 8192) -> tuple[BinaryIO, bytes]:
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    head = buffered.peek(n)[:n]
    return buffered, head


def _pick(names: list[str], member: str | None, where: str) -> str:
    """The archive member to read: the one ``member`` names (its path, or a name unique in the archive), else
    the only file."""
    files = [n for n in names if not _hidden(PurePosixPath(n).parts)]
    if member:
        if member in names:
            return member
        by_name = [n for n in files if PurePosixPath(n).name == member]
        if len(by_name) == 1:
            return by_name[0]
        raise RnnbenchError(f"data.member: no {member!r} in {where} (it holds: {', '.join(files[:10]) or 'nothing'})")
    if len(files) == 1:
        return files[0]
    if not files:
        raise RnnbenchError(f"{where}: the archive holds no file")
    listing = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
    raise RnnbenchError(f"{where} holds {len(files)} files ({listing}): name the one to read with data.member")


@contextmanager
def open_source(f: DataFile, member: str | None = None, fmt: str = "csv") -> Iterator[tuple[BinaryIO, str]]:
    """The bytes of the data in ``f``, decompressed and taken out of an archive as its first bytes say, and
    the name to show for it (``reviews.zip:reviews.csv``). Read errors within the ``with`` are one-line
    RnnbenchErrors naming the file."""
    path = f.path
    with ExitStack() as stack:
        stack.enter_context(reading(path))
        with open(path, "rb") as fh:
            head = fh.read(512)
        kind = kind_of(head)
        shown = f.shown
        if kind in _UNSUPPORTED:
            raise RnnbenchError(f"{shown} is {_UNSUPPORTED[kind]}")
        if kind == "zip":
            raw, shown = _zip_member(stack, path, shown, member)
        elif _is_tar(path, kind):
            raw, shown = _tar_member(stack, path, shown, member)
        else:
            if member is not None:
                raise RnnbenchError(f"data.member: {shown} is not a zip or tar archive")
            raw = stack.enter_context(open(path, "rb"))
            if kind in _DECOMPRESS:
                raw = stack.enter_context(_DECOMPRESS[kind](raw))
        raw, head = _peek(raw)
        if not head:
            raise RnnbenchError(f"cannot read {shown}: empty file")
        inner = kind_of(head)
        if inner in _DECOMPRESS:  # a compressed file inside an archive
            raw, head = _peek(stack.enter_context(_DECOMPRESS[inner](raw)))
            if not head:
                raise RnnbenchError(f"cannot read {shown}: empty file")
            inner = kind_of(head)
        if fmt == "parquet":
            if inner != "parquet":
                raise RnnbenchError(f"{shown} is not a Parquet file (it starts {head[:16]!r})")
        elif inner == "parquet":
            raise RnnbenchError(f"{shown} is a Parquet file: set data.dataset: parquet")
        elif inner in ("zip", "tar", "gzip", "bz2", "xz"):
            raise RnnbenchError(f"{shown} is an archive inside an archive ({inner}): extract the outer one")
        elif inner in _UNSUPPORTED:
            raise RnnbenchError(f"{shown} is {_UNSUPPORTED[inner]}")
        elif b"\x00" in head:
            raise RnnbenchError(f"{shown} is not text: it holds NUL bytes (a binary file, or text in UTF-16 or "
                                f"UTF-32: save it as UTF-8)")
        yield raw, shown


def _is_tar(path: Path, kind: str) -> bool:
    if kind == "tar":
        return True
    if kind not in _DECOMPRESS:
        return False
    try:  # a compressed file: a tarball when its first 512 decompressed bytes are a tar header
        with _DECOMPRESS[kind](path) as z:
            return kind_of(z.read(512)) == "tar"
    except (OSError, EOFError, lzma.LZMAError):
        return False


def _zip_member(stack: ExitStack, path: Path, shown: str, member: str | None) -> tuple[BinaryIO, str]:
    try:
        zf = stack.enter_context(zipfile.ZipFile(path))
    except zipfile.BadZipFile as e:
        raise RnnbenchError(f"corrupt or truncated archive {shown}: {e}") from None
    infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    name = _pick(list(infos), member, shown)
    info = infos[name]
    if info.flag_bits & 0x1:
        raise RnnbenchError(f"{shown}:{name} is encrypted: extract it with its password first")
    try:
        raw = stack.enter_context(zf.open(info))
    except NotImplementedError as e:  # deflate64, lzma in zip, ...
        raise RnnbenchError(f"{shown}:{name}: {e}: repack it with deflate (zip -r) or as .tar.gz") from None
    return raw, f"{shown}:{name}"


def _tar_member(stack: ExitStack, path: Path, shown: str, member: str | None) -> tuple[BinaryIO, str]:
    try:
        tar = stack.enter_context(tarfile.open(path, "r:*"))
        infos = {m.name: m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as e:
        raise RnnbenchError(f"corrupt or truncated archive {shown}: {e}") from None
    name = _pick(list(infos), member, shown)
    return stack.enter_context(tar.extractfile(infos[name])), f"{shown}:{name}"
