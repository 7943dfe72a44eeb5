"""Where rnnbench keeps what it can make again: downloaded and registered data, compiled programs, the
GRU's CPU kernels. One root, ``$XDG_CACHE_HOME/rnnbench`` (``~/.cache/rnnbench`` without it);
``$RNNBENCH_DATA`` (data and compiled programs) and ``$RNNBENCH_KERNELS`` (kernels) win over it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/rnnbench``, else ``~/.cache/rnnbench``; a relative ``$XDG_CACHE_HOME`` is ignored,
    as the XDG Base Directory specification says."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "rnnbench"


def data_home() -> Path:
    """Downloaded and registered data sets, file digests and the compile cache: ``$RNNBENCH_DATA``, else
    :func:`cache_root`."""
    return Path(os.environ["RNNBENCH_DATA"]) if os.environ.get("RNNBENCH_DATA") else cache_root()
