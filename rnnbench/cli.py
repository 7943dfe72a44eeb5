"""``rnnbench``: a thin click layer over the library. Errors print one line and exit 2; the exit codes are
``errors.EXIT_CODES``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__, models
from .errors import EXIT_CODES, EXIT_INTERRUPTED, EXIT_OS_ERROR, EXIT_RUNS_FAILED, RnnbenchError

log = logging.getLogger("rnnbench.cli")  # by name: also when run as `python -m rnnbench.cli`
SET_HELP = "Override a config value, e.g. --set rnn.hidden_dim=128 (value parsed as YAML). Repeatable."


class _Group(click.Group):
    def invoke(self, ctx):
        from .termination import Terminated

        try:
            return super().invoke(ctx)
        except RnnbenchError as e:
            click.echo(f"Error: {_one_line(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: finished runs are kept; run the same command again to resume.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated as e:
            click.echo(f"Terminated (SIGTERM): {e.args[0] if e.args else 'stopped'}; finished runs are kept: "
                       "run the same command again to resume.", err=True)
            ctx.exit(e.exit_code)
        except BrokenPipeError:  # the reader left (`| head`): no error, and no one to say it to
            import os

            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit, flushing stdout
            except (OSError, ValueError):  # not a file (a test's runner)
                pass
            ctx.exit(141)  # 128 + SIGPIPE: what a shell reports for a command whose reader left
        except OSError as e:  # the machine, not the input: a full disk, a read-only or vanished folder
            click.echo(f"Error: {_one_line(_os_error(e))}", err=True)
            ctx.exit(EXIT_OS_ERROR)


def _one_line(message: str) -> str:
    """A message on one line, whatever it quotes (a key or a value with a line break in it, escaped)."""
    parts = message.splitlines()
    if len(parts) <= 1 and not message.endswith(("\n", "\r")):
        return message
    return "".join(c if (c + "x").splitlines() == [c + "x"] else repr(c)[1:-1] for c in message)


def _os_error(e: OSError) -> str:
    """One line for a failed read or write, with what to do."""
    import errno

    what = e.strerror or (str(e).splitlines() or [type(e).__name__])[0]
    where = f": {e.filename}" if e.filename else ""
    hint = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
            errno.EROFS: "choose a writable folder", errno.EACCES: "choose a writable folder"}.get(e.errno)
    if e.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):  # the path, not the machine: running again won't do
        return f"{what}{where} (a file or folder is in the way: choose another path)"
    rerun = "; nothing finished was lost: run the same command again to resume"
    return f"{what}{where}" + (f" ({hint}{rerun})" if hint else f" ({rerun[2:]})")


EXIT_HELP = "Exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()) + "."


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
@click.version_option(__version__, prog_name="rnnbench")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr: no progress lines, notes or "
              "per-run lines (results still print).")
@click.option("-v", "--verbose", is_flag=True, help="Debug messages on stderr too.")
def main(quiet, verbose):
    """Linear model or RNN? Train, compare and sweep text models from YAML configs.

    Shell completion: eval "$(_RNNBENCH_COMPLETE=bash_source rnnbench)" in ~/.bashrc (zsh_source, fish_source).
    """
    from .log import DEFAULT, QUIET, VERBOSE, configure
    from .termination import install

    if quiet and verbose:
        raise RnnbenchError("-q/--quiet and -v/--verbose: give one of them")
    configure(QUIET if quiet else VERBOSE if verbose else DEFAULT)  # library messages: text alone, on stderr
    install()  # SIGTERM: a checkpoint at the next safe point, then exit 143


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
    if name is None and config is None:
        raise RnnbenchError("data info: give a data set NAME (`rnnbench data list`), or --config CONFIG")
    if name is not None and config is not None and _sets_dataset(config, overrides) and cfg.data.dataset != name:
        raise RnnbenchError(f"data info: NAME '{name}' disagrees with data.dataset '{cfg.data.dataset}' of "
                            f"{config}: leave NAME out to read the config's data set, or fix one of them")
    given = {"data.dataset": name, "data.path": path, "data.task": task}
    cfg = cfg.replace(**{k: v for k, v in given.items() if v is not None})
    return cfg, load_corpus(cfg)


def _sets_dataset(config: str, overrides) -> bool:
    """Whether the config file (or a --set) names data.dataset itself, rather than leaving the default."""
    import yaml

    raw = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
    data = raw.get("data") if isinstance(raw, dict) else None
    return (isinstance(data, dict) and "dataset" in data) or any(
        o.partition("=")[0].strip() == "data.dataset" for o in overrides)


@data.command("info")
@click.argument("name", required=False)
@click.option("--path", help="File or folder to read (default: the downloaded or registered copy).")
@click.option("--task", help="Task to load (default: the data set's first).")
@click.option("--config", type=click.Path(), help="Read the data set and its options (columns, labels, synthetic "
              "sizes) from a config; NAME may then be left out.")
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
def data_info(name, path, task, config, overrides):
    """Examples per split and label, token lengths, rows dropped. NAME may be left out with --config."""
    from .data import Tokenizer

    cfg, corpus = _load_from_cli(name, path, task, config, overrides)
    t = corpus.task
    names = t.class_names
    classes = f", {t.n_classes} classes: {', '.join(names)}" if t.n_classes else ""
    click.echo(f"{corpus.name}: task {t.name} ({t.kind}{classes})")
    tok = Tokenizer(min_df=1)
    rows = []
    for split_name, split in (("train", corpus.train), ("test", corpus.test)):
        if t.is_regression:
            target = f"mean {split.y.mean():.3f}, std {split.y.std():.3f}"
        else:
            counts = np.bincount(split.y, minlength=t.n_classes)
            target = ", ".join(f"{names[c]}: {n}" for c, n in enumerate(counts))
        lengths = np.array([len(tok.tokenize(x)) for x in split.texts])
        rows.append((split_name, len(split), target, f"{lengths.mean():.1f}", f"{np.median(lengths):.0f}",
                     f"{np.percentile(lengths, 99):.0f}"))
    _table(["split", "examples", "labels" if not t.is_regression else "target", "tokens mean", "median", "p99"], rows)
    from .experiment import subsets_for

    seed = cfg.experiment.seeds[0]
    try:
        sub = subsets_for(cfg, corpus, None, seed)
        click.echo(f"validation: {len(sub.val):,} of the {len(corpus.train):,} training examples (data.val_fraction "
                   f"{cfg.data.val_fraction:g}, at most data.val_max {cfg.data.val_max:,}; seed {seed}), so the "
                   f"largest training size (--size, data.sizes) is {sub.pool_size:,}")
    except RnnbenchError as e:
        click.echo(f"validation: none can be carved out ({e})")
    for line in corpus.report.lines():  # the summary, then warnings and notes
        click.echo(line)


@data.command("download")
@click.argument("name")
@click.option("--from", "from_file", type=click.Path(), help="Register a local copy instead of downloading.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def data_download(name, from_file, quiet):
    """Fetch NAME from its publisher into $RNNBENCH_DATA (default $XDG_CACHE_HOME/rnnbench, ~/.cache/rnnbench)."""
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


@config.command("list")
def config_list():
    """The configs that ship with rnnbench (the checkout's configs/): name and what each is."""
    from .shipped import describe, shipped

    _table(["name", "what"], [(name, describe(path)) for name, path in shipped().items()])


@config.command("copy")
@click.argument("name")
@click.argument("dest", type=click.Path(), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def config_copy(name, dest, force):
    """Copy the shipped config NAME (`rnnbench config list`) to DEST, a folder (default: here) or a
    file; print the file written. Then: rnnbench compare FILE."""
    from .shipped import copy

    click.echo(str(copy(name, dest, force=force)))


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
@click.option("--model", "kind", default="linear", show_default=True,
              help="Model kind: any registered one (linear, rnn, ...).")
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
    models.get(kind, "--model")
    outcome = train_one(cfg, kind, size=size, seed=seed, force=force)
    r = outcome.result
    if outcome.skipped:
        click.echo(f"already finished: {outcome.run.path} (use --force to rerun)")
    if not r.ok:
        click.echo(f"run failed: {r.reason}")
        click.echo(str(outcome.run.path))
        sys.exit(EXIT_RUNS_FAILED)
    click.echo(f"{r.model} on {r.dataset}/{r.task.get('name')}: {r.n_train} train, "
               f"{r.n_val} validation, {r.n_test} test, seed {r.seed}")
    if r.classes:
        click.echo("classes: " + ", ".join(r.classes))
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
@click.option("--file", "file_", type=click.File("rb"), help="Read texts from a file, one a line ('-' for stdin); "
              "empty lines are skipped and bytes that are not UTF-8 replaced, each counted on stderr.")
@click.option("--proba", is_flag=True, help="Print every class's probability (label, then one per class in the "
              "run's class order, then the text).")
def predict(run_dir, texts, file_, proba):
    """Predict with a finished run: label and probability, or value, for each text."""
    from .experiment import load_model
    from .runs import Run

    if not texts and not file_:
        raise RnnbenchError("predict: give texts as arguments or with --file")
    try:
        model = load_model(run_dir)
    except RnnbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or missing model file fails in many ways; one line
        raise RnnbenchError(f"{run_dir}: its saved model cannot be loaded ({type(e).__name__}: "
                            f"{(str(e).splitlines() or ['?'])[0]}); rerun that run with --force") from None
    result, shown = Run(run_dir).result(), 0
    names = _class_names(result, model)
    # a batch at a time: a file (or stdin) that never ends streams through in bounded memory
    for batch in _batches(list(texts), _file_texts(file_) if file_ else iter(())):
        _print_predictions(model, result, names, batch, proba, header=shown == 0)
        shown += len(batch)
    if not shown:
        raise RnnbenchError("predict: give texts as arguments or with --file")


PREDICT_BATCH = 4096  # texts predicted at once
MAX_LINE = 16 << 20  # bytes a text of predict --file may have (a file with no line breaks is not texts)


def _batches(first: list[str], more):
    batch = first
    for text in more:
        batch.append(text)
        if len(batch) >= PREDICT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _print_predictions(model, result, names: list[str], texts: list[str], proba: bool, header: bool) -> None:
    from .metrics import decide

    scores = model.predict_scores(texts)
    if model.task.is_regression:
        labels = None
    else:  # the run's decision rule: a threshold metric's, chosen on validation; else the most probable class
        labels = decide(np.asarray(scores), result.decision)
        if result.decision and header:
            rule = (f"threshold {result.decision['threshold']:.4f} on {names[1]}" if "threshold" in result.decision
                    else "class weights " + ", ".join(f"{w:g}" for w in result.decision["weights"]))
            click.echo(f"note: labels by the run's {result.decision['metric']} rule ({rule})", err=True)
        if proba and header:
            click.echo("\t".join(["label", *(f"p({n})" for n in names[:model.task.n_classes]), "text"]))
    for i, (text, s) in enumerate(zip(texts, scores)):
        short = text if len(text) <= 60 else text[:57] + "..."
        if labels is None:
            click.echo(f"{float(s):.4f}\t{short}")
        else:
            label = int(labels[i])
            probs = s if proba else s[label:label + 1]
            click.echo(f"{names[label]}\t" + "\t".join(f"{float(v):.4f}" for v in probs) + f"\t{short}")


def _file_texts(f):
    """The texts of ``predict --file``, one a line, as they are read: empty lines skipped and bytes that are
    not UTF-8 replaced, each counted on stderr at the end (the output keeps one line per text); a line longer
    than :data:`MAX_LINE` (a file with no line breaks, an endless device) is a one-line error."""
    from .data import LoadReport

    report, empty, name = LoadReport(), [], getattr(f, "name", "--file")
    for i, raw in enumerate(iter(lambda: f.readline(MAX_LINE + 1), b""), 1):
        if len(raw) > MAX_LINE:
            raise RnnbenchError(f"predict --file {name}: line {i} is longer than {MAX_LINE >> 20} MB: not one text "
                                "a line")
        line = report.decode(raw).rstrip("\r\n")
        if line.strip():
            yield line
        else:
            empty.append(i)
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        log.info(f"note: {name}: skipped {len(empty)} empty line(s) (line {shown})")
    if report.non_utf8:
        log.info(f"note: {name}: {report.non_utf8} line(s) had bytes that are not UTF-8 (replaced)")


def _class_names(result, model) -> list[str]:
    """The run's class names (stored in result.json), else the task's (numbers for runs stored before)."""
    stored = result.classes
    return stored if len(stored) >= model.task.n_classes else model.task.class_names


def _executor_flag(ctx, param, value):
    """The flags only the executor reads go to ``ctx.meta``, not to the command's parameters."""
    ctx.meta.setdefault("rnnbench.executor", {})[param.name] = value
    return value


def _executor_options(f):
    """--executor, --workers, --gpus-per-run, --address, --threads and Slurm's --partition, --time-min,
    --array-parallelism, --sbatch (compare and sweep; docs/distributed.md)."""
    later = {"expose_value": False, "callback": _executor_flag}
    for option in reversed([
        click.option("--executor", type=click.Choice(["local", "ray", "slurm"]), help="Where runs execute: local "
                     "(this machine), ray (a Ray cluster; pip install -e '.[ray]') or slurm (a job per run, "
                     "submitit; pip install -e '.[slurm]'). Default: compute.executor."),
        click.option("--workers", type=int, help="Runs at once (local: processes; ray: tasks in flight; slurm: jobs "
                     "queued). Default: compute.workers (local 1, in this process; ray and slurm as many as fit)."),
        click.option("--gpus-per-run", type=float, help="GPUs of each RNN run; fractions share a GPU "
                     "(0.25: four runs per GPU). Default: local one per worker, ray 1 if the cluster has GPUs."),
        click.option("--address", help="ray: the cluster, auto or HOST:PORT of its head (default: a local Ray)."),
        click.option("--threads", type=int, **later, help="CPU threads of each run, the CPUs a Ray task or Slurm "
                     "job reserves. Default: compute.threads (local: the usable cores; ray, slurm: 1)."),
        click.option("--partition", **later, help="slurm: the partition. Default: compute.slurm_partition."),
        click.option("--time-min", type=int, **later, help="slurm: each job's time limit in minutes. Default: "
                     "compute.slurm_time_min."),
        click.option("--array-parallelism", type=int, **later, help="slurm: one job array, this many jobs at once. "
                     "Default: compute.slurm_array_parallelism (none: a job per run)."),
        click.option("--sbatch", multiple=True, metavar="KEY=VALUE", **later, help="slurm: an sbatch option "
                     "(account=lab, qos=high, mem=16G); repeatable. Added to compute.slurm_options."),
    ]):
        f = option(f)
    return f


def _executor_spec(cfg, executor, workers, gpus_per_run, address):
    from .executor import ExecutorSpec, preflight

    flags = click.get_current_context().meta.get("rnnbench.executor", {})
    spec = ExecutorSpec.resolve(cfg.compute, executor, workers, gpus_per_run, address, **flags)
    preflight(spec, cfg.compute.device)  # bad flags fail here, before any data is read
    return spec


@main.command()
@click.argument("config_file", type=click.Path())
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--force", is_flag=True, help="Rerun finished runs too.")
@click.option("--smoke", is_flag=True, help="Apply the config's smoke overrides (tiny sizes).")
@_executor_options
@click.option("--models", "kinds", help="The model kinds to run now, comma-separated (default: experiment.models). "
              "The tables use every finished run of any kind.")
@click.option("--tables-only", is_flag=True, help="Run nothing: write the tables and plots from the runs "
              "already finished (here, on other machines, or by an earlier command).")
def compare(config_file, overrides, force, smoke, executor, workers, gpus_per_run, address, kinds, tables_only):
    """Model kinds (experiment.models) on the same nested subsets for every size and seed, each against
    the baseline (experiment.baseline): curves, crossovers, forecast, plots."""
    from .compare import run_compare
    from .config import load_config

    if tables_only and force:
        raise RnnbenchError("--tables-only runs nothing, so --force has nothing to rerun: use one of them")
    cfg = load_config(config_file, overrides)
    if smoke:
        cfg = cfg.with_smoke()
    if kinds is not None:
        kinds = models.check_names([m.strip() for m in kinds.split(",") if m.strip()], "--models")
        if not kinds:
            raise RnnbenchError("--models: name at least one model kind (known: " + ", ".join(models.names()) + ")")
    spec = _executor_spec(cfg, executor, workers, gpus_per_run, address)
    out = run_compare(cfg, force=force, executor=spec, run=not tables_only, kinds=kinds)
    click.echo()
    click.echo(out["markdown"])
    click.echo(f"plots: {out['dir'] / 'learning_curve.png'}, {out['dir'] / 'timing.png'}")
    click.echo(str(out["dir"]))
    _exit_if_failed(out["failed"])


@main.command()
@click.argument("experiment_dir", type=click.Path())
@click.option("--family", default="power", show_default=True,
              help="Curve shape: power (a·n^-b + c), exp, logpower or vapor (docs/forecast.md).")
@click.option("--metric", help="Forecast this test metric (default: the experiment's, as compare decides on it); "
              "another one is written to forecast-<metric>.* beside compare's files.")
def forecast(experiment_dir, family, metric):
    """Forecast each model's learning curve and the crossover to 100x the largest size, from an experiment
    folder's finished runs: forecast.json, forecast.md, learning_curve.png."""
    from .forecast import run_forecast

    out = run_forecast(Path(experiment_dir), family_name=family, metric=metric)
    for note in out["notes"]:
        log.info(f"note: {note}")
    click.echo(out["markdown"])
    click.echo(str(out["dir"]))


@main.command()
@click.argument("config_file", type=click.Path())
@_executor_options
@click.option("--set", "overrides", multiple=True, help=SET_HELP)
@click.option("--dry-run", is_flag=True, help="List the runs and which are already done; run nothing.")
@click.option("--smoke", is_flag=True, help="Apply the config's smoke overrides (tiny sizes).")
@click.option("--force", is_flag=True, help="Rerun finished runs too.")
def sweep(config_file, executor, workers, gpus_per_run, address, overrides, dry_run, smoke, force):
    """Expand the config's sweep section into runs, run them, write sweep.csv, plots and a summary."""
    from .config import load_config
    from .plan import sweep_plan, sweep_section
    from .sweep import run_sweep, status_of

    cfg = load_config(config_file, overrides)
    if smoke:
        cfg = cfg.with_smoke()
    if dry_run:
        if sweep_section(cfg).kind != "runs":
            click.echo(f"{cfg.sweep.kind}: one in-process experiment, nothing to list")
            return
        runs = sweep_plan(cfg)
        rows = [(r.point() or "-", r.seed, status_of(r), r.run.path) for r in runs]
        _table(["run", "seed", "status", "directory"], rows)
        pending = sum(1 for row in rows if row[2] == "pending")
        click.echo(f"{len(rows)} runs: {len(rows) - pending} finished, {pending} to run")
        return
    spec = _executor_spec(cfg, executor, workers, gpus_per_run, address)
    out = run_sweep(cfg, force=force, executor=spec)
    click.echo(out["markdown"])
    click.echo(str(out["dir"]))
    _exit_if_failed(sum(row["status"] == "failed" for row in out["rows"]))


def _exit_if_failed(failed: int) -> None:
    """After the tables: exit EXIT_RUNS_FAILED when they list a failed run, so scripts and CI can tell."""
    if failed:
        log.warning(f"{failed} run(s) failed (listed above): exit {EXIT_RUNS_FAILED}")
        sys.exit(EXIT_RUNS_FAILED)


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
    for folder, why in out["skipped"]:
        log.warning(f"skipped {folder}: {why}")
    click.echo(f"{out['sections']} section(s): {out['html']} and {out['markdown']}")


@main.command()
@click.argument("target", type=click.Path())
@click.option("--set", "overrides", multiple=True, help=SET_HELP + " (with a CONFIG)")
@click.option("--smoke", is_flag=True, help="With a CONFIG: its smoke overrides.")
@click.option("--trials", is_flag=True, help="Every search trial: its settings, state and validation curve.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (runs with their state, where, progress "
              "and result; counts) for scripts and dashboards.")
def status(target, overrides, smoke, trials, as_json):
    """The runs of an experiment: done, running (where, epoch, step, validation, tokens/s, ETA), stale
    claims, failed (why), to do. TARGET: the experiment folder, or its CONFIG (then runs not started
    yet are listed too)."""
    from .status import collect, planned_runs, render, search_lines

    path = Path(target)
    if path.is_file():
        from .config import load_config
        from .runs import experiment_dir

        cfg = load_config(path, overrides)
        cfg = cfg.with_smoke() if smoke else cfg
        states, folder = collect(path, planned_runs(cfg), cfg.compute.lease_timeout), experiment_dir(cfg)
    else:
        if not path.exists():
            raise RnnbenchError(f"{target}: no such experiment folder or config")
        states, folder = collect(path), path
    if as_json:
        import json

        from .status import as_json as status_json

        click.echo(json.dumps(status_json(states), indent=2, allow_nan=False))
        return
    for line in render(states) + search_lines(folder, trials):
        click.echo(line)


@main.group(cls=_Group)
def export():
    """Export runs: a results archive, or to other tools."""


@export.command("results")
@click.argument("experiment_dir", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(), help="The archive to write (.tar.gz).")
@click.option("--max-points", type=int, default=200, show_default=True,
              help="At most this many training-curve lines per run's metrics log (0: all).")
def export_results_cmd(experiment_dir, out, max_points):
    """One archive of an experiment's finished runs without weights: configs, results, metrics logs, test
    predictions and a manifest. `rnnbench import` unpacks it into any run store."""
    from .archive import export_results

    if max_points < 0:
        raise RnnbenchError(f"--max-points must be 0 (all) or more, got {max_points}")
    done = export_results(Path(experiment_dir), Path(out), max_points or None)
    click.echo(f"{done['runs']} run(s), {done['bytes'] / 1e6:.2f} MB: {done['path']}")


@main.command("import")
@click.argument("archive", type=click.Path())
@click.option("--into", type=click.Path(), default="runs", show_default=True,
              help="The run store (an experiment.output_dir) to unpack into.")
def import_cmd(archive, into):
    """Unpack a results archive (`rnnbench export results`) into a run store: its runs count in compare
    --tables-only, forecast, report and status; runs already there are kept."""
    from .archive import import_results

    done = import_results(Path(archive), Path(into))
    click.echo(f"{len(done['added'])} run(s) added, {len(done['kept'])} already there: {done['dir']}")


@export.command("tensorboard")
@click.argument("target", type=click.Path(exists=True))
@click.option("-o", "--out", type=click.Path(), help="Where to write (default: <experiment>/tensorboard).")
def export_tensorboard_cmd(target, out):
    """TensorBoard event files from the runs' metrics.jsonl, one TensorBoard run per run (tensorboardX)."""
    from .export import export_tensorboard

    done = export_tensorboard(Path(target), Path(out) if out else None)
    click.echo(f"{done['runs']} run(s), {done['scalars']} scalars: tensorboard --logdir {done['dir']}")


@export.command("mlflow")
@click.argument("target", type=click.Path(exists=True))
@click.option("--tracking-uri", help="The MLflow tracking store: a URI or a folder (default: $MLFLOW_TRACKING_URI, "
              "else ./mlruns).")
def export_mlflow_cmd(target, tracking_uri):
    """One MLflow run per run: settings as parameters, the metrics log as step metrics, tags, the learning
    curve; exporting again updates the MLflow runs (pip install -e '.[mlflow]')."""
    from .export import export_mlflow

    done = export_mlflow(Path(target), tracking_uri)
    click.echo(f"{done['runs']} run(s) ({done['created']} new, {done['updated']} updated), {done['metrics']} metric "
               f"values: MLflow experiment {done['experiment']} at {done['uri']}")


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
