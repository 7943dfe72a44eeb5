import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RNNBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real data sets (../shared/data or $RNNBENCH_SHARED_DATA); tests needing them skip without."""
    if not SHARED.is_dir():
        pytest.skip(f"real data sets not found at {SHARED} (set RNNBENCH_SHARED_DATA to run these tests)")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_DATA", str(tmp_path / "data-home"))
