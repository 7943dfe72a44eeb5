"""Small configs and switches shared by the tests."""

from pathlib import Path

import pytest
import yaml

from rnnbench.rnn import cells, native


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
    """Which loops the GRU's hand-written passes run: "native" (the fused CPU kernels), "carried"
    (XLA's step, saved values in carried buffers: the CPU without a compiler) or "scan" (XLA's step,
    ``lax.scan``'s stacked outputs: the GPU)."""
    if loops == "native" and not native.available():
        pytest.skip("the fused CPU kernels could not be built here (no C++ compiler?)")
    monkeypatch.setattr(cells, "fused_kernels", lambda dtype: loops == "native")
    monkeypatch.setattr(cells, "_carried_buffers", lambda: loops == "carried")
