"""The talk's GRU trained on IMDB with validation early stopping: test accuracy, wall time, epochs.

Runs ``configs/imdb.yaml`` at one size (default: all 22.5k training examples) through the run store,
so a killed benchmark resumes from its last checkpoint. Target: >= 89.5% test accuracy at 22.5k.
Also trains the linear baseline on the same subset for reference.
"""

import argparse
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import ROOT, emit, shared_file  # noqa: E402

from rnnbench.config import load_config  # noqa: E402
from rnnbench.experiment import train_one  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=22500)
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=["linear", "rnn"], choices=["linear", "rnn"])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(ROOT / "configs" / "imdb.yaml", [
        f"data.path={shared_file('aclImdb_v1.tar.gz')}", f"experiment.output_dir={args.out}", *args.overrides])
    figures = {"size": args.size, "seed": args.seed, "overrides": args.overrides}
    for kind in args.models:
        t = time.perf_counter()
        out = train_one(cfg, kind, size=args.size, seed=args.seed)
        r = out.result.to_dict()
        wall = time.perf_counter() - t
        print(f"{kind}: status {r['status']}, test {r.get('metrics')}, chosen {r.get('chosen')}, "
              f"wall {wall:.0f} s{' (already finished earlier)' if out.skipped else ''}; {out.run.path}", flush=True)
        if r["status"] == "ok":
            figures[f"{kind}_val_acc"] = round(r["validation"]["accuracy"], 4)
            figures[f"{kind}_test_acc"] = round(r["metrics"]["accuracy"], 4)
            figures[f"{kind}_fit_seconds"] = round(r["timings"]["fit"], 1)
    rnn = out.result.to_dict()
    if kind == "rnn" and rnn["status"] == "ok":
        figures.update(rnn_epochs=rnn["training"]["epochs_run"], rnn_best_epoch=rnn["chosen"]["best_epoch"],
                       real_token_fraction=rnn["training"]["real_token_fraction"],
                       compiled_programs=rnn["training"]["compiled_programs"], device=rnn["device"])
    emit(figures)


if __name__ == "__main__":
    main()
