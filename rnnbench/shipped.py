"""The example configs that ship with rnnbench: ``rnnbench config list`` and ``rnnbench config copy``.

In a checkout they are the files of ``configs/`` (``rnnbench/configs`` is a link to it); an installed
package carries the same files as ``rnnbench/configs`` (``pyproject.toml``'s package data), so the
README's first command runs outside a checkout too: ``rnnbench config copy quickstart .``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from .errors import RnnbenchError
from .fileio import atomic_write_bytes


def folder() -> Path:
    """Where the shipped configs are: ``configs/`` of the checkout, or of the installed package."""
    return Path(__file__).parent / "configs"


def shipped() -> dict[str, Path]:
    """Every shipped config by name: its path under the folder, without ``.yaml`` (``quickstart``,
    ``examples/jsonl``); the top-level ones first."""
    root = folder()
    paths = sorted(root.rglob("*.yaml"), key=lambda p: (len(p.relative_to(root).parts), p.relative_to(root).as_posix()))
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in paths}


def describe(path: Path, width: int = 100) -> str:
    """The first sentence of a config's opening comment (leaving out the command that runs it), cut at
    ``width`` characters."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text and not text.startswith("rnnbench "):
            words.append(text)
    found = re.match(r"(.+?[.!?])(?=\s+[A-Z]|$)", " ".join(words))
    text = found.group(1) if found else " ".join(words)
    return text if len(text) <= width else text[:width - 1].rsplit(" ", 1)[0] + " …"


def find(name: str) -> Path:
    """The shipped config ``name`` (``quickstart``, ``quickstart.yaml``, ``configs/examples/jsonl.yaml``)."""
    configs = shipped()
    key = name.strip().removeprefix("configs/").removesuffix(".yaml").removesuffix(".yml")
    if key in configs:
        return configs[key]
    close = difflib.get_close_matches(key, list(configs), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise RnnbenchError(f"config copy: no shipped config '{name}' ({hint}`rnnbench config list` lists them)")


def copy(name: str, dest: str | Path, force: bool = False) -> Path:
    """Copy the shipped config ``name`` to ``dest``: a folder (an existing one, or a path ending in
    ``/``: created) gets the config's file name; anything else is the file to write. An existing file
    is kept unless ``force``. Returns the file written."""
    source = find(name)
    dest_text = str(dest)
    target = Path(dest)
    if target.is_dir() or dest_text.endswith(("/", "\\")):
        target = target / source.name
    if target.is_dir():
        raise RnnbenchError(f"config copy: {target} is a folder")
    if target.exists() and not force:
        raise RnnbenchError(f"config copy: {target} exists (use --force to overwrite it)")
    atomic_write_bytes(target, source.read_bytes())
    return target
