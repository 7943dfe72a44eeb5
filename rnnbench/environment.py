"""What ``rnnbench env`` prints, the first thing to paste into a bug report: versions, devices, the GRU's
CPU kernels, how training steps are compiled, cores, the data home and the compile cache."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform

from .config import usable_cores
from .devices import CUDA_PLUGINS, train_programs, visible_gpus, why_no_gpu


def environment() -> dict:
    """Versions, devices, kernels, cores and folders: what ``rnnbench env`` prints."""
    from . import __version__

    out: dict = {"python": platform.python_version(), "platform": platform.platform(), "rnnbench": __version__}
    for pkg in ("jax", "jaxlib", *CUDA_PLUGINS.values(), "flax", "optax", "orbax-checkpoint", "numpy",
                "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    import jax

    out["backend"] = jax.default_backend()
    out["devices"] = [_device_line(d) for d in jax.devices()]
    gpus = visible_gpus()
    out["gpu"] = f"{len(gpus)} visible" if gpus else f"none ({why_no_gpu()})"
    out["cpu_kernels"] = _kernels()
    backend = jax.default_backend()
    out["train_programs"] = f"{train_programs('auto', backend)} (compute.train_programs auto, on the {backend})"
    out["cores"] = f"{usable_cores()} usable of {os.cpu_count()}"
    for var in ("XLA_FLAGS", "JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        if os.environ.get(var):
            out[var] = os.environ[var]
    from .data import data_home

    out["data_home"] = str(data_home())
    from .models.jaxtrain.compile_cache import compilation_cache_path

    out["compile_cache"] = compilation_cache_path()
    return out


def _device_line(d) -> str:
    line = f"{d.platform}:{d.id} {d.device_kind}"
    try:
        stats = d.memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend reports memory
        stats = {}
    if stats.get("bytes_limit"):
        line += f", {stats['bytes_limit'] / 2**30:.1f} GiB"
    return line


def _kernels() -> str:
    from .models.rnn import native

    if os.environ.get("RNNBENCH_NATIVE", "1") == "0":
        return "off (RNNBENCH_NATIVE=0): XLA's step"
    try:
        return f"built: {native.build()}"
    except Exception as e:  # noqa: BLE001 - any failure means the fallback runs; say why
        return f"not available ({e}): XLA's step runs instead"
