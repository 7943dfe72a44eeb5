"""Train-step speed of the RNN: tokens/s against PyTorch and against the machine's matmul rate.

Shapes (the talk's GRU): embedding 256, hidden 512, batch 64, 200 tokens; a full train step
(forward, backward, Adam). References measured in the same run: PyTorch ``nn.GRU``/``nn.LSTM``/
``nn.RNN`` + Adam (skipped when torch is not installed: ``pip install torch==2.13.0``), and a 4096²
float32 matmul expressed as tokens/s at the step's FLOPs per token (7.08 MFLOP for the GRU).
Targets on CPU: >= 1.5x PyTorch and >= 0.8x the matmul rate.

On a GPU, PyTorch runs on the GPU too (cuDNN), in the same dtype (bf16 through autocast), and the matmul
rate is XLA's on the device. ``--config 64:float32 512:bfloat16 ...`` times several batch/dtype pairs in
one process (one JSON line each; the last line is the last pair's).

``--programs`` picks how our step is compiled (``compute.train_programs``): per-chunk, per-batch, or
``both``, timed in the same alternating rounds (the JSON line then adds ``per_batch_tok_s`` and the ratio
``per_batch_vs_per_chunk``); the default, auto, is what training uses on this device.

On a CPU the GRU's steps call the fused kernels of ``rnnbench/models/rnn/native.py`` where a C++ compiler is at
hand (``RNNBENCH_NATIVE=0``: XLA's own step, for comparison); the JSON's ``kernels`` says which ran.

The three are timed in alternating rounds (``--rounds``: ours, PyTorch, the matmul, ours, ...), and each
figure is the median over rounds, so a slow spell of a shared machine hits all three alike instead of
whichever ran during it; the JSON line also gives the lowest and highest per-round ratio.
"""

import argparse
import statistics
import sys
import time
from functools import partial

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import emit  # noqa: E402
from flax import nnx  # noqa: E402

from rnnbench.config import cores_label, usable_cores  # noqa: E402
from rnnbench.data import Task  # noqa: E402
from rnnbench.devices import train_programs  # noqa: E402
from rnnbench.models.rnn.cells import fused_kernels  # noqa: E402
from rnnbench.models.rnn.model import SequenceModel  # noqa: E402
from rnnbench.models.rnn.spec import RnnConfig  # noqa: E402
from rnnbench.models.rnn.train import PROGRAMS, Steps  # noqa: E402

VOCAB = 20000
GATES = {"gru": 3, "lstm": 4, "simple": 1}


def flops_per_token(cell: str, e: int, h: int) -> float:
    g = GATES[cell]
    return 3 * 2 * (e * g * h + h * g * h)  # forward + backward (2x) of both matmuls


def ours_timer(cell, e, h, b, t, dtype, unroll, chunk, vocab=VOCAB, programs="per-chunk"):
    """A function ``steps -> tokens/s`` that runs that many train steps of ours (compiled and warm)."""
    cfg = RnnConfig(cell=cell, embed_dim=e, hidden_dim=h, batch_size=b, dtype=dtype, unroll=unroll, chunk=chunk)
    task = Task("s", "binary", 2)
    s = Steps(SequenceModel(vocab, 1, cfg, rngs=nnx.Rngs(0)), cfg, task, 0, programs)
    state = [s.params, s.tx.init(s.params), 0]
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, vocab, (b, t)).astype(np.int32)
    lengths = np.full(b, t, np.int32)
    y, w = rng.integers(0, 2, b).astype(np.int64), np.ones(b, np.float32)

    def run(steps):
        params, opt, first = state
        start = time.perf_counter()
        for step in range(first, first + steps):
            params, opt, loss, _ = s.update(params, opt, tokens, lengths, y, w, step, s.base_key)
        loss.block_until_ready()
        state[:] = params, opt, first + steps
        return b * t * steps / (time.perf_counter() - start)

    run(3)  # compile and warm up
    return run


def torch_timer(cell, e, h, b, t, dtype, on_gpu, vocab=VOCAB):
    """The same for PyTorch's ``nn.GRU``/``nn.LSTM``/``nn.RNN`` + Adam; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    dev = "cuda" if on_gpu and torch.cuda.is_available() else "cpu"
    if on_gpu and dev == "cpu":
        print("pytorch: no CUDA build here; skipped (a CPU figure is no reference for a GPU)")
        return None
    torch.set_num_threads(usable_cores())
    torch.manual_seed(0)
    rnn = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "simple": torch.nn.RNN}[cell](e, h, batch_first=True)
    emb, head = torch.nn.Embedding(vocab, e), torch.nn.Linear(h, 1)
    modules = torch.nn.ModuleList([emb, rnn, head]).to(dev)
    opt = torch.optim.Adam(modules.parameters(), lr=1e-3)
    tokens = torch.randint(2, vocab, (b, t), device=dev)
    y = torch.randint(0, 2, (b,), device=dev).float()
    amp = torch.autocast(dev, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def step():
        opt.zero_grad()
        with amp:
            out, _ = rnn(emb(tokens))
            logits = head(out[:, -1]).squeeze(-1).float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss.backward()
        opt.step()

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def run(steps):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        return b * t * steps / (time.perf_counter() - start)

    run(3)
    return run


def matmul_timer(n=4096, on_gpu=False):
    """A function ``() -> FLOP/s``: the better of XLA's and (on a CPU) numpy's BLAS float32 ``n x n``
    matmul, best of two tries each."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    x = jnp.asarray(a)
    f = jax.jit(jnp.dot)
    f(x, x).block_until_ready()

    def run():
        best = 0.0
        for _ in range(2):
            if not on_gpu:
                s = time.perf_counter()
                np.dot(a, a)
                best = max(best, 2 * n**3 / (time.perf_counter() - s))
            s = time.perf_counter()
            f(x, x).block_until_ready()
            best = max(best, 2 * n**3 / (time.perf_counter() - s))
        return best

    return run


def interleaved(timers: dict, rounds: int) -> dict:
    """Per-round figures of every timer, the timers taking turns round by round."""
    out = {name: [] for name in timers}
    for _ in range(rounds):
        for name, run in timers.items():
            out[name].append(run())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cell", default="gru", choices=list(GATES))
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--vocab", type=int, default=VOCAB,
                    help="embedding rows: Adam updates all of them every step, a cost per step that a larger "
                         "batch spreads over more tokens (the blog study's vocabulary is 100000)")
    ap.add_argument("--steps", type=int, default=10, help="train steps per round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of ours, PyTorch and the matmul")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--unroll", type=int, default=RnnConfig().unroll)
    ap.add_argument("--chunk", type=int, default=RnnConfig().chunk, help="time steps per compiled call")
    ap.add_argument("--config", nargs="+", metavar="BATCH:DTYPE[:UNROLL]",
                    help="several shapes in one process (overrides --batch, --dtype and --unroll)")
    ap.add_argument("--programs", default="auto", choices=["auto", *PROGRAMS, "both"],
                    help="how our step is compiled (compute.train_programs); both: each, in the same rounds")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    configs = [parse_config(c, args.unroll) for c in args.config] if args.config else [(args.batch, args.dtype, args.unroll)]
    on_gpu = jax.devices()[0].platform == "gpu"
    device = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind}, {cores_label()})"
    programs = PROGRAMS if args.programs == "both" else [train_programs(args.programs, jax.devices()[0].platform)]
    fpt = flops_per_token(args.cell, args.embed, args.hidden)
    matmul = matmul_timer(on_gpu=on_gpu)
    print(f"device {device}; {args.cell} E={args.embed} H={args.hidden} T={args.tokens} V={args.vocab}; "
          f"{args.rounds} alternating rounds of {args.steps} steps; medians over rounds")
    for batch, dtype, unroll in configs:
        timers = {}
        for name, kind in zip(("ours", "ours_batch"), programs):  # "ours": the first (per-chunk with both)
            ours = ours_timer(args.cell, args.embed, args.hidden, batch, args.tokens, dtype, unroll, args.chunk,
                              args.vocab, kind)
            timers[name] = partial(ours, args.steps)
        torch_run = None if args.no_torch else torch_timer(args.cell, args.embed, args.hidden, batch, args.tokens,
                                                           dtype, on_gpu, args.vocab)
        if torch_run:
            timers["torch"] = partial(torch_run, args.steps)
        timers["matmul"] = lambda: matmul() / fpt
        per_round = interleaved(timers, args.rounds)
        med = {k: statistics.median(v) for k, v in per_round.items()}
        print(f"matmul rate: {med['matmul'] * fpt / 1e9:.1f} GFLOP/s = {med['matmul']:,.0f} tok/s at "
              f"{fpt / 1e6:.2f} MFLOP/token")
        for name, kind in zip(("ours", "ours_batch"), programs):
            print(f"B={batch} {dtype} unroll {unroll}: rnnbench {kind} {med[name]:,.0f} tok/s "
                  f"(rounds: {', '.join(f'{x:,.0f}' for x in per_round[name])})", flush=True)
        if torch_run:
            print(f"B={batch} {dtype}: pytorch  {med['torch']:,.0f} tok/s "
                  f"(rounds: {', '.join(f'{x:,.0f}' for x in per_round['torch'])})")
        figures = {"cell": args.cell, "device": device, "tok_s": round(med["ours"]),
                   "torch_tok_s": round(med["torch"]) if torch_run else None, "matmul_tok_s": round(med["matmul"]),
                   "ratio_vs_torch": round(med["ours"] / med["torch"], 3) if torch_run else None,
                   "ratio_vs_matmul": round(med["ours"] / med["matmul"], 3)}
        for ref in ("torch", "matmul"):
            if ref in per_round:
                ratios = [o / r for o, r in zip(per_round["ours"], per_round[ref])]
                figures[f"ratio_vs_{ref}_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
        figures["programs"] = programs[0]
        if len(programs) > 1:
            ratios = [b_ / c_ for b_, c_ in zip(per_round["ours_batch"], per_round["ours"])]
            figures.update(per_batch_tok_s=round(med["ours_batch"]),
                           per_batch_vs_per_chunk=round(med["ours_batch"] / med["ours"], 3),
                           per_batch_vs_per_chunk_range=[round(min(ratios), 3), round(max(ratios), 3)])
            if torch_run:
                figures["per_batch_vs_torch"] = round(med["ours_batch"] / med["torch"], 3)
        figures["rounds"] = args.rounds
        if args.cell == "gru":
            figures["kernels"] = "native" if fused_kernels(jnp.dtype(dtype)) else "xla"
        if len(configs) > 1:
            figures.update(batch=batch, dtype=dtype, unroll=unroll, chunk=args.chunk)
        if args.vocab != VOCAB:
            figures["vocab"] = args.vocab
        emit(figures)


def parse_config(text: str, default_unroll: int) -> tuple[int, str, int]:
    batch, dtype, *rest = text.split(":") + [""]
    unroll = rest[0] or str(default_unroll)
    if not batch.isdigit() or dtype not in ("float32", "bfloat16") or not unroll.isdigit() or len(rest) > 2:
        raise SystemExit(f"--config: expected BATCH:float32|bfloat16[:UNROLL], got {text!r}")
    return int(batch), dtype, int(unroll)


if __name__ == "__main__":
    main()
