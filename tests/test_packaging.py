"""What pip and a new user see: install metadata that is true (the floors the pinned dependencies need,
one version, the licence), `python -m rnnbench`, and a Makefile whose `test` and `demo` install first."""

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import rnnbench
from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def floor(spec: SpecifierSet) -> Version | None:
    """The lowest version a specifier set allows (its >=, ~=, == or > bound), None without one."""
    bounds = [Version(s.version.rstrip(".*")) for s in spec if s.operator in (">=", "~=", "==", ">")]
    return max(bounds) if bounds else None


def test_declared_floors_are_what_the_pinned_dependencies_need():
    """requires-python and the numpy floor are no lower than what the installed pins of every dependency
    ask for: jax 0.10, flax 0.12 and orbax 0.12 need Python 3.11, jax needs numpy 2."""
    project = PROJECT["project"]
    python_floor = floor(SpecifierSet(project["requires-python"]))
    numpy_floor = floor(next(Requirement(d) for d in project["dependencies"] if Requirement(d).name == "numpy").specifier)
    needs_python, needs_numpy = {}, {}
    for dep in map(Requirement, project["dependencies"]):
        try:
            meta = md.metadata(dep.name)
        except md.PackageNotFoundError:
            continue
        assert dep.specifier.contains(meta["Version"]), f"{dep.name} {meta['Version']} installed, {dep} declared"
        if meta["Requires-Python"]:
            needs_python[dep.name] = floor(SpecifierSet(meta["Requires-Python"]))
        for req in map(Requirement, md.requires(dep.name) or []):
            if req.name == "numpy" and not req.marker and floor(req.specifier):
                needs_numpy[dep.name] = floor(req.specifier)
    assert {"jax", "flax", "orbax-checkpoint"} <= set(needs_python)
    assert all(python_floor >= v for v in needs_python.values()), (python_floor, needs_python)
    assert all(numpy_floor >= v for v in needs_numpy.values()), (numpy_floor, needs_numpy)
    assert python_floor <= Version(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert PROJECT["tool"]["ruff"]["target-version"] == f"py{str(python_floor).replace('.', '')}"
    readme = (ROOT / "README.md").read_text()
    assert f"Python {python_floor} or newer" in readme  # the install section says which Pythons


def test_the_build_backend_reads_the_licence_string_and_the_licence_is_in_the_repo():
    """`license = "MIT"` (an SPDX expression) needs setuptools 77; the text it names is in LICENSE."""
    requires = [Requirement(r) for r in PROJECT["build-system"]["requires"]]
    setuptools = next(r for r in requires if r.name == "setuptools")
    assert floor(setuptools.specifier) >= Version("77")
    assert PROJECT["project"]["license"] == "MIT" and PROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in PROJECT["project"]["classifiers"])


def test_the_version_is_written_once():
    """pyproject takes the version from rnnbench.__version__; nothing else in the package spells it."""
    assert "version" not in PROJECT["project"] and PROJECT["project"]["dynamic"] == ["version"]
    assert PROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rnnbench.__version__"}
    spelled = [p for p in (ROOT / "rnnbench").rglob("*.py") if rnnbench.__version__ in p.read_text()]
    assert spelled == [ROOT / "rnnbench" / "__init__.py"]


def test_python_dash_m_rnnbench_is_the_command_line():
    done = subprocess.run([sys.executable, "-m", "rnnbench", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"rnnbench, version {rnnbench.__version__}"
    bad = subprocess.run([sys.executable, "-m", "rnnbench", "no-such-command"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "No such command" in bad.stderr


def make_dry(target: str, venv) -> list[str]:
    # the suite itself runs under `make test`: a nested make would inherit MAKELEVEL and MAKEFLAGS and
    # print "Entering directory" lines among the commands
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(["make", "--no-print-directory", "-n", target, f"VENV={venv}"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("target", ["test", "demo", "test-fast", "lint"])
def test_make_targets_install_first_and_only_when_the_install_is_stale(target, tmp_path):
    """On a fresh clone `make test` (and `make demo`) creates the environment first; once it is current
    (its stamp newer than pyproject.toml) they only run."""
    venv = tmp_path / "venv"
    fresh = make_dry(target, venv)
    assert any(re.search(r"-m venv .*venv", x) for x in fresh), fresh
    assert any("pip install" in x and "-e '.[dev]'" in x for x in fresh)
    venv.mkdir()
    (venv / ".installed").write_text("")
    current = make_dry(target, venv)
    assert current and not any("pip install" in x or "-m venv" in x for x in current), current
    assert all(x.startswith(str(venv / "bin")) for x in current)


def test_the_package_data_globs_take_every_config():
    """pyproject's package data (rnnbench/configs links to configs/) reaches every file in configs/."""
    globs = PROJECT["tool"]["setuptools"]["package-data"]["rnnbench"]
    root = ROOT / "rnnbench"
    packaged = {p.resolve() for g in globs for p in root.glob(g)}
    assert packaged == {p.resolve() for p in (ROOT / "configs").rglob("*") if p.is_file()}
    assert (root / "configs").resolve() == (ROOT / "configs").resolve()


@pytest.mark.slow  # builds the wheel (pip fetches setuptools >= 77 from the package index to build it)
def test_the_wheel_ships_the_configs_the_licence_and_one_version(tmp_path):
    """A built wheel holds configs/ as rnnbench/configs, the LICENSE and the version of rnnbench.__version__;
    unpacked outside a checkout, `python -m rnnbench config list` and `config copy` work from it."""
    import zipfile

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("rnnbench-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        for p in (ROOT / "configs").rglob("*.yaml"):
            assert z.read(f"rnnbench/configs/{p.relative_to(ROOT / 'configs').as_posix()}") == p.read_bytes()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
        z.extractall(tmp_path / "site")
    assert f"\nVersion: {rnnbench.__version__}\n" in meta and wheel.name.startswith(f"rnnbench-{rnnbench.__version__}-")
    assert "\nRequires-Python: >=3.11\n" in meta and "\nLicense-Expression: MIT\n" in meta
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    listed = subprocess.run([sys.executable, "-m", "rnnbench", "config", "list"], capture_output=True, text=True,
                            cwd=elsewhere, env=env, timeout=120)
    assert listed.returncode == 0 and "\nquickstart " in listed.stdout, listed.stderr
    copied = subprocess.run([sys.executable, "-c", "import rnnbench, sys; print(rnnbench.__file__)"],
                            capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert copied.stdout.strip().startswith(str(tmp_path / "site"))  # the unpacked wheel, not the checkout
    copied = subprocess.run([sys.executable, "-m", "rnnbench", "config", "copy", "quickstart"], capture_output=True,
                            text=True, cwd=elsewhere, env=env, timeout=120)
    assert copied.returncode == 0, copied.stderr
    assert (elsewhere / "quickstart.yaml").read_bytes() == (ROOT / "configs" / "quickstart.yaml").read_bytes()


def test_help_documents_every_exit_code():
    from click.testing import CliRunner

    from rnnbench.cli import main
    from rnnbench.errors import EXIT_CODES

    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert all(f"{code} {what}" in text for code, what in EXIT_CODES.items()), text
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 130, 143]


def test_shell_completion_as_the_readme_documents_it():
    """`eval "$(_RNNBENCH_COMPLETE=bash_source rnnbench)"` (README, `rnnbench --help`) defines the bash
    function, and completing `rnnbench config co` offers `copy`."""
    env = {**os.environ, "_RNNBENCH_COMPLETE": "bash_source"}
    source = subprocess.run([sys.executable, "-m", "rnnbench"], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=120)
    assert source.returncode == 0 and "complete -o nosort -F _rnnbench_completion rnnbench" in source.stdout
    env.update(_RNNBENCH_COMPLETE="bash_complete", COMP_WORDS="rnnbench config co", COMP_CWORD="2")
    done = subprocess.run([sys.executable, "-m", "rnnbench"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines() == ["plain,copy"], done.stdout
    assert "_RNNBENCH_COMPLETE=bash_source rnnbench" in (ROOT / "README.md").read_text()
