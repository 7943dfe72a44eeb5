"""Where the RNN runs (``compute.device``).

``auto`` takes the first GPU JAX sees, else the CPU; ``cpu`` keeps a GPU machine's RNN on its CPU;
``gpu`` without a GPU is an error that names the extra to install. The choice, and why, is said once per
process. JAX itself is imported only when a device is chosen: the linear model never loads it.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import logging
import os
import shutil
from dataclasses import dataclass

from .config import ComputeConfig, cores_label
from .errors import RnnbenchError

log = logging.getLogger(__name__)

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
            return f"cpu (jax, {cores_label()})"
        return f"{self.device.platform} ({self.device.device_kind})"


def train_programs(setting: str, platform: str) -> str:
    """``compute.train_programs`` resolved: ``auto`` is per-batch on a GPU (one host call per step),
    per-chunk on a CPU (smaller working sets: faster there, docs/design/rnn-trainer.md)."""
    if setting != "auto":
        return setting
    return "per-chunk" if platform == "cpu" else "per-batch"


def installed_cuda_plugins() -> list[str]:
    out = []
    for dist in CUDA_PLUGINS.values():
        try:
            out.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    return out


def machine_has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU at all (its driver's device files, or ``nvidia-smi``)."""
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def why_no_gpu() -> str:
    plugins = installed_cuda_plugins()
    if not plugins:
        if not machine_has_gpu():  # nothing to install for: no advice
            return "this machine has no GPU"
        return "jaxlib has no CUDA plugin; " + INSTALL_HINT
    if os.environ.get("JAX_PLATFORMS") and "cuda" not in os.environ["JAX_PLATFORMS"]:
        return f"JAX_PLATFORMS={os.environ['JAX_PLATFORMS']} hides the GPU"
    return f"{plugins[0]} is installed but finds no GPU (check the NVIDIA driver and CUDA_VISIBLE_DEVICES)"


def visible_gpus() -> list:
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend: no plugin, or it found no device
        return []


def choose(compute: ComputeConfig, dtype: str = "float32") -> Choice:
    """The device ``compute.device`` names, checked against what JAX sees and against ``dtype``."""
    import jax

    gpus = [] if compute.device == "cpu" else visible_gpus()
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
    log.info(f"rnnbench: JAX models run on the {reason}")


def memory_of(device) -> tuple[int, str] | None:
    """How much memory a run on ``device`` (a jax.Device) may use, and what it is: a GPU's own memory, else
    this machine's RAM under its container's limit (cgroup); None where it cannot be told."""
    if getattr(device, "platform", "cpu") != "cpu":
        try:
            limit = (device.memory_stats() or {}).get("bytes_limit")
        except Exception:  # noqa: BLE001 - a backend without memory statistics
            limit = None
        return (int(limit), f"memory on {device.device_kind}") if limit else None
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(limit_file).read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < ram:
            return int(text), "RAM (its container's limit)"
    return ram, "RAM"
