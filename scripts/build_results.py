"""Rebuild every published table and plot from the results archives in `results/` alone: no training, no
data sets (`make results`).

    python scripts/build_results.py            # rewrite the generated blocks of docs/results/*.md and their plots
    python scripts/build_results.py --check    # only compare: exit 1, listing each block that differs

Each archive (`rnnbench export results`) is imported into a scratch run store and tabled as `compare`
tables it, with the config its runs were made with (the manifest's) and the runs it holds (the newest of
each model kind, size and seed). A results page marks each generated block:

    <!-- results: quickstart/crossover.md -->
    ... (replaced by that file of the rebuilt experiment, its title line left out) ...
    <!-- end results -->

and names its plots `<experiment>_<plot>.png` beside it (`quickstart_learning_curve.png` is the rebuilt
`quickstart/learning_curve.png`), which are redrawn. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnbench.archive import import_results  # noqa: E402
from rnnbench.compare import write_outputs  # noqa: E402
from rnnbench.config import from_dict  # noqa: E402
from rnnbench.curves import rows_from_experiment  # noqa: E402
from rnnbench.data import Task  # noqa: E402

RESULTS, PAGES = ROOT / "results", ROOT / "docs" / "results"
BLOCK = re.compile(r"(<!-- results: ([\w.-]+)/([\w.-]+) -->\n)(.*?)(<!-- end results -->)", re.S)


def rebuild(archive: Path, store: Path) -> Path:
    """The experiment of ``archive`` tabled afresh in ``store``; its folder."""
    done = import_results(archive, store)
    manifest, folder = done["manifest"], done["dir"]
    raw = manifest["config"]
    raw["experiment"]["output_dir"] = str(store)
    cfg = from_dict(raw)
    rows, task, _ = rows_from_experiment(folder)
    rows = [r for r in rows if r["size"] in cfg.data.sizes and r["seed"] in cfg.experiment.seeds]
    write_outputs(cfg, Task(task.get("name") or "", task.get("kind") or "binary", task.get("n_classes") or 0), rows)
    return folder


def block_text(generated: Path) -> str:
    """A generated Markdown file as a page shows it: its title line left out, its sections one level down."""
    lines = generated.read_text().splitlines()[1:]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return "\n".join("#" + x if x.startswith("## ") else x for x in lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the pages; write nothing")
    args = ap.parse_args()
    archives = sorted(RESULTS.glob("*.tar.gz"))
    differ, blocks, plots = [], 0, 0
    with tempfile.TemporaryDirectory(prefix="rnnbench-results-") as tmp:
        built = {}
        for archive in archives:
            folder = rebuild(archive, Path(tmp))
            built[folder.name] = folder
            print(f"{archive.relative_to(ROOT)}: {folder.name} rebuilt", flush=True)
        for page in sorted(PAGES.glob("*.md")):
            text = page.read_text()

            def fill(m: re.Match, page: Path = page) -> str:
                nonlocal blocks
                study, name = m.group(2), m.group(3)
                if study not in built:
                    differ.append(f"{page.name}: block {study}/{name}: no archive results/{study}.tar.gz")
                    return m.group(0)
                new = block_text(built[study] / name)
                blocks += 1
                if new != m.group(4):
                    differ.append(f"{page.name}: block {study}/{name} differs from the rebuilt one")
                return m.group(1) + new + m.group(5)

            new_text = BLOCK.sub(fill, text)
            if not args.check and new_text != text:
                page.write_text(new_text)
            for study, folder in built.items():
                for png in folder.glob("*.png"):
                    target = PAGES / f"{study}_{png.name}"
                    if f"]({target.name})" in text:
                        plots += 1
                        if not args.check:
                            shutil.copyfile(png, target)
    for line in differ:
        print(line, flush=True)
    print(json.dumps({"archives": len(archives), "blocks": blocks, "plots": plots, "differ": len(differ),
                      "checked": args.check}))
    return 1 if differ and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
