"""Where the RNN runs (``compute.device``), and the facts ``rnnbench env`` prints for a bug report.

``auto`` takes the first GPU JAX sees, else the CPU; ``cpu`` keeps a GPU machine's RNN on its CPU;
``gpu`` without a GPU is an error that names the extra to install. The choice, and why, is said once per
process. JAX itself is imported only when a device is chosen: the linear model never loads it.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import os
import platform
import sys
from dataclasses import dataclass

from .config import ComputeConfig, usable_cores
from .errors import RnnbenchError

CUDA_PLUGINS = {"cuda12": "jax-cuda12-plugin", "cuda13": "jax-cuda13-plugin"}
INSTALL_HINT = "install jax's CUDA plugin: pip install -e '.[cuda12]' (or '.[cuda13]'; make install GPU=cuda12)"


@dataclass(frozen=True)
class Choice:
    device: object  # a jax.Device
    reason: str  # one line: which device and why

    @property
    def label(self) -> str:
        """What a run records as its device: ``cpu (jax, 2 cores)``, ``gpu (NVIDIA H100 80GB HBM3)``."""
        if self.device.platform == "cpu":
            n = usable_cores()
            return f"cpu (jax, {n} core{'s' if n != 1 else ''})"
        return f"{self.device.platform} ({self.device.device_kind})"


def installed_cuda_plugins() -> list[str]:
    out = []
    for dist in CUDA_PLUGINS.values():
        try:
            out.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    return out


def why_no_gpu() -> str:
    plugins = installed_cuda_plugins()
    if not plugins:
        return "jaxlib has no CUDA plugin; on a GPU machine " + INSTALL_HINT
    if os.environ.get("JAX_PLATFORMS") and "cuda" not in os.environ["JAX_PLATFORMS"]:
        return f"JAX_PLATFORMS={os.environ['JAX_PLATFORMS']} hides the GPU"
    return f"{plugins[0]} is installed but finds no GPU (check the NVIDIA driver and CUDA_VISIBLE_DEVICES)"


def _gpus() -> list:
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend: no plugin, or it found no device
        return []


def choose(compute: ComputeConfig, dtype: str = "float32") -> Choice:
    """The device ``compute.device`` names, checked against what JAX sees and against ``dtype``."""
    import jax

    gpus = [] if compute.device == "cpu" else _gpus()
    if compute.device == "gpu" and not gpus:
        raise RnnbenchError(f"compute.device is gpu, but JAX sees no GPU: {why_no_gpu()}")
    if gpus:
        return Choice(gpus[0], f"GPU: {gpus[0].device_kind} ({len(gpus)} visible; this run uses the first)")
    if dtype == "bfloat16":
        raise RnnbenchError("rnn.dtype: bfloat16 is for GPUs: on a CPU, XLA has no fast bfloat16 matmul and the GRU's "
                            "CPU kernels are float32 only, so it trains slower than float32; set rnn.dtype: float32")
    reason = "CPU: compute.device is cpu" if compute.device == "cpu" else f"CPU: {why_no_gpu()}"
    return Choice(jax.devices("cpu")[0], reason)


def use(compute: ComputeConfig, dtype: str = "float32") -> Choice:
    """Choose the device, make it JAX's default for what follows, and say once per process which and why."""
    import jax

    choice = choose(compute, dtype)
    jax.config.update("jax_default_device", choice.device)
    _announce(choice.reason)
    return choice


@functools.cache
def _announce(reason: str) -> None:
    print(f"rnnbench: the RNN runs on the {reason}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ rnnbench env


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
    gpus = _gpus()
    out["gpu"] = f"{len(gpus)} visible" if gpus else f"none ({why_no_gpu()})"
    out["cpu_kernels"] = _kernels()
    out["cores"] = f"{usable_cores()} usable of {os.cpu_count()}"
    for var in ("XLA_FLAGS", "JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        if os.environ.get(var):
            out[var] = os.environ[var]
    from .data import data_home

    out["data_home"] = str(data_home())
    from .rnn import compilation_cache_path

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
    from .rnn import native

    if os.environ.get("RNNBENCH_NATIVE", "1") == "0":
        return "off (RNNBENCH_NATIVE=0): XLA's step"
    try:
        return f"built: {native.build()}"
    except Exception as e:  # noqa: BLE001 - any failure means the fallback runs; say why
        return f"not available ({e}): XLA's step runs instead"
