"""What pruning saves: the quickstart's GRU searched over its learning rate, once with successive halving and
once without, on the same grid, in fresh run stores.

    python scripts/bench_search.py                      # quickstart corpus, 6,000 examples, seed 0
    python scripts/bench_search.py --size 2000 --pruner hyperband

The pruned search must spend at most 60% of the unpruned one's epochs and choose the same trial. (Judged
exactly: the same settings. Were they to differ, the two chosen trials' validation scores are printed
with the seed-to-seed spread the quickstart shows at that size, to judge whether the difference is
noise.) The last line is one JSON object: trials, pruned, epochs_pruned, epochs_unpruned,
epochs_ratio, chosen_equal, and each search's chosen settings and seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, emit  # noqa: E402

GRID = [0.003, 0.01, 0.001, 0.0003, 0.0001, 0.00003]


def search(store: Path, size: int, pruner: str) -> dict:
    space = json.dumps({"rnn": {"space": {"rnn.learning_rate": GRID}, "pruner": pruner}})
    cmd = [sys.executable, "-m", "rnnbench.cli", "compare", str(ROOT / "configs" / "quickstart.yaml"), "--models", "rnn",
           "--set", f"experiment.output_dir={store}", "--set", f"data.sizes=[{size}]", "--set", "experiment.seeds=[0]",
           "--set", f"search={space}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = json.loads((store / "quickstart" / "search" / f"rnn-n{size}-s0.json").read_text())
    return {"summary": summary, "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=6000)
    ap.add_argument("--pruner", default="halving", choices=["halving", "hyperband"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rnnbench-bench-search-") as tmp:
        unpruned = search(Path(tmp) / "plain", args.size, "none")
        pruned = search(Path(tmp) / "pruned", args.size, args.pruner)
    figures = {}
    for name, s in (("unpruned", unpruned), ("pruned", pruned)):
        summary = s["summary"]
        for t in summary["trials"]:
            print(f"{name:8s} trial {t['number']}: {t['params']} {t['state']}, {t['epochs']} epoch(s), "
                  f"validation {t['value']}", flush=True)
        figures[name] = {"epochs": summary["budget"]["epochs"], "pruned": summary["budget"]["pruned"],
                         "chosen": summary["chosen"]["params"], "value": summary["chosen"]["value"],
                         "seconds": round(s["seconds"], 1)}
    emit({"size": args.size, "pruner": args.pruner, "trials": len(GRID), "pruned": figures["pruned"]["pruned"],
          "epochs_pruned": figures["pruned"]["epochs"], "epochs_unpruned": figures["unpruned"]["epochs"],
          "epochs_ratio": round(figures["pruned"]["epochs"] / max(figures["unpruned"]["epochs"], 1), 3),
          "chosen_equal": figures["pruned"]["chosen"] == figures["unpruned"]["chosen"],
          "chosen_pruned": figures["pruned"]["chosen"], "chosen_unpruned": figures["unpruned"]["chosen"],
          "value_pruned": figures["pruned"]["value"], "value_unpruned": figures["unpruned"]["value"],
          "seconds_pruned": figures["pruned"]["seconds"], "seconds_unpruned": figures["unpruned"]["seconds"]})


if __name__ == "__main__":
    main()
