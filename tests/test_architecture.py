"""The package's structure, as docs/design/architecture.md states it: no import cycle (imports inside
functions count), no module reaching for another's private names, one owner of a run folder's files,
short functions, and model kinds that come from the registry alone."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnnbench"
RUN_FILES = {"DONE", "metrics.jsonl", "result.json", "config.yaml", "checkpoints"}  # runs.py's alone
LONGEST = 80  # lines a function may take without saying why in its docstring


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import of ``name``, inside functions too."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, []) if sub in known else (base, [a.name]))
    return [(m, n) for m, n in out if m.split(".")[0] == "rnnbench"]


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for name, path in known.items():
        targets = set()
        for mod, _ in imports(name, path, known):
            while mod and mod not in known:
                mod = mod.rpartition(".")[0]
            # a module's own package (its __init__) is not an edge: Python runs it first anyway
            if mod and mod != name and not name.startswith(mod + "."):
                targets.add(mod)
        edges[name] = targets
    return edges


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_no_module_takes_another_modules_private_names():
    known = modules()
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for mod, names in imports(name, path, known):
            found += [f"{name} imports {mod}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("rnnbench"):
                        aliases[(a.asname or a.name).split(".")[0]] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and f"{name.rpartition('.')[0]}.{aliases[node.value.id]}" in known):
                found.append(f"{name} reads {node.value.id}.{node.attr}")
    assert not found, found


def test_only_runs_py_names_the_files_of_a_run_folder():
    found = []
    for name, path in modules().items():
        if name == "rnnbench.runs":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in RUN_FILES:
                found.append(f"{name}:{node.lineno}: {node.value!r}")
    assert not found, found


def test_long_functions_say_why():
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if length > LONGEST and "long" not in doc.lower():
                    found.append(f"{name}.{node.name}: {length} lines")
    assert not found, found


def test_config_and_registry_load_neither_jax_nor_scikit_learn():
    code = ("import sys; import rnnbench.config, rnnbench.models, rnnbench.runs\n"
            "from rnnbench.config import load_config\n"
            "cfg = load_config(None, ['rnn.hidden_dim=8', 'linear.C=[1.0]'])\n"
            "print(sorted(m for m in ('jax', 'sklearn', 'flax', 'optax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_registered_kind_has_its_section_key_and_class():
    from rnnbench import models
    from rnnbench.config import Config
    from rnnbench.runs import hashed_settings

    cfg = Config()
    for kind in models.kinds():
        assert hasattr(cfg, kind.name) and isinstance(getattr(cfg, kind.name), kind.section)
        assert set(kind.key_sections) <= set(cfg.to_dict())
        settings = hashed_settings(cfg.to_dict(), kind.name)
        assert set(settings) == set(kind.key_sections)
        assert ("max_len" in settings["data"]) == kind.sequence
        cls = kind.model_class()
        assert all(hasattr(cls, m) for m in ("from_config", "fit", "predict_scores", "save", "load"))


def test_an_unknown_kind_is_never_hashed_as_another():
    from rnnbench.config import Config
    from rnnbench.errors import RnnbenchError
    from rnnbench.runs import hashed_settings, run_spec

    with pytest.raises(RnnbenchError, match=r"unknown model kind 'svm' \(known: linear, rnn"):
        hashed_settings(Config().to_dict(), "svm")
    with pytest.raises(RnnbenchError, match="unknown model kind"):
        run_spec(Config(), "svm", 100, 0)


@pytest.mark.slow
def test_a_third_kind_added_as_a_plugin_joins_the_compare_against_the_baseline(tmp_path):
    """A kind written outside the package (tests/plugin_kind.py: its options, its declaration, one
    registration, its class) runs in `compare` beside linear and rnn; every table has a row per kind, each
    kind is compared with the baseline, status names its runs and predict uses them."""
    import csv
    import json

    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "experiment": {"name": "t", "seeds": [0, 1], "output_dir": str(tmp_path / "runs"),
                       "models": ["linear", "rnn", "centroid"]},
        "data": {"synthetic": {"train_size": 900, "test_size": 200}, "sizes": [100, 300, 600]},
        "rnn": {"embed_dim": 8, "hidden_dim": 8, "epochs": 1, "batch_size": 32}, "centroid": {"buckets": 64}}))
    code = ("import sys; import tests.plugin_kind; from rnnbench.cli import main\n"
            "main(sys.argv[1:], standalone_mode=False)")
    root = Path(__file__).resolve().parents[1]
    for args in (["compare", str(cfg)], ["status", str(tmp_path / "runs" / "t")]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=root)
        assert out.returncode == 0, out.stderr
    status = out.stdout
    assert status.count("centroid-n") == 6 and "18 runs: 18 done" in status
    exp = tmp_path / "runs" / "t"
    table = list(csv.DictReader(open(exp / "crossover.csv")))
    assert [(t["size"], t["model"]) for t in table][:3] == [("100", "linear"), ("100", "rnn"), ("100", "centroid")]
    assert all(t["winner"] in ("centroid", "linear", "tie") for t in table if t["model"] == "centroid")
    cross = json.loads((exp / "crossover.json").read_text())
    assert cross["baseline"] == "linear" and set(cross["models"]) == {"rnn", "centroid"}
    md = (exp / "crossover.md").read_text()
    assert "| size | linear | rnn | centroid |" in md and "**centroid vs linear:**" in md and "**rnn vs linear:**" in md
    fc = json.loads((exp / "forecast.json").read_text())
    assert set(fc["models"]) == {"linear", "rnn", "centroid"} and set(fc["crossover"]) == {"rnn", "centroid"}
    run = next(p for p in (exp / "runs").iterdir() if p.name.startswith("centroid-n600-s0"))
    pred = subprocess.run([sys.executable, "-c", code, "predict", str(run), "not bad at all"], capture_output=True,
                          text=True, cwd=root)
    assert pred.returncode == 0 and pred.stdout.split("\t")[0] in ("0", "1"), pred.stderr


def test_only_the_command_line_writes_to_the_terminal():
    """Library modules log (``logging.getLogger(__name__)``, shown by ``rnnbench.log``); only ``cli``
    prints. tqdm's bars are the one other writer."""
    writers = []
    for name, path in modules().items():
        if name == "rnnbench.cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "print") or (isinstance(f, ast.Attribute) and (
                    f.attr == "echo" or (f.attr == "write" and isinstance(f.value, ast.Attribute)
                                         and f.value.attr in ("stdout", "stderr")))):
                writers.append(f"{name}:{node.lineno}")
    assert writers == []
