"""Sparse matrices that worker processes read without a copy (POSIX shared memory).

The baseline's grid fits several logistic regressions on the same matrices. scikit-learn's lbfgs holds
the GIL for much of each iteration (scipy's L-BFGS-B update), so threads do not run the fits in
parallel: measured on the full Blog Authorship Corpus, two threads used one core. Processes do, and
``SharedCSR`` keeps them from copying a matrix of several GB each: the parent moves the matrix's three
arrays into shared memory (one array at a time, so the peak grows by one array, not a matrix), keeps
using it, and workers map the same pages.

Segments are registered with multiprocessing's resource tracker, which removes them if the parent is
killed; :meth:`SharedCSR.close` removes them otherwise. When the tracker dies too (the whole process
group killed, as when a session or a container ends), they would stay in memory until the next boot:
so each segment's name carries the pid of the process that made it (``rnnbench-<pid>-<random>``), and
the next :class:`SharedCSR` removes those whose process is gone (:func:`remove_stale_segments`). A pid
alone cannot say so where ``/dev/shm`` is shared between PID namespaces (containers on one host): there
another process's pid names nothing, or someone else. So the owner also holds a shared ``flock`` on each
segment for as long as it lives (the kernel drops it with the process), and a segment still locked is
never removed, nor one made in the last minute (its owner may not have locked it yet).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ...fileio import pid_alive

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: no /dev/shm either, so neither locks nor a sweep
    fcntl = None

_PARTS = ("data", "indices", "indptr")
SHM_DIR = Path("/dev/shm")  # where Linux keeps POSIX shared memory (elsewhere: no sweep)
_NAME = re.compile(r"rnnbench-(\d+)-[0-9a-f]+")
_FRESH_S = 60  # a segment younger than this is never removed: its owner may be about to lock it


def remove_stale_segments() -> int:
    """Removes the segments left by processes that no longer exist; returns the bytes freed."""
    if fcntl is None or not SHM_DIR.is_dir():
        return 0
    freed, owners = 0, set()
    for path in SHM_DIR.iterdir():
        m = _NAME.fullmatch(path.name)
        if m is None or pid_alive(int(m.group(1))):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # removed meanwhile, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its owner lives, in any namespace
            st = os.fstat(fd)
            if time.time() - st.st_mtime < _FRESH_S:  # made (sized) this last minute
                continue
            size = st.st_size
            path.unlink()
        except OSError:  # owned by a live process, removed meanwhile, or not ours to remove
            continue
        finally:
            os.close(fd)
        freed += size
        owners.add(int(m.group(1)))
    if freed:
        log.warning(f"rnnbench: removed {freed / 1e9:.2f} GB of shared memory left by interrupted fits "
                    f"(process {', '.join(map(str, sorted(owners)))})")
    return freed


_LINGERING: list[shared_memory.SharedMemory] = []  # segments closed while arrays still read them


def _close_lingering() -> None:
    """Closes the segments whose arrays have gone since (kept referenced until then: a segment object
    that is garbage-collected closes itself, and would complain)."""
    for shm in list(_LINGERING):
        try:
            shm.close()
        except BufferError:
            continue
        _LINGERING.remove(shm)


def _view(shm: shared_memory.SharedMemory, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """An array over a segment that holds a buffer export on it, so that closing the segment while the
    array lives raises ``BufferError`` instead of unmapping the memory under it (``np.ndarray(...,
    buffer=shm.buf)`` keeps only the mmap object: a close would leave it reading unmapped pages)."""
    return np.frombuffer(shm.buf, dtype, count=int(np.prod(shape))).reshape(shape)


def _hold(name: str) -> int:
    """A descriptor holding a shared lock on segment ``name`` (-1 where segments are not files)."""
    if fcntl is None or not SHM_DIR.is_dir():
        return -1
    fd = os.open(SHM_DIR / name, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


class SharedCSR:
    """Moves a CSR matrix's arrays into shared memory (the matrix object stays valid and now reads them
    there); :attr:`handle` (picklable, small) maps it in another process with :func:`open_shared`."""

    def __init__(self, x: sp.csr_matrix):
        self._segments: list[shared_memory.SharedMemory] = []
        self._locks: list[int] = []  # one shared flock per segment: "its owner lives" (see the module)
        parts = {}
        remove_stale_segments()
        try:
            for name in _PARTS:
                a = getattr(x, name)
                shm = shared_memory.SharedMemory(f"rnnbench-{os.getpid()}-{secrets.token_hex(6)}", create=True,
                                                 size=max(a.nbytes, 1))
                self._segments.append(shm)
                self._locks.append(_hold(shm.name))
                view = _view(shm, a.shape, a.dtype)
                view[...] = a
                setattr(x, name, view)  # the private array is freed here
                parts[name] = (shm.name, a.shape, a.dtype.str)
        except BaseException:
            self.close()
            raise
        self.handle = (x.shape, parts)

    def close(self) -> None:
        """Removes the segments. Their memory goes once nothing maps it: a matrix this process still
        reads (a fit in a thread, on an error path) keeps its pages, readable, until it is gone."""
        _close_lingering()
        try:
            for shm in self._segments:
                try:
                    shm.close()
                except BufferError:  # arrays still read it: closed later (see _close_lingering)
                    _LINGERING.append(shm)
                try:
                    shm.unlink()
                except FileNotFoundError:
                    pass
        finally:
            for fd in self._locks:
                if fd >= 0:
                    os.close(fd)
            self._segments, self._locks = [], []

    def __enter__(self) -> SharedCSR:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def open_shared(handle) -> Iterator[sp.csr_matrix]:
    """The matrix of ``handle`` in this (worker) process, reading the shared pages (no copy), unmapped
    when the block ends: pages the parent has removed stay in memory for as long as any process maps
    them, and the grid moves on from one matrix to the next. (Mapping again costs a page fault per page
    touched: about half a second for a matrix of 2 GB.)"""
    shape, parts = handle
    segments = [shared_memory.SharedMemory(name=parts[name][0]) for name in _PARTS]
    try:
        x = sp.csr_matrix(shape, dtype=np.dtype(parts["data"][2]))
        x.data, x.indices, x.indptr = (_view(shm, parts[name][1], np.dtype(parts[name][2]))
                                       for name, shm in zip(_PARTS, segments))
        yield x
    finally:
        x = None  # the arrays go with it; then the mappings can close
        for shm in segments:
            try:
                shm.close()
            except BufferError:  # a view still held by the caller: unmapped when it goes
                pass
