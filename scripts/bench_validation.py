"""What a validation split is worth on grouped data: the Kish effective number of validation groups (authors)
of a config's split, before and after its grouped-validation options (data.val_groups,
data.val_max_per_group), the smallest over seeds.

    python scripts/bench_validation.py                                  # configs/blog-gender.yaml, seeds 0-2
    python scripts/bench_validation.py --config configs/blog-age.yaml --seeds 0 1 2

Before: the same config with both options null (validation by rows: data.val_fraction, data.val_max).
Also: validation rows and groups, the largest group's share, and the training pool left (the largest
size a run can have). The last line is one JSON object with `effective_groups_before` and
`effective_groups_after` (target: at least 200 after).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SHARED, emit  # noqa: E402

from rnnbench.config import load_config  # noqa: E402
from rnnbench.data.subsets import effective_groups, subset_indices  # noqa: E402
from rnnbench.experiment import load_corpus  # noqa: E402


def split_stats(corpus, d, seed: int, val_groups, cap) -> dict:
    groups, y = corpus.train.groups, corpus.train.y
    _, val, pool = subset_indices(y, corpus.task.is_regression, seed, None, d.val_fraction, d.val_max, groups,
                                  val_groups, cap)
    counts = np.unique(groups[val], return_counts=True)[1]
    return {"rows": int(len(val)), "groups": int(len(counts)), "effective": effective_groups(groups[val]),
            "largest_share": float(counts.max() / len(val)), "pool": int(pool)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "blog-gender.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    path = SHARED / "blog-authorship"
    overrides = [f"data.path={path}"] if path.exists() else []
    cfg = load_config(args.config, overrides)
    corpus = load_corpus(cfg)
    if corpus.train.groups is None:
        sys.exit(f"{args.config}: its data set has no groups")
    d = cfg.data
    rows = []
    for seed in args.seeds:
        before = split_stats(corpus, d, seed, None, None)
        after = split_stats(corpus, d, seed, d.val_groups, d.val_max_per_group)
        rows.append((seed, before, after))
        for name, s in (("before", before), ("after", after)):
            print(f"seed {seed} {name:6s}: {s['rows']:,} validation rows from {s['groups']:,} groups, worth "
                  f"{s['effective']:.0f} (the largest group {100 * s['largest_share']:.1f}% of the rows); "
                  f"training pool {s['pool']:,}", flush=True)
    emit({"config": Path(args.config).stem, "seeds": args.seeds, "val_groups": d.val_groups,
          "val_max_per_group": d.val_max_per_group,
          "effective_groups_before": round(min(b["effective"] for _, b, _ in rows), 1),
          "effective_groups_after": round(min(a["effective"] for _, _, a in rows), 1),
          "validation_rows_after": min(a["rows"] for _, _, a in rows),
          "largest_group_share_before": round(max(b["largest_share"] for _, b, _ in rows), 3),
          "largest_group_share_after": round(max(a["largest_share"] for _, _, a in rows), 3),
          "pool_after": min(a["pool"] for _, _, a in rows)})


if __name__ == "__main__":
    main()
