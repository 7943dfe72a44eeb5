"""The GRU's training speed on real data at several batch sizes: what a larger batch buys a CPU run.

Trains ``configs/blog-gender.yaml`` (the talk's GRU, ``max_len`` 256, a 100k-word vocabulary at most) at
``--size`` posts, seed 0, once per batch size, each in its own process through the real trainer, and
stops each after ``--seconds`` of training. Its tokens/s is read from the trainer's own log between
``--skip`` seconds (the length buckets' programs compile in the first steps) and the last entry.
Reference: the first of ``--batches`` (the talk's 64), measured in the same run. Speed only: whether
the larger batch keeps validation accuracy takes whole epochs (docs/results/blog.md says what was
measured). Needs the corpus registered: ``rnnbench data download blog-authorship --from FOLDER``.

On a CPU a larger batch helps chiefly through the steps' fixed costs: Adam updates every embedding row
each step (100k × 256 here), and short posts make short, cheap batches; compare ``bench_rnn.py --vocab
100000 --tokens 48 --config 64:float32 256:float32``.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit  # noqa: E402


def train_events(out: Path) -> list[dict]:
    logs = list(out.glob("*/runs/rnn-*/metrics.jsonl"))
    if not logs:
        return []
    rows = [json.loads(x) for x in logs[0].read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("event") == "train"]


def measure(batch: int, args) -> dict:
    """tokens/s of one batch size: a fresh run in its own process, stopped after ``args.seconds``."""
    with tempfile.TemporaryDirectory(prefix="bench_rnn_batch.") as tmp:
        out = Path(tmp)
        cmd = [sys.executable, "-c", "from rnnbench.cli import main; main()", "train", str(args.config),
               "--model", "rnn", "--size", str(args.size), "--seed", "0", "--out", str(out),
               "--set", f"rnn.batch_size={batch}", "--set", "rnn.checkpoint_every_s=null"]
        log = open(out / "stderr.txt", "w")  # not a pipe: the progress bars would fill it and stall the run
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        try:
            while proc.poll() is None:
                time.sleep(2)
                events = train_events(out)
                if events and events[-1]["wall_seconds"] >= args.skip + args.seconds:
                    break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()
        events = train_events(out)
        if not events:
            sys.exit(f"batch {batch}: the run logged no training step: {(out / 'stderr.txt').read_text()[-2000:]}")
    window = [e for e in events if e["wall_seconds"] >= args.skip]
    if len(window) < 2:
        sys.exit(f"batch {batch}: fewer than two log entries after {args.skip} s; raise --seconds")
    first, last = window[0], window[-1]
    seconds = last["wall_seconds"] - first["wall_seconds"]
    tok_s = (last["tokens"] - first["tokens"]) / seconds
    print(f"batch {batch}: {tok_s:,.0f} tokens/s ({last['tokens'] - first['tokens']:,} tokens in {seconds:.0f} s, "
          f"steps {first['step']}-{last['step']})", flush=True)
    return {"tok_s": round(tok_s), "window_s": round(seconds), "steps": last["step"] - first["step"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "blog-gender.yaml")
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--seconds", type=float, default=150.0, help="training seconds measured per batch size")
    ap.add_argument("--skip", type=float, default=60.0, help="first training seconds left out (compilation)")
    args = ap.parse_args()
    results = {b: measure(b, args) for b in args.batches}
    ref = args.batches[0]
    emit({"config": args.config.name, "size": args.size, "batches": args.batches,
          "tok_s": {str(b): r["tok_s"] for b, r in results.items()},
          f"ratio_vs_{ref}": {str(b): round(r["tok_s"] / results[ref]["tok_s"], 3) for b, r in results.items()},
          "window_s": {str(b): r["window_s"] for b, r in results.items()}, "skip_s": args.skip})


if __name__ == "__main__":
    main()
