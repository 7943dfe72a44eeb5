"""The GRU/LSTM/simple-RNN models (flax nnx), their batching and their training loop."""

import os

import jax


def _enable_compilation_cache() -> None:
    """Reuse compiled programs across processes and runs ($JAX_COMPILATION_CACHE_DIR wins)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    base = os.environ.get("RNNBENCH_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "rnnbench")
    try:
        path = os.path.join(base, "jax-cache")
        os.makedirs(path, exist_ok=True)
    except OSError:
        return
    try:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    except (AttributeError, KeyError, ValueError):  # an option renamed in another jax: run uncached
        pass


_enable_compilation_cache()
