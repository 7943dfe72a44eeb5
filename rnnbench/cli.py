"""``rnnbench``: a thin click layer over the library. Errors print one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from . import __version__
from .errors import RnnbenchError

SET_HELP = "Override a config value, e.g. --set rnn.hidden_dim=128 (value parsed as YAML). Repeatable."


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RnnbenchError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: finished runs are kept; run the same command again to resume.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnbench")
def main():
    """Linear model or RNN? Train, compare and sweep text models from YAML configs."""


# ---------------------------------------------------------------------------------------- data


@main.group(cls=_Group)
def data():
    """List, inspect and download data sets."""


@data.command("list")
def data_list():
    """The data set registry."""
    from .data import REGISTRY

    rows = [(i.name, ", ".join(f"{t} ({k})" for t, k in i.tasks.items()), i.size,
             i.source.url if i.source else i.origin) for i in REGISTRY.values()]
    _table(["name", "tasks", "size", "source"], rows)


def _load_from_cli(name: str, path: str | None, task: str | None, config: str | None, overrides):
    from .config import load_config
    from .experiment import load_corpus

    cfg = load_config(config, overrides)
    given = {"data.dataset": name, "data.path": path, "data.task": task}
    return load_corpus(cfg.replace(**{k: v for k, v in given.items() if v is not None}))


@data.command("info")
@click.argument("name")
@click.option("--path", help="File or folder to read (default: the downloaded or registered copy).")
@click.option("--task", help="Task to load (default: the data set's first).")
@click.option("--config", type=click.Path(), help="Read data options (columns, synthetic sizes) from a config.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def data_info(name, path, task, config, overrides):
    """Examples per split and label, token lengths, rows dropped."""
    from .data import Tokenizer

    corpus = _load_from_cli(name, path, task, config, overrides)
    t = corpus.task
    click.echo(f"{corpus.name}: task {t.name} ({t.kind}{f', {t.n_classes} classes' if t.n_classes else ''})")
    tok = Tokenizer(min_df=1)
    rows = []
    for split_name, split in (("train", corpus.train), ("test", corpus.test)):
        if t.is_regression:
            target = f"mean {split.y.mean():.3f}, std {split.y.std():.3f}"
        else:
            counts = np.bincount(split.y, minlength=t.n_classes)
            target = ", ".join(f"{c}: {n}" for c, n in enumerate(counts))
        lengths = np.array([len(tok.tokenize(x)) for x in split.texts])
        rows.append((split_name, len(split), target, f"{lengths.mean():.1f}", f"{np.median(lengths):.0f}",
                     f"{np.percentile(lengths, 99):.0f}"))
    _table(["split", "examples", "labels" if not t.is_regression else "target", "tokens mean", "median", "p99"], rows)
    click.echo(corpus.report.summary())
    for note in corpus.report.notes:
        click.echo(f"note: {note}")


@data.command("download")
@click.argument("name")
@click.option("--from", "from_file", type=click.Path(), help="Register a local copy instead of downloading.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_download(name, from_file, quiet):
    """Fetch NAME from its publisher into $RNNBENCH_DATA (default ~/.cache/rnnbench)."""
    from .data.download import download, register_local

    if from_file:
        path, corpus = register_local(name, Path(from_file))
        click.echo(f"registered {name} at {path} ({len(corpus.train)} train / {len(corpus.test)} test)")
        return
    path = download(name, quiet=quiet)
    click.echo(str(path))


# ---------------------------------------------------------------------------------------- config


@main.group(cls=_Group)
def config():
    """Inspect experiment configs."""


@config.command("show")
@click.argument("config_file", type=click.Path())
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def config_show(config_file, overrides):
    """Print the fully resolved config (defaults filled in, overrides applied)."""
    from .config import load_config

    click.echo(load_config(config_file, overrides).to_yaml(), nl=False)


@config.command("reference")
def config_reference():
    """Every config key with its type, default and meaning, as Markdown (docs/config.md)."""
    from .config import reference_markdown

    click.echo(reference_markdown(), nl=False)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of aligned lines.")
def env(as_json):
    """Versions, devices, CPU kernels, cores and folders: the first thing to paste into a bug report."""
    import json

    from .environment import environment

    facts = environment()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    width = max(map(len, facts))
    for key, value in facts.items():
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            click.echo(f"{key if i == 0 else '':<{width}}  {item}")


# ---------------------------------------------------------------------------------------- train / predict


@main.command()
@click.argument("config_file", type=click.Path())
@click.option("--model", "kind", default="linear", show_default=True, help="Model kind: linear or rnn.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--size", type=int, help="Training-set size (default: the largest of data.sizes, else all).")
@click.option("--seed", type=int, help="Seed (default: the first of experiment.seeds).")
@click.option("--out", type=click.Path(), help="Output directory (overrides experiment.output_dir).")
@click.option("--force", is_flag=True, help="Rerun even if this run is already finished.")
def train(config_file, kind, overrides, size, seed, out, force):
    """Train one model on one size and seed; print the result and, last, the run directory."""
    from .config import load_config
    from .experiment import train_one

    overrides = list(overrides) + ([f"experiment.output_dir={out}"] if out else [])
    cfg = load_config(config_file, overrides)
    outcome = train_one(cfg, kind, size=size, seed=seed, force=force)
    r = outcome.result
    if outcome.skipped:
        click.echo(f"already finished: {outcome.run.path} (use --force to rerun)")
    if not r.ok:
        click.echo(f"run failed: {r.reason}")
        click.echo(str(outcome.run.path))
        sys.exit(1)
    click.echo(f"{r.model} on {r.dataset}/{r.task.get('name')}: {r.n_train} train, "
               f"{r.n_val} validation, {r.n_test} test, seed {r.seed}")
    click.echo("chosen on validation: " + ", ".join(f"{k}={v}" for k, v in r.chosen.items()))
    if r.training:
        click.echo("training: " + ", ".join(f"{k}={v}" for k, v in r.training.items()))
    names = list(r.metrics)
    _table(["", *names], [("validation", *(f"{r.validation.get(n, float('nan')):.4f}" for n in names)),
                          ("test", *(f"{r.metrics[n]:.4f}" for n in names))])
    click.echo("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in r.timings.items()) + f"  [{r.device}]")
    click.echo(str(outcome.run.path))


@main.command()
@click.argument("run_dir", type=click.Path())
@click.argument("texts", nargs=-1)
@click.option("--file", "file_", type=click.File("r", encoding="utf-8"), help="Read texts from a file, one a line ('-' for stdin).")
@click.option("--proba", is_flag=True, help="Print every class's probability (label, p0, p1, ..., text).")
def predict(run_dir, texts, file_, proba):
    """Predict with a finished run: label and probability, or value, for each text."""
    from .experiment import predict_texts

    texts = list(texts) + ([line.rstrip("\n") for line in file_ if line.strip()] if file_ else [])
    if not texts:
        raise RnnbenchError("predict: give texts as arguments or with --file")
    model, scores = predict_texts(run_dir, texts)
    for text, s in zip(texts, scores):
        short = text if len(text) <= 60 else text[:57] + "..."
        if model.task.is_regression:
            click.echo(f"{float(s):.4f}\t{short}")
        else:
            label = int(np.argmax(s))
            probs = s if proba else s[label:label + 1]
            click.echo(f"{label}\t" + "\t".join(f"{float(v):.4f}" for v in probs) + f"\t{short}")


@main.command()
@click.argument("config_file", type=click.Path())
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--force", is_flag=True, help="Rerun finished runs too.")
@click.option("--smoke", is_flag=True, help="Apply the config's smoke overrides (tiny sizes).")
@click.option("--models", help="The models to run now, comma-separated (default: experiment.models). "
              "The tables use every finished run of either model.")
def compare(config_file, overrides, force, smoke, models):
    """Linear vs RNN on the same nested subsets for every size and seed: curves, crossover, plots."""
    from .compare import run_compare
    from .config import load_config

    cfg = load_config(config_file, overrides)
    if smoke:
        cfg = cfg.with_smoke()
    if models is not None:
        cfg = cfg.replace(**{"experiment.models": [m.strip() for m in models.split(",") if m.strip()]})
    out = run_compare(cfg, force=force)
    click.echo()
    click.echo(out["markdown"])
    click.echo(f"plots: {out['dir'] / 'learning_curve.png'}, {out['dir'] / 'timing.png'}")
    click.echo(str(out["dir"]))


@main.command()
@click.argument("config_file", type=click.Path())
@click.option("--workers", type=int, default=1, show_default=True, help="Runs at once, in separate processes.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--dry-run", is_flag=True, help="List the runs and which are already done; run nothing.")
@click.option("--smoke", is_flag=True, help="Apply the config's smoke overrides (tiny sizes).")
@click.option("--force", is_flag=True, help="Rerun finished runs too.")
def sweep(config_file, workers, overrides, dry_run, smoke, force):
    """Expand the config's sweep section into runs, run them, write sweep.csv, plots and a summary."""
    from .config import load_config
    from .sweep import expand, run_sweep, status_of, sweep_section

    cfg = load_config(config_file, overrides)
    if smoke:
        cfg = cfg.with_smoke()
    if workers < 1:
        raise RnnbenchError(f"--workers must be at least 1, got {workers}")
    if dry_run:
        if sweep_section(cfg).kind != "runs":
            click.echo(f"{cfg.sweep.kind}: one in-process experiment, nothing to list")
            return
        runs = expand(cfg)
        rows = [(", ".join(f"{k}={v}" for k, v in r.label.items()) or "-", r.seed, status_of(r), r.run().path) for r in runs]
        _table(["run", "seed", "status", "directory"], rows)
        pending = sum(1 for row in rows if row[2] == "pending")
        click.echo(f"{len(rows)} runs: {len(rows) - pending} finished, {pending} to run")
        return
    out = run_sweep(cfg, workers=workers, force=force)
    click.echo(out["markdown"])
    click.echo(str(out["dir"]))


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--top", type=int, default=1000, show_default=True, help="Map the N most frequent tokens.")
@click.option("--probe", "probes", multiple=True, help="Probe word for the neighbour table (repeatable).")
def embed(run_dir, top, probes):
    """t-SNE map of an RNN run's word embeddings, coloured by label, and nearest neighbours."""
    from .embed import run_embed

    out = run_embed(Path(run_dir), top=top, probes=probes)
    click.echo(f"embeddings.png, embeddings.csv ({out['n']} tokens) and neighbours.md "
               f"({len(out['probes_found'])} probe words found) written to")
    click.echo(str(out["dir"]))


@main.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(),
              help="The HTML file to write (a Markdown twin is written beside it).")
def report(dirs, output):
    """One self-contained HTML report (and Markdown twin) from experiment directories."""
    from .report import build

    out = build([Path(d) for d in dirs], Path(output))
    click.echo(f"{out['sections']} section(s): {out['html']} and {out['markdown']}")


# ---------------------------------------------------------------------------------------- helpers


def _table(header: list[str], rows: list[tuple]) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, r in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            click.echo("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    sys.exit(main())
