"""Optimizers, losses and output heads every JAX model kind shares: the optax optimizer a config names
(with global-norm clipping and an injected learning rate), the loss of each kind of task, and the scores
(class probabilities or values) a model's outputs mean."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax import lax

from ...data import Task

OPTIMIZERS = {
    "sgd": lambda lr, m: optax.sgd(lr),
    "momentum": lambda lr, m: optax.sgd(lr, momentum=m),
    "nag": lambda lr, m: optax.sgd(lr, momentum=m, nesterov=True),
    "adagrad": lambda lr, m: optax.adagrad(lr),
    "adadelta": lambda lr, m: optax.adadelta(lr),
    "rmsprop": lambda lr, m: optax.rmsprop(lr),
    "adam": lambda lr, m: optax.adam(lr),  # bias-corrected (Passage's Adam skipped the correction)
}


def make_optimizer(cfg) -> optax.GradientTransformation:
    """The optimizer a model kind's options name (``optimizer``, ``learning_rate``, ``momentum``, ``clip_norm``),
    its learning rate injected: a runtime value, so a sweep over it or ``lr_decay`` compiles nothing anew."""
    def build(learning_rate):
        opt = OPTIMIZERS[cfg.optimizer](learning_rate, cfg.momentum)
        return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt) if cfg.clip_norm else opt

    return optax.inject_hyperparams(build)(learning_rate=cfg.learning_rate)


def n_outputs(task: Task) -> int:
    return task.n_classes if task.kind == "multiclass" else 1


def outputs_to_scores(task: Task, out: jax.Array) -> jax.Array:
    """Class probabilities (B, K), or the regression output (B,)."""
    if task.kind == "binary":
        p = jax.nn.sigmoid(out[:, 0])
        return jnp.stack([1.0 - p, p], axis=1)
    if task.kind == "multiclass":
        return jax.nn.softmax(out, axis=-1)
    return out[:, 0]


def loss_fn(task: Task, out: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    if task.kind == "binary":
        per = optax.sigmoid_binary_cross_entropy(out[:, 0], y.astype(jnp.float32))
    elif task.kind == "multiclass":
        per = optax.softmax_cross_entropy_with_integer_labels(out, y)
    else:
        per = (out[:, 0] - y) ** 2
    return jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)


def global_norm(tree) -> jax.Array:
    """The gradient's global L2 norm, finite whenever the gradient is: a GRU's gradient can explode
    through the recurrence on long texts to norms of 1e30, whose plain float32 sum of squares overflows
    (clipping then zeroes that update, and training goes on). Only then is it computed again, scaled by
    the largest element (a branch taken on the device): the usual step pays one pass, as before.
    Infinite or NaN only where an element is."""
    leaves = jax.tree.leaves(tree)

    def scaled(_):
        top = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves]))
        scale = jnp.where((top > 0) & jnp.isfinite(top), top, 1.0)
        return scale * jnp.sqrt(sum(jnp.sum(jnp.square(g / scale)) for g in leaves))

    plain = optax.tree.norm(tree)
    return lax.cond(jnp.isfinite(plain), lambda _: plain, scaled, None)
