"""``rnnbench report``: one self-contained HTML file (and a Markdown twin) from experiment folders.

Gathers whatever each folder holds: compare results (crossover table, learning curve, timing),
sweep results (summary table, figures), embedding maps and neighbour tables, and for each the
config and library versions that produced it. Images are inlined as data URIs; the page links
nothing outside itself, so it opens offline from anywhere.
"""

from __future__ import annotations

import base64
import html
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .errors import RnnbenchError
from .fileio import atomic_write_text, why_not_folder
from .outputs import markdown_table
from .runs import Run, runs_inside


@dataclass
class Section:
    title: str
    markdown: list[str] = field(default_factory=list)  # markdown blocks
    images: list[Path] = field(default_factory=list)
    config: str | None = None
    versions: dict | None = None


def _first_run(folder: Path) -> Run | None:
    """The folder itself if it is a finished run, else the first finished run of an experiment folder."""
    if Run(folder).done:
        return Run(folder)
    return next((run for run in runs_inside(folder) if run.path != folder and run.done), None)


def _versions(run: Run | None) -> dict | None:
    return run.result().versions if run is not None and run.done else None


def collect(folder: Path) -> list[Section]:
    folder = Path(folder)
    if not folder.is_dir():
        raise RnnbenchError(why_not_folder(folder))
    sections = []
    run = _first_run(folder)
    config = run.config_yaml() if run else None
    versions = _versions(run)
    forecast_md = [(folder / "forecast.md").read_text()] if (folder / "forecast.md").exists() else []
    classes = _classes_line(run)
    if (folder / "crossover.md").exists():
        imgs = [p for p in (folder / "learning_curve.png", folder / "timing.png") if p.exists()]
        sections.append(Section(f"Comparison: {folder.name}",
                                [(folder / "crossover.md").read_text(), *forecast_md, *classes], imgs, config, versions))
    elif forecast_md:  # `rnnbench forecast` on runs gathered without compare
        imgs = [p for p in (folder / "learning_curve.png",) if p.exists()]
        sections.append(Section(f"Forecast: {folder.name}", forecast_md, imgs, config, versions))
    if (folder / "sweep.md").exists():
        imgs = sorted(folder.glob("plot*.png")) + sorted(folder.glob("toy_*.png"))
        sections.append(Section(f"Sweep: {folder.name}", [(folder / "sweep.md").read_text()], imgs, config, versions))
    from .embed import MAP, NEIGHBOURS

    here = Run(folder)
    mapped = [here] if here.artifact(MAP).exists() else [r for r in runs_inside(folder) if r.artifact(MAP).exists()]
    for r in mapped:
        md = [r.artifact(NEIGHBOURS).read_text()] if r.artifact(NEIGHBOURS).exists() else []
        sections.append(Section(f"Embedding map: {r.path.name}", md, [r.artifact(MAP)], r.config_yaml() or config,
                                _versions(r) or versions))
    if not sections:
        runs = _finished_runs(folder)
        if runs:
            sections.append(Section(f"Runs: {folder.name}", [_runs_markdown(runs), *classes], [], config, versions))
    if not sections:
        raise RnnbenchError(f"{folder} has no results (no crossover.md, sweep.md, embeddings.png or finished "
                            "run): run `rnnbench compare`, `sweep`, `train` or `embed` first")
    return sections


def _classes_line(run: Run | None) -> list[str]:
    """The task's classes by name (class 0 first), as the runs stored them; none for regression or runs
    made before names were kept."""
    names = run.result().classes if run is not None and run.done else []
    return [f"Classes: {', '.join(f'{i}: {n}' for i, n in enumerate(names))}.\n"] if names else []


def _finished_runs(folder: Path) -> list[Run]:
    if Run(folder).done:
        return [Run(folder)]
    return [run for run in runs_inside(folder) if run.done]


def _runs_markdown(runs: list[Run]) -> str:
    """Single runs (``rnnbench train``), one row each: what a folder without a comparison still holds."""
    rows = []
    for run in runs:
        r = run.result()
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items()) or r.reason
        rows.append((r.model, f"{r.size:,}" if r.size else "—", r.seed, r.status, metrics, run.path.name))
    return "\n".join(markdown_table(["model", "size", "seed", "status", "test", "run"], rows, "lrrlll")) + "\n"


# ------------------------------------------------------------------------------------ markdown → html


def markdown_to_html(md: str) -> str:
    """Markdown as HTML, by markdown-it-py (CommonMark and tables): raw HTML in the text is shown, not
    run, and headings go two levels down (the page owns h1 and h2)."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(md)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 2, 6)}"
    return parser.renderer.render(tokens, parser.options, {})


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.8em}section{border-top:2px solid #eee;margin-top:2em}
code{background:#f3f3f3;padding:0 .2em}nav li{margin:.2em 0}"""


def build(folders: list[Path], out: Path) -> dict:
    """One report of every folder that holds results; folders without any are listed as skipped (an
    error only when none holds results)."""
    sections, skipped = [], []
    for f in folders:
        try:
            sections += collect(Path(f))
        except RnnbenchError as e:
            skipped.append((str(f), str(e)))
    if not sections:
        raise RnnbenchError(skipped[0][1] if len(skipped) == 1 else
                            f"none of the {len(folders)} folders holds results: " + "; ".join(s for s, _ in skipped))
    out = Path(out)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    body = [f"<h1>rnnbench report</h1><p>{len(sections)} section(s) from {len(folders)} folder(s); "
            f"rnnbench {__version__}, {stamp}.</p>", "<nav><ul>"]
    body += [f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections)]
    body.append("</ul></nav>")
    md = [f"# rnnbench report\n\n{len(sections)} section(s); rnnbench {__version__}, {stamp}.\n"]
    if skipped:
        body.append("<p>Skipped (no results): " + "; ".join(html.escape(f) for f, _ in skipped) + "</p>")
        md.append("Skipped (no results): " + "; ".join(f for f, _ in skipped) + "\n")
    for i, s in enumerate(sections):
        body.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>')
        md.append(f"\n## {s.title}\n")
        for block in s.markdown:
            body.append(markdown_to_html(block))
            md.append(re.sub(r"^#", "###", block, flags=re.M))
        for img in s.images:
            data = base64.b64encode(img.read_bytes()).decode()
            body.append(f'<img alt="{html.escape(img.name)}" src="data:image/png;base64,{data}">')
            md.append(f"![{img.name}]({os.path.relpath(img.resolve(), out.resolve().parent)})\n")
        if s.config:
            body.append(f"<details><summary>config</summary><pre>{html.escape(s.config)}</pre></details>")
            md.append(f"<details><summary>config</summary>\n\n```yaml\n{s.config}```\n</details>\n")
        if s.versions:
            v = ", ".join(f"{k} {val}" for k, val in s.versions.items())
            body.append(f"<p><small>versions: {html.escape(v)}</small></p>")
            md.append(f"versions: {v}\n")
        body.append("</section>")
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>rnnbench report</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    atomic_write_text(out, page)
    md_path = out.with_suffix(".md")
    atomic_write_text(md_path, "\n".join(md))
    return {"html": out, "markdown": md_path, "sections": len(sections), "skipped": skipped}
