"""What an RNN run needs in memory, estimated before anything is allocated: a size that cannot fit
(``rnn.hidden_dim: 1000000``, ``rnn.batch_size: 10**9``, ``data.max_len: 10**9``) is one line naming the
key, not a minute of allocating followed by a JAX or numpy traceback.

The estimate counts what the trainer holds at once, in bytes: the parameters and what the optimizer keeps
beside them (the gradient, the optimizer's moments, the best parameters, the moving average), the saved activations
of one training batch (every chunk's residuals wait for the backward pass: the input projection, the
gates and the states of each layer, the embedded tokens), and one evaluation batch (``4 × batch_size``
texts padded to ``data.max_len``). It errs low (no compiler workspace, no data): only a run that
cannot fit is refused.
"""

from __future__ import annotations

from .cells import N_GATES

FLOAT = 4  # bytes of a float32, of an int32 token
STATES = {"sgd": 0, "momentum": 1, "nag": 1, "adagrad": 1, "rmsprop": 1, "adadelta": 2, "adam": 2}  # per parameter
HEADROOM = 1.0  # refused when the estimate (which errs low) exceeds the machine's memory by this much


def estimate(rnn, max_len: int, vocab: int, n_out: int, width: int) -> dict[str, float]:
    """Bytes a run needs, by part: ``parameters`` (with the optimizer's copies), ``training`` (one batch's
    saved activations, ``width`` tokens wide), ``evaluation`` (one validation batch)."""
    g, h, e, b, layers = N_GATES[rnn.cell], rnn.hidden_dim, rnn.embed_dim, rnn.batch_size, rnn.layers
    dims = [e] + [h] * layers
    params = vocab * e + sum((dims[i] + h) * g * h + 2 * g * h + 2 * h for i in range(layers)) + h * n_out + n_out
    copies = 3 + STATES.get(rnn.optimizer, 2) + (1 if rnn.ema else 0)  # weights, gradient, best; optimizer; average
    training = float(b) * width * (e + layers * (2 * g * h + 2 * h)) + b * width  # floats, and the tokens
    chunk = min(rnn.chunk, max(max_len, 1))
    eval_width = -(-max_len // chunk) * chunk
    evaluation = 4.0 * b * (eval_width + chunk * (e + g * h + 2 * h))  # the padded tokens; a chunk's activations
    return {"parameters": FLOAT * copies * float(params), "training": FLOAT * training, "evaluation": FLOAT * evaluation}


def culprit(rnn, max_len: int, vocab: int, n_out: int, width: int, defaults) -> str:
    """The option whose value makes the estimate largest: the one that, set back to its default, shrinks it
    most (``defaults``: the rnn section's defaults; the data's ``max_len`` default 400)."""
    from dataclasses import replace

    total = sum(estimate(rnn, max_len, vocab, n_out, width).values())
    saved = {}
    for key in ("hidden_dim", "embed_dim", "batch_size", "layers", "chunk"):
        smaller = replace(rnn, **{key: min(getattr(rnn, key), getattr(defaults, key))})
        saved[f"rnn.{key}"] = total - sum(estimate(smaller, max_len, vocab, n_out, width).values())
    short = min(max_len, 400)
    saved["data.max_len"] = total - sum(estimate(rnn, short, vocab, n_out, min(width, short)).values())
    saved["tokenizer.max_features"] = total - sum(estimate(rnn, max_len, min(vocab, 50_000), n_out, width).values())
    return max(saved, key=saved.get)


def check_fits(rnn, max_len: int, vocab: int, n_out: int, width: int, available: tuple[int, str] | None) -> None:
    """A one-line error if the run needs more than :data:`HEADROOM` × the memory ``available`` (bytes, and
    what: "RAM", "GPU memory"); nothing where the machine's memory is not known."""
    from ...errors import RnnbenchError
    from .spec import RnnConfig

    if available is None:
        return
    parts = estimate(rnn, max_len, vocab, n_out, width)
    need, (have, what) = sum(parts.values()), available
    if need <= HEADROOM * have:
        return
    key = culprit(rnn, max_len, vocab, n_out, width, RnnConfig())
    detail = ", ".join(f"{name} {size_text(v)}" for name, v in parts.items())
    raise RnnbenchError(f"{key}: a run needs about {size_text(need)} of memory ({detail}; vocabulary {vocab:,}, "
                        f"batches {width:,} tokens wide); this machine has {size_text(have)} of {what}")


def size_text(n: float) -> str:
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"
