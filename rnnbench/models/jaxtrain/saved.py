"""A trained JAX token model on disk, the same for every kind that reads token sequences (``rnn``,
``fasttext``, ``transformer``): ``tokenizer.json``, ``params.npz`` (the parameter pytree by path) and
``model.json`` (the config, task, seed, target scaling, length buckets and vocabulary size its parameters
are rebuilt from). Each kind builds its own network; this module writes and reads the files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from ... import devices
from ...config import ComputeConfig, from_dict
from ...data import Task, Tokenizer
from ...fileio import atomic_write_bytes, atomic_write_json


def flatten_params(params) -> dict[str, np.ndarray]:
    """``path -> array`` of a parameter pytree (an ``nnx.State``), for ``params.npz``."""
    out = {}
    for path, leaf in nnx.to_flat_state(params):
        value = leaf.get_value() if hasattr(leaf, "get_value") else leaf
        out["/".join(map(str, path))] = np.asarray(value)
    return out


def unscale(model, scores: np.ndarray) -> np.ndarray:
    """Regression outputs back in target units (training saw standardised targets)."""
    return scores * model.y_scale_[1] + model.y_scale_[0] if model.task.is_regression else scores


def save(model, run_dir: Path) -> None:
    """Write a fitted token model's three files into ``run_dir``."""
    run_dir = Path(run_dir)
    model.tokenizer_.save(run_dir / "tokenizer.json")
    buf = io.BytesIO()
    np.savez(buf, **flatten_params(model.params_))
    atomic_write_bytes(run_dir / "params.npz", buf.getvalue())
    atomic_write_json(run_dir / "model.json", {
        "config": model.cfg.to_dict(), "task": {"name": model.task.name, "kind": model.task.kind,
                                                "n_classes": model.task.n_classes},
        "seed": model.seed, "y_scale": list(model.y_scale_), "boundaries": [int(b) for b in model.boundaries_],
        "vocab_size": model.tokenizer_.vocab_size})


def load(cls, run_dir: Path):
    """A model of class ``cls`` as saved in ``run_dir``, all but its network: ``(model, vocabulary size)``;
    the caller builds the network and restores its parameters with :func:`restore`."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "model.json").read_text())
    obj = cls(from_dict(meta["config"]), Task(**meta["task"]), meta["seed"])
    devices.use(ComputeConfig())  # predicting: the GPU when there is one, else the CPU (any dtype)
    obj.tokenizer_ = Tokenizer.load(run_dir / "tokenizer.json")
    obj.y_scale_ = tuple(meta["y_scale"])
    obj.boundaries_ = np.asarray(meta["boundaries"], np.int64)
    return obj, meta["vocab_size"]


def restore(run_dir: Path, params, convert=np.asarray):
    """``params`` (a freshly built pytree of the right shapes) with the values of ``run_dir``/params.npz."""
    saved = np.load(Path(run_dir) / "params.npz")
    flat = flatten_params(params)
    missing = set(flat) - set(saved.files)
    if missing:
        raise ValueError(f"{run_dir}/params.npz lacks {sorted(missing)[:3]}")
    leaves = [convert(saved[k]) for k in flat]  # the traversal order of flatten_params
    return jax.tree.unflatten(jax.tree.structure(params), leaves)
