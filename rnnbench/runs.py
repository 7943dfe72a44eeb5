"""Content-addressed run directories.

A run lives in ``<output_dir>/<experiment>/runs/<model>-n<size>-s<seed>-<hash>`` where the hash is
taken over the fully resolved settings that determine the result (data, model, tokenizer, size,
seed), so the same settings always map to the same directory. Inside:

``config.yaml`` (resolved), ``metrics.jsonl`` (streamed), ``result.json``, the saved model and
tokenizer, ``checkpoints/`` (RNN), and ``DONE``, written last. Every file is written atomically, so a
run killed at any moment has no ``DONE`` and is redone (an RNN resumes from its last checkpoint).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .config import Config, config_hash
from .errors import RnnbenchError
from .fileio import append_jsonl, atomic_write_json, atomic_write_text

DONE = "DONE"
RNN_ONLY_DATA_KEYS = ("max_len", "keep")
# Options added after runs existed, with the value that reproduces what runs did before them. At that
# value an option stays out of the hash, so adding an option does not orphan every stored run (they would
# all be redone); set to anything else, it is hashed. Keyed on the neutral value, not the default, so a
# later change of default cannot alias runs with different settings. Add each new option here.
NEUTRAL_OPTIONS = {"rnn": {"input_dropout": 0.0, "lr_decay": 1.0, "ema": 0.0}}


def run_spec(cfg: Config, model: str, size: int, seed: int) -> dict:
    """What determines a run's result: the key of its directory."""
    data = cfg.to_dict()["data"]
    data.pop("sizes")
    for key in ("path", "test_path"):  # the same file by any spelling of its path is the same data
        if data[key]:
            data[key] = str(Path(data[key]).expanduser().resolve())
    spec = {"model": model, "size": size, "seed": seed, "data": data}
    if model == "linear":
        for key in RNN_ONLY_DATA_KEYS:  # the baseline reads every text whole
            data.pop(key)
        spec["linear"] = cfg.to_dict()["linear"]
    else:
        spec["rnn"] = cfg.to_dict()["rnn"]
        spec["tokenizer"] = cfg.to_dict()["tokenizer"]
    for section, neutral in NEUTRAL_OPTIONS.items():
        if section in spec:
            spec[section] = {k: v for k, v in spec[section].items() if k not in neutral or v != neutral[k]}
    return spec


class Run:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, cfg: Config, model: str, size: int, seed: int) -> Run:
        h = config_hash(run_spec(cfg, model, size, seed), n=10)
        return cls(Path(cfg.experiment.output_dir) / cfg.experiment.name / "runs" / f"{model}-n{size}-s{seed}-{h}")

    # ------------------------------------------------------------------ state
    @property
    def done(self) -> bool:
        return (self.path / DONE).exists()

    def result(self) -> dict:
        import json

        f = self.path / "result.json"
        if not f.exists():
            raise RnnbenchError(f"{self.path}: no result.json (not a finished run)")
        return json.loads(f.read_text())

    def begin(self, cfg: Config, force: bool = False) -> None:
        """Prepare the directory for a fresh (or resumed) run. Checkpoints survive unless ``force``."""
        if force and self.path.exists():
            trash = self.path.with_name(f".{self.path.name}.trash-{time.time_ns()}")
            self.path.rename(trash)  # atomic: the run directory is never half-deleted
            shutil.rmtree(trash, ignore_errors=True)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RnnbenchError(f"cannot create run directory {self.path}: {e.strerror}") from None
        for name in ("metrics.jsonl", "result.json"):
            (self.path / name).unlink(missing_ok=True)
        for stale in self.path.glob(".*.tmp"):  # temp files of a write that was killed
            stale.unlink(missing_ok=True)
        atomic_write_text(self.path / "config.yaml", cfg.to_yaml())

    def log(self, record: dict) -> None:
        append_jsonl(self.path / "metrics.jsonl", {"time": time.time(), **record})

    def finish(self, result: dict) -> None:
        atomic_write_json(self.path / "result.json", result)
        atomic_write_text(self.path / DONE, time.strftime("%Y-%m-%dT%H:%M:%S\n"))

    def require_done(self) -> dict:
        if not self.path.is_dir():
            raise RnnbenchError(f"no such run directory: {self.path}")
        if not self.done:
            raise RnnbenchError(f"run {self.path} is not finished (no DONE marker)")
        return self.result()
