"""The on-disk cache of compiled XLA programs, shared by every JAX model kind and every process."""

import os

import jax

from ...paths import data_home


def compilation_cache_path() -> str:
    """Where compiled programs are kept: ``$JAX_COMPILATION_CACHE_DIR``, else ``$RNNBENCH_DATA/jax-cache``."""
    if getattr(jax.config, "jax_compilation_cache_dir", None):
        return jax.config.jax_compilation_cache_dir
    return os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(data_home(), "jax-cache")


_UNUSABLE_CACHE: list[str] = []  # the cache folder that could not be made (warned about once)


def enable_compilation_cache() -> None:
    """Reuse compiled programs across processes and runs: ``$RNNBENCH_DATA/jax-cache`` (default
    ``$XDG_CACHE_HOME/rnnbench/jax-cache``, ``~/.cache/rnnbench/jax-cache``). Called where programs are
    first compiled (``train.Steps``), never at import. Idempotent: a cache directory already set (by an
    earlier call, ``jax.config`` or ``$JAX_COMPILATION_CACHE_DIR``) is kept, since JAX opens its cache
    once per process."""
    if getattr(jax.config, "jax_compilation_cache_dir", None) or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    path = compilation_cache_path()
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as e:  # training runs on, compiling each program in every process: said once
        import warnings

        if _UNUSABLE_CACHE:
            return
        _UNUSABLE_CACHE.append(path)
        warnings.warn(f"rnnbench: the compile cache folder {path} cannot be used ({e.strerror or e}); programs "
                      "are compiled afresh in every process (set $JAX_COMPILATION_CACHE_DIR or $RNNBENCH_DATA)",
                      RuntimeWarning, stacklevel=2)
        return
    try:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    except (AttributeError, KeyError, ValueError):  # an option renamed in another jax: run uncached
        pass
