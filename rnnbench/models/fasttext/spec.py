"""The ``fasttext`` model kind as the registry and the config know it: its options and its declaration.
The model itself is :class:`rnnbench.models.fasttext.model.FastText` (JAX, loaded on use)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...options import opt
from ..registry import ModelKind


@dataclass
class FastTextConfig:
    embed_dim: int = opt(32, min=1, doc="embedding size of words and n-grams (the text's vector)")
    ngrams: int = opt(2, min=1, max=5, doc="word n-grams up to this length are embedded beside the words (1: "
                                             "words only, a bag of words; 2: + hashed bigrams, Joulin et al.'s)")
    buckets: int = opt(100_000, min=1, doc="hash buckets of the n-grams (rows of the table beside the vocabulary); "
                                            "a training step costs the same whatever their number")
    dropout: float = opt(0.0, min=0.0, max=0.95, doc="dropout on the text's mean vector, before the linear layer")
    optimizer: Literal["sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam"] = opt(
        "adam", doc="optax optimizer; the table's rows are updated only when a batch has them (lazily, as "
                    "fastText's sparse SGD; adagrad and sgd are the dense update)")
    learning_rate: float = opt(0.05, min=0.0, doc="learning rate (injected: a sweep over it does not recompile)")
    lr_decay: float = opt(1.0, min=0.0, max=1.0, doc="the learning rate is multiplied by this after each epoch")
    ema: float = opt(0.0, min=0.0, max=0.9999,
                      doc="> 0: validate, keep and test a moving average of the weights with this decay")
    momentum: float = opt(0.9, min=0.0, max=1.0, doc="momentum / nag: the momentum coefficient")
    clip_norm: float | None = opt(None, min=0.0, doc="global-norm gradient clipping; null disables")
    batch_size: int = opt(64, min=1, doc="texts per training batch")
    epochs: int = opt(10, min=1, doc="at most this many passes over the training subset")
    patience: int = opt(2, min=1, doc="early stopping: validations without improvement before stopping")
    eval_every: int = opt(0, min=0, doc="steps between validations; 0: once per epoch")
    length_buckets: int = opt(8, min=1, doc="length buckets of training batches (one compiled step each)")
    checkpoint_every_s: float | None = opt(
        900.0, min=0.0, doc="besides each epoch's checkpoint, save the whole training state mid-epoch once this "
                            "many seconds have passed since the last; 0: after every step; null: epoch ends only. "
                            "Never changes a result (not hashed)")


KIND = ModelKind(
    name="fasttext", section=FastTextConfig, cls="rnnbench.models.fasttext.model:FastText",
    doc="the fastText-style bag of word and hashed n-gram embeddings and its training",
    reads=("data", "tokenizer"), sequence=True, unhashed=("checkpoint_every_s",), gpu=True,
    label="fastText (bag of n-grams)", color="#ff7f0e", epochs_option="epochs")
