"""A third model kind, written as a user would add one (docs/design/architecture.md): its options, its
declaration, one registration, and a class with the Model surface. Imported before rnnbench.config, it
joins every config, compare, status and table. It is deliberately simple: a nearest-centroid classifier
over hashed word counts (it learns something, cheaply)."""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnbench import models
from rnnbench.options import opt


@dataclass
class CentroidConfig:
    buckets: int = opt(512, min=8, doc="hashed word buckets")


KIND = models.ModelKind(name="centroid", section=CentroidConfig, cls="tests.plugin_kind:Centroid",
                        doc="a nearest-centroid test kind", label="centroid", color="#2ca02c")
models.register(KIND)


class Centroid:
    kind = "centroid"

    def __init__(self, buckets: int, task, seed: int = 0):
        self.buckets, self.task, self.seed = buckets, task, seed

    @classmethod
    def from_config(cls, cfg, task, seed: int = 0):
        return cls(cfg.centroid.buckets, task, seed)

    def _features(self, texts):
        x = np.zeros((len(texts), self.buckets))
        for i, t in enumerate(texts):
            for w in t.lower().split():
                x[i, zlib.crc32(w.encode()) % self.buckets] += 1
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)

    def fit(self, train, val, *, run=None, progress=True, prune=None):
        from rnnbench.metrics import evaluate

        t0 = time.perf_counter()
        x = self._features(train.texts)
        self.centroids_ = np.stack([x[train.y == c].mean(0) for c in range(self.task.n_classes)])
        self.validation_scores_ = self.predict_scores(val.texts)
        self.validation_ = evaluate(self.task, val.y, self.validation_scores_)
        self.chosen_, self.training_ = {}, {}
        self.timings_, self.device_ = {"fit": time.perf_counter() - t0}, "cpu"
        return self

    def predict_scores(self, texts):
        logits = 10 * self._features(texts) @ self.centroids_.T
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def save(self, run_dir: Path) -> None:
        state = {"buckets": self.buckets, "task": [self.task.name, self.task.kind, self.task.n_classes],
                 "centroids": self.centroids_.tolist()}
        (Path(run_dir) / "centroids.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, run_dir: Path):
        from rnnbench.data import Task

        state = json.loads((Path(run_dir) / "centroids.json").read_text())
        obj = cls(state["buckets"], Task(*state["task"]))
        obj.centroids_ = np.asarray(state["centroids"])
        return obj
