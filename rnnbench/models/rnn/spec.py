"""The ``rnn`` model kind as the registry and the config know it: its options and its declaration. The
model itself is :class:`rnnbench.models.rnn.model_api.RNNClassifier` (JAX, loaded on use)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...options import opt
from ..registry import ModelKind


@dataclass
class RnnConfig:
    cell: Literal["gru", "lstm", "simple"] = opt("gru", doc="recurrent cell; simple is a tanh RNN without gates")
    embed_dim: int = opt(256, min=1, doc="word embedding size")
    hidden_dim: int = opt(512, min=1, doc="recurrent state size")
    layers: int = opt(1, min=1, max=8, doc="stacked recurrent layers")
    gate: Literal["sigmoid", "steeper_sigmoid", "hard_sigmoid"] = opt(
        "steeper_sigmoid", doc="gate activation; steeper is 1/(1+exp(-3.75x)), the talk's")
    init: Literal["orthogonal", "gaussian", "uniform"] = opt("orthogonal", doc="recurrent weight initialisation")
    init_scale: float = opt(1.1, min=0.0, doc="scale of the initial weights (Passage: orthogonal x 1.1)")
    learned_init_state: bool = opt(False, doc="learn the initial state instead of zeros")
    dropout: float = opt(0.0, min=0.0, max=0.95, doc="dropout between stacked layers and before the head")
    input_dropout: float = opt(0.0, min=0.0, max=0.95, doc="dropout on the embedded tokens (Passage's p_drop)")
    optimizer: Literal["sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam"] = opt(
        "adam", doc="optax optimizer (Adam is bias-corrected)")
    learning_rate: float = opt(1e-3, min=0.0, doc="learning rate (injected: a sweep over it does not recompile)")
    lr_decay: float = opt(1.0, min=0.0, max=1.0, doc="the learning rate is multiplied by this after each epoch")
    ema: float = opt(0.0, min=0.0, max=0.9999,
                      doc="> 0: validate, keep and test a moving average of the weights with this decay")
    momentum: float = opt(0.9, min=0.0, max=1.0, doc="momentum / nag: the momentum coefficient")
    clip_norm: float | None = opt(5.0, min=0.0, doc="global-norm gradient clipping; null disables")
    batch_size: int = opt(64, min=1, doc="texts per training batch")
    epochs: int = opt(10, min=1, doc="at most this many passes over the training subset")
    patience: int = opt(2, min=1, doc="early stopping: validations without improvement before stopping")
    eval_every: int = opt(0, min=0, doc="steps between validations; 0: once per epoch")
    chunk: int = opt(16, min=1, doc="time steps per compiled call: texts are read chunk by chunk")
    buckets: int = opt(64, min=1, doc="length buckets of training batches (widths: multiples of chunk)")
    unroll: int = opt(2, min=1, doc="lax.scan unrolling of the XLA loops (2 measured fastest on a CPU)")
    dtype: Literal["float32", "bfloat16"] = opt("float32", doc="compute type; bfloat16 is for GPUs")
    checkpoint_every_s: float | None = opt(
        900.0, min=0.0, doc="besides each epoch's checkpoint, save the whole training state mid-epoch once this "
                            "many seconds have passed since the last (a killed run loses at most that much); 0: "
                            "after every step; null: epoch ends only. Never changes a result (not hashed)")


KIND = ModelKind(
    name="rnn", section=RnnConfig, cls="rnnbench.models.rnn.model_api:RNNClassifier",
    doc="the recurrent model and its training", reads=("data", "tokenizer"), sequence=True,
    # options added after runs existed, at the value that reproduces what runs did before them
    neutral={"input_dropout": 0.0, "lr_decay": 1.0, "ema": 0.0}, unhashed=("checkpoint_every_s",),
    gpu=True, label="RNN", color="#d62728", epochs_option="epochs")
