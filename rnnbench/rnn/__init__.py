"""The GRU/LSTM/simple-RNN models (flax nnx), their batching and their training loop."""

import os

import jax


def compilation_cache_path() -> str:
    """Where compiled programs are kept: ``$JAX_COMPILATION_CACHE_DIR``, else ``$RNNBENCH_DATA/jax-cache``."""
    if getattr(jax.config, "jax_compilation_cache_dir", None):
        return jax.config.jax_compilation_cache_dir
    base = os.environ.get("RNNBENCH_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "rnnbench")
    return os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(base, "jax-cache")


def enable_compilation_cache() -> None:
    """Reuse compiled programs across processes and runs: ``$RNNBENCH_DATA/jax-cache`` (default
    ``~/.cache/rnnbench/jax-cache``). Called where programs are first compiled (``train.Steps``), never
    at import. Idempotent: a cache directory already set (by an earlier call, ``jax.config`` or
    ``$JAX_COMPILATION_CACHE_DIR``) is kept, since JAX opens its cache once per process."""
    if getattr(jax.config, "jax_compilation_cache_dir", None) or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    path = compilation_cache_path()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return
    try:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    except (AttributeError, KeyError, ValueError):  # an option renamed in another jax: run uncached
        pass
