"""Small configs shared by the tests."""

from pathlib import Path

import yaml


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
