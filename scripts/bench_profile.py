"""What bounds the RNN's train step on this device: a profile of a few steps, summarised.

Runs ``--steps`` train steps of ``bench_rnn.py``'s shapes (the talk's GRU: embedding 256, hidden 512,
200 tokens) under ``jax.profiler.trace`` and reads the trace it writes (Perfetto JSON, no extra
package). On a GPU it takes the kernels on the device's streams and reports, per train step:

- how long the step took (wall) and how much of it the device was busy running kernels; the rest is
  the device waiting for the host (launches, a ``while`` loop's condition copied back, the host calls
  of per-chunk programs). The profiler's hook on every launch widens those gaps, so the step's time
  untraced is given too (``untraced_step_ms``);
- the device time by kind of kernel: matrix multiplies (cuBLAS / CUTLASS / Triton GEMMs, XLA's dots),
  host-device copies, and the rest (XLA's fusions: the gates' elementwise work, reductions, Adam);
- kernels per time step the step runs (its width with padding: the length class of per-batch
  programs, the chunks of per-chunk ones) and their mean length, and the matmul kernels' FLOP rate
  (``bench_rnn.flops_per_token`` at that width, over their time).

and names the bound: **launches** when the device is idle for over 40% of the step, else the
**recurrent matmul** when matmul kernels take over 60% of the device time, else **memory**: the
elementwise work of fused kernels (each reads and writes the gates' activations; not measured in bytes
here, so read it with their mean length: a few µs is latency rather than bandwidth). On a CPU the XLA
thread pool's events stand in for the kernels: the figures are printed, no bound is named (the GRU's CPU
kernels run inside custom calls). On a GPU whose trace holds no kernels (no CUPTI), the bound is
"unknown" and the trace's lines are listed. A shape whose profile fails prints an ``error`` line and
the next one runs.

``--config 64:float32 512:bfloat16`` profiles several shapes in one process, ``--programs`` both kinds
of compiled step; one JSON line per pair, the last line the last one's. ``--out DIR`` keeps each trace
(``DIR/<cell>-<batch>-<dtype>-unroll<U>-chunk<C>-<programs>/.../perfetto_trace.json.gz``; open it at
ui.perfetto.dev).
"""

import argparse
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import jax  # noqa: E402
from _common import emit  # noqa: E402
from bench_rnn import GATES, VOCAB, flops_per_token, ours_timer, parse_config  # noqa: E402

from rnnbench.devices import train_programs  # noqa: E402
from rnnbench.models.rnn.spec import RnnConfig  # noqa: E402
from rnnbench.models.rnn.train import PROGRAMS, chunk_sizes, length_class  # noqa: E402

MATMUL = re.compile(r"gemm|cublas|cudnn|cutlass|xmma|nvjet|matmul|dot", re.I)  # cuBLAS, CUTLASS, Triton, XLA dots
COPY = re.compile(r"memcpy|memset", re.I)
DERIVED = re.compile(r"XLA|Steps|Framework|Launch|Source|CUPTI|overhead", re.I)  # a GPU's lines that are not kernels
IDLE_BOUND, MATMUL_BOUND = 0.4, 0.6


def load_trace(folder: Path) -> dict:
    """The newest Perfetto trace ``jax.profiler.trace(folder, create_perfetto_trace=True)`` wrote."""
    found = sorted(folder.glob("**/perfetto_trace.json.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no perfetto_trace.json.gz under {folder}: the profiler wrote no trace")
    with gzip.open(found[-1], "rt") as f:
        return json.load(f)


def _events(trace) -> list[dict]:
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def names(trace) -> tuple[dict, dict]:
    """``(process, thread)``: the trace's process names by pid and line (thread) names by (pid, tid)."""
    process, thread = {}, {}
    for e in _events(trace):
        if e.get("ph") == "M" and e.get("name") == "process_name":
            process[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            thread[e["pid"], e.get("tid")] = e["args"]["name"]
    return process, thread


def device_events(trace: dict) -> tuple[str, list[dict]]:
    """``(where, events)``: the complete events of the GPU's streams, or on a machine without one those of
    XLA's CPU threads, each with its ``line``. Besides its ``Stream`` lines (the kernels) a GPU's process
    may carry lines that are not kernels (CUPTI's overhead; in some viewers derived "XLA Ops" lines that
    overlap them)."""
    events, (process, thread) = _events(trace), names(trace)
    complete = [{**e, "line": thread.get((e["pid"], e.get("tid")), "")} for e in events
                if e.get("ph") == "X" and "dur" in e]
    gpus = {pid for pid, name in process.items() if name.startswith("/device:GPU")}
    if gpus:
        on_gpu = [e for e in complete if e["pid"] in gpus]
        streams = [e for e in on_gpu if e["line"].startswith("Stream")]
        # (should a profiler name its stream lines otherwise: every line but the derived ones)
        return "gpu", streams or [e for e in on_gpu if not DERIVED.search(e["line"])]
    on_xla_threads = [e for e in complete if e["line"].startswith("tf_XLA")]
    return "cpu", [e for e in on_xla_threads if not e["name"].startswith("ThunkExecutor")]  # (these wrap the ops)


def line_names(trace: dict) -> list[str]:
    """The names of the trace's processes and lines, for a trace that holds none of what was looked for."""
    process, thread = names(trace)
    return sorted({*process.values(), *thread.values()})


def kind(name: str) -> str:
    if COPY.search(name):
        return "copy"
    return "matmul" if MATMUL.search(name) else "other"


def busy_time(events: list[dict]) -> float:
    """Length of the union of the events' intervals (µs): streams run side by side."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted((e["ts"], e["ts"] + e["dur"]) for e in events):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def summarise(events: list[dict], steps: int, width: int, wall_s: float, step_flops: float) -> dict:
    """Per-step figures of the device's events over ``steps`` train steps that took ``wall_s`` and processed
    ``width`` time steps each (padding included)."""
    if not events:
        return {"kernels": 0, "bound": "unknown: no device events in the trace"}
    span = max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)
    busy = busy_time(events)
    time_of, count = dict.fromkeys(("matmul", "copy", "other"), 0.0), dict.fromkeys(("matmul", "copy", "other"), 0)
    for e in events:
        k = kind(e["name"])
        time_of[k] += e["dur"]
        count[k] += 1
    total = sum(time_of.values()) or 1.0
    busy_of_step = min(1.0, busy / (wall_s * 1e6))
    matmul_share = time_of["matmul"] / total
    if 1 - busy_of_step > IDLE_BOUND:
        bound = f"launches: the device idles {1 - busy_of_step:.0%} of the step, between kernels"
    elif matmul_share > MATMUL_BOUND:
        bound = f"the recurrent matmul: {matmul_share:.0%} of the device time in matmul kernels"
    else:
        bound = (f"memory (elementwise work): {1 - matmul_share:.0%} of the device time in fused and copy "
                 f"kernels averaging {(time_of['other'] + time_of['copy']) / max(1, count['other'] + count['copy']):.1f} µs")
    top = {}
    for e in events:
        top[e["name"]] = top.get(e["name"], 0.0) + e["dur"]
    return {
        "step_ms": round(wall_s / steps * 1e3, 3),
        "device_busy": round(busy_of_step, 3),  # of the step's wall time
        "device_span_busy": round(busy / span, 3) if span else None,  # from its first kernel to its last
        "kernels": len(events),
        "time_steps": width,
        "kernels_per_time_step": round(len(events) / (steps * width), 2),
        "mean_kernel_us": round(total / len(events), 2),
        "share": {k: round(v / total, 3) for k, v in time_of.items()},
        "matmul_tflops": round(steps * step_flops / (time_of["matmul"] * 1e-6) / 1e12, 2) if time_of["matmul"] else None,
        "top_kernels": [[n[:80], round(t / total, 3)] for n, t in sorted(top.items(), key=lambda x: -x[1])[:5]],
        "lines": sorted({e["line"] for e in events})[:8],  # the trace's lines counted: streams on a GPU
        "bound": bound,
    }


def processed_width(programs: str, tokens: int, chunk: int) -> int:
    """Time steps a step runs for a batch ``tokens`` wide: per-batch programs pad it to its length class,
    per-chunk ones read it in chunks (the last one halved where that is enough)."""
    return length_class(tokens, chunk) if programs == "per-batch" else sum(chunk_sizes(chunk, tokens))


def profile(cell, e, h, batch, tokens, dtype, unroll, chunk, programs, steps, folder: Path) -> dict:
    run = ours_timer(cell, e, h, batch, tokens, dtype, unroll, chunk, VOCAB, programs)  # compiled and warm
    untraced = run(steps)  # tokens/s without the profiler's hooks on every launch (they widen the gaps)
    options = jax.profiler.ProfileOptions()
    options.python_tracer_level = 0  # Python's frames would slow the host that launches the kernels
    with jax.profiler.trace(str(folder), create_perfetto_trace=True, profiler_options=options):
        start = time.perf_counter()
        run(steps)
        wall = time.perf_counter() - start
    trace = load_trace(folder)
    where, events = device_events(trace)
    width = processed_width(programs, tokens, chunk)
    figures = summarise(events, steps, width, wall, flops_per_token(cell, e, h) * batch * width)
    figures["untraced_step_ms"] = round(batch * tokens / untraced * 1e3, 3)
    platform = jax.devices()[0].platform
    if platform != "cpu" and where == "cpu":  # the profiler saw no device (on a GPU: CUPTI missing or failed)
        figures["bound"] = f"unknown: the trace has no {platform} kernels (its lines: {line_names(trace)[:12]})"
    elif where == "cpu":  # the GRU's CPU kernels are custom calls: no matmul kernel shows, so no verdict
        figures["bound"] = "not judged on a CPU (the trace holds XLA's thread-pool ops, not device kernels)"
    return {"where": where, **figures}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", default="gru", choices=list(GATES))
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--steps", type=int, default=3, help="train steps traced (after a warm one)")
    ap.add_argument("--chunk", type=int, default=RnnConfig().chunk)
    ap.add_argument("--config", nargs="+", default=["64:float32"], metavar="BATCH:DTYPE[:UNROLL]")
    ap.add_argument("--programs", default="auto", choices=["auto", *PROGRAMS, "both"])
    ap.add_argument("--out", type=Path, help="keep the traces here (default: a temporary folder)")
    args = ap.parse_args()
    platform = jax.devices()[0].platform
    programs = PROGRAMS if args.programs == "both" else [train_programs(args.programs, platform)]
    configs = [parse_config(c, RnnConfig().unroll) for c in args.config]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for batch, dtype, unroll in configs:
            for kind_ in programs:
                folder = root / f"{args.cell}-{batch}-{dtype}-unroll{unroll}-chunk{args.chunk}-{kind_}"
                try:
                    figures = profile(args.cell, args.embed, args.hidden, batch, args.tokens, dtype, unroll,
                                      args.chunk, kind_, args.steps, folder)
                except (Exception, SystemExit) as e:  # one failed shape must not lose the others' profiles
                    figures = {"error": f"{type(e).__name__}: {e}"[:500], "bound": "unknown: the profile failed"}
                print(f"{args.cell} B={batch} {dtype} {kind_}: {figures['bound']}", flush=True)
                emit({"cell": args.cell, "batch": batch, "dtype": dtype, "unroll": unroll, "chunk": args.chunk,
                      "programs": kind_, "device": jax.devices()[0].device_kind, **figures})


if __name__ == "__main__":
    main()
