import os
from pathlib import Path

# The suite checks CPU guarantees (a seed repeats bit for bit, a killed run resumes to the same metrics;
# on a GPU the embedding gradient's scatter-add uses atomics), so it runs on the CPU of a GPU box too, in
# this process and in the workers and commands it starts. JAX_PLATFORMS=cuda runs it on the GPU, where
# the tests of those guarantees fail.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RNNBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

# On a GPU, float32 matmuls default to TF32, whose rounding (about 1e-3 relative) is coarser than the
# tolerances of the tests that compare two computations of one thing; a CPU computes them in full
# float32 either way.
jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real data sets (../shared/data or $RNNBENCH_SHARED_DATA); tests needing them skip without."""
    if not SHARED.is_dir():
        pytest.skip(f"real data sets not found at {SHARED} (set RNNBENCH_SHARED_DATA to run these tests)")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_DATA", str(tmp_path / "data-home"))


@pytest.fixture
def stderr_log():
    """rnnbench's log messages on stderr, as the command line shows them (``rnnbench.log.configure``),
    for tests that call the library and read what the terminal would show."""
    import logging

    from rnnbench.log import LOGGER, configure

    logger = logging.getLogger(LOGGER)
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    configure()
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate
