"""The RNN with the same fit / predict_scores / save / load surface as the linear baseline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from ..config import Config, cores_label, from_dict
from ..datasets import Split, Task
from ..fileio import atomic_write_bytes, atomic_write_json
from ..metrics import evaluate
from ..ragged import Ragged
from ..tokenizer import Tokenizer
from .batching import Batcher, bucket_boundaries
from .model import SequenceModel
from .train import Steps, fit, n_outputs, predict


def device_name() -> str:
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"cpu (jax, {cores_label()})"
    return f"{d.platform} ({d.device_kind})"


def _flatten(params) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in nnx.to_flat_state(params):
        value = leaf.get_value() if hasattr(leaf, "get_value") else leaf
        out["/".join(map(str, path))] = np.asarray(value)
    return out


class RNNClassifier:
    """GRU/LSTM/simple RNN for classification or regression (``task`` decides the head and loss)."""

    kind = "rnn"

    def __init__(self, cfg: Config, task: Task, seed: int = 0):
        self.cfg, self.task, self.seed = cfg, task, seed
        self.tokenizer: Tokenizer | None = None
        self.model: SequenceModel | None = None
        self.y_scale = (0.0, 1.0)  # regression targets are standardised for training
        self.chosen_: dict = {}
        self.timings_: dict = {}
        self.info_: dict = {}
        self.device_ = device_name()
        self._steps: Steps | None = None
        self._params = None

    @classmethod
    def from_config(cls, cfg: Config, task: Task, seed: int = 0) -> RNNClassifier:
        return cls(cfg, task, seed)

    def _build(self, vocab_size: int) -> SequenceModel:
        return SequenceModel(vocab_size, n_outputs(self.task), self.cfg.rnn, rngs=nnx.Rngs(self.seed))

    def _sequences(self, texts: list[str]) -> Ragged:
        """Token ids of ``texts``, each cut to the ``data.max_len`` tokens that ``data.keep`` names."""
        return self.tokenizer.transform(texts).truncate(self.cfg.data.max_len, self.cfg.data.keep)

    def _train_batcher(self, texts: list[str], y: np.ndarray) -> Batcher:
        seqs = self._sequences(texts)
        rnn = self.cfg.rnn
        boundaries = bucket_boundaries(seqs.lengths, rnn.buckets, self.cfg.data.max_len, rnn.chunk)
        return Batcher(seqs, y, rnn.batch_size, boundaries, self.cfg.data.max_len)

    def fit(self, train: Split, val: Split, log=None, run_dir: Path | None = None, progress: bool = True):
        t0 = time.perf_counter()
        tk = self.cfg.tokenizer
        self.tokenizer = Tokenizer(tk.min_df, tk.max_features, tk.lowercase, tk.char_level).fit(train.texts)
        y_train = train.y
        if self.task.is_regression:
            self.y_scale = (float(train.y.mean()), float(train.y.std() or 1.0))
            y_train = ((train.y - self.y_scale[0]) / self.y_scale[1]).astype(np.float32)
        train_b = self._train_batcher(train.texts, y_train)
        self.boundaries = train_b.boundaries
        val_seqs = self._sequences(val.texts)
        self.timings_["vectorize"] = time.perf_counter() - t0
        self.model = self._build(self.tokenizer.vocab_size)
        steps, best, state, info = fit(self.model, self.cfg.rnn, self.task, train_b, val_seqs, val.y, self.seed,
                                       run_dir=run_dir, log=log, progress=progress, y_scale=self.y_scale)
        self._steps, self._params = steps, best
        self.info_ = info
        val_scores = self._unscale(predict(steps, best, val_seqs, self.cfg.data.max_len))  # best parameters
        self.validation_ = evaluate(self.task, val.y, val_scores)
        self.chosen_ = {"best_epoch": state.best_epoch, "epochs_run": state.epoch, "steps": state.step,
                        "vocab_size": self.tokenizer.vocab_size, "buckets": info["buckets"],
                        "real_token_fraction": round(info["real_token_fraction"], 4),
                        "compiled_programs": info["compiled_programs"]}
        self.timings_["fit"] = time.perf_counter() - t0
        self.timings_["train_loop"] = info["train_seconds"]
        return self

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        return self._unscale(predict(self._steps, self._params, self._sequences(texts), self.cfg.data.max_len))

    def _unscale(self, scores: np.ndarray) -> np.ndarray:
        """Regression outputs back in target units (training saw standardised targets)."""
        return scores * self.y_scale[1] + self.y_scale[0] if self.task.is_regression else scores

    # ------------------------------------------------------------------ persistence
    def save(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        self.tokenizer.save(run_dir / "tokenizer.json")
        import io

        buf = io.BytesIO()
        np.savez(buf, **_flatten(self._params))
        atomic_write_bytes(run_dir / "params.npz", buf.getvalue())
        atomic_write_json(run_dir / "model.json", {
            "config": self.cfg.to_dict(), "task": {"name": self.task.name, "kind": self.task.kind,
                                                   "n_classes": self.task.n_classes},
            "seed": self.seed, "y_scale": list(self.y_scale), "boundaries": [int(b) for b in self.boundaries],
            "vocab_size": self.tokenizer.vocab_size})

    @classmethod
    def load(cls, run_dir: Path) -> RNNClassifier:
        run_dir = Path(run_dir)
        meta = json.loads((run_dir / "model.json").read_text())
        obj = cls(from_dict(meta["config"]), Task(**meta["task"]), meta["seed"])
        obj.tokenizer = Tokenizer.load(run_dir / "tokenizer.json")
        obj.y_scale = tuple(meta["y_scale"])
        obj.boundaries = np.asarray(meta["boundaries"], np.int64)
        obj.model = obj._build(meta["vocab_size"])
        obj._steps = Steps(obj.model, obj.cfg.rnn, obj.task, obj.seed)
        saved = np.load(run_dir / "params.npz")
        params = obj._steps.params
        flat = _flatten(params)
        missing = set(flat) - set(saved.files)
        if missing:
            raise ValueError(f"{run_dir}/params.npz lacks {sorted(missing)[:3]}")
        leaves = [saved[k] for k in flat]  # same traversal order as _flatten
        obj._params = jax.tree.unflatten(jax.tree.structure(params), leaves)
        return obj
