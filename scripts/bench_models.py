"""Train-step speed of the ``fasttext`` and ``transformer`` kinds against their PyTorch counterparts, and of
fastText against the GRU.

Shapes: batch 64, 200 tokens, a 20,000-word vocabulary, each kind's defaults (fastText: embedding 32,
bigrams in 100,000 buckets, Adam; the Transformer: 2 pre-layer-norm blocks, width 256, 4 heads, FFN 1024,
learned positions, mean pooling, dropout 0.1, Adam, clipping at 1). A full train step (forward, backward,
update), timed as the shared loop calls it (``Trainable.train_step`` on a batch from the host).

References, in the same process: PyTorch (``pip install 'rnnbench[bench]'``, torch 2.13.0; without it the
script says so and the JSON line's ``*_vs_torch`` fields are null):
``nn.EmbeddingBag(mode="mean", sparse=True)`` + ``nn.Linear`` with the bigrams hashed in the step, the table
trained by ``SparseAdam`` (fastText's sparse update, as ours) and the layer by Adam; and ``nn.Embedding`` +
learned positions + ``nn.TransformerEncoder(norm_first=True)`` (same sizes, GELU, dropout) + mean pooling +
Adam. And the GRU's step at the talk's shapes (embedding 256, hidden 512; ``scripts/bench_rnn.py``'s timer).
Targets on a CPU: each kind at least as fast as PyTorch's, fastText at least 20x the GRU's tokens/s.

The timers take turns round by round (``--rounds``), and each figure is the median over rounds, so a slow
spell of a shared machine hits all of them alike; the JSON line also gives each ratio's per-round range.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _common import emit  # noqa: E402
from bench_rnn import interleaved, ours_timer  # noqa: E402
from flax import nnx  # noqa: E402

from rnnbench.config import cores_label, usable_cores  # noqa: E402
from rnnbench.data import Task  # noqa: E402
from rnnbench.models.fasttext.model import BagOfNgrams, SparseSteps  # noqa: E402
from rnnbench.models.fasttext.spec import FastTextConfig  # noqa: E402
from rnnbench.models.jaxtrain.batching import Batch  # noqa: E402
from rnnbench.models.jaxtrain.sequence import BatchSteps, parameter_count  # noqa: E402
from rnnbench.models.transformer.model import Encoder  # noqa: E402
from rnnbench.models.transformer.spec import TransformerConfig  # noqa: E402

VOCAB = 20000


def batch_of(b: int, t: int, vocab: int) -> Batch:
    rng = np.random.default_rng(0)
    return Batch(rng.integers(2, vocab, (b, t)).astype(np.int32), np.full(b, t, np.int32),
                 rng.integers(0, 2, b).astype(np.int64), np.ones(b, np.float32), np.arange(b))


def timed(step, tokens_per_step: int, sync=lambda out: None):
    """A function ``seconds -> tokens/s`` that runs ``step()`` until that many seconds have passed (at least
    twice): every timer of a round runs about as long, however fast its steps."""

    def run(seconds: float) -> float:
        start, n, out = time.perf_counter(), 0, None
        while n < 2 or time.perf_counter() - start < seconds:
            out = step()
            n += 1
        sync(out)
        return tokens_per_step * n / (time.perf_counter() - start)

    return run


def ours_step_timer(kind: str, b: int, t: int, vocab: int):
    """A function ``seconds -> tokens/s`` running train steps of our ``kind`` (compiled and warm), and its
    parameter count."""
    task = Task("s", "binary", 2)
    if kind == "fasttext":
        cfg = FastTextConfig()
        steps = SparseSteps(BagOfNgrams(vocab, 1, cfg, rngs=nnx.Rngs(0)), cfg, task, 0, [t], t, 4 * b)
    else:
        cfg = TransformerConfig(positions="learned")  # as the PyTorch reference: an embedding per position
        steps = BatchSteps(Encoder(vocab, 1, t, cfg, rngs=nnx.Rngs(0)), cfg, task, 0, [t], t, b)
    batch = batch_of(b, t, vocab)
    state = [steps.params, steps.tx.init(steps.params), 0]

    def step():
        params, opt, loss, _ = steps.train_step(state[0], state[1], batch, state[2])
        state[:] = params, opt, state[2] + 1
        return loss

    run = timed(step, b * t, lambda loss: loss.block_until_ready())
    run(0.0)  # compile and warm up
    return run, parameter_count(steps.params)


def torch_step_timer(kind: str, b: int, t: int, vocab: int):
    """The same for the PyTorch counterpart; None without torch."""
    try:
        import torch
    except ImportError:
        print(f"PyTorch is not installed: no PyTorch reference for {kind} (pip install 'rnnbench[bench]', "
              f"torch==2.13.0); the JSON line's *_vs_torch fields are null", flush=True)
        return None
    torch.set_num_threads(usable_cores())
    torch.manual_seed(0)
    tokens = torch.randint(2, vocab, (b, t))
    y = torch.randint(0, 2, (b,)).float()
    if kind == "fasttext":
        cfg = FastTextConfig()
        bag = torch.nn.EmbeddingBag(vocab + cfg.buckets, cfg.embed_dim, mode="mean", sparse=True)
        head = torch.nn.Linear(cfg.embed_dim, 1)
        opts = [torch.optim.SparseAdam(list(bag.parameters()), lr=cfg.learning_rate),
                torch.optim.Adam(head.parameters(), lr=cfg.learning_rate)]

        def forward():
            bigrams = (tokens[:, :-1] * 116049371 + tokens[:, 1:]) % cfg.buckets + vocab
            return head(bag(torch.cat([tokens, bigrams], 1)))
    else:
        cfg = TransformerConfig()
        emb, pos = torch.nn.Embedding(vocab, cfg.width), torch.nn.Parameter(torch.randn(t, cfg.width))
        layer = torch.nn.TransformerEncoderLayer(cfg.width, cfg.heads, cfg.ffn, dropout=cfg.dropout, activation="gelu",
                                                 batch_first=True, norm_first=True)
        encoder = torch.nn.TransformerEncoder(layer, cfg.layers, norm=torch.nn.LayerNorm(cfg.width),
                                              enable_nested_tensor=False)
        head = torch.nn.Linear(cfg.width, 1)
        params = [*emb.parameters(), pos, *encoder.parameters(), *head.parameters()]
        opts = [torch.optim.Adam(params, lr=cfg.learning_rate)]
        padding = torch.zeros(b, t, dtype=torch.bool)  # no padding in these batches: a mask of none

        def forward():
            x = encoder(emb(tokens) + pos[None], src_key_padding_mask=padding)
            return head(x.mean(1))

    def step():
        for opt in opts:
            opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(forward().squeeze(-1), y)
        loss.backward()
        if kind == "transformer":
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        for opt in opts:
            opt.step()

    run = timed(step, b * t)
    run(0.0)
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--vocab", type=int, default=VOCAB)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of every timer")
    ap.add_argument("--seconds", type=float, default=3.0, help="each timer's time per round (at least 2 steps)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-gru", action="store_true")
    args = ap.parse_args()
    b, t, v = args.batch, args.tokens, args.vocab
    device = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind}, {cores_label()})"
    timers, sizes = {}, {}
    for kind in ("fasttext", "transformer"):
        run, sizes[kind] = ours_step_timer(kind, b, t, v)
        timers[kind] = lambda run=run: run(args.seconds)
        ref = None if args.no_torch else torch_step_timer(kind, b, t, v)
        if ref:
            timers[f"torch_{kind}"] = lambda ref=ref: ref(args.seconds)
    if not args.no_gru:
        gru = ours_timer("gru", 256, 512, b, t, "float32", 2, 16, v)  # bench_rnn.py's timer: steps -> tok/s
        n_gru = max(2, round(args.seconds * gru(2) / (b * t)))  # about --seconds a round
        timers["gru"] = lambda: gru(n_gru)
    print(f"device {device}; batch {b}, {t} tokens, vocabulary {v}; parameters: fasttext {sizes['fasttext']:,}, "
          f"transformer {sizes['transformer']:,}; {args.rounds} alternating rounds; medians over rounds")
    per_round = interleaved(timers, args.rounds)
    med = {k: statistics.median(x) for k, x in per_round.items()}
    for name, rates in per_round.items():
        print(f"{name:20s} {med[name]:>12,.0f} tok/s  (rounds: {', '.join(f'{x:,.0f}' for x in rates)})", flush=True)
    figures = {"device": device, "batch": b, "tokens": t}

    def ratio(a, ref):
        if ref not in med:
            return None, None
        ratios = [x / y for x, y in zip(per_round[a], per_round[ref])]
        return round(med[a] / med[ref], 3), [round(min(ratios), 3), round(max(ratios), 3)]

    for kind in ("fasttext", "transformer"):
        figures[f"{kind}_tok_s"] = round(med[kind])
        figures[f"{kind}_vs_torch"], figures[f"{kind}_vs_torch_range"] = ratio(kind, f"torch_{kind}")
        figures[f"torch_{kind}_tok_s"] = round(med[f"torch_{kind}"]) if f"torch_{kind}" in med else None
    figures["fasttext_vs_gru"], figures["fasttext_vs_gru_range"] = ratio("fasttext", "gru")
    figures["gru_tok_s"] = round(med["gru"]) if "gru" in med else None
    figures.update(parameters=sizes, rounds=args.rounds)
    emit(figures)


if __name__ == "__main__":
    main()
