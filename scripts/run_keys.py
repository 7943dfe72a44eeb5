"""The run folder names (model, size, seed and key) of every shipped config, to check that a change of the
code leaves the run store's keys as they are (stored runs are found again) or changes them on purpose.

    python scripts/run_keys.py > before.json        # on the code before the change
    python scripts/run_keys.py --check before.json  # after it: every difference listed, exit 1 if any

For each config in configs/ (and configs/examples/): the runs `compare` makes (every registered model kind
× size × seed, as written and with --smoke), or the runs `sweep` makes. A sweep over all the data (no size)
needs its corpus to know the size; where the data is not at hand it is left out and said so on stderr.
The last line printed is one JSON object (config -> label -> run folder name).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnbench.config import load_config  # noqa: E402
from rnnbench.errors import RnnbenchError  # noqa: E402


def kinds() -> list[str]:
    try:
        from rnnbench.models import registry
    except ImportError:  # before model kinds were registered
        return ["linear", "rnn"]
    return list(registry.names())


def compare_keys(cfg) -> dict[str, str]:
    from rnnbench.runs import run_path

    return {f"{m} n{n} s{s}": run_path(cfg, m, n, s).name
            for m in kinds() for n in cfg.data.sizes for s in cfg.experiment.seeds}


def sweep_keys(cfg) -> dict[str, str]:
    from rnnbench.plan import resolve_sizes, sweep_plan
    from rnnbench.runs import run_path

    return {f"{r.model} {sorted(r.label.items())} s{r.seed}": run_path(r.cfg, r.model, r.n, r.seed).name
            for r in resolve_sizes(sweep_plan(cfg))}


def all_keys() -> dict[str, dict[str, str]]:
    out = {}
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        name = path.relative_to(ROOT / "configs").as_posix()
        for smoke in (False, True):
            cfg = load_config(path)
            if smoke:
                if not cfg.smoke:
                    continue
                cfg = cfg.with_smoke()
            label = name + (" --smoke" if smoke else "")
            try:
                if cfg.sweep is not None:
                    if cfg.sweep.kind != "runs":
                        continue
                    out[label] = sweep_keys(cfg)
                elif cfg.data.sizes:
                    out[label] = compare_keys(cfg)
            except (RnnbenchError, OSError) as e:
                print(f"{label}: left out ({e})", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", type=Path, help="a JSON file this script printed before: list the differences")
    args = ap.parse_args()
    keys = all_keys()
    if args.check is None:
        print(json.dumps(keys, indent=1, sort_keys=True))
        return 0
    before = json.loads(args.check.read_text())
    diffs = []
    for config in sorted(set(before) | set(keys)):
        a, b = before.get(config, {}), keys.get(config, {})
        for label in sorted(set(a) | set(b)):
            if label in a and a[label] != b.get(label):
                diffs.append(f"{config}: {label}: {a[label]} -> {b.get(label, 'absent')}")
    for line in diffs:
        print(line)
    compared = sum(len(v) for v in before.values())
    print(json.dumps({"configs": len(before), "runs_compared": compared, "changed": len(diffs)}))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
