"""The talk's optimizer picture: a linear classifier on 2-D two-class data, every optimizer.

Logistic regression without bias on two Gaussian blobs, full-batch, from a deliberately poor
start; each optax optimizer runs the same number of steps. One figure: loss against step, and the
parameter trajectories over the loss surface. Config::

    sweep:
      kind: toy-optimizers
      steps: 100
      learning_rates: {sgd: 0.5, momentum: 0.5, nag: 0.5, adagrad: 0.5, adadelta: 10.0, rmsprop: 0.05, adam: 0.1}
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .config import Config
from .errors import RnnbenchError
from .fileio import atomic_write_text
from .models.rnn.spec import RnnConfig
from .outputs import markdown_table, output_dir, write_csv

DEFAULT_LR = {"sgd": 0.5, "momentum": 0.5, "nag": 0.5, "adagrad": 0.5, "adadelta": 10.0, "rmsprop": 0.05, "adam": 0.1}
START = np.array([-2.5, 3.0])


def toy_data(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    centers = np.where(y[:, None] == 1, np.array([1.5, 0.5]), np.array([-1.5, -0.5]))
    x = centers + rng.normal(0, [1.0, 0.6], (n, 2))
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


def loss_at(w, x, y):
    return optax.sigmoid_binary_cross_entropy(x @ w, y).mean()


def trajectory(name: str, lr: float, steps: int, x, y, momentum: float = 0.9):
    from .models.jaxtrain.optim import OPTIMIZERS

    tx = OPTIMIZERS[name](lr, momentum)
    w = jnp.asarray(START, jnp.float32)
    state = tx.init(w)
    grad = jax.jit(jax.value_and_grad(loss_at))
    ws, losses = [np.asarray(w)], []
    for _ in range(steps):
        loss, g = grad(w, x, y)
        losses.append(float(loss))
        updates, state = tx.update(g, state, w)
        w = optax.apply_updates(w, updates)
        ws.append(np.asarray(w))
    losses.append(float(loss_at(w, x, y)))
    return np.array(ws), np.array(losses)


def run_toy(cfg: Config) -> dict:
    from .plots import figure, save

    sw = cfg.sweep
    lrs = {**DEFAULT_LR, **sw.learning_rates}
    unknown = set(lrs) - set(DEFAULT_LR)
    if unknown:
        raise RnnbenchError(f"sweep.learning_rates: unknown optimizer '{sorted(unknown)[0]}' (choose from: {', '.join(DEFAULT_LR)})")
    x, y = toy_data(sw.n_points, cfg.experiment.seeds[0])
    results = {name: trajectory(name, lr, sw.steps, x, y, RnnConfig().momentum) for name, lr in lrs.items()}
    out_dir = output_dir(cfg)
    # the learning rate as configured (str: "10.0", not write_csv's "10"), the rest to six digits
    write_csv(out_dir / "toy.csv", ["optimizer", "learning_rate", "step", "loss", "w1", "w2"],
              ({"optimizer": name, "learning_rate": str(lrs[name]), "step": i, "loss": float(loss), "w1": float(p[0]),
                "w2": float(p[1])} for name, (ws, losses) in results.items() for i, (p, loss) in enumerate(zip(ws, losses))))

    fig = figure((11, 4.3))
    a1, a2 = fig.subplots(1, 2)
    for name, (ws, losses) in results.items():
        a1.plot(losses, label=f"{name} (lr {lrs[name]:g})")
        a2.plot(ws[:, 0], ws[:, 1], ".-", ms=2, lw=1, label=name)
    a1.set_yscale("log")
    a1.set_xlabel("update")
    a1.set_ylabel("training loss (log)")
    a1.set_title("loss per update")
    a1.legend(fontsize=8)
    every = np.concatenate([ws for ws, _ in results.values()])
    lo, hi = every.min(0), every.max(0)
    pad = 0.15 * (hi - lo) + 0.5
    g1, g2 = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 120), np.linspace(lo[1] - pad[1], hi[1] + pad[1], 120))
    grid = jnp.asarray(np.stack([g1.ravel(), g2.ravel()], 1), jnp.float32)
    z = jax.vmap(lambda w_: loss_at(w_, x, y))(grid).reshape(g1.shape)
    a2.contour(g1, g2, np.log(np.asarray(z)), levels=25, cmap="Greys", linewidths=0.6)
    a2.plot(*START, "k*", ms=10)
    a2.set_xlabel("w1")
    a2.set_ylabel("w2")
    a2.set_title("parameter trajectories over the loss surface")
    fig.suptitle("Optimizers on a linear classifier, 2-D two-class data")
    save(fig, out_dir / "toy_optimizers.png")
    final = {name: float(losses[-1]) for name, (_, losses) in results.items()}
    lines = [f"# {cfg.experiment.name}: {sw.steps} full-batch updates from w = {START.tolist()}", ""]
    lines += markdown_table(["optimizer", "learning rate", "final loss"],
                            [(n, f"{lrs[n]:g}", f"{final[n]:.4f}") for n in sorted(final, key=final.get)], "-rr")
    md = "\n".join(lines) + "\n"
    atomic_write_text(out_dir / "sweep.md", md)
    return {"dir": out_dir, "rows": [], "markdown": md, "plots": [out_dir / "toy_optimizers.png"], "final": final}
