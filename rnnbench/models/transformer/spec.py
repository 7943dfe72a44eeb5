"""The ``transformer`` model kind as the registry and the config know it: its options and its declaration.
The model itself is :class:`rnnbench.models.transformer.model.Transformer` (JAX, loaded on use)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...errors import RnnbenchError
from ...options import opt
from ..registry import ModelKind


@dataclass
class TransformerConfig:
    layers: int = opt(2, min=1, max=24, doc="encoder blocks (pre-layer-norm: x + attention(LN(x)), x + FFN(LN(x)))")
    width: int = opt(256, min=1, doc="model width: token embeddings, attention and the residual stream")
    heads: int = opt(4, min=1, doc="attention heads (width must be a multiple)")
    ffn: int = opt(1024, min=1, doc="hidden units of each block's feed-forward layer (GELU)")
    positions: Literal["alibi", "learned", "sinusoidal"] = opt(
        "alibi", doc="where tokens are: alibi, no embedding but attention penalised by distance, a slope per head "
                     "(Press et al. 2022; learned fastest on small data, docs/models.md); learned embeddings (one per "
                     "position up to data.max_len); or fixed sinusoids (Vaswani et al.)")
    pooling: Literal["mean", "first"] = opt("mean", doc="the text's vector: the mean of its tokens' outputs, or the "
                                                        "output of a learned first token put before them")
    dropout: float = opt(0.1, min=0.0, max=0.95, doc="dropout on the embedded tokens and on each block's branches")
    attention: Literal["auto", "xla", "cudnn"] = opt(
        "auto", doc="jax.nn.dot_product_attention's implementation; auto: cuDNN's fused kernel on a GPU in "
                    "bfloat16, else XLA's")
    dtype: Literal["float32", "bfloat16"] = opt("float32", doc="compute type of the blocks; bfloat16 is for GPUs")
    optimizer: Literal["sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam"] = opt(
        "adam", doc="optax optimizer (Adam is bias-corrected)")
    learning_rate: float = opt(5e-4, min=0.0, doc="learning rate (injected: a sweep over it does not recompile)")
    lr_decay: float = opt(1.0, min=0.0, max=1.0, doc="the learning rate is multiplied by this after each epoch")
    ema: float = opt(0.0, min=0.0, max=0.9999,
                      doc="> 0: validate, keep and test a moving average of the weights with this decay")
    momentum: float = opt(0.9, min=0.0, max=1.0, doc="momentum / nag: the momentum coefficient")
    clip_norm: float | None = opt(1.0, min=0.0, doc="global-norm gradient clipping; null disables")
    batch_size: int = opt(64, min=1, doc="texts per training batch")
    epochs: int = opt(10, min=1, doc="at most this many passes over the training subset")
    patience: int = opt(2, min=1, doc="early stopping: validations without improvement before stopping")
    eval_every: int = opt(0, min=0, doc="steps between validations; 0: once per epoch")
    length_buckets: int = opt(8, min=1, doc="length buckets of training batches (one compiled step each; attention "
                                            "costs the square of a batch's width)")
    checkpoint_every_s: float | None = opt(
        900.0, min=0.0, doc="besides each epoch's checkpoint, save the whole training state mid-epoch once this "
                            "many seconds have passed since the last; 0: after every step; null: epoch ends only. "
                            "Never changes a result (not hashed)")

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise RnnbenchError(f"transformer.heads: {self.heads} heads do not divide transformer.width {self.width}")
        if self.attention == "cudnn" and self.dtype != "bfloat16":
            raise RnnbenchError("transformer.attention: cudnn needs transformer.dtype: bfloat16 (cuDNN's fused "
                                "attention takes 16-bit inputs)")


KIND = ModelKind(
    name="transformer", section=TransformerConfig, cls="rnnbench.models.transformer.model:Transformer",
    doc="the Transformer encoder and its training", reads=("data", "tokenizer"), sequence=True,
    unhashed=("checkpoint_every_s",), gpu=True, label="Transformer", color="#9467bd", epochs_option="epochs")
