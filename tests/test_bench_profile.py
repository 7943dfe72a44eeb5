"""scripts/bench_profile.py: the trace summary that names what bounds the RNN's step on a GPU."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
bench_profile = pytest.importorskip("bench_profile")


def gpu_trace(kernels: list[tuple[str, float, float]], stream: str = "Stream #7(Compute)") -> dict:
    """A Perfetto trace as JAX writes it on a GPU: a host process, the device's process with a stream line
    and a derived "XLA Ops" line that overlaps the kernels (and must not be counted)."""
    meta = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 1, "tid": 5, "name": "thread_name", "args": {"name": "python"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": stream}},
        {"ph": "M", "pid": 2, "tid": 8, "name": "thread_name", "args": {"name": "XLA Ops"}},
    ]
    events = [{"ph": "X", "pid": 2, "tid": 7, "name": n, "ts": ts, "dur": d} for n, ts, d in kernels]
    derived = [{"ph": "X", "pid": 2, "tid": 8, "name": "fusion", "ts": 0, "dur": 1000}]
    host = [{"ph": "X", "pid": 1, "tid": 5, "name": "PjitFunction(step)", "ts": 0, "dur": 1000}]
    return {"displayTimeUnit": "ns", "traceEvents": meta + events + derived + host}


def summary(kernels, steps=1, tokens=10):
    where, events = bench_profile.device_events(gpu_trace(kernels))
    assert where == "gpu"
    return bench_profile.summarise(events, steps, tokens, wall_s=1e-3, step_flops=1e9)


def test_launch_bound_step_is_named_by_the_device_idle_time():
    # ten 10 µs kernels, one every 100 µs: busy 10% of the span
    s = summary([(f"loop_fusion_{i}", i * 100.0, 10.0) for i in range(10)])
    assert s["kernels"] == 10 and s["kernels_per_time_step"] == 1.0
    assert s["device_busy"] == pytest.approx(100 / 910, abs=1e-3)
    assert s["bound"].startswith("launches")


def test_matmul_bound_step_and_its_flop_rate():
    kernels = [("sm90_xmma_gemm_bf16bf16_bf16f32", 0.0, 80.0), ("loop_add_fusion", 80.0, 20.0)]
    s = summary(kernels)
    assert s["share"] == {"matmul": 0.8, "copy": 0.0, "other": 0.2}
    assert s["bound"].startswith("the recurrent matmul")
    assert s["matmul_tflops"] == pytest.approx(1e9 / 80e-6 / 1e12, rel=1e-3)
    assert s["top_kernels"][0] == ["sm90_xmma_gemm_bf16bf16_bf16f32", 0.8]


def test_busy_device_of_short_elementwise_kernels_is_memory_bound():
    kernels = [("nvjet_tst_128x64", 0.0, 30.0), ("Memcpy DtoH", 30.0, 10.0), ("input_reduce_fusion", 40.0, 60.0)]
    s = summary(kernels)
    assert s["share"]["copy"] == 0.1 and s["device_busy"] == 1.0
    assert s["bound"].startswith("memory")


def test_overlapping_streams_count_once_in_the_busy_time():
    assert bench_profile.busy_time([{"ts": 0, "dur": 10}, {"ts": 5, "dur": 10}, {"ts": 30, "dur": 5}]) == 20


def test_script_profiles_a_real_step_on_this_machine(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_profile.py"), "--embed", "8", "--hidden", "16", "--tokens", "12",
         "--steps", "1", "--config", "4:float32", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["where"] in ("cpu", "gpu") and figures["kernels"] > 0 and figures["step_ms"] > 0
    trace = next(tmp_path.glob("**/perfetto_trace.json.gz"))
    with gzip.open(trace, "rt") as f:
        assert json.load(f)["traceEvents"]


def test_gpu_lines_named_otherwise_still_exclude_the_derived_ones():
    where, events = bench_profile.device_events(gpu_trace([("loop_fusion", 0.0, 10.0)], stream="Compute 7"))
    assert where == "gpu" and [(e["name"], e["line"]) for e in events] == [("loop_fusion", "Compute 7")]
