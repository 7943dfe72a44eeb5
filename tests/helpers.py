"""Small configs and switches shared by the tests."""

from pathlib import Path

import pytest
import yaml

from rnnbench.models.rnn import cells, native


def write_config(path: Path, **sections) -> Path:
    base = {
        "experiment": {"name": "t", "output_dir": str(path.parent / "runs"), "seeds": [0]},
        "data": {"dataset": "synthetic", "synthetic": {"train_size": 1200, "test_size": 400}},
        "linear": {"min_df": [1, 2], "C": [1.0, 10.0]},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            base.setdefault(name, {}).update(values)
        else:
            base[name] = values
    path.write_text(yaml.safe_dump(base))
    return path


def use_loops(monkeypatch, loops: str) -> None:
    """Which of its two loop paths the GRU's hand-written passes run: "native" (the fused CPU kernels)
    or "scan" (``lax.scan`` over XLA's step: the GPU, bfloat16, and the CPU without the kernels)."""
    if loops not in ("native", "scan"):
        raise ValueError(f"loops must be 'native' or 'scan', not {loops!r}")
    if loops == "native" and not native.available():
        pytest.skip("the fused CPU kernels could not be built here (no C++ compiler?)")
    monkeypatch.setattr(cells, "fused_kernels", lambda dtype: loops == "native")
