"""The GRU's fused CPU step kernels (``gru_cpu.cc``): compiled on first use, called through XLA FFI.

On a CPU, XLA splits a GRU step's elementwise work into about ten small kernels, most of them on one
thread; ``gru_cpu.cc`` does a step's in one pass over its rows, shared by XLA's intra-op threads. It
is compiled once per machine with the system's C++ compiler (``$CXX``, else ``c++`` or ``g++``) into
``$RNNBENCH_KERNELS`` (default ``$XDG_CACHE_HOME/rnnbench/kernels``, ``~/.cache/rnnbench/kernels``),
keyed by the source, jaxlib, the compiler and the CPU, and loaded into the process. Without a compiler, or with ``RNNBENCH_NATIVE=0``,
:func:`available` is false and the GRU runs ``lax.scan`` over XLA's own step (:mod:`.cells`, as on a
GPU): the same formulas, and the kernels' tanh is the approximation XLA uses, so the two agree to
float32 rounding (not bit for bit).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ...paths import cache_root

SOURCE = Path(__file__).with_name("gru_cpu.cc")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC", "-w"]
# XLA custom-call target -> the library's symbol
TARGETS = {"rnnbench_gru_forward_step": "RnnbenchGruForwardStep",
           "rnnbench_gru_backward_step": "RnnbenchGruBackwardStep",
           "rnnbench_uninitialized": "RnnbenchUninitialized"}
_registered: list[str] = []  # XLA keeps a target once registered: register each once per process


def cache_dir() -> Path:
    return Path(os.environ.get("RNNBENCH_KERNELS") or cache_root() / "kernels")


def compiler() -> str | None:
    """The C++ compiler to build with: ``$CXX``, else the first of ``c++``, ``g++``, ``clang++``."""
    return next((c for c in (os.environ.get("CXX"), "c++", "g++", "clang++") if c and shutil.which(c)), None)


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))


def build() -> Path:
    """The compiled library, built first unless a build for this source, jaxlib, compiler and CPU is
    cached. Raises ``RuntimeError`` with the compiler's last message when it cannot be built."""
    import jaxlib

    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set $CXX)")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    version = version.partition("\n")[0]
    key = hashlib.sha256("\n".join([SOURCE.read_text(), jaxlib.__version__, jax.ffi.include_dir(), cxx, version,
                                    *FLAGS, _cpu_id()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"gru_cpu-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # built aside and renamed: never half-written
        tmp_out = Path(tmp) / out.name
        cmd = [cxx, *FLAGS, "-I", jax.ffi.include_dir(), str(SOURCE), "-o", str(tmp_out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"{cxx} could not build {SOURCE.name}: {last}")
        os.replace(tmp_out, out)
    return out


@functools.cache
def available() -> bool:
    """Whether the kernels are built and registered with XLA: on a CPU backend, unless
    ``RNNBENCH_NATIVE=0``. Decided once per process; warns once when the build fails."""
    if os.environ.get("RNNBENCH_NATIVE", "1") == "0" or jax.default_backend() != "cpu":
        return False
    try:
        lib = ctypes.cdll.LoadLibrary(str(build()))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:  # no compiler, no cache dir, ...
        warnings.warn(f"rnnbench: the GRU's fused CPU kernels are not available ({e}); XLA's step runs instead",
                      RuntimeWarning, stacklevel=2)
        return False
    for target, symbol in TARGETS.items():
        if target not in _registered:
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
            _registered.append(target)
    return True


def uninitialized(shapes: list[tuple[int, ...]]) -> list[jax.Array]:
    """Float32 arrays holding whatever memory they get: for buffers that a loop writes row by row
    before anything reads them (no fill pass first, as ``jnp.zeros`` would need)."""
    out = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    return list(jax.ffi.ffi_call("rnnbench_uninitialized", out)())


def _gate(slope: float, hard: bool) -> dict:
    """The kernels' gate attributes: sigmoid(``slope`` x), or Passage's hard sigmoid."""
    return {"slope": np.float32(slope), "hard": np.int32(hard)}


def gru_forward_step(h, gh, xw, bx, bh, mask, t, saved, slope, hard):
    """Forward step ``t`` from state ``h`` ``(B, H)`` and ``gh = h W_h`` ``(B, 3H)``: the new state,
    and ``saved`` (h_prev, z, r, n, ghn; each ``(T, B, H)``) with their row ``t`` written in place.
    ``h`` is updated in place too (each element is read before its new value is written)."""
    out = [jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in (h, *saved)]
    call = jax.ffi.ffi_call("rnnbench_gru_forward_step", out,
                            input_output_aliases={0: 0, **{7 + i: 1 + i for i in range(5)}})
    h_new, *saved = call(h, gh, xw, bx, bh, mask, t, *saved, **_gate(slope, hard))
    return h_new, saved


def gru_backward_step(c, mm, dhs, saved, mask, t, dxg, slope, hard):
    """Backward step ``t``: ``(c', dgh, dxg)``, ``dxg`` ``(T, B, 3H)`` with its row ``t`` written in
    place, ``c`` updated in place (what ``c`` and ``mm`` are: see gru_cpu.cc's header)."""
    b, h = c.shape
    out = [jax.ShapeDtypeStruct((b, h), jnp.float32), jax.ShapeDtypeStruct((b, 3 * h), jnp.float32),
           jax.ShapeDtypeStruct(dxg.shape, jnp.float32)]
    call = jax.ffi.ffi_call("rnnbench_gru_backward_step", out, input_output_aliases={0: 0, 10: 2})
    return call(c, mm, dhs, *saved, mask, t, dxg, **_gate(slope, hard))
