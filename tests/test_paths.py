"""The cache folders: $XDG_CACHE_HOME/rnnbench (else ~/.cache/rnnbench) for data, compiled programs and
the GRU's kernels, $RNNBENCH_DATA and $RNNBENCH_KERNELS still winning."""

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

WHERE = """
import json
from rnnbench.data import data_home
from rnnbench.models.jaxtrain.compile_cache import compilation_cache_path
from rnnbench.models.rnn.native import cache_dir
print(json.dumps({"data": str(data_home()), "programs": compilation_cache_path(), "kernels": str(cache_dir())}))
"""


def folders(tmp_path, **env) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("RNNBENCH_DATA", "RNNBENCH_KERNELS", "XDG_CACHE_HOME", "JAX_COMPILATION_CACHE_DIR")}
    done = subprocess.run([sys.executable, "-c", WHERE], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**base, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_caches_follow_xdg_cache_home_and_the_rnnbench_variables_win(tmp_path):
    home = tmp_path / "home" / ".cache" / "rnnbench"
    assert folders(tmp_path) == {"data": str(home), "programs": str(home / "jax-cache"),
                                 "kernels": str(home / "kernels")}
    xdg = tmp_path / "xdg"
    assert folders(tmp_path, XDG_CACHE_HOME=str(xdg)) == {
        "data": str(xdg / "rnnbench"), "programs": str(xdg / "rnnbench" / "jax-cache"),
        "kernels": str(xdg / "rnnbench" / "kernels")}
    assert folders(tmp_path, XDG_CACHE_HOME="relative/cache")["data"] == str(home)  # the spec: ignored
    mine = folders(tmp_path, XDG_CACHE_HOME=str(xdg), RNNBENCH_DATA=str(tmp_path / "d"),
                   RNNBENCH_KERNELS=str(tmp_path / "k"))
    assert mine == {"data": str(tmp_path / "d"), "programs": str(tmp_path / "d" / "jax-cache"),
                    "kernels": str(tmp_path / "k")}


def test_only_rnnbench_paths_names_the_cache_folder():
    """One place spells the default cache root; the others ask rnnbench.paths."""
    spelled = [p.relative_to(ROOT).as_posix() for p in (ROOT / "rnnbench").rglob("*.py")
               if '".cache"' in p.read_text() or "'.cache'" in p.read_text()]
    assert spelled == ["rnnbench/paths.py"]
