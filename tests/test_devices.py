"""compute.device, the CUDA extras and `rnnbench env` (the suite runs on the CPU: JAX_PLATFORMS=cpu)."""

import importlib.metadata as md
import json
import re
import subprocess
import sys
import tomllib

import jax
import pytest

from rnnbench import devices
from rnnbench.config import ROOT_DOC, ComputeConfig, reference_markdown
from rnnbench.errors import RnnbenchError
from tests.conftest import ROOT


def test_cpu_and_auto_choose_the_cpu_and_say_why():
    cpu = devices.choose(ComputeConfig(device="cpu"))
    assert cpu.device.platform == "cpu" and cpu.reason == "CPU: compute.device is cpu"
    auto = devices.choose(ComputeConfig(device="auto"))
    assert auto.device.platform == "cpu" and auto.reason.startswith("CPU: ")
    assert auto.label.startswith("cpu (jax, ")


def test_train_programs_auto_is_per_chunk_on_a_cpu_and_per_batch_on_a_gpu():
    cpu = devices.choose(ComputeConfig(device="cpu")).device.platform
    resolve = devices.train_programs
    assert resolve("auto", cpu) == "per-chunk" and resolve("auto", "gpu") == "per-batch"
    assert resolve("per-batch", cpu) == "per-batch" and resolve("per-chunk", "gpu") == "per-chunk"


def test_gpu_without_one_is_an_error_naming_the_extra(monkeypatch):
    """Where the machine has a GPU that JAX does not see, the error names the extra to install; where it
    has none, it says so and advises nothing (a CPU-only machine is not told to install CUDA every run)."""
    monkeypatch.setattr(devices, "machine_has_gpu", lambda: True)
    with pytest.raises(RnnbenchError, match=r"JAX sees no GPU: .*\.\[cuda12\]|JAX_PLATFORMS=cpu hides the GPU"):
        devices.choose(ComputeConfig(device="gpu"))
    if not devices.installed_cuda_plugins():
        monkeypatch.setattr(devices, "machine_has_gpu", lambda: False)
        with pytest.raises(RnnbenchError, match=r"JAX sees no GPU: this machine has no GPU$"):
            devices.choose(ComputeConfig(device="gpu"))
        assert "cuda" not in devices.why_no_gpu()


def test_bfloat16_on_a_cpu_is_refused_with_the_reason():
    with pytest.raises(RnnbenchError, match=r"rnn\.dtype: bfloat16 is for GPUs.*slower than float32"):
        devices.choose(ComputeConfig(device="auto"), dtype="bfloat16")


def test_use_makes_the_choice_jaxs_default_device():
    choice = devices.use(ComputeConfig(device="cpu"))
    assert jax.config.jax_default_device == choice.device
    assert jax.numpy.zeros(2).devices() == {choice.device}


@pytest.mark.slow  # asks the package index
@pytest.mark.parametrize("extra", ["cuda12", "cuda13"])
def test_cuda_extras_pin_jaxs_own_plugin_and_it_resolves(extra, tmp_path):
    """CI has no GPU: check that `.[cudaXX]` asks jax for its own CUDA extra at the pinned jax version, and
    that the plugin of the installed jax version exists for this platform (pip resolves it, installs nothing)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    jax_pin = next(d for d in project["dependencies"] if d.startswith("jax=="))
    assert project["optional-dependencies"][extra] == [jax_pin.replace("jax==", f"jax[{extra}]==")]
    plugin = devices.CUDA_PLUGINS[extra]
    version = md.version("jax")
    assert any(r.startswith(f"{plugin}") and f"<={version}" in r and f'extra == "{extra}"' in r
               for r in md.requires("jax"))
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                           "-q", "--report", str(report), f"{plugin}=={version}"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (item,) = json.loads(report.read_text())["install"]
    assert (item["metadata"]["name"], item["metadata"]["version"]) == (plugin, version)


def test_the_config_reference_is_current():
    """docs/config.md is generated from rnnbench/config.py: regenerate with `rnnbench config reference`."""
    assert (ROOT / ROOT_DOC).read_text() == reference_markdown()
    text = reference_markdown()
    for key in ("rnn.hidden_dim", "data.synthetic.train_size", "sweep.grid", "plot[].target", "compute.device"):
        assert re.search(rf"\| `{re.escape(key)}` \| [^|]+ \| `[^`]*` \| \S", text), key


def test_env_command_prints_versions_devices_and_folders():
    from click.testing import CliRunner

    from rnnbench.cli import main

    r = CliRunner().invoke(main, ["env", "--json"])
    assert r.exit_code == 0, r.output
    facts = json.loads(r.output)
    assert facts["jax"] == md.version("jax") and facts["backend"] == "cpu"
    assert facts["devices"][0].startswith("cpu:0") and facts["gpu"].startswith("none (")
    assert facts["cpu_kernels"].startswith(("built: ", "not available (", "off ("))
    assert facts["train_programs"] == "per-chunk (compute.train_programs auto, on the cpu)"
    assert facts["data_home"].endswith("data-home")  # the suite's per-test RNNBENCH_DATA
    r = CliRunner().invoke(main, ["env"])
    assert r.exit_code == 0 and any(line.startswith("jaxlib ") for line in r.output.splitlines())


def test_config_reference_command_prints_the_reference():
    from click.testing import CliRunner

    from rnnbench.cli import main

    r = CliRunner().invoke(main, ["config", "reference"])
    assert r.exit_code == 0 and r.output == reference_markdown()
